/* Parity with Hugging Face transformers + PEFT (tests/data/hf-parity).
 *
 * usage: [mpirun -np N] test_parity [--only PATTERN]
 *            --case NAME FAMILY METHOD LOSS_TOL [deltatune train options...]
 *           [--case ...]...
 * FAMILY names the fixture folder hf-parity/FAMILY, or is MODEL:REFERENCE:
 * the model folder families/MODEL/model (another family's files computing
 * the same thing, e.g. a Qwen2 folder with LLaMA's weights and zero biases)
 * trained on and checked against the fixtures of hf-parity/REFERENCE.
 * Every case is one `deltatune train` run (the command's own entry point,
 * dt_cmd_train, called in this process, collective over all the ranks
 * mpirun started), so one launch checks several methods and layouts; each
 * case is one cmocka test named NAME (the failure names it). --only keeps
 * the cases whose NAME matches the shell pattern (fnmatch).
 * Each case trains for 5 steps from the fixture's init and checks on rank 0:
 *   - the losses of steps 0..4 against expected.json (within LOSS_TOL),
 *   - each loss change l[k]-l[0] within 1e-3 relative (+2e-6) of the
 *     reference change,
 *   - step-0 gradients against grads.safetensors: every tensor present, same
 *     shape, relative L2 error <= 1e-4,
 *   - the logits of the first forward pass against logits0.safetensors.
 * An error that not every rank holds ends the job (MPI_Abort), as
 * deltatune's main does, so no rank waits for the others forever. */
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "error.h"
#include "params.h"
#include "safetensors.h"
#include "testutil.h"

enum { MAX_CASES = 256, MAX_ARGS = 64 };

typedef struct {
  const char *name, *fam, *method;
  char model[512]; /* the model folder */
  double loss_tol;
  char **args; /* deltatune train options of the case */
  int nargs;
  int index;
} parity_case;

static parity_case g_cases[MAX_CASES];
static int g_ncases;
static int g_rank;
static char g_tmp[256]; /* rank 0's temporary folder, the same path on every rank */

static void max_abs_logits(const char *name, const char *got_path, const char *ref_path,
                           double tol) {
  dt_st_file got, ref;
  assert_int_equal(dt_st_open(&got, got_path), 0);
  assert_int_equal(dt_st_open(&ref, ref_path), 0);
  assert_int_equal(got.t[0].numel, ref.t[0].numel);
  float *a = dt_test_read_tensor(&got, &got.t[0]), *b = dt_test_read_tensor(&ref, &ref.t[0]);
  double mx = 0;
  for (int64_t k = 0; k < got.t[0].numel; k++) mx = fmax(mx, fabs((double)a[k] - b[k]));
  if (!(mx <= tol)) fail_msg("%s: logits max abs error %.3e > %.1e", name, mx, tol);
  free(a);
  free(b);
  dt_st_close(&got);
  dt_st_close(&ref);
}

/* `deltatune train` for the case on every rank; its output files go to
 * g_tmp/<index>. Returns the command's code (the same on every rank, or the
 * job is aborted). */
