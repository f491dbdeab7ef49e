/* The Fastfood transform against an explicit dense reference.
 *
 * H is built entry by entry from its definition H[i][j] = (-1)^popcount(i&j)
 * (not from the butterfly recursion), the LL x d matrix
 *   J = H diag(G) P H diag(B) [I_d; 0]     (P: row k of P x is x[Pi[k]])
 * is formed densely in double, and the fast forward (J theta), the fast
 * transpose (J^T g, used for the gradient) and the returned <g, J theta>
 * are compared with it. Sizes cover the tiled inner transform (d < LL), the
 * full one (d = LL), theta longer than LL (cut off), LL = 1 and transforms
 * beyond the cache block of dt_fwht. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastfood.h"
#include "testutil.h"

/* testutil's generator (xorshift64*), independent of base/rng.h */
static uint64_t g_state = 0x9d2c5680a1b2c3d4ull;
static uint64_t next_u64(void) { return dt_test_rand_u64(&g_state); }
static double unif(void) { return (double)(next_u64() >> 11) / 9007199254740992.0; }
static double gauss(void) {
  double u1 = unif(), u2 = unif();
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static int hsign(int64_t i, int64_t j) { return __builtin_popcountll((uint64_t)(i & j)) & 1 ? -1 : 1; }

static void test_pow2(void **state) {
  (void)state;
  assert_int_equal(dt_pow2_ceil(1), 1);
  assert_int_equal(dt_pow2_ceil(2), 2);
  assert_int_equal(dt_pow2_ceil(3), 4);
  assert_int_equal(dt_pow2_ceil(6912), 8192);
  assert_int_equal(dt_pow2_ceil(8192), 8192);
  assert_int_equal(dt_pow2_ceil(8193), 16384);
  assert_int_equal(dt_fastfood_inner(64, 5), 8);
  assert_int_equal(dt_fastfood_inner(8, 11), 8);
  assert_int_equal(dt_fastfood_inner(1, 3), 1);
}

/* dt_fwht against sum_j H[i][j] x[j] (every output for small n, a sample of
 * outputs for large n). */
static void check_fwht(int64_t n) {
  float *x = malloc(sizeof(float) * n);
  double *x0 = malloc(sizeof(double) * n);
  for (int64_t i = 0; i < n; i++) x0[i] = x[i] = (float)gauss();
  dt_fwht(x, n);
  const int64_t n_out = n <= 512 ? n : 300;
  double err = 0, mag = 0;
  for (int64_t s = 0; s < n_out; s++) {
    const int64_t i = n <= 512 ? s : (int64_t)(next_u64() % (uint64_t)n);
    double ref = 0;
    for (int64_t j = 0; j < n; j++) ref += hsign(i, j) * x0[j];
    err = fmax(err, fabs(ref - x[i]));
    mag = fmax(mag, fabs(ref));
  }
  if (!(err <= 1e-5 * (mag + sqrt((double)n))))
    fail_msg("fwht n=%lld: max abs error %.3e (magnitude %.3e)", (long long)n, err, mag);
  free(x);
  free(x0);
}

static void test_fwht(void **state) {
  (void)state;
  const int64_t sizes[] = {1, 2, 4, 8, 64, 512, 2048, 4096, 8192, 16384, 65536};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) check_fwht(sizes[k]);
  /* H H = n I: applying twice scales by n */
  float v[32], w[32];
  for (int i = 0; i < 32; i++) v[i] = w[i] = (float)gauss();
  dt_fwht(w, 32);
  dt_fwht(w, 32);
  for (int i = 0; i < 32; i++) assert_true(fabs(w[i] - 32 * v[i]) <= 1e-4);
}

