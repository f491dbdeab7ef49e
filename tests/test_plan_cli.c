/* deltatune plan against measurements, through the command line
 * (docs/plan.md):
 *   - predicted peak RSS per rank within 10% of what train's summary
 *     measures ("peak RSS per rank N MB (largest)"), and the same trainable
 *     count, on several shapes, methods and layouts of 1 to 4 ranks; the
 *     machine constants (the resident baseline of the process, MPI and
 *     BLAS among them) come from `plan --calibrate` at each rank count;
 *   - the checkpoint's variables: the written file minus its header (the
 *     header extent read from the file with PnetCDF, ncmpi_inq_header_extent,
 *     and checked against the first variable's offset) equals the plan's
 *     bytes with and without the optimizer state;
 *   - the time model with bf16 products: from a machine file with bf16
 *     constants the compute time is the fp32 plan's scaled by the ratio of
 *     the two (rate x engine fraction) products, and the fp32 one without
 *     them; a calibration writes both bf16 constants or neither;
 *   - the layout advisor (--layouts): every --tp of the ranks with the
 *     figures of that --tp's own plan, the splits of the rows that do not
 *     divide refused by name, and the pick the most tokens/s among the
 *     layouts within --mem-per-node.
 *
 * usage: test_plan_cli MPIRUN... (the launcher; "-np N" is appended) */
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <pnetcdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

static char g_mpirun[1024];
static char g_tmp[512];

/* plan --json of a configuration; the "plan" object (caller frees root). */
static json_t *plan_json(const char *args, json_t **root) {
  char *out = NULL;
  const int rc = dt_test_run(&out, "%s plan %s --json --compare-full no", DT_BINARY, args);
  json_error_t je;
  *root = rc == 0 && out && strchr(out, '{') ? json_loads(strchr(out, '{'), 0, &je) : NULL;
  if (!*root) fail_msg("plan %s: exit %d\n%s", args, rc, out ? out : "");
  free(out);
  return json_object_get(*root, "plan");
}

static int64_t jint(json_t *o, const char *a, const char *b) {
  json_t *v = json_object_get(o, a);
  if (b) v = json_object_get(v, b);
  return (int64_t)json_integer_value(v);
}

/* The shortest timing of the sums (--calibrate-seconds 0.1): this test
 * reads the memory constants, not the communication curves. */
static void calibrate(int np) {
  char *out = NULL;
  const int rc = dt_test_run(&out, "%s -np %d %s plan --calibrate --calibrate-seconds 0.1 --machine %s/machine%d.json",
                             g_mpirun, np, DT_BINARY, g_tmp, np);
  if (rc != 0) fail_msg("plan --calibrate at %d ranks: exit %d\n%s", np, rc, out);
  free(out);
}

typedef struct {
  int np, tp;
  const char *model, *method, *extra;
  int batch, seq;
} rss_case;

#define G "synthetic:gpt2:layers=4,d=384,heads=6,vocab=8000,ctx=256"
#define L "synthetic:llama:layers=3,d=512,heads=8,kv_heads=2,vocab=6000,ctx=256"

static const rss_case k_rss[] = {
    {1, 1, G, "lora", "", 4, 128},
    {1, 1, L, "lora", "--recompute", 4, 128},
    {1, 1, G, "adapter", "--adapter-size 32", 4, 128},
    {1, 1, G, "full", "", 4, 128},
    {1, 1, G, "said", "--said-dim 1000", 4, 128},
    {1, 1, G, "lora,bitfit", "--lora-dropout 0.1", 4, 128},
    {2, 2, G, "lora", "", 4, 128},
    {2, 2, G, "prefix", "--prefix-tokens 16", 4, 128},
    {2, 2, L, "prompt", "--prompt-tokens 8", 4, 128},
    {2, 2, L, "full", "", 4, 128},
    {2, 2, L, "lora", "--weights-dtype bf16", 4, 128},
    {2, 2, L, "lora", "--weights-dtype bf16 --matmul-dtype bf16", 4, 128},
    {1, 1, G, "lora", "--weights-dtype bf16 --matmul-dtype bf16 --micro-batch 2", 4, 128},
    {2, 1, G, "lastlayer", "--last-layers 2", 4, 128},
    {3, 3, L, "adapter", "--adapter-size 32", 6, 64},
    {4, 4, G, "lora", "", 4, 128},
    {4, 2, L, "lora", "--lora-targets q_proj,v_proj,o_proj,down_proj", 4, 128},
    {4, 2, L, "ia3", "", 4, 128},
    {4, 1, G, "bitfit", "", 4, 128},
    {1, 1, G, "full", "--micro-batch 1", 4, 128},
    {2, 2, L, "lora", "--micro-batch 3", 6, 128},
};

