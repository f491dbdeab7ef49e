/* The tensor-group sum operators of mpi/dist.h under mpirun (3 ranks: the
 * shared-memory sum's slices are uneven for n not a multiple of 3):
 *   - dt_tp_sum, dt_tp_sum_part + dt_tp_sum_into and dt_tp_sum_view (with
 *     and without a bias row) give bitwise the sum in rank order that every
 *     rank computes here from all ranks' parts, for sizes below and above
 *     the window's threshold and above its first capacity (it grows);
 *   - the view points into the window where the sum goes through it, and
 *     to the rank's own buffer where it does not (--tp-sum allreduce, a sum
 *     under DT_SHM_SUM_MIN floats), whose values then agree to rounding;
 *   - a part is computed in the rank's slot: nothing is copied into it;
 *   - another window sum between dt_tp_sum_part and its dt_tp_sum_into is
 *     refused (it would overwrite the part), on every rank;
 *   - under --comm-lockstep no data moves and the part is the own buffer.
 *
 * Every rank checks; the verdicts are reduced before any assertion so that
 * no rank is left waiting in a collective. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "error.h"
#include "rankcheck.h"
#include "testutil.h"


/* Rank r's part, element j: values of mixed signs and magnitudes, so that
 * another summation order would round differently. */
static float part_value(int r, size_t j, int salt) {
  uint32_t x = (uint32_t)(r + 1) * 2654435761u ^ (uint32_t)j * 40503u ^ (uint32_t)salt * 97u;
  x ^= x >> 13;
  x *= 0x5bd1e995u;
  x ^= x >> 15;
  const float u = (float)(x & 0xffffff) / 16777216.0f - 0.5f;
  return u * (float)(1 << (x >> 28));
}

static void fill_part(float *p, int r, size_t n, int salt) {
  for (size_t j = 0; j < n; j++) p[j] = part_value(r, j, salt);
}

/* The sum in rank order, plus add[j % width] when add is given. */
static void expected(float *e, size_t n, int salt, const float *add, size_t width) {
  fill_part(e, 0, n, salt);
  for (int r = 1; r < g_size; r++)
    for (size_t j = 0; j < n; j++) e[j] += part_value(r, j, salt);
  if (add)
    for (size_t j = 0; j < n; j++) e[j] += add[j % width];
}

static int bitwise_equal(const float *a, const float *b, size_t n, size_t *at) {
  for (size_t j = 0; j < n; j++)
    if (memcmp(a + j, b + j, sizeof(float))) {
      *at = j;
      return 0;
    }
  return 1;
}

/* Equal to rounding (another summation order: MPI_Allreduce's)? */
static int near(const float *a, const float *e, size_t n, size_t *at) {
  for (size_t j = 0; j < n; j++)
    if (fabsf(a[j] - e[j]) > 1e-5f * (1.0f + fabsf(e[j]))) {
      *at = j;
      return 0;
    }
  return 1;
}

static int in_window(const dt_dist *d, const float *p) {
  const float *b = d->shm_base;
  return b && p >= b && p < b + (size_t)(d->tp_size + 1) * d->shm_cap;
}

/* sizes: under the threshold, over it with uneven slices, over the window's
 * first capacity (it is reallocated) */
static const size_t sizes[] = {DT_SHM_SUM_MIN - 1, 3 * 1000 + 1, 23 * (DT_SHM_SLOT_MIN / 23 + 2)};

static void test_sums(void **state) {
  (void)state;
  dt_dist d;
  assert_int_equal(dt_dist_init(&d, g_size), DT_OK);
  RANK_CHECK(d.shm_ok, "the group of one node has no shared-memory sums");
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    const size_t n = sizes[k], width = 23; /* n is a multiple of width only for k = 2 */
    const int shm = n >= DT_SHM_SUM_MIN;
    float *buf = malloc(sizeof(float) * n), *e = malloc(sizeof(float) * n);
    float *add = malloc(sizeof(float) * width);
    for (size_t j = 0; j < width; j++) add[j] = 0.25f * (float)j - 1.0f;
    size_t at = 0;
    /* dt_tp_sum */
    fill_part(buf, g_rank, n, 1);
    RANK_CHECK(dt_tp_sum(&d, buf, n) == DT_OK, "dt_tp_sum of %zu floats failed", n);
    expected(e, n, 1, NULL, 0);
    RANK_CHECK(!shm || bitwise_equal(buf, e, n, &at), "dt_tp_sum of %zu: element %zu %.9g, not %.9g", n,
          at, buf[at], e[at]);
    /* part + into: computed in the slot */
    float *part = NULL;
    RANK_CHECK(dt_tp_sum_part(&d, buf, n, &part) == DT_OK, "dt_tp_sum_part of %zu failed", n);
    RANK_CHECK(shm ? in_window(&d, part) && part != buf : part == buf,
          "the part of %zu floats is %s the window", n, shm ? "not in" : "in");
    fill_part(part, g_rank, n, 2);
    memset(buf, 0xff, sizeof(float) * n); /* NaN: the sum must overwrite all of it */
    RANK_CHECK(dt_tp_sum_into(&d, buf, part, n) == DT_OK, "dt_tp_sum_into of %zu failed", n);
    expected(e, n, 2, NULL, 0);
    RANK_CHECK(!shm || bitwise_equal(buf, e, n, &at), "dt_tp_sum_into of %zu: element %zu %.9g, not %.9g",
          n, at, buf[at], e[at]);
    /* view, with the bias row where n is a multiple of the width */
    const float *a = n % width == 0 ? add : NULL;
    RANK_CHECK(dt_tp_sum_part(&d, buf, n, &part) == DT_OK, "dt_tp_sum_part of %zu failed", n);
    fill_part(part, g_rank, n, 3);
    const float *v = NULL;
    RANK_CHECK(dt_tp_sum_view(&d, buf, part, n, a, width, &v) == DT_OK, "dt_tp_sum_view of %zu failed", n);
    RANK_CHECK(shm ? in_window(&d, v) : v == buf, "the view of %zu floats is %s the window", n,
          shm ? "not in" : "in");
    expected(e, n, 3, a, width);
    RANK_CHECK(shm ? bitwise_equal(v, e, n, &at) : near(v, e, n, &at),
               "dt_tp_sum_view of %zu: element %zu %.9g, not %.9g", n, at, v[at], e[at]);
    free(buf);
    free(e);
    free(add);
  }
  dt_dist_free(&d);
  rank_verdict();
}

