/* The elementwise kernels' reductions (src/ops.c): dt_exp_shift_sum gives
 * the bits of the two-pass definition (dt_expf per element, then
 * dt_row_sum_d) at every length around its lane groups and blocks, and its
 * sum is the exact sum of its outputs to double rounding; the norms' lane
 * sums give layer norm and RMS norm, forward and backward, as a long double
 * evaluation of their formulas does, at widths that are and are not
 * multiples of the 8 lanes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "testutil.h"
#include "vmath.h"

static float urand(uint64_t *s, float lo, float hi) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return lo + (hi - lo) * (float)((*s >> 40) & 0xffffff) / 16777216.0f;
}

static void test_exp_shift_sum(void **state) {
  (void)state;
  const int64_t lens[] = {0, 1, 7, 8, 9, 15, 2047, 2048, 2049, 4103, 50257};
  uint64_t seed = 7;
  for (size_t t = 0; t < sizeof lens / sizeof *lens; t++) {
    const int64_t n = lens[t];
    float *z = malloc(sizeof(float) * (size_t)(n + 1)), *ref = malloc(sizeof(float) * (size_t)(n + 1));
    assert_non_null(z);
    assert_non_null(ref);
    for (int64_t j = 0; j < n; j++) z[j] = urand(&seed, -30.0f, 10.0f);
    const float m = n ? dt_row_max(z, (int)n) : 0.0f;
    for (int64_t j = 0; j < n; j++) ref[j] = dt_expf(z[j] - m);
    const double want = dt_row_sum_d(ref, (int)n);
    const double got = dt_exp_shift_sum(z, n, m);
    if (n && memcmp(z, ref, sizeof(float) * (size_t)n))
      fail_msg("n %lld: the exponentials differ from dt_expf's", (long long)n);
    if (memcmp(&got, &want, sizeof got))
      fail_msg("n %lld: sum %.17g, dt_row_sum_d of the exponentials %.17g", (long long)n, got, want);
    long double exact = 0.0L;
    for (int64_t j = 0; j < n; j++) exact += ref[j];
    if (fabsl((long double)got - exact) > 1e-13L * (exact > 1.0L ? exact : 1.0L))
      fail_msg("n %lld: sum %.17g, long double sum %.17Lg", (long long)n, got, exact);
    free(z);
    free(ref);
  }
}

/* |got - want| <= tol (1 + |want|) for each of n values */
static void close_all(const char *what, int C, const float *got, const long double *want, int n,
                      double tol) {
  for (int i = 0; i < n; i++)
    if (!(fabsl((long double)got[i] - want[i]) <= tol * (1.0L + fabsl(want[i]))))
      fail_msg("%s, C %d, element %d: %.9g against %.12Lg", what, C, i, got[i], want[i]);
}