/* One case: D elements (LL = 2^ceil(log2 D)) and theta of length d. */
static void check_fastfood(int64_t D, int d) {
  assert_true(D >= 1 && D <= 65536 && d >= 1 && d <= 4096);
  const int64_t LL = dt_pow2_ceil(D), m = dt_fastfood_inner(LL, d);
  const size_t nb = (size_t)(LL > d ? LL : d), nl = (size_t)LL;
  float *B = malloc(sizeof(float) * nb), *G = malloc(sizeof(float) * nl);
  int32_t *Pi = malloc(sizeof(int32_t) * nl);
  for (size_t j = 0; j < nb; j++) B[j] = next_u64() >> 63 ? -1.0f : 1.0f;
  for (int64_t k = 0; k < LL; k++) G[k] = (float)gauss();
  for (int64_t k = 0; k < LL; k++) Pi[k] = (int32_t)k;
  for (int64_t k = LL - 1; k > 0; k--) {
    int64_t r = (int64_t)(next_u64() % (uint64_t)(k + 1));
    int32_t t = Pi[k];
    Pi[k] = Pi[r];
    Pi[r] = t;
  }
  const dt_fastfood f = {LL, B, G, Pi};

  /* dense J [LL, d]: columns j >= LL are zero (theta is cut to LL) */
  double *J = calloc(nl * (size_t)d, sizeof(double));
  for (int64_t k = 0; k < LL; k++)
    for (int j = 0; j < d && j < LL; j++) {
      double acc = 0;
      for (int64_t l = 0; l < LL; l++)
        acc += hsign(k, l) * (double)G[l] * hsign(Pi[l], j) * (double)B[j];
      J[k * d + j] = acc;
    }

  float *theta = malloc(sizeof(float) * d), *y = malloc(sizeof(float) * LL);
  float *g = malloc(sizeof(float) * LL), *dth = malloc(sizeof(float) * d);
  double *h = malloc(sizeof(double) * 2 * m), *g0 = malloc(sizeof(double) * LL);
  for (int j = 0; j < d; j++) theta[j] = (float)gauss();
  for (int64_t k = 0; k < LL; k++) g0[k] = g[k] = (float)gauss();
  for (int j = 0; j < d; j++) dth[j] = 0.25f * (float)j; /* backward adds to it */

  dt_fastfood_forward(&f, theta, d, y, h);
  double err = 0, mag = 0, dot_ref = 0;
  for (int64_t k = 0; k < LL; k++) {
    double ref = 0;
    for (int j = 0; j < d; j++) ref += J[k * d + j] * theta[j];
    err = fmax(err, fabs(ref - y[k]));
    mag = fmax(mag, fabs(ref));
    dot_ref += g0[k] * ref;
  }
  if (!(err <= 1e-5 * mag + 1e-6))
    fail_msg("forward D=%lld d=%d: max abs error %.3e (magnitude %.3e)", (long long)D, d,
             err, mag);

  const float scale = 0.75f;
  const double dot = dt_fastfood_backward(&f, theta, d, g, scale, dth, h);
  if (!(fabs(dot - dot_ref) <= 1e-5 * (fabs(dot_ref) + mag * sqrt((double)LL))))
    fail_msg("backward D=%lld d=%d: <g, y> %.9g vs %.9g", (long long)D, d, dot, dot_ref);
  err = 0;
  mag = 0;
  for (int j = 0; j < d; j++) {
    double ref = 0;
    for (int64_t k = 0; k < LL; k++) ref += J[k * d + j] * g0[k];
    ref = 0.25 * j + scale * ref;
    err = fmax(err, fabs(ref - dth[j]));
    mag = fmax(mag, fabs(ref));
  }
  if (!(err <= 1e-5 * mag + 1e-6))
    fail_msg("transpose D=%lld d=%d: max abs error %.3e (magnitude %.3e)", (long long)D, d,
             err, mag);
  free(B);
  free(G);
  free(Pi);
  free(J);
  free(theta);
  free(y);
  free(g);
  free(dth);
  free(h);
  free(g0);
}

static void test_fastfood_dense(void **state) {
  (void)state;
  check_fastfood(37, 5);    /* LL 64, inner 8 tiled 8 times */
  check_fastfood(48, 24);   /* LL 64, inner 32 */
  check_fastfood(64, 64);   /* inner = LL */
  check_fastfood(100, 1);   /* inner 1: every entry is B0 theta0 */
  check_fastfood(5, 11);    /* theta longer than LL = 8: cut off */
  check_fastfood(1, 3);     /* LL = 1 */
  check_fastfood(3000, 24); /* LL 4096 > the fwht cache block */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pow2),
      cmocka_unit_test(test_fwht),
      cmocka_unit_test(test_fastfood_dense),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