/* "peak RSS per rank N MB" and "trainable X of" from train's summary. */
static void measure(const rss_case *k, double *mb, long long *trainable) {
  char *out = NULL;
  const int rc = dt_test_run(&out,
                             "%s -np %d %s train --model %s --method %s %s --tp %d --batch-size %d "
                             "--data synthetic:rows=%d,len=%d --steps 2",
                             g_mpirun, k->np, DT_BINARY, k->model, k->method, k->extra, k->tp,
                             k->batch, k->batch, k->seq);
  const char *p = out ? strstr(out, "peak RSS per rank ") : NULL;
  const char *q = out ? strstr(out, "summary: trainable ") : NULL;
  if (rc != 0 || !p || !q) fail_msg("train: exit %d\n%s", rc, out ? out : "");
  *mb = atof(p + strlen("peak RSS per rank "));
  *trainable = atoll(q + strlen("summary: trainable "));
  /* the step time split: forward and backward took time, the four parts fit
   * in the steps' time, and the communication is inside them */
  double comm, steps_s, f, b, g, o;
  const char *c = strstr(out, "summary: communication ");
  const char *t = strstr(out, "summary: step time split");
  if (!c || sscanf(c, "summary: communication %lfs of %lfs", &comm, &steps_s) != 2 || !t ||
      sscanf(t, "summary: step time split (rank 0, all steps): forward (with the loss head's "
                "gradient) %lfs, backward %lfs, gradient all-reduce and norm %lfs, optimizer %lfs",
             &f, &b, &g, &o) != 4)
    fail_msg("train's summary lacks the communication or the step time split:\n%s", out);
  if (!(f > 0 && b > 0 && f + b + g + o <= steps_s + 0.02 && comm <= f + b + g + 0.02))
    fail_msg("step time split forward %.2f backward %.2f sync %.2f optimizer %.2f, communication "
             "%.2f of %.2f s in the steps", f, b, g, o, comm, steps_s);
  free(out);
}

static void test_peak_rss(void **state) {
  (void)state;
  int done[5] = {0};
  printf("  %-3s %-3s %-60s %-24s %9s %9s %7s\n", "np", "tp", "model", "method", "measured",
         "predicted", "error");
  for (size_t i = 0; i < sizeof k_rss / sizeof *k_rss; i++) {
    const rss_case *k = &k_rss[i];
    if (!done[k->np]) calibrate(k->np), done[k->np] = 1;
    double mb;
    long long trainable;
    measure(k, &mb, &trainable);
    char args[1024];
    snprintf(args, sizeof args,
             "--model %s --method %s %s --nodes 1 --ranks-per-node %d --tp %d --batch-size %d "
             "--seq-len %d --data-rows %d --machine %s/machine%d.json",
             k->model, k->method, k->extra, k->np, k->tp, k->batch, k->seq, k->batch, g_tmp,
             k->np);
    json_t *root;
    json_t *p = plan_json(args, &root);
    /* train prints MiB (VmHWM kB / 1024) */
    const double pred = (double)jint(p, "memory_per_rank", "peak_rss") / (1024.0 * 1024.0);
    const double err = (pred - mb) / mb;
    printf("  %-3d %-3d %-60s %-24s %6.0f MiB %6.1f MiB %+6.1f%%\n", k->np, k->tp, k->model,
           k->method, mb, pred, 100 * err);
    if (fabs(err) > 0.10) fail_msg("%s %s: predicted %.1f MiB, measured %.0f", k->method, k->extra, pred, mb);
    assert_int_equal(jint(p, "trainable_parameters", NULL), trainable);
    json_decref(root);
  }
}

