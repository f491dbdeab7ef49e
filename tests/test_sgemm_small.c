/* The fp32 products of attention's blocks (src/sgemm_small.c) against a
 * double-precision reference, and its transpose against the definition.
 *
 * Shapes cover the register tile's edges: rows around its 6 (1, 5, 6, 7,
 * 64, 131), columns around its vectors of 16 and tiles of 64 (1, 15, 16,
 * 17, 64, 65, 130), depths 1 to 200, both layouts of A, beta 0 and 1, a
 * scale, and leading dimensions wider than the rows. Each element must be
 * within (K + 2) 2^-23 of its terms' magnitudes of the double sum (twice
 * fp32's bound for a sum of K products),
 * and C's padding columns (sentinels) must be untouched: a masked tail
 * that wrote past N, a row tile one row long or short, a lost beta term or
 * a wrong stride of A fails here. On a CPU without AVX-512 the calls go to
 * cblas_sgemm and the same checks hold.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgemm_small.h"
#include "testutil.h"

#define SENTINEL 12345.0f

static uint64_t g_state = 0x2545f4914f6cdd1dull;

static float *randv(size_t n) {
  float *v = malloc(sizeof(float) * (n ? n : 1));
  assert_non_null(v);
  for (size_t i = 0; i < n; i++) v[i] = dt_test_rand_pm1(&g_state);
  return v;
}

/* one product: C = alpha op(A) B + beta C0, checked element by element */
static void check_one(int trans_a, int M, int N, int K, float alpha, float beta) {
  const int lda = (trans_a ? M : K) + 3, ldb = N + 5, ldc = N + 7;
  const int arows = trans_a ? K : M;
  float *A = randv((size_t)arows * lda), *B = randv((size_t)K * ldb);
  float *C = randv((size_t)M * ldc), *C0 = malloc(sizeof(float) * (size_t)M * ldc);
  assert_non_null(C0);
  for (int i = 0; i < M; i++)
    for (int j = N; j < ldc; j++) C[(size_t)i * ldc + j] = SENTINEL;
  memcpy(C0, C, sizeof(float) * (size_t)M * ldc);
  dt_sgemm_small(trans_a, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      double s = 0, mag = 0;
      for (int k = 0; k < K; k++) {
        const double a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        s += a * B[(size_t)k * ldb + j];
        mag += fabs(a * B[(size_t)k * ldb + j]);
      }
      const double c0 = C0[(size_t)i * ldc + j];
      const double ref = alpha * s + (beta != 0.0f ? c0 : 0.0);
      const double tol = (K + 2) * ldexp(fabs(alpha) * mag + fabs(c0), -23) + 1e-30;
      const double got = C[(size_t)i * ldc + j];
      if (!(fabs(got - ref) <= tol))
        fail_msg("trans_a %d M %d N %d K %d alpha %g beta %g: C[%d,%d] = %.9g, reference %.9g "
                 "(tolerance %.3g)",
                 trans_a, M, N, K, alpha, beta, i, j, got, ref, tol);
    }
    for (int j = N; j < ldc; j++)
      if (C[(size_t)i * ldc + j] != SENTINEL)
        fail_msg("trans_a %d M %d N %d K %d: wrote C[%d,%d] past its %d columns", trans_a, M, N, K, i,
                 j, N);
  }
  free(A);
  free(B);
  free(C);
  free(C0);
}

static void test_products(void **state) {
  (void)state;
  static const int Ms[] = {1, 5, 6, 7, 64, 131};
  static const int Ns[] = {1, 15, 16, 17, 64, 65, 130};
  static const int Ks[] = {1, 3, 64, 200};
  int n = 0;
  for (int t = 0; t < 2; t++)
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
      for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
        for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
          check_one(t, Ms[a], Ns[b], Ks[c], 1.0f, (float)((a + b + c) % 2));
          n++;
        }
  check_one(0, 64, 200, 64, 0.125f, 0.0f); /* attention's scaled scores */
  check_one(1, 130, 64, 64, 0.125f, 1.0f);
  printf("# %d products, %s\n", n + 2,
         dt_sgemm_small_native() ? "AVX-512 kernel" : "no AVX-512 here: cblas_sgemm");
}

/* K = 0: C = beta C (an empty sum), and nothing at all when M or N is 0 */
static void test_empty(void **state) {
  (void)state;
  float C[4] = {1, 2, 3, 4}, A[1] = {0}, B[1] = {0};
  dt_sgemm_small(0, 2, 2, 0, 1.0f, A, 1, B, 2, 1.0f, C, 2);
  assert_true(C[0] == 1 && C[3] == 4);
  dt_sgemm_small(0, 2, 2, 0, 1.0f, A, 1, B, 2, 0.0f, C, 2);
  assert_true(C[0] == 0 && C[1] == 0 && C[2] == 0 && C[3] == 0);
  C[0] = 7;
  dt_sgemm_small(0, 0, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
  dt_sgemm_small(0, 2, 0, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
  assert_true(C[0] == 7);
}

static void test_transpose(void **state) {
  (void)state;
  static const int sizes[] = {1, 15, 16, 17, 33, 64, 130};
  for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
    for (size_t b = 0; b < sizeof sizes / sizeof *sizes; b++) {
      const int rows = sizes[a], cols = sizes[b], lds = cols + 9, ldd = rows + 16;
      float *src = randv((size_t)rows * lds), *dst = malloc(sizeof(float) * (size_t)cols * ldd);
      assert_non_null(dst);
      for (size_t i = 0; i < (size_t)cols * ldd; i++) dst[i] = SENTINEL;
      dt_sgemm_small_transpose(dst, ldd, src, lds, rows, cols);
      for (int c = 0; c < cols; c++)
        for (int i = 0; i < ldd; i++) {
          const float want = i < rows ? src[(size_t)i * lds + c] : SENTINEL;
          if (dst[(size_t)c * ldd + i] != want)
            fail_msg("transpose %d x %d: dst[%d,%d] = %g, want %g", rows, cols, c, i,
                     dst[(size_t)c * ldd + i], want);
        }
      free(src);
      free(dst);
    }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_products),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_transpose),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
