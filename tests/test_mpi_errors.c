/* MPI errors as values (base/mpicheck.h, docs/reliability.md "MPI errors"):
 * with MPI_ERRORS_RETURN on the world (as main sets it), a communicator
 * split from it and a shared window given dt_mpi_win_errors_return, real
 * failing Open MPI calls come back as DT_EMPI naming the call and MPI's
 * error string, instead of ending the job inside MPI. 2 ranks. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "mpicheck.h"
#include "testutil.h"

static int bad_count(MPI_Comm c) {
  int x = 0;
  DT_MPI(MPI_Bcast(&x, -1, MPI_INT, 0, c), "MPI_Bcast of a test value");
  return DT_OK;
}

static int bad_rank(MPI_Win w) {
  MPI_Aint sz;
  int du;
  void *base = NULL;
  DT_MPI(MPI_Win_shared_query(w, 99, &sz, &du, &base), "MPI_Win_shared_query of rank 99");
  return DT_OK;
}

static void test_comm_error_returns(void **state) {
  (void)state;
  MPI_Comm split;
  assert_int_equal(MPI_Comm_split(MPI_COMM_WORLD, 0, 0, &split), MPI_SUCCESS);
  /* the split inherits MPI_ERRORS_RETURN from the world */
  const int rc = bad_count(split);
  assert_int_equal(rc, DT_EMPI);
  const char *m = dt_error_message();
  if (!strstr(m, "MPI_Bcast of a test value failed: ") || !strstr(m, "MPI error class"))
    fail_msg("message: %s", m);
  printf("comm: %s\n", m);
  /* the communicator still works after the returned error */
  int one = 1, sum = 0;
  assert_int_equal(MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, split), MPI_SUCCESS);
  assert_int_equal(sum, 2);
  MPI_Comm_free(&split);
}

static void test_window_error_returns(void **state) {
  (void)state;
  MPI_Comm node;
  assert_int_equal(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                                       &node), MPI_SUCCESS);
  MPI_Win w;
  float *mine = NULL;
  assert_int_equal(MPI_Win_allocate_shared(64, sizeof(float), MPI_INFO_NULL, node, &mine, &w),
                   MPI_SUCCESS);
  assert_int_equal(dt_mpi_win_errors_return(w), DT_OK);
  const int rc = bad_rank(w);
  assert_int_equal(rc, DT_EMPI);
  const char *m = dt_error_message();
  if (!strstr(m, "MPI_Win_shared_query of rank 99 failed: ")) fail_msg("message: %s", m);
  printf("window: %s\n", m);
  MPI_Win_free(&w);
  MPI_Comm_free(&node);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int fails = dt_mpi_errors_return(MPI_COMM_WORLD) != DT_OK;
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_comm_error_returns),
                                     cmocka_unit_test(test_window_error_returns)};
  fails += cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return fails;
}
