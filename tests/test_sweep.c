/* deltatune sweep: each task of a sweep (LoRA, adapter and IA3 in one
 * combined batch, prefix, prefix with MLP and prompt in their own groups)
 * , and LoRA-free tasks that train backbone tensors on private copies: last
 * layer, full, SAID, BitFit) has the same per-step losses (1e-5) as the same
 * task trained alone with
 * deltatune train, at 1 rank and at 2 ranks (2 replicas; 2 shards); a task
 * with a missing data file is reported and dropped while the others finish.
 * Resume: a sweep (LoRA with dropout and random rows, IA3 that finishes
 * early, prefix in its own group, last layer on a private backbone copy,
 * each with checkpoints in its 'out') interrupted by SIGTERM (the
 * DT_TEST_INTERRUPT hook raises it on one rank) exits 9 after every running
 * task checkpointed; `sweep --resume` then gives every task the per-step
 * metrics (each step once) and the byte-identical deltas of the same sweep
 * run without interruption, at 1 rank and at 2 data-parallel ranks.
 * usage: test_sweep FAMILY */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *g_fam;

typedef struct {
  const char *name, *args; /* task keys (one per line) */
} tcase;

static int read_losses(const char *path, double *v, int max) {
  char *s = dt_test_slurp(path);
  if (!s) return -1;
  int n = 0;
  for (const char *p = s; n < max && (p = strstr(p, "\"loss\": ")); p += 8) v[n++] = atof(p + 8);
  free(s);
  return n;
}

/* Methods that train backbone tensors need fp32 weights: left out of a
 * layout whose options store them in bf16. */
static int skipped(const char *name, const char *tp) {
  return strstr(tp, "bf16") &&
         (!strcmp(name, "full") || !strcmp(name, "lastlayer") || !strcmp(name, "said"));
}

