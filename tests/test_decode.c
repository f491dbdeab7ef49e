/* The key/value cache against the full forward: for every method family on
 * both fixture models (deltas moved away from their init), the logits of
 * each incremental step -- a prefill of the first tokens, then one token at
 * a time -- equal the logits of a full forward without a cache over the
 * same sequence at that position (src/forward.c, itself checked against
 * transformers by the parity tests). Rows run together and in other
 * groupings (one slot per pass, slots out of order). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "bf16.h"
#include "error.h"
#include "linear_rows.h"
#include "ops.h"
#include "rng.h"
#include "method.h"
#include "testutil.h"

enum { B = DT_TEST_FX_B, T = DT_TEST_FX_T, PRE = 5 };

static double max_rel(const float *a, const float *b, int n) {
  double mx = 0, sc = 1e-3;
  for (int i = 0; i < n; i++) sc = fmax(sc, fabs(b[i]));
  for (int i = 0; i < n; i++) mx = fmax(mx, fabs((double)a[i] - b[i]) / sc);
  return mx;
}

/* grouping 0: both rows in every pass; 1: one row per pass, row 1 first */
static void check(const char *family, const char *methods, const char *const *args, int nargs,
                  int grouping) {
  dt_test_fx f;
  assert_int_equal(dt_test_fx_open(&f, family, methods, 0, args, nargs), DT_OK);
  dt_test_fx_perturb(&f, 0.3);
  const int V = f.m.bb->cfg.vocab, Tv = f.m.T, nv = f.m.n_virtual;
  float *full = malloc(sizeof(float) * (size_t)B * Tv * V);
  assert_non_null(full);
  assert_int_equal(dt_model_forward(&f.m, f.ids, NULL, 0, 1.0, NULL, full), DT_OK);
  dt_decoder dc;
  assert_int_equal(dt_decoder_init(&dc, &f.m, B, T), DT_OK);
  float lg[B * 512];
  assert_true(V <= 512);
  double worst = 0;
  int passes = 0;
  for (int t = PRE; t <= T; t++) { /* after t tokens of each row */
    const int n = t == PRE ? PRE : 1, t0 = t - n;
    int32_t ids[B * PRE];
    int slots[B];
    /* both rows in one pass where the decoder's rows hold them */
    const int together = !grouping && B * (n + (t == PRE ? nv : 0)) <= dc.max_rows;
    for (int g = 0; g < (together ? 1 : B); g++) {
      const int nb = together ? B : 1;
      for (int i = 0; i < nb; i++) {
        slots[i] = together ? i : grouping ? B - 1 - g : g;
        memcpy(ids + i * n, f.ids + slots[i] * T + t0, sizeof(int32_t) * n);
      }
      assert_int_equal(dt_decoder_step(&dc, nb, slots, n, ids, lg), DT_OK);
      passes++;
      for (int i = 0; i < nb; i++) {
        const float *ref = full + ((size_t)slots[i] * Tv + nv + t - 1) * V;
        const double e = max_rel(lg + (size_t)i * V, ref, V);
        if (e > worst) worst = e;
        if (e > 2e-5)
          fail_msg("%s %s: row %d after %d tokens: cached logits differ by %.3g (relative to "
                   "the row's largest)", family, methods, slots[i], t, e);
      }
    }
  }
  print_message("%s %-10s grouping %d: %d passes, largest difference %.2e\n", family, methods,
                grouping, passes, worst);
  dt_decoder_free(&dc);
  free(full);
  dt_test_fx_close(&f);
}

static void both(const char *methods, const char *const *a, int na, const char *const *b, int nb) {
  check("gpt2", methods, a, na, 0);
  check("gpt2", methods, a, na, 1);
  check("llama", methods, b, nb, 0);
  check("llama", methods, b, nb, 1);
}

static void test_base(void **s) { (void)s; both("none", NULL, 0, NULL, 0); }
static void test_lora(void **s) {
  (void)s;
  const char *a[] = {"--lora-rank", "3", "--lora-targets", "c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj"};
  const char *b[] = {"--lora-rank", "3", "--lora-targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"};
  both("lora", a, 4, b, 4);
}
static void test_ia3(void **s) { (void)s; both("ia3", NULL, 0, NULL, 0); }
static void test_adapter(void **s) {
  (void)s;
  const char *a[] = {"--adapter-size", "4"};
  both("adapter", a, 2, a, 2);
}
static void test_prefix(void **s) {
  (void)s;
  const char *a[] = {"--prefix-tokens", "3"};
  const char *b[] = {"--prefix-tokens", "2", "--prefix-hidden", "8"};
  both("prefix", a, 2, b, 4);
}
static void test_prompt(void **s) {
  (void)s;
  const char *a[] = {"--prompt-tokens", "3"};
  both("prompt", a, 2, a, 2);
}
static void test_backbone(void **s) {
  (void)s;
  check("gpt2", "bitfit", NULL, 0, 0);
  const char *a[] = {"--last-layers", "1"};
  check("llama", "lastlayer", a, 2, 1);
  check("llama", "full", NULL, 0, 0);
}
static void test_composed(void **s) {
  (void)s;
  const char *a[] = {"--prompt-tokens", "2", "--lora-targets", "c_attn"};
  check("gpt2", "prompt,lora", a, 4, 1);
  const char *b[] = {"--prefix-tokens", "2", "--adapter-size", "3"};
  check("llama", "prefix,adapter,ia3", b, 4, 0);
}

