/* The bf16 products (src/gemm_bf16.c) against a double-precision reference.
 *
 * The reference rounds the fp32 operand to bf16 with io/safetensors.h's
 * dt_f32_to_bf16 (the rounding the product code uses too, checked on its own
 * in test_rounding against values worked out from the definition), forms
 * every product of the exactly representable bf16 values in double and sums
 * in double. bf16 x bf16 products are exact in fp32, so the fp32
 * accumulation differs from the reference by summation rounding only, in any
 * order: |C - ref| <= (K + 2) 2^-24 sum |a||b| per element (the sum post-op
 * of beta = 1 adds one rounding). Shapes: both weight
 * layouts (y = x W^T, dx = dy W), beta 0 and 1, odd sizes, one row, an empty
 * sum, the cache's reuse (the same shape twice on new data) and eviction
 * (more shapes than it keeps); dt_gemm_bf16_ld's leading dimensions and
 * transposed source, with C's padding left alone. The rounding itself is checked bit for bit on
 * ties, subnormals, overflow, infinities and NaN. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm_bf16.h"
#include "safetensors.h"
#include "testutil.h"

/* testutil's generator (xorshift64*), independent of base/rng.h */
static uint64_t g_state = 0x51ab3c7e9d2f4a61ull;
static float unif_pm1(void) { return dt_test_rand_pm1(&g_state); }

/* One product of shape (M, N, K) in layout trans_b with beta; returns the
 * worst error relative to its bound (must be <= 1). */
static double check_one(int M, int N, int K, int trans_b, int beta) {
  float *A = malloc(sizeof(float) * ((size_t)M * K + 1));
  uint16_t *B = malloc(sizeof(uint16_t) * ((size_t)N * K + 1));
  float *C = malloc(sizeof(float) * (size_t)M * N);
  float *C0 = malloc(sizeof(float) * (size_t)M * N);
  uint16_t *a16 = malloc(sizeof(uint16_t) * ((size_t)M * K + 1));
  assert_true(A && B && C && C0 && a16);
  for (size_t i = 0; i < (size_t)M * K; i++) A[i] = 3.0f * unif_pm1();
  for (size_t i = 0; i < (size_t)N * K; i++) B[i] = dt_f32_to_bf16(unif_pm1());
  for (size_t i = 0; i < (size_t)M * N; i++) C0[i] = C[i] = beta ? 10.0f * unif_pm1() : NAN;
  assert_int_equal(dt_gemm_bf16(C, A, B, M, N, K, trans_b, beta ? 1.0f : 0.0f, a16), DT_OK);
  double worst = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double ref = beta ? C0[(size_t)i * N + j] : 0.0, mag = fabs(ref);
      for (int k = 0; k < K; k++) {
        const double a = dt_bf16_to_f32(dt_f32_to_bf16(A[(size_t)i * K + k]));
        const double b = dt_bf16_to_f32(trans_b ? B[(size_t)j * K + k] : B[(size_t)k * N + j]);
        ref += a * b;
        mag += fabs(a * b);
      }
      const double err = fabs((double)C[(size_t)i * N + j] - ref);
      const double bound = ldexp(mag, -24) * (K + 2) + 1e-30;
      if (!(err <= bound)) /* NaN-safe: an unwritten NAN fails here */
        fail_msg("M=%d N=%d K=%d trans_b=%d beta=%d: C[%d,%d] = %.9g, reference %.9g (bound %.3g)",
                 M, N, K, trans_b, beta, i, j, C[(size_t)i * N + j], ref, bound);
      if (err / bound > worst) worst = err / bound;
    }
  free(A), free(B), free(C), free(C0), free(a16);
  return worst;
}

static void test_shapes(void **state) {
  (void)state;
  static const int shapes[][3] = {{1, 1, 1},    {37, 29, 53}, {64, 256, 128}, {1, 300, 77},
                                  {130, 7, 300}, {256, 96, 40}, {5, 4096, 33}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int t = 0; t < 2; t++)
      for (int beta = 0; beta < 2; beta++) {
        const double w = check_one(shapes[s][0], shapes[s][1], shapes[s][2], t, beta);
        if (w > 1.0)
          fail_msg("shape %dx%dx%d trans_b=%d beta=%d: error %.2f x the fp32 bound",
                   shapes[s][0], shapes[s][1], shapes[s][2], t, beta, w);
      }
}

