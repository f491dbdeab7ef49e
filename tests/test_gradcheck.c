/* Gradients against finite differences on every layer type and method:
 * `deltatune gradcheck` (src/train.c) fails when a tensor's gradient norm and
 * the Richardson-extrapolated central difference of the loss along it differ
 * by more than its tolerance.
 *
 * usage: test_gradcheck [--case NAME deltatune-gradcheck-options...]...
 * Every case is the command's own entry point (dt_cmd_gradcheck) called in
 * this process, so one launch checks every case; each case is one cmocka
 * test named NAME that fails with the command's error message. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "error.h"
#include "testutil.h"

enum { MAX_CASES = 64 };

typedef struct {
  const char *name;
  char **args;
  int nargs;
} gradcheck_case;

static gradcheck_case g_cases[MAX_CASES];

static void test_gradcheck(void **state) {
  const gradcheck_case *c = *state;
  char **argv = calloc((size_t)c->nargs + 1, sizeof *argv);
  assert_non_null(argv);
  for (int i = 0; i < c->nargs; i++) argv[i] = c->args[i];
  printf("[ gradcheck] %s: deltatune gradcheck", c->name);
  for (int i = 0; i < c->nargs; i++) printf(" %s", argv[i]);
  printf("\n");
  fflush(stdout);
  dt_error_clear();
  const int rc = dt_cmd_gradcheck(c->nargs, argv);
  fflush(stdout);
  free(argv);
  if (rc != DT_OK) fail_msg("%s: deltatune gradcheck returned %d: %s", c->name, rc, dt_error_message());
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int n = 0;
  for (int i = 1; i < argc;) {
    if (strcmp(argv[i], "--case") || i + 1 >= argc || n == MAX_CASES) {
      fprintf(stderr, "usage: test_gradcheck [--case NAME deltatune-gradcheck-options...]... (at most %d)\n",
              MAX_CASES);
      MPI_Finalize();
      return 2;
    }
    gradcheck_case *c = &g_cases[n++];
    c->name = argv[i + 1];
    c->args = argv + i + 2;
    int j = i + 2;
    while (j < argc && strcmp(argv[j], "--case")) j++;
    c->nargs = j - (i + 2);
    i = j;
  }
  struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof *tests);
  for (int c = 0; c < n; c++) {
    tests[c].name = g_cases[c].name;
    tests[c].test_func = test_gradcheck;
    tests[c].initial_state = &g_cases[c];
  }
  const int failed = n ? _cmocka_run_group_tests("gradcheck", tests, (size_t)n, NULL, NULL) : 1;
  free(tests);
  MPI_Finalize();
  return failed ? 1 : 0;
}