typedef struct {
  int np, tp;
  const char *model, *method, *extra;
  int with_opt;
} ckpt_case;

static const ckpt_case k_ckpt[] = {
    {1, 1, "synthetic:gpt2:layers=2,d=64,heads=4,vocab=500,ctx=64", "lora,bitfit", "", 1},
    {2, 1, "synthetic:gpt2:layers=2,d=64,heads=4,vocab=500,ctx=64", "prefix", "--prefix-hidden 16", 1},
    {2, 2, "synthetic:llama:layers=2,d=64,heads=4,kv_heads=2,vocab=300,ctx=64", "lora",
     "--lora-targets q_proj,v_proj,down_proj", 0},
    {1, 1, "synthetic:llama:layers=2,d=64,heads=4,kv_heads=2,vocab=300,ctx=64", "said",
     "--said-dim 77", 1},
    {4, 2, "synthetic:gpt2:layers=2,d=64,heads=4,vocab=500,ctx=64", "ia3,prompt",
     "--prompt-tokens 3", 1},
    {1, 1, "synthetic:gpt2:layers=1,d=32,heads=2,vocab=200,ctx=64", "full", "", 1},
    {3, 1, "synthetic:gpt2:layers=2,d=64,heads=4,vocab=500,ctx=64", "adapter", "--adapter-size 5", 0},
};

static void test_checkpoint_bytes(void **state) {
  (void)state;
  char files[8][1100];
  int64_t predicted[8];
  const int n = (int)(sizeof k_ckpt / sizeof *k_ckpt);
  for (int i = 0; i < n; i++) {
    const ckpt_case *k = &k_ckpt[i];
    char dir[700], *out = NULL;
    snprintf(dir, sizeof dir, "%s/ckpt%d", g_tmp, i);
    int rc = dt_test_run(&out,
                         "%s -np %d %s train --model %s --method %s %s --tp %d --batch-size 12 "
                         "--data synthetic:rows=12,len=16 --steps 1 --out %s --save-optimizer %s",
                         g_mpirun, k->np, DT_BINARY, k->model, k->method, k->extra, k->tp, dir,
                         k->with_opt ? "yes" : "no");
    if (rc != 0) fail_msg("train --out: exit %d\n%s", rc, out);
    free(out);
    snprintf(files[i], sizeof files[i], "%s/ckpt-0000000001.nc", dir);
    char args[1024];
    snprintf(args, sizeof args,
             "--model %s --method %s %s --ranks-per-node %d --tp %d --batch-size 12 --seq-len 16 "
             "--machine %s/none.json",
             k->model, k->method, k->extra, k->np, k->tp, g_tmp);
    json_t *root;
    json_t *p = plan_json(args, &root);
    predicted[i] = jint(p, "checkpoint_per_task", k->with_opt ? "with_optimizer_bytes" : "deltas_bytes");
    json_decref(root);
  }
  /* the header, from the files themselves (PnetCDF; MPI only now, after the
   * launches above) */
  MPI_Init(NULL, NULL);
  for (int i = 0; i < n; i++) {
    int ncid, nvars;
    MPI_Offset extent, first = -1;
    assert_int_equal(ncmpi_open(MPI_COMM_SELF, files[i], NC_NOWRITE, MPI_INFO_NULL, &ncid), NC_NOERR);
    assert_int_equal(ncmpi_inq_header_extent(ncid, &extent), NC_NOERR);
    assert_int_equal(ncmpi_inq_nvars(ncid, &nvars), NC_NOERR);
    for (int v = 0; v < nvars; v++) {
      MPI_Offset off;
      assert_int_equal(ncmpi_inq_varoffset(ncid, v, &off), NC_NOERR);
      if (first < 0 || off < first) first = off;
    }
    ncmpi_close(ncid);
    assert_int_equal((long long)first, (long long)extent); /* data starts at the extent */
    struct stat sb;
    assert_int_equal(stat(files[i], &sb), 0);
    const long long data = (long long)sb.st_size - (long long)extent;
    printf("  %-12s %d ranks: file %lld bytes - header %lld = %lld; plan %lld\n", k_ckpt[i].method,
           k_ckpt[i].np, (long long)sb.st_size, (long long)extent, data, (long long)predicted[i]);
    assert_int_equal(data, (long long)predicted[i]);
  }
}