/* dt_gemm_bf16_ld: operands already in bf16 with leading dimensions wider
 * than their rows, A read as stored or transposed, B both ways, beta 0 and
 * 1, against the double reference; the padding of C must stay as it was. */
static void check_ld(int M, int N, int K, int trans_a, int trans_b, int beta) {
  const int ar = trans_a ? K : M, ac = trans_a ? M : K, lda = ac + 3;
  const int br = trans_b ? N : K, bc = trans_b ? K : N, ldb = bc + 5, ldc = N + 2;
  uint16_t *A = malloc(sizeof(uint16_t) * (size_t)ar * lda);
  uint16_t *B = malloc(sizeof(uint16_t) * (size_t)br * ldb);
  float *C = malloc(sizeof(float) * (size_t)M * ldc), *C0 = malloc(sizeof(float) * (size_t)M * ldc);
  assert_true(A && B && C && C0);
  for (size_t i = 0; i < (size_t)ar * lda; i++) A[i] = dt_f32_to_bf16(2.0f * unif_pm1());
  for (size_t i = 0; i < (size_t)br * ldb; i++) B[i] = dt_f32_to_bf16(unif_pm1());
  for (size_t i = 0; i < (size_t)M * ldc; i++) C0[i] = C[i] = 10.0f * unif_pm1();
  assert_int_equal(dt_gemm_bf16_ld(C, ldc, A, lda, trans_a, B, ldb, trans_b, M, N, K,
                                   beta ? 1.0f : 0.0f),
                   DT_OK);
  for (int i = 0; i < M; i++) {
    for (int j = N; j < ldc; j++)
      if (C[(size_t)i * ldc + j] != C0[(size_t)i * ldc + j])
        fail_msg("trans_a=%d trans_b=%d: the padding C[%d,%d] was written", trans_a, trans_b, i, j);
    for (int j = 0; j < N; j++) {
      double ref = beta ? C0[(size_t)i * ldc + j] : 0.0, mag = fabs(ref);
      for (int k = 0; k < K; k++) {
        const double a = dt_bf16_to_f32(trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
        const double b = dt_bf16_to_f32(trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
        ref += a * b;
        mag += fabs(a * b);
      }
      const double err = fabs((double)C[(size_t)i * ldc + j] - ref);
      if (!(err <= ldexp(mag, -24) * (K + 2) + 1e-30))
        fail_msg("M=%d N=%d K=%d trans_a=%d trans_b=%d beta=%d: C[%d,%d] = %.9g, reference %.9g", M,
                 N, K, trans_a, trans_b, beta, i, j, C[(size_t)i * ldc + j], ref);
    }
  }
  free(A), free(B), free(C), free(C0);
}

static void test_leading_dims(void **state) {
  (void)state;
  static const int shapes[][3] = {{64, 96, 32}, {96, 32, 64}, {1, 17, 9}, {33, 1, 70}};
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int beta = 0; beta < 2; beta++)
          check_ld(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, beta);
}

/* The same shape again on other data (a cached primitive, rebound), then
 * more distinct shapes than the cache holds, then the first again. */
static void test_cache(void **state) {
  (void)state;
  assert_true(check_one(48, 40, 24, 1, 0) <= 1.0);
  assert_true(check_one(48, 40, 24, 1, 0) <= 1.0);
  for (int k = 1; k <= DT_GEMM_BF16_CACHE + 16; k++)
    assert_true(check_one(3, 5, k, k & 1, (k >> 1) & 1) <= 1.0);
  assert_true(check_one(48, 40, 24, 1, 0) <= 1.0);
}

/* K = 0: beta 0 clears C, beta 1 leaves it; M or N = 0 touches nothing. */
static void test_empty(void **state) {
  (void)state;
  float C[6] = {1, 2, 3, 4, 5, 6};
  const float A[1] = {0};
  const uint16_t B[1] = {0};
  uint16_t a16[1];
  assert_int_equal(dt_gemm_bf16(C, A, B, 2, 3, 0, 1, 1.0f, a16), DT_OK);
  for (int i = 0; i < 6; i++) assert_true(C[i] == (float)(i + 1));
  assert_int_equal(dt_gemm_bf16(C, A, B, 0, 3, 4, 1, 0.0f, a16), DT_OK);
  for (int i = 0; i < 6; i++) assert_true(C[i] == (float)(i + 1));
  assert_int_equal(dt_gemm_bf16(C, A, B, 2, 3, 0, 0, 0.0f, a16), DT_OK);
  for (int i = 0; i < 6; i++) assert_true(C[i] == 0.0f);
}

/* Round to nearest even, bit for bit: each expected value worked out from
 * the definition (keep the upper 16 bits, add one when the lower 16 exceed
 * 0x8000 or equal it with the kept part odd; NaN stays a quiet NaN). */
static void test_rounding(void **state) {
  (void)state;
  static const struct {
    uint32_t in;
    uint16_t out;
  } cases[] = {
      {0x3f808000u, 0x3f80}, /* a tie, even below: down */
      {0x3f818000u, 0x3f82}, /* a tie, odd below: up */
      {0x3f808001u, 0x3f81}, /* above half: up */
      {0x3f807fffu, 0x3f80}, /* below half: down */
      {0x00000001u, 0x0000}, /* smallest subnormal: to zero */
      {0x807fffffu, 0x8080}, /* largest negative subnormal: up to the smallest normal */
      {0x7f7fffffu, 0x7f80}, /* FLT_MAX: overflows to infinity */
      {0x7f800000u, 0x7f80}, {0xff800000u, 0xff80}, /* infinities kept */
      {0x7fc00001u, 0x7fc0}, {0x7f800001u, 0x7fc0}, /* NaNs, quiet */
      {0x80000000u, 0x8000}, /* -0 */
  };
  enum { N = sizeof cases / sizeof *cases };
  float f[N];
  uint16_t out[N];
  for (int i = 0; i < N; i++) memcpy(&f[i], &cases[i].in, sizeof f[i]);
  dt_f32_to_bf16_n(out, f, N);
  for (int i = 0; i < N; i++)
    if (out[i] != cases[i].out)
      fail_msg("0x%08x -> 0x%04x, expected 0x%04x", cases[i].in, out[i], cases[i].out);
  /* The same cases inside a long array, at every offset from its start: the
   * conversion's vector loop (8 or 16 lanes) and its tail both see each one
   * in every lane. The rest of the array is random bits, checked against the
   * scalar rounding of base/bf16.h, itself checked on the cases above. */
  enum { L = 4099 };
  float *g = malloc(sizeof(float) * L);
  uint16_t *h = malloc(sizeof(uint16_t) * L);
  assert_non_null(g);
  assert_non_null(h);
  for (int off = 0; off < 64; off++) {
    for (int i = 0; i < L; i++) {
      const uint32_t bits = (uint32_t)dt_test_rand_u64(&g_state);
      memcpy(&g[i], &bits, sizeof bits);
    }
    for (int i = 0; i < N; i++) memcpy(&g[off + 37 * i], &cases[i].in, sizeof(float));
    dt_f32_to_bf16_n(h, g, L - off % 7);
    for (int i = 0; i < N; i++)
      if (h[off + 37 * i] != cases[i].out)
        fail_msg("0x%08x at %d -> 0x%04x, expected 0x%04x", cases[i].in, off + 37 * i,
                 h[off + 37 * i], cases[i].out);
    for (int i = 0; i < L - off % 7; i++)
      if (h[i] != dt_f32_to_bf16(g[i]))
        fail_msg("element %d: 0x%04x, the scalar rounding gives 0x%04x", i, h[i], dt_f32_to_bf16(g[i]));
  }
  free(g);
  free(h);
}

static void test_probe(void **state) {
  (void)state;
  const char *impl = NULL;
  assert_int_equal(dt_gemm_bf16_probe(&impl), DT_OK);
  assert_non_null(impl);
  assert_non_null(strstr(dt_gemm_bf16_library(), "oneDNN"));
  printf("# bf16 products: %s, %s\n", dt_gemm_bf16_library(), impl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rounding), cmocka_unit_test(test_empty),
      cmocka_unit_test(test_shapes),   cmocka_unit_test(test_cache),
      cmocka_unit_test(test_leading_dims),
      cmocka_unit_test(test_probe),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  dt_gemm_bf16_shutdown();
  return rc;
}