/* --tp-sum allreduce: no window; the views are the own buffers and agree
 * with the window's sums to rounding. */
static void test_allreduce_path(void **state) {
  (void)state;
  dt_dist d;
  assert_int_equal(dt_dist_init(&d, g_size), DT_OK);
  dt_dist_use_shm_sum(&d, 0);
  const size_t n = 3 * 1000 + 1;
  float *buf = malloc(sizeof(float) * n), *e = malloc(sizeof(float) * n), *part = NULL;
  const float *v = NULL;
  RANK_CHECK(dt_tp_sum_part(&d, buf, n, &part) == DT_OK && part == buf, "the part is not the own buffer");
  fill_part(part, g_rank, n, 4);
  RANK_CHECK(dt_tp_sum_view(&d, buf, part, n, NULL, 0, &v) == DT_OK && v == buf,
        "the view is not the own buffer");
  expected(e, n, 4, NULL, 0);
  size_t at = 0;
  RANK_CHECK(near(buf, e, n, &at), "element %zu %.9g, not %.9g", at, buf[at], e[at]);
  RANK_CHECK(d.shm_base == NULL, "a window was allocated under --tp-sum allreduce");
  free(buf);
  free(e);
  dt_dist_free(&d);
  rank_verdict();
}

/* A window sum between dt_tp_sum_part and its dt_tp_sum_into is refused on
 * every rank (all reach the same check: nothing waits). */
static void test_sum_between_refused(void **state) {
  (void)state;
  dt_dist d;
  assert_int_equal(dt_dist_init(&d, g_size), DT_OK);
  const size_t n = 4096;
  float *buf = malloc(sizeof(float) * n), *other = calloc(n, sizeof(float)), *part = NULL;
  RANK_CHECK(dt_tp_sum_part(&d, buf, n, &part) == DT_OK, "dt_tp_sum_part failed");
  dt_error_clear();
  RANK_CHECK(dt_tp_sum(&d, other, n) == DT_EINTERNAL, "a sum between part and into was not refused");
  RANK_CHECK(strstr(dt_error_message(), "between dt_tp_sum_part") != NULL, "the error says: %s",
        dt_error_message());
  dt_error_clear();
  /* a small sum (MPI_Allreduce) does not touch the slot: allowed */
  RANK_CHECK(dt_tp_sum_part(&d, buf, n, &part) == DT_OK, "dt_tp_sum_part failed");
  RANK_CHECK(dt_tp_sum(&d, other, 8) == DT_OK, "a small sum between part and into was refused");
  fill_part(part, g_rank, n, 5);
  RANK_CHECK(dt_tp_sum_into(&d, buf, part, n) == DT_OK, "dt_tp_sum_into after a small sum failed");
  free(buf);
  free(other);
  dt_dist_free(&d);
  rank_verdict();
}

/* --comm-lockstep: the part is the own buffer, and nothing moves. */
static void test_lockstep(void **state) {
  (void)state;
  dt_dist d;
  assert_int_equal(dt_dist_init(&d, g_size), DT_OK);
  dt_dist_lockstep(&d, 1);
  const size_t n = 4096;
  float *buf = malloc(sizeof(float) * n), *part = NULL;
  const float *v = NULL;
  RANK_CHECK(dt_tp_sum_part(&d, buf, n, &part) == DT_OK && part == buf, "the part is not the own buffer");
  fill_part(buf, g_rank, n, 6);
  RANK_CHECK(dt_tp_sum_view(&d, buf, part, n, NULL, 0, &v) == DT_OK && v == buf, "the view moved");
  for (size_t j = 0; j < n; j++)
    if (buf[j] != part_value(g_rank, j, 6)) {
      RANK_CHECK(0, "element %zu changed under --comm-lockstep", j);
      break;
    }
  free(buf);
  dt_dist_free(&d);
  rank_verdict();
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sums),
      cmocka_unit_test(test_allreduce_path),
      cmocka_unit_test(test_sum_between_refused),
      cmocka_unit_test(test_lockstep),
  };
  int fails = g_size > 1 ? cmocka_run_group_tests(tests, NULL, NULL) : 1;
  if (g_size < 2) fprintf(stderr, "test_tp_sum: needs 2 or more ranks\n");
  MPI_Finalize();
  return fails;
}
