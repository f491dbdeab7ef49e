/* Identity at init: a method whose fresh (non-imported) init promises an
 * unchanged model (LoRA with B = 0, adapters with up = 0, IA3 ones, SAID
 * theta = 0) must give the same logits as the bare backbone.
 *
 * usage: test_identity [--case NAME FAMILY deltatune-eval-options...]...
 * Every case is checked against `deltatune eval --method none` on the same
 * model and batch (run once per family); both evals are the command's own
 * entry point (dt_cmd_eval) called in this process, so one launch checks
 * every case; each case is one cmocka test named NAME. A method that
 * changed the output at init fails with the max abs difference. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "error.h"
#include "safetensors.h"
#include "testutil.h"

enum { MAX_CASES = 64, MAX_ARGS = 48 };

typedef struct {
  const char *name, *fam;
  char **args;
  int nargs, index;
} identity_case;

static identity_case g_cases[MAX_CASES];
static int g_ncases;

static float *logits(const char *path, int64_t *n) {
  dt_st_file f;
  if (dt_st_open(&f, path)) return NULL;
  float *v = malloc(sizeof(float) * f.t[0].numel);
  *n = f.t[0].numel;
  if (dt_st_read_f32(&f, &f.t[0], 0, f.t[0].numel, v)) {
    free(v);
    v = NULL;
  }
  dt_st_close(&f);
  return v;
}

/* deltatune eval on the family's fixture batch, logits to out, then the
 * method options (NULL: --method none). */
static int eval(const char *fam, const char *out, char **args, int nargs) {
  const char *dir = dt_test_fixture(fam);
  char model[1024], data[1024];
  snprintf(model, sizeof model, "%s/model", dir);
  snprintf(data, sizeof data, "%s/batch.safetensors", dir);
  char *argv[MAX_ARGS + 16] = {"--model", model, "--data", data, "--batch-size", "2",
                               "--dump-logits", (char *)out};
  int argc = 8;
  if (!args) {
    argv[argc++] = "--method";
    argv[argc++] = "none";
  } else {
    argv[argc++] = "--seed";
    argv[argc++] = "7";
    for (int i = 0; i < nargs; i++) argv[argc++] = args[i];
  }
  argv[argc] = NULL;
  dt_error_clear();
  const int rc = dt_cmd_eval(argc, argv);
  fflush(stdout);
  return rc;
}

static void test_identity(void **state) {
  const identity_case *c = *state;
  const char *tmp = dt_test_tmpdir();
  char p1[1100], p2[1100];
  snprintf(p1, sizeof p1, "%s/base-%s.safetensors", tmp, c->fam);
  snprintf(p2, sizeof p2, "%s/method-%d.safetensors", tmp, c->index);
  FILE *f = fopen(p1, "rb");
  if (f) fclose(f);
  else if (eval(c->fam, p1, NULL, 0))
    fail_msg("%s: base eval returned an error: %s", c->name, dt_error_message());
  if (eval(c->fam, p2, c->args, c->nargs))
    fail_msg("%s: method eval returned an error: %s", c->name, dt_error_message());
  int64_t n1, n2;
  float *a = logits(p1, &n1), *b = logits(p2, &n2);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(n1, n2);
  double mx = 0;
  for (int64_t i = 0; i < n1; i++) mx = fmax(mx, fabs((double)a[i] - b[i]));
  if (!(mx <= 1e-5)) fail_msg("%s: method changed the logits at init: max abs diff %.3e", c->name, mx);
  free(a);
  free(b);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  for (int i = 1; i < argc;) {
    if (strcmp(argv[i], "--case") || i + 3 >= argc || g_ncases == MAX_CASES) {
      fprintf(stderr, "usage: test_identity [--case NAME FAMILY deltatune-options...]... (at most %d)\n",
              MAX_CASES);
      MPI_Finalize();
      return 2;
    }
    identity_case *c = &g_cases[g_ncases];
    c->name = argv[i + 1];
    c->fam = argv[i + 2];
    c->args = argv + i + 3;
    c->index = g_ncases++;
    int j = i + 3;
    while (j < argc && strcmp(argv[j], "--case")) j++;
    c->nargs = j - (i + 3);
    if (c->nargs > MAX_ARGS) {
      fprintf(stderr, "test_identity: case %s: more than %d options\n", c->name, MAX_ARGS);
      MPI_Finalize();
      return 2;
    }
    i = j;
  }
  struct CMUnitTest *tests = calloc((size_t)g_ncases + 1, sizeof *tests);
  for (int c = 0; c < g_ncases; c++) {
    tests[c].name = g_cases[c].name;
    tests[c].test_func = test_identity;
    tests[c].initial_state = &g_cases[c];
  }
  const int failed = g_ncases ? _cmocka_run_group_tests("identity", tests, (size_t)g_ncases, NULL, NULL) : 1;
  free(tests);
  MPI_Finalize();
  return failed ? 1 : 0;
}
