/* Checks made on every rank of an MPI test, reduced before the test's
 * assertion so that no rank is left waiting in a collective when another
 * fails: RANK_CHECK(cond, fmt, ...) counts and reports a failure of this
 * rank (naming it and the line); rank_verdict() sums the counts over
 * MPI_COMM_WORLD and asserts none (collective). The including test sets
 * g_rank. */
#ifndef DT_RANKCHECK_H
#define DT_RANKCHECK_H

#include <mpi.h>
#include <stdio.h>

#include "testutil.h"

static int g_rank, g_size;
static int g_bad; /* failures of this rank since the last verdict */

#define RANK_CHECK(cond, ...)                                           \
  do {                                                                  \
    if (!(cond)) {                                                      \
      g_bad++;                                                          \
      fprintf(stderr, "rank %d: %s:%d: ", g_rank, __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                                     \
      fputc('\n', stderr);                                              \
    }                                                                   \
  } while (0)

static inline void rank_verdict(void) {
  int all = 0;
  MPI_Allreduce(&g_bad, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  g_bad = 0;
  assert_int_equal(all, 0);
}

#endif