static double jnum(json_t *o, const char *a, const char *b) {
  json_t *v = json_object_get(o, a);
  if (b) v = json_object_get(v, b);
  if (!json_is_number(v)) fail_msg("plan JSON: no number at %s.%s", a, b ? b : "");
  return json_number_value(v);
}

/* compute_s and compute_rate of a plan of the GPT-2 test shape */
static double compute_s(const char *machine, const char *dtype, const char *rate) {
  char args[1024];
  snprintf(args, sizeof args,
           "--model %s --method lora %s --ranks-per-node 2 --tp 2 --batch-size 4 --seq-len 64 "
           "--machine %s", G, dtype, machine);
  json_t *root;
  json_t *p = plan_json(args, &root);
  const double t = jnum(p, "time", "compute_s");
  const char *r = json_string_value(json_object_get(json_object_get(p, "time"), "compute_rate"));
  if (!r || strcmp(r, rate) != 0)
    fail_msg("plan %s: compute_rate %s, expected %s", args, r ? r : "(none)", rate);
  json_decref(root);
  return t;
}

static void test_bf16_time_model(void **state) {
  (void)state;
  char with[600], without[600];
  snprintf(with, sizeof with, "%s/machine-bf16.json", g_tmp);
  snprintf(without, sizeof without, "%s/machine-fp32.json", g_tmp);
  FILE *f = fopen(with, "w");
  assert_non_null(f);
  fputs("{\"sgemm_gflops\": 50, \"engine_fraction\": 0.5, \"bf16_gflops\": 150, "
        "\"engine_fraction_bf16\": 0.4}\n", f);
  fclose(f);
  f = fopen(without, "w");
  assert_non_null(f);
  fputs("{\"sgemm_gflops\": 50, \"engine_fraction\": 0.5}\n", f);
  fclose(f);
  const char *bf = "--weights-dtype bf16 --matmul-dtype bf16";
  const double fp = compute_s(with, "", "sgemm"), b = compute_s(with, bf, "bf16");
  /* the same FLOPs at 150 x 0.4 = 60 instead of 50 x 0.5 = 25 GFLOP/s */
  if (!(fabs(b / fp - 25.0 / 60.0) < 1e-9))
    fail_msg("bf16 compute %.6g s vs fp32 %.6g s: ratio %.6g, expected %.6g", b, fp, b / fp,
             25.0 / 60.0);
  const double b0 = compute_s(without, bf, "sgemm");
  if (!(fabs(b0 / fp - 1.0) < 1e-9))
    fail_msg("without bf16 constants the bf16 plan's compute (%.6g s) should be fp32's (%.6g s)", b0,
             fp);
  /* a calibrated file (test_peak_rss wrote it): both bf16 constants or neither */
  char cal[600];
  snprintf(cal, sizeof cal, "%s/machine1.json", g_tmp);
  json_error_t je;
  json_t *r = json_load_file(cal, 0, &je);
  if (!r) fail_msg("%s: %s", cal, je.text);
  const double g = json_number_value(json_object_get(r, "bf16_gflops"));
  const double e = json_number_value(json_object_get(r, "engine_fraction_bf16"));
  if (!json_object_get(r, "bf16_gflops") || (g > 0) != (e > 0))
    fail_msg("%s: bf16_gflops %g, engine_fraction_bf16 %g", cal, g, e);
  json_decref(r);
}

/* plan --layouts of base (4 ranks: --tp 1, 2, 4) under --mem-per-node mem
 * (0: none): a row per size with the figures plan gives for that --tp alone
 * (node bytes into node[]), --tp 1 refused and named where the rows do not
 * split over 4 replicas, and the fastest the most tokens/s among the rows
 * that fit. */