static void test_norms(void **state) {
  (void)state;
  const int widths[] = {5, 13, 768, 1001};
  const int N = 3;
  uint64_t seed = 11;
  for (size_t t = 0; t < sizeof widths / sizeof *widths; t++) {
    const int C = widths[t], NC = N * C;
    float *x = malloc(sizeof(float) * NC), *w = malloc(sizeof(float) * C), *b = malloc(sizeof(float) * C);
    float *dout = malloc(sizeof(float) * NC), *out = malloc(sizeof(float) * NC);
    float *dx = calloc((size_t)NC, sizeof(float)), *dw = calloc((size_t)C, sizeof(float));
    float *db = calloc((size_t)C, sizeof(float)), stat[2 * 3];
    long double *r = malloc(sizeof(long double) * NC), *rw = calloc((size_t)C, sizeof(long double));
    long double *rb = calloc((size_t)C, sizeof(long double));
    assert_true(x && w && b && dout && out && dx && dw && db && r && rw && rb);
    for (int i = 0; i < NC; i++) x[i] = urand(&seed, -2.0f, 3.0f), dout[i] = urand(&seed, -1.0f, 1.0f);
    for (int j = 0; j < C; j++) w[j] = urand(&seed, 0.5f, 1.5f), b[j] = urand(&seed, -0.2f, 0.2f);
    const float eps = 1e-5f;

    /* layer norm */
    dt_layernorm_forward(out, stat, x, w, b, N, C, eps);
    long double rs[3];
    for (int i = 0; i < N; i++) {
      long double m = 0, v = 0;
      for (int j = 0; j < C; j++) m += x[i * C + j];
      m /= C;
      for (int j = 0; j < C; j++) v += (x[i * C + j] - m) * (x[i * C + j] - m);
      rs[i] = 1.0L / sqrtl(v / C + eps);
      for (int j = 0; j < C; j++) r[i * C + j] = (x[i * C + j] - m) * rs[i] * w[j] + b[j];
    }
    close_all("layer norm forward", C, out, r, NC, 2e-6);
    dt_layernorm_backward(dx, dw, db, dout, x, w, stat, N, C);
    for (int i = 0; i < N; i++) {
      long double m = 0, v = 0, s1 = 0, s2 = 0;
      for (int j = 0; j < C; j++) m += x[i * C + j];
      m /= C;
      for (int j = 0; j < C; j++) v += (x[i * C + j] - m) * (x[i * C + j] - m);
      const long double rstd = 1.0L / sqrtl(v / C + eps);
      for (int j = 0; j < C; j++) {
        const long double xh = (x[i * C + j] - m) * rstd, dn = (long double)dout[i * C + j] * w[j];
        s1 += dn, s2 += dn * xh;
        rw[j] += dout[i * C + j] * xh, rb[j] += dout[i * C + j];
      }
      for (int j = 0; j < C; j++) {
        const long double xh = (x[i * C + j] - m) * rstd, dn = (long double)dout[i * C + j] * w[j];
        r[i * C + j] = (dn - s1 / C - xh * s2 / C) * rstd;
      }
    }
    close_all("layer norm backward dx", C, dx, r, NC, 1e-5);
    close_all("layer norm backward dw", C, dw, rw, C, 1e-5);
    close_all("layer norm backward db", C, db, rb, C, 1e-5);

    /* RMS norm, Gemma's (1 + w) */
    for (const float *off = (const float[]){0.0f, 1.0f}, *e = off + 2; off < e; off++) {
      memset(dx, 0, sizeof(float) * NC);
      memset(dw, 0, sizeof(float) * C);
      for (int j = 0; j < C; j++) rw[j] = 0;
      dt_rmsnorm_forward(out, stat, x, w, *off, N, C, eps);
      for (int i = 0; i < N; i++) {
        long double ss = 0;
        for (int j = 0; j < C; j++) ss += (long double)x[i * C + j] * x[i * C + j];
        rs[i] = 1.0L / sqrtl(ss / C + eps);
        for (int j = 0; j < C; j++) r[i * C + j] = (*off + w[j]) * (x[i * C + j] * rs[i]);
      }
      close_all("RMS norm forward", C, out, r, NC, 2e-6);
      dt_rmsnorm_backward(dx, dw, dout, x, w, *off, stat, N, C);
      for (int i = 0; i < N; i++) {
        long double s = 0;
        for (int j = 0; j < C; j++) {
          const long double xh = x[i * C + j] * rs[i];
          s += (long double)dout[i * C + j] * (*off + w[j]) * xh;
          rw[j] += dout[i * C + j] * xh;
        }
        for (int j = 0; j < C; j++) {
          const long double xh = x[i * C + j] * rs[i];
          r[i * C + j] = ((long double)dout[i * C + j] * (*off + w[j]) - xh * s / C) * rs[i];
        }
      }
      close_all("RMS norm backward dx", C, dx, r, NC, 1e-5);
      close_all("RMS norm backward dw", C, dw, rw, C, 1e-5);
    }
    free(x), free(w), free(b), free(dout), free(out), free(dx), free(dw), free(db);
    free(r), free(rw), free(rb);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exp_shift_sum),
      cmocka_unit_test(test_norms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
