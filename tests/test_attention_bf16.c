/* Attention's products in bf16 (dt_attn_dims.bf16, --matmul-dtype bf16)
 * against the same attention with fp32 products.
 *
 * The fp32 path is the reference: it matches transformers' attention in the
 * HF/PEFT fixtures (test_parity, test_families), and test_bf16_products
 * checks whole bf16 runs against PEFT's. Here each layout of the attention
 * code runs both ways on the same random q, k, v (and prefix, and output
 * gradient), and the bf16 results must agree with the fp32 ones to within
 * what rounding the operands to bf16 (8 bits of mantissa) explains, and
 * differ from them (the bf16 products really ran). Layouts: blocks of 64
 * query rows with a partial last one, grouped key/value heads, fp32 prefix
 * keys and values beside the bf16 real ones, a sliding window with ALiBi and
 * soft-capping, and a key/value group shared by query rows. The scratch is
 * exactly dt_attention_scratch floats, so the sanitizer build catches a
 * write past it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "error.h"
#include "gemm_bf16.h"
#include "testutil.h"

/* relative L2 difference: measured 8e-5 to 3.3e-3 over the cases */
#define REL_TOL 1.5e-2
/* smallest difference that shows the bf16 products ran (fp32 gives 0) */
#define MIN_DIFF 1e-5

static uint64_t g_state = 0x9e3779b97f4a7c15ull;

static float *randv(size_t n, float amp) {
  float *v = malloc(sizeof(float) * (n ? n : 1));
  assert_non_null(v);
  for (size_t i = 0; i < n; i++) v[i] = amp * dt_test_rand_pm1(&g_state);
  return v;
}

static double rel_l2(const float *a, const float *ref, size_t n, double *maxdiff) {
  double num = 0, den = 0, mx = 0;
  for (size_t i = 0; i < n; i++) {
    const double e = (double)a[i] - ref[i];
    num += e * e;
    den += (double)ref[i] * ref[i];
    if (fabs(e) > mx) mx = fabs(e);
  }
  *maxdiff = mx;
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check(const char *what, const char *name, const float *a, const float *ref, size_t n) {
  double mx;
  const double r = rel_l2(a, ref, n, &mx);
  printf("# %s %s: relative L2 %.3g, largest difference %.3g\n", name, what, r, mx);
  if (!(r <= REL_TOL)) fail_msg("%s: %s differs from the fp32 products by %.3g (tolerance %g)", name,
                               what, r, REL_TOL);
  if (!(mx >= MIN_DIFF)) fail_msg("%s: %s is the fp32 result (largest difference %.3g)", name, what, mx);
}

/* One layout both ways: forward (att, lse) and backward (dqkv, prefix). */
static void run_case(const char *name, dt_attn_dims d) {
  const int N = d.B * d.T, qd = d.H * d.hd, ld = qd + 2 * d.KV * d.hd;
  const size_t npre = (size_t)d.P * d.PH * d.hd;
  float *qkv = randv((size_t)N * ld, 1.5f), *datt = randv((size_t)N * qd, 1.0f);
  float *pk = randv(npre, 1.5f), *pv = randv(npre, 1.0f);
  float *att[2], *lse[2], *dqkv[2], *dpk[2], *dpv[2];
  for (int k = 0; k < 2; k++) {
    dt_attn_dims dk = d;
    dk.bf16 = k;
    const long ns = dt_attention_scratch(&dk);
    float *scratch = malloc(sizeof(float) * (size_t)ns);
    assert_non_null(scratch);
    att[k] = calloc((size_t)N * qd, sizeof(float));
    lse[k] = calloc((size_t)d.B * d.H * d.T, sizeof(float));
    dqkv[k] = calloc((size_t)N * ld, sizeof(float));
    dpk[k] = calloc(npre ? npre : 1, sizeof(float));
    dpv[k] = calloc(npre ? npre : 1, sizeof(float));
    assert_int_equal(dt_attention_forward(att[k], lse[k], qkv, pk, pv, &dk, scratch), DT_OK);
    assert_int_equal(dt_attention_backward(dqkv[k], d.P ? dpk[k] : NULL, d.P ? dpv[k] : NULL, datt,
                                           att[k], lse[k], qkv, pk, pv, &dk, scratch),
                     DT_OK);
    free(scratch);
  }
  check("output", name, att[1], att[0], (size_t)N * qd);
  check("log-sum-exp", name, lse[1], lse[0], (size_t)d.B * d.H * d.T);
  check("q|k|v gradient", name, dqkv[1], dqkv[0], (size_t)N * ld);
  if (d.P) {
    check("prefix key gradient", name, dpk[1], dpk[0], npre);
    check("prefix value gradient", name, dpv[1], dpv[0], npre);
  }
  for (int k = 0; k < 2; k++) {
    free(att[k]);
    free(lse[k]);
    free(dqkv[k]);
    free(dpk[k]);
    free(dpv[k]);
  }
  free(qkv);
  free(datt);
  free(pk);
  free(pv);
}

/* B, T, P, H, KV, hd, W, scale, cap, alibi, PH, KS, q0, q1, bf16 */
static void test_causal(void **state) {
  (void)state;
  run_case("causal, 3 blocks of queries", (dt_attn_dims){2, 150, 0, 4, 4, 32, 0, 0, 0, NULL, 4, 0, 0, 0, 0});
}

static void test_grouped_prefix(void **state) {
  (void)state;
  run_case("grouped key/values with a prefix",
           (dt_attn_dims){1, 130, 5, 4, 2, 32, 0, 0, 0, NULL, 2, 0, 0, 0, 0});
}

static void test_window_alibi_cap(void **state) {
  (void)state;
  static const float slopes[3] = {0.5f, 0.25f, 0.125f};
  run_case("sliding window, ALiBi, soft-capping",
           (dt_attn_dims){1, 140, 3, 3, 3, 16, 50, 0.2f, 20.0f, slopes, 3, 0, 0, 0, 0});
}

static void test_shared_group(void **state) {
  (void)state;
  run_case("a group shared by query rows",
           (dt_attn_dims){2, 120, 0, 4, 2, 32, 0, 0, 0, NULL, 2, 1, 40, 100, 0});
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_causal),
      cmocka_unit_test(test_grouped_prefix),
      cmocka_unit_test(test_window_alibi_cap),
      cmocka_unit_test(test_shared_group),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  dt_gemm_bf16_shutdown();
  return rc;
}