static void check_layouts(const char *base, int tp1_refused, double mem, double node[3]) {
  char args[1200];
  snprintf(args, sizeof args, "%s --layouts yes", base);
  if (mem > 0) snprintf(args + strlen(args), sizeof args - strlen(args), " --mem-per-node %.0f", mem);
  json_t *root;
  (void)plan_json(args, &root);
  json_t *lay = json_object_get(root, "layouts"), *rows = json_object_get(lay, "rows");
  assert_int_equal(json_array_size(rows), 3);
  double best_tps = -1;
  int best_tp = -1;
  for (size_t i = 0; i < 3; i++) {
    json_t *r = json_array_get(rows, i);
    const int tp = (int)json_integer_value(json_object_get(r, "tp"));
    assert_int_equal(tp, 1 << i);
    assert_int_equal(json_integer_value(json_object_get(r, "dp")), 4 >> i);
    json_t *why = json_object_get(r, "refused");
    if (i == 0 && tp1_refused) {
      if (!json_is_string(why) || !strstr(json_string_value(why), "do not split over 4 replicas"))
        fail_msg("plan %s: --tp 1 not refused for its rows", args);
      continue;
    }
    assert_true(json_is_null(why));
    const double t = jnum(r, "tokens_per_s", NULL), nb = jnum(r, "node_bytes", NULL);
    char one[1300];
    snprintf(one, sizeof one, "%s --tp %d", base, tp);
    json_t *r1;
    json_t *p1 = plan_json(one, &r1);
    if (fabs(jnum(p1, "time", "tokens_per_s") - t) > 1e-9 * t ||
        jnum(json_object_get(p1, "node"), "bytes", NULL) != nb)
      fail_msg("--layouts row --tp %d: %.6g tokens/s, %.0f bytes; plan --tp %d: %.6g, %.0f", tp, t,
               nb, tp, jnum(p1, "time", "tokens_per_s"), jnum(json_object_get(p1, "node"), "bytes", NULL));
    json_decref(r1);
    node[i] = nb;
    const int fits = json_is_true(json_object_get(r, "fits"));
    assert_int_equal(fits, mem <= 0 || nb <= mem);
    if (fits && t > best_tps) best_tps = t, best_tp = tp;
  }
  assert_true(best_tp > 0);
  assert_int_equal(json_integer_value(json_object_get(lay, "fastest_tp")), best_tp);
  json_decref(root);
}

/* plan --layouts: the advisor's rows and pick (check_layouts); batch 2 on 4
 * ranks refuses --tp 1; without shared weights --tp 1 is the fastest and
 * needs the most node memory, and a --mem-per-node between its node memory
 * and --tp 2's leaves it out: the pick is then --tp 2, not the fastest nor
 * the leanest of all. */
static void test_layouts(void **state) {
  (void)state;
  double node[3] = {0};
  check_layouts("--model " G " --method lora --ranks-per-node 4 --batch-size 2 --seq-len 64", 1, 0,
                node);
  const char *ns = "--model " G " --method lora --ranks-per-node 4 --batch-size 8 --seq-len 64 "
                   "--share-weights no";
  check_layouts(ns, 0, 0, node);
  assert_true(node[0] > node[1] && node[1] > node[2]);
  check_layouts(ns, 0, (node[0] + node[1]) / 2, node);
}

int main(int argc, char **argv) {
  size_t o = 0;
  for (int i = 1; i < argc && o < sizeof g_mpirun - 1; i++)
    o += (size_t)snprintf(g_mpirun + o, sizeof g_mpirun - o, "%s%s", i > 1 ? " " : "", argv[i]);
  if (!g_mpirun[0]) snprintf(g_mpirun, sizeof g_mpirun, "mpirun --oversubscribe");
  snprintf(g_tmp, sizeof g_tmp, "%s", dt_test_tmpdir());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_peak_rss),
      cmocka_unit_test(test_bf16_time_model),
      cmocka_unit_test(test_layouts),
      cmocka_unit_test(test_checkpoint_bytes), /* last: it starts MPI in this process */
  };
  const int rc = cmocka_run_group_tests(tests, NULL, NULL);
  int up = 0;
  MPI_Initialized(&up);
  if (up) MPI_Finalize();
  return rc;
}