/* Every case in one sweep against each alone, per-step losses within tol. */
static void run_layout_tol(const char *launch, const char *tp, double tol) {
  char F[1024];
  snprintf(F, sizeof F, "%s", dt_test_fixture(g_fam));
  const char *tmp = dt_test_tmpdir();
  const int llama = !strcmp(g_fam, "llama");
  const tcase cases[] = {
      {"lora", llama ? "method = lora\nlora-rank = 4\nlora-alpha = 8\nlora-targets = q_proj,v_proj,down_proj"
                     : "method = lora\nlora-rank = 4\nlora-alpha = 8\nlora-targets = c_attn,mlp.c_fc"},
      {"adapter", "method = adapter\nadapter-size = 8"},
      {"ia3", "method = ia3"},
      {"prefix", "method = prefix\nprefix-tokens = 3"},
      {"prefix_proj", "method = prefix\nprefix-tokens = 3\nprefix-hidden = 32"},
      {"prompt", "method = prompt\nprompt-tokens = 3"},
      {"lastlayer", "method = lastlayer"},
      {"full", "method = full"},
      {"said", "method = said\nsaid-dim = 24"},
      {"bitfit", "method = bitfit"},
  };
  const int nc = (int)(sizeof cases / sizeof *cases) - (llama ? 1 : 0); /* no bitfit on LLaMA */
  char ini[1200];
  snprintf(ini, sizeof ini, "%s/tasks.ini", tmp);
  FILE *f = fopen(ini, "w");
  assert_non_null(f);
  char init[16][2600];
  for (int i = 0; i < nc; i++) {
    if (skipped(cases[i].name, tp)) continue;
    if (!strcmp(cases[i].name, "said"))
      snprintf(init[i], sizeof init[i], "%s/said/init.safetensors,%s/said/projection.safetensors", F, F);
    else
      snprintf(init[i], sizeof init[i], "%s/%s/init.safetensors", F, cases[i].name);
    fprintf(f,
            "[task %s]\n%s\ninit-from = %s\ndata = %s/batch.safetensors\n"
            "batch-size = 2\nsteps = %d\nlr = 1e-2\nmetrics = %s/sweep_%s.jsonl\n\n",
            cases[i].name, cases[i].args, init[i], F, 5 - (i % 2), tmp, cases[i].name);
  }
  fprintf(f, "[task broken]\nmethod = lora\ndata = %s/missing.safetensors\nbatch-size = 2\n", tmp);
  fclose(f);
  char *out;
  int rc = dt_test_run(&out, "%s %s sweep --model %s/model --tasks %s --log-every 1 %s", launch,
                       DT_BINARY, F, ini, tp);
  /* the broken task makes the sweep fail, after the others finished */
  if (rc == 0 || !strstr(out, "missing.safetensors") || !strstr(out, "task broken: FAILED"))
    fail_msg("expected the broken task to be reported (exit %d):\n%s", rc, out);
  free(out);
  for (int i = 0; i < nc; i++) {
    if (skipped(cases[i].name, tp)) continue;
    /* the same task alone: convert "key = value" lines to options */
    char opts[1024] = "";
    char buf[512];
    snprintf(buf, sizeof buf, "%s", cases[i].args);
    for (char *save = NULL, *ln = strtok_r(buf, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
      char k[128], v[256];
      if (sscanf(ln, "%127s = %255s", k, v) == 2) {
        strcat(opts, " --");
        strcat(opts, k);
        strcat(opts, " ");
        strcat(opts, v);
      }
    }
    rc = dt_test_run(&out,
                     "%s %s train --model %s/model --data %s/batch.safetensors --batch-size 2 "
                     "--steps %d --lr 1e-2 --init-from %s --metrics "
                     "%s/alone_%s.jsonl %s %s",
                     launch, DT_BINARY, F, F, 5 - (i % 2), init[i], tmp, cases[i].name, opts, tp);
    if (rc) fail_msg("%s alone exited %d:\n%s", cases[i].name, rc, out);
    free(out);
    char p1[1300], p2[1300];
    snprintf(p1, sizeof p1, "%s/sweep_%s.jsonl", tmp, cases[i].name);
    snprintf(p2, sizeof p2, "%s/alone_%s.jsonl", tmp, cases[i].name);
    double a[16], b[16];
    int na = read_losses(p1, a, 16), nb = read_losses(p2, b, 16);
    if (na != 5 - (i % 2) || nb != na) fail_msg("%s: %d sweep losses, %d alone", cases[i].name, na, nb);
    for (int k = 0; k < na; k++)
      if (!(fabs(a[k] - b[k]) <= tol))
        fail_msg("%s step %d: sweep loss %.9f, alone %.9f", cases[i].name, k, a[k], b[k]);
  }
}

static void run_layout(const char *launch, const char *tp) { run_layout_tol(launch, tp, 1e-5); }

/* The resume sweep's tasks under root: (name, keys, steps). */
static const struct {
  const char *name, *gpt2, *llama;
  int steps;
} rcases[] = {
    {"lora", "method = lora\nlora-rank = 4\nlora-targets = c_attn,mlp.c_fc\nlora-dropout = 0.1\n"
             "sample-rows = 3\nsave-every = 2\nkeep = 2",
     "method = lora\nlora-rank = 4\nlora-targets = q_proj,v_proj,down_proj\nlora-dropout = 0.1\n"
     "sample-rows = 3\nsave-every = 2\nkeep = 2", 8},
    {"ia3", "method = ia3", "method = ia3", 3},
    {"prefix", "method = prefix\nprefix-tokens = 3\nshuffle = 5", "method = prefix\nprefix-tokens = 3\nshuffle = 5", 7},
    {"lastlayer", "method = lastlayer\nsave-every = 3", "method = lastlayer\nsave-every = 3", 6},
};
enum { NR = sizeof rcases / sizeof *rcases };

static void write_resume_tasks(const char *root, const char *F) {
  char ini[1200];
  snprintf(ini, sizeof ini, "%s/tasks.ini", root);
  FILE *f = fopen(ini, "w");
  assert_non_null(f);
  for (int i = 0; i < NR; i++)
    fprintf(f,
            "[task %s]\n%s\ndata = %s/batch.safetensors\nbatch-size = 2\nsteps = %d\n"
            "lr = 1e-2\nmetrics = %s/%s.jsonl\nout = %s/%s\n\n",
            rcases[i].name, strcmp(g_fam, "llama") ? rcases[i].gpt2 : rcases[i].llama, F,
            rcases[i].steps, root, rcases[i].name, root, rcases[i].name);
  fclose(f);
}

/* The metrics lines of a file, with elapsed_s cut off (it is a time). */
static int metrics_lines(const char *path, char lines[][256], int max) {
  char *s = dt_test_slurp(path);
  if (!s) return -1;
  int n = 0;
  for (char *save = NULL, *ln = strtok_r(s, "\n", &save); ln && n < max;
       ln = strtok_r(NULL, "\n", &save)) {
    char *e = strstr(ln, ", \"elapsed_s\"");
    if (e) *e = 0;
    snprintf(lines[n++], 256, "%s", ln);
  }
  free(s);
  return n;
}

static int same_file(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb;
  while (same) {
    int ca = fgetc(fa), cb = fgetc(fb);
    if (ca != cb) same = 0;
    if (ca == EOF || cb == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

/* launch: "" or "mpirun -np 2 ..."; launch_int: the same with the
 * interruption's hook (DT_TEST_INTERRUPT=4[:RANK], a signal while sweep
 * step 4 runs, so the sweep stops at the boundary of step 5: IA3 has
 * finished by then). */
static void run_resume(const char *tag, const char *launch, const char *launch_int) {
  char F[1024];
  snprintf(F, sizeof F, "%s", dt_test_fixture(g_fam));
  char ref[600], itr[600];
  snprintf(ref, sizeof ref, "%s/resume-%s-ref", dt_test_tmpdir(), tag);
  snprintf(itr, sizeof itr, "%s/resume-%s-int", dt_test_tmpdir(), tag);
  char *out;
  int rc = dt_test_run(&out, "rm -rf %s %s && mkdir -p %s %s", ref, itr, ref, itr);
  free(out);
  assert_int_equal(rc, 0);
  write_resume_tasks(ref, F);
  write_resume_tasks(itr, F);
  /* the reference: the same sweep without interruption */
  rc = dt_test_run(&out, "%s %s sweep --model %s/model --tasks %s/tasks.ini --log-every 1", launch,
                   DT_BINARY, F, ref);
  if (rc) fail_msg("uninterrupted sweep exited %d:\n%s", rc, out);
  free(out);
  /* interrupted: exit 9, every running task checkpointed at step 5 */
  rc = dt_test_run(&out, "%s %s sweep --model %s/model --tasks %s/tasks.ini --log-every 1",
                   launch_int, DT_BINARY, F, itr);
  if (rc != 9 || !strstr(out, "interrupted: SIGTERM at sweep step 5:") ||
      !strstr(out, "rerun with --resume"))
    fail_msg("interrupted sweep: exit %d (expected 9):\n%s", rc, out);
  free(out);
  for (int i = 0; i < NR; i++) {
    const int done = rcases[i].steps < 5 ? rcases[i].steps : 5;
    char p[1400], lines[16][256];
    snprintf(p, sizeof p, "%s/%s/ckpt-%010d.nc", itr, rcases[i].name, done);
    FILE *f = fopen(p, "rb");
    if (!f) fail_msg("%s: no checkpoint %s after the interruption", rcases[i].name, p);
    fclose(f);
    snprintf(p, sizeof p, "%s/%s.jsonl", itr, rcases[i].name);
    const int n = metrics_lines(p, lines, 16);
    if (n != done) fail_msg("%s: %d metrics lines after %d steps", rcases[i].name, n, done);
  }
  /* resumed: continues every task, IA3 stays finished */
  rc = dt_test_run(&out, "%s %s sweep --model %s/model --tasks %s/tasks.ini --log-every 1 --resume",
                   launch, DT_BINARY, F, itr);
  if (rc || !strstr(out, "task ia3: finished already") ||
      !strstr(out, "lora/ckpt-0000000005.nc: step 5 of 8") ||
      !strstr(out, "lastlayer/ckpt-0000000005.nc: step 5 of 6"))
    fail_msg("resumed sweep: exit %d:\n%s", rc, out);
  free(out);
  for (int i = 0; i < NR; i++) {
    char pa[1400], pb[1400], la[16][256], lb[16][256];
    snprintf(pa, sizeof pa, "%s/%s.jsonl", ref, rcases[i].name);
    snprintf(pb, sizeof pb, "%s/%s.jsonl", itr, rcases[i].name);
    const int na = metrics_lines(pa, la, 16), nb = metrics_lines(pb, lb, 16);
    if (na != rcases[i].steps || nb != na)
      fail_msg("%s: %d metrics lines uninterrupted, %d interrupted + resumed (%d steps)",
               rcases[i].name, na, nb, rcases[i].steps);
    for (int k = 0; k < na; k++) {
      char want[32];
      snprintf(want, sizeof want, "{\"step\": %d,", k);
      if (strncmp(lb[k], want, strlen(want)) || strcmp(la[k], lb[k]))
        fail_msg("%s step %d: uninterrupted %s\n resumed %s", rcases[i].name, k, la[k], lb[k]);
    }
    snprintf(pa, sizeof pa, "%s/%s/deltas.safetensors", ref, rcases[i].name);
    snprintf(pb, sizeof pb, "%s/%s/deltas.safetensors", itr, rcases[i].name);
    if (!same_file(pa, pb)) fail_msg("%s: %s and %s differ", rcases[i].name, pa, pb);
  }
}

/* Padded rows (fortune-topic: 160 tokens, most of them right padding): the
 * sweep cuts each step's combined batch after its last scored token; every
 * task keeps the per-step losses of the same task trained alone in one
 * untrimmed pass (--trim-padding no), on 2 data-parallel ranks. */
static void test_padded_rows(void **st) {
  (void)st;
  const char *tmp = dt_test_tmpdir();
  const char *data = DT_SOURCE_DIR "/data/tasks/fortune-topic/train.safetensors";
  const char *model = DT_SOURCE_DIR "/data/models/tiny-gpt2";
  const char *launch = "mpirun --oversubscribe -np 2";
  const tcase cases[] = {
      {"lora", "method = lora\nlora-targets = c_attn"},
      {"ia3", "method = ia3"},
      {"prompt", "method = prompt\nprompt-tokens = 4"},
  };
  char ini[1200];
  snprintf(ini, sizeof ini, "%s/padded.ini", tmp);
  FILE *f = fopen(ini, "w");
  assert_non_null(f);
  for (int i = 0; i < 3; i++)
    fprintf(f, "[task %s]\n%s\ndata = %s\nbatch-size = 4\nsample-rows = 7\nsteps = 3\nlr = 3e-3\n"
               "metrics = %s/padded_sweep_%s.jsonl\n\n", cases[i].name, cases[i].args, data, tmp,
            cases[i].name);
  fclose(f);
  char *out;
  int rc = dt_test_run(&out, "%s %s sweep --model %s --tasks %s", launch, DT_BINARY, model, ini);
  if (rc || !strstr(out, "tokens of rank 0's combined batches computed"))
    fail_msg("padded sweep: exit %d, or no trimmed tokens reported:\n%s", rc, out);
  /* the summary's step: the 3 tasks' 4 rows of T tokens each, 3 steps timed */
  int T = 0, timed = 0;
  double tok = 0.0, mem = 0.0;
  const char *ln = strstr(out, "task lora");
  const char *med = strstr(out, "  median step ");
  const char *mm = strstr(out, "  memory of the 2 rank(s) together at the end ");
  if (!ln || sscanf(strstr(ln, "4 rows x ") ? strstr(ln, "4 rows x ") : "", "4 rows x %d", &T) != 1 ||
      !med || !strstr(med, "a median of ") ||
      sscanf(strstr(med, "a median of "), "a median of %lf tokens a step; %d steps timed", &tok, &timed) != 2 ||
      !mm || sscanf(mm, "  memory of the 2 rank(s) together at the end %lf MB", &mem) != 1)
    fail_msg("padded sweep: no task length, median step or memory in the summary:\n%s", out);
  if (tok != 3.0 * 4 * T || timed != 3 || !(mem > 0.0))
    fail_msg("padded sweep summary: %.0f tokens in a step (want 3 x 4 x %d), %d steps timed (3), "
             "memory %.0f MB", tok, T, timed, mem);
  free(out);
  for (int i = 0; i < 3; i++) {
    const char *opts = i == 0 ? "--method lora --lora-targets c_attn"
                       : i == 1 ? "--method ia3" : "--method prompt --prompt-tokens 4";
    rc = dt_test_run(&out,
                     "%s %s train --model %s --data %s --batch-size 4 --sample-rows 7 --steps 3 "
                     "--lr 3e-3 --trim-padding no %s --metrics %s/padded_alone_%s.jsonl",
                     launch, DT_BINARY, model, data, opts, tmp, cases[i].name);
    if (rc) fail_msg("%s alone exited %d:\n%s", cases[i].name, rc, out);
    free(out);
    char p1[1300], p2[1300];
    snprintf(p1, sizeof p1, "%s/padded_sweep_%s.jsonl", tmp, cases[i].name);
    snprintf(p2, sizeof p2, "%s/padded_alone_%s.jsonl", tmp, cases[i].name);
    double a[8], b[8];
    const int na = read_losses(p1, a, 8), nb = read_losses(p2, b, 8);
    if (na != 3 || nb != 3) fail_msg("%s: %d sweep losses, %d alone", cases[i].name, na, nb);
    for (int k = 0; k < 3; k++)
      if (!(fabs(a[k] - b[k]) <= 1e-5))
        fail_msg("%s step %d: sweep loss %.9f, alone untrimmed %.9f", cases[i].name, k, a[k], b[k]);
  }
}

static void test_resume_one_rank(void **s) {
  (void)s;
  run_resume("np1", "", "DT_TEST_INTERRUPT=4");
}
static void test_resume_two_replicas(void **s) {
  (void)s;
  /* the signal on rank 1 only: rank 0 follows at the same boundary */
  run_resume("np2", "mpirun -np 2 --oversubscribe",
             "mpirun -np 2 --oversubscribe -x DT_TEST_INTERRUPT=4:1");
}

static void test_one_rank(void **s) {
  (void)s;
  run_layout("", "");
}
static void test_two_replicas(void **s) {
  (void)s;
  run_layout("mpirun -np 2 --oversubscribe", "");
}
static void test_two_shards(void **s) {
  (void)s;
  run_layout("mpirun -np 2 --oversubscribe", "--tp 2");
}
/* bf16 products: the combined batch's rows go through the same bf16
 * roundings as each task's alone */
static void test_two_shards_bf16(void **s) {
  (void)s;
  run_layout_tol("mpirun -np 2 --oversubscribe", "--tp 2 --weights-dtype bf16 --matmul-dtype bf16", 1e-5);
}

int main(int argc, char **argv) {
  g_fam = argc > 1 ? argv[1] : "gpt2";
  const struct CMUnitTest all[] = {cmocka_unit_test(test_one_rank),
                                   cmocka_unit_test(test_two_replicas),
                                   cmocka_unit_test(test_two_shards),
                                   cmocka_unit_test(test_two_shards_bf16),
                                   cmocka_unit_test(test_resume_one_rank),
                                   cmocka_unit_test(test_resume_two_replicas),
                                   cmocka_unit_test(test_padded_rows)};
  /* test_padded_rows runs on one backbone, the shipped tiny-gpt2: it is
   * listed for the gpt2 run only (not skipped in the others) */
  struct CMUnitTest tests[sizeof all / sizeof all[0]];
  size_t n = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (!strcmp(g_fam, "gpt2") || all[i].test_func != test_padded_rows) tests[n++] = all[i];
  return _cmocka_run_group_tests("test_sweep", tests, n, NULL, NULL);
}