static int train_case(const parity_case *c) {
  const char *dir = dt_test_fixture(c->fam);
  char model[1024], data[1024], mpath[512], gpath[512], lpath[512];
  snprintf(model, sizeof model, "%s", c->model);
  snprintf(data, sizeof data, "%s/batch.safetensors", dir);
  snprintf(mpath, sizeof mpath, "%s/%d-m.jsonl", g_tmp, c->index);
  snprintf(gpath, sizeof gpath, "%s/%d-g.safetensors", g_tmp, c->index);
  snprintf(lpath, sizeof lpath, "%s/%d-l.safetensors", g_tmp, c->index);
  char *fixed[] = {"--model", model, "--data", data, "--batch-size", "2", "--steps", "5",
                   "--lr", "1e-2", "--metrics", mpath, "--dump-grads", gpath,
                   "--dump-logits", lpath};
  const int nfixed = (int)(sizeof fixed / sizeof fixed[0]);
  char *argv[MAX_ARGS + 32];
  int argc = 0;
  for (int i = 0; i < nfixed; i++) argv[argc++] = fixed[i];
  for (int i = 0; i < c->nargs; i++) argv[argc++] = c->args[i];
  argv[argc] = NULL;
  if (g_rank == 0) {
    printf("[ parity   ] %s: deltatune train", c->name);
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);
  }
  dt_error_clear();
  const int rc = dt_cmd_train(argc, argv);
  fflush(stdout);
  if (rc != DT_OK) {
    const int deterministic = rc == DT_EUSAGE || rc == DT_EINPUT || dt_error_agreed();
    if (!deterministic) {
      fprintf(stderr, "test_parity: case %s: error on rank %d: %s\n", c->name, g_rank,
              dt_error_message());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  return rc;
}

/* The checks of one case, on rank 0. */
static void check_case(const parity_case *c, int rc) {
  if (rc != DT_OK) fail_msg("%s: deltatune train returned %d: %s", c->name, rc, dt_error_message());
  char dir[512], exp_path[1200];
  snprintf(dir, sizeof dir, "%s", dt_test_fixture(c->fam));
  snprintf(exp_path, sizeof exp_path, "%s/%s/expected.json", dir, c->method);
  json_error_t je;
  json_t *exp = json_load_file(exp_path, 0, &je);
  assert_non_null(exp);
  json_t *losses = json_object_get(exp, "losses");
  assert_true(json_array_size(losses) >= 5);
  int n;
  char mpath[512];
  snprintf(mpath, sizeof mpath, "%s/%d-m.jsonl", g_tmp, c->index);
  double *got = dt_test_read_losses(mpath, &n);
  assert_non_null(got);
  assert_int_equal(n, 5);
  const double ref0 = json_number_value(json_array_get(losses, 0));
  for (int k = 0; k < 5; k++) {
    const double ref = json_number_value(json_array_get(losses, k));
    if (!(fabs(got[k] - ref) <= c->loss_tol))
      fail_msg("%s: step %d loss %.9f vs reference %.9f (tol %.1e)", c->name, k, got[k], ref,
               c->loss_tol);
    const double dref = ref - ref0, dgot = got[k] - got[0];
    if (!(fabs(dgot - dref) <= 1e-3 * fabs(dref) + 2e-6))
      fail_msg("%s: step %d loss change %.9g vs reference %.9g", c->name, k, dgot, dref);
  }
  free(got);
  json_decref(exp);

  char gp[1200], rp[1200];
  snprintf(gp, sizeof gp, "%s/%d-g.safetensors", g_tmp, c->index);
  snprintf(rp, sizeof rp, "%s/%s/grads.safetensors", dir, c->method);
  char what[300];
  snprintf(what, sizeof what, "%s: gradient", c->name);
  dt_test_compare_tensors(gp, rp, 1e-4, what);
  snprintf(gp, sizeof gp, "%s/%d-l.safetensors", g_tmp, c->index);
  snprintf(rp, sizeof rp, "%s/%s/logits0.safetensors", dir, c->method);
  max_abs_logits(c->name, gp, rp, 1e-4);
}

/* Rank 0 runs the cases as cmocka tests (one per case, in order); every
 * other rank trains the same cases in the same order. */
static void test_case(void **state) {
  const parity_case *c = *state;
  check_case(c, train_case(c));
}

/* Cases from the command line: --case NAME FAMILY METHOD LOSS_TOL args... */
static int parse_cases(int argc, char **argv) {
  const char *only = NULL;
  int i = 1;
  while (i < argc) {
    if (!strcmp(argv[i], "--only") && i + 1 < argc) {
      only = argv[i + 1];
      i += 2;
      continue;
    }
    if (strcmp(argv[i], "--case") || i + 4 >= argc) {
      fprintf(stderr, "test_parity: expected --case NAME FAMILY METHOD LOSS_TOL [options], got '%s'\n",
              argv[i]);
      return -1;
    }
    if (g_ncases == MAX_CASES) {
      fprintf(stderr, "test_parity: more than %d cases\n", MAX_CASES);
      return -1;
    }
    parity_case *c = &g_cases[g_ncases];
    c->name = argv[i + 1];
    c->fam = argv[i + 2];
    const char *colon = strchr(c->fam, ':');
    if (colon) { /* MODEL:REFERENCE */
      snprintf(c->model, sizeof c->model, "%s/families/%.*s/model", DT_TESTDATA_DIR,
               (int)(colon - c->fam), c->fam);
      c->fam = colon + 1;
    } else {
      snprintf(c->model, sizeof c->model, "%s/model", dt_test_fixture(c->fam));
    }
    c->method = argv[i + 3];
    c->loss_tol = atof(argv[i + 4]);
    c->args = argv + i + 5;
    c->index = g_ncases;
    int j = i + 5;
    while (j < argc && strcmp(argv[j], "--case") && strcmp(argv[j], "--only")) j++;
    c->nargs = j - (i + 5);
    if (c->nargs > MAX_ARGS || !(c->loss_tol > 0)) {
      fprintf(stderr, "test_parity: case %s: %d options (at most %d), tolerance '%s'\n", c->name,
              c->nargs, MAX_ARGS, argv[i + 4]);
      return -1;
    }
    g_ncases++;
    i = j;
  }
  if (only) {
    int k = 0;
    for (int c = 0; c < g_ncases; c++)
      if (fnmatch(only, g_cases[c].name, 0) == 0) g_cases[k++] = g_cases[c];
    g_ncases = k;
  }
  if (g_ncases == 0) {
    fprintf(stderr, "test_parity: no case to run\n");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  int bad = parse_cases(argc, argv);
  if (bad) {
    MPI_Finalize();
    return 2;
  }
  if (g_rank == 0) snprintf(g_tmp, sizeof g_tmp, "%s", dt_test_tmpdir());
  MPI_Bcast(g_tmp, sizeof g_tmp, MPI_CHAR, 0, MPI_COMM_WORLD);
  int failed = 0;
  if (g_rank == 0) {
    struct CMUnitTest *tests = calloc((size_t)g_ncases, sizeof *tests);
    for (int c = 0; c < g_ncases; c++) {
      tests[c].name = g_cases[c].name;
      tests[c].test_func = test_case;
      tests[c].initial_state = &g_cases[c];
    }
    failed = _cmocka_run_group_tests("parity", tests, (size_t)g_ncases, NULL, NULL);
    free(tests);
  } else {
    for (int c = 0; c < g_ncases; c++) train_case(&g_cases[c]);
  }
  MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return failed ? 1 : 0;
}