/* The families beyond GPT-2 and LLaMA (tests/data/families): Mistral's
 * sliding window of 4 over 12 tokens (the cache must drop the keys before
 * the window, prefix rows included, as the training pass does), Qwen2's
 * q/k/v biases, OPT's ReLU and positions offset by 2, GPT-NeoX's parallel
 * residual and partial rotary, BLOOM's ALiBi and embedding norm. */
static void test_families(void **s) {
  (void)s;
  const char *pre[] = {"--prefix-tokens", "3"};
  const char *lora[] = {"--lora-rank", "3"};
  for (int g = 0; g < 2; g++) {
    check("../families/mistral", "none", NULL, 0, g);
    check("../families/mistral", "prefix", pre, 2, g);
    check("../families/qwen2", "lora", lora, 2, g);
    check("../families/opt", "none", NULL, 0, g);
  }
  check("../families/opt", "prompt,lora", (const char *const[]){"--prompt-tokens", "2"}, 2, 1);
  /* Gemma: scaled embeddings (prompt rows too), 1 + w norms, GeGLU;
   * Gemma-2: post norms, capped scores (prefix included) and logits, the
   * window of 4 in layers 0 and 2 only */
  check("../families/gemma", "prompt,lora", (const char *const[]){"--prompt-tokens", "2"}, 2, 1);
  for (int g = 0; g < 2; g++) {
    check("../families/gemma2", "none", NULL, 0, g);
    check("../families/gemma2", "prefix", pre, 2, g);
  }
  /* GPT-NeoX: the parallel residual and half of each head rotating at the
   * token's own position; neox_seq the sequential residual, tied head */
  for (int g = 0; g < 2; g++) {
    check("../families/neox", "none", NULL, 0, g);
    check("../families/neox", "prefix,lora", pre, 2, g);
    check("../families/neox_seq", "prompt,ia3", (const char *const[]){"--prompt-tokens", "2"}, 2, g);
  }
  /* BLOOM: ALiBi at the cached keys' positions (prefix rows first), the
   * embedding's norm (over prompt rows too); bloom_h6 the interleaved slopes */
  for (int g = 0; g < 2; g++) {
    check("../families/bloom", "none", NULL, 0, g);
    check("../families/bloom", "prefix,lora", pre, 2, g);
    check("../families/bloom_h6", "prompt,ia3", (const char *const[]){"--prompt-tokens", "2"}, 2, g);
  }
  /* Falcon: the grouped query_key_value with ln_attn / ln_mlp, the
   * multi_query block with its one shared input_layernorm, the sequential
   * per-head block; the prefix a key/value per query head (PEFT's) */
  for (int g = 0; g < 2; g++) {
    check("../families/falcon", "none", NULL, 0, g);
    check("../families/falcon", "prefix,lora", pre, 2, g);
    check("../families/falcon_mq", "prefix", pre, 2, g);
    check("../families/falcon_mq", "prompt,ia3", (const char *const[]){"--prompt-tokens", "2"}, 2, g);
    check("../families/falcon_seq", "lora", NULL, 0, g);
  }
}

/* The decoder's few-row products (src/linear_rows.h), fp32 and bf16
 * weights, against sgemm (dt_linear_forward) on the widened weights: odd
 * widths (a tail after the blocks of 16), 1 to 6 rows, with and without bias. */
static void test_linear_rows(void **s) {
  (void)s;
  enum { OUT = 37, IN = 45, NMAX = 6 };
  float W[OUT * IN], Wb[OUT * IN], x[NMAX * IN], bias[OUT], ref[NMAX * OUT], got[NMAX * OUT];
  uint16_t W16[OUT * IN];
  const uint64_t key = dt_rng_key(5, 7);
  for (int i = 0; i < OUT * IN; i++) {
    W[i] = (float)dt_rng_normal(key, (uint64_t)i);
    W16[i] = dt_f32_to_bf16(W[i]);
    Wb[i] = dt_bf16_to_f32(W16[i]);
  }
  for (int i = 0; i < NMAX * IN; i++) x[i] = (float)dt_rng_normal(key, 10000u + (uint64_t)i);
  for (int i = 0; i < OUT; i++) bias[i] = (float)dt_rng_normal(key, 20000u + (uint64_t)i);
  for (int N = 1; N <= NMAX; N++)
    for (int wb = 0; wb < 2; wb++)
      for (int bf = 0; bf < 2; bf++) {
        dt_linear_forward(ref, x, bf ? Wb : W, wb ? bias : NULL, N, IN, OUT);
        if (bf) dt_linear_rows_bf16(got, x, W16, wb ? bias : NULL, N, IN, OUT);
        else dt_linear_rows(got, x, W, wb ? bias : NULL, N, IN, OUT);
        const double e = max_rel(got, ref, N * OUT);
        if (e > 1e-6) fail_msg("%d rows, %s weights, bias %d: differs from sgemm by %.3g", N,
                               bf ? "bf16" : "fp32", wb, e);
      }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base),     cmocka_unit_test(test_lora),
      cmocka_unit_test(test_ia3),      cmocka_unit_test(test_adapter),
      cmocka_unit_test(test_prefix),   cmocka_unit_test(test_prompt),
      cmocka_unit_test(test_backbone), cmocka_unit_test(test_composed),
      cmocka_unit_test(test_families),
      cmocka_unit_test(test_linear_rows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
