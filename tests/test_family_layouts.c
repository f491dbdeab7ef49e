/* Tensor- and data-parallel layouts of the families built on LLaMA's block
 * train as one rank does: Qwen2's q/k/v biases (sharded with their heads;
 * bitfit and full train them), Mistral's window (full, prefix, prompt),
 * OPT (full, prompt), GPT-NeoX (per-head query_key_value rows, partial
 * rotary, parallel and sequential residual: full, LoRA and IA3, SAID) and
 * Gemma-2 (full, prompt).
 * Every layout's losses of 5 steps within 2e-5 of the 1-rank run's and its
 * gradient norms within 1e-4 relative; the 1-rank run itself is checked
 * against numpy and finite differences (tests/families.cmake). Layouts: 2
 * shards, 3 uneven shards (4 heads in 2 kv groups, FFN 128 on 3 ranks), 2
 * replicas x 2 shards, 2 replicas.
 *
 * usage: test_family_layouts MPIRUN... (the launcher; "-np N" is appended) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static void train(const char *model, const char *method, int np, int tp, const char *metrics) {
  char a[4096], *out = NULL;
  snprintf(a, sizeof a,
           "train --model %s/../families/%s/model --data %s/llama/batch.safetensors --batch-size 2 "
           "--steps 5 --lr 1e-2 --log-every 1000 --tp %d --metrics %s %s",
           cli_fix(), model, cli_fix(), tp, metrics, method);
  cli_must(cli_dt(&out, np, NULL, a), out, a);
  free(out);
}

static void layouts(const char *model, const char *method, const char *tag) {
  const char *tmp = dt_test_tmpdir();
  char ref[1024];
  snprintf(ref, sizeof ref, "%s/%s-np1.jsonl", tmp, tag);
  train(model, method, 1, 1, ref);
  cli_metrics *x = malloc(sizeof *x), *y = malloc(sizeof *y);
  assert_non_null(x);
  assert_non_null(y);
  cli_read_metrics(ref, x);
  assert_int_equal(x->n, 5);
  const int lay[][2] = {{2, 2}, {3, 3}, {4, 2}, {2, 1}};
  for (size_t k = 0; k < sizeof lay / sizeof lay[0]; k++) {
    char got[1024];
    snprintf(got, sizeof got, "%s/%s-np%d-tp%d.jsonl", tmp, tag, lay[k][0], lay[k][1]);
    train(model, method, lay[k][0], lay[k][1], got);
    cli_read_metrics(got, y);
    assert_int_equal(y->n, 5);
    for (int s = 0; s < 5; s++) {
      const double l0 = atof(x->v[s][0]), l1 = atof(y->v[s][0]);
      const double g0 = atof(x->v[s][2]), g1 = atof(y->v[s][2]);
      if (!(fabs(l0 - l1) <= 2e-5) || !(fabs(g0 - g1) <= 1e-4 * fabs(g0) + 1e-7))
        fail_msg("%s %s at %d ranks --tp %d, step %d: loss %.9g grad_norm %.9g, at 1 rank "
                 "loss %.9g grad_norm %.9g",
                 model, method, lay[k][0], lay[k][1], s, l1, g1, l0, g0);
    }
    printf("%s %s: %d ranks --tp %d as 1 rank (last loss %s)\n", model, method, lay[k][0],
           lay[k][1], y->v[4][0]);
  }
  free(x);
  free(y);
}

static void test_qwen2(void **state) {
  (void)state;
  layouts("qwen2", "--method bitfit", "qwen2-bitfit");
  layouts("qwen2_tied", "--method full --weights-dtype fp32", "qwen2-full");
}

/* OPT: positions offset by 2 (the table trained by full), ReLU, biases */
static void test_opt(void **state) {
  (void)state;
  layouts("opt", "--method full --weights-dtype fp32", "opt-full");
  layouts("opt", "--method prompt --prompt-tokens 3", "opt-prompt");
}

/* GPT-NeoX: each rank holds whole heads' q, k, v rows of the per-head
 * query_key_value (full trains them, LoRA's B and IA3's scales follow them) */
static void test_neox(void **state) {
  (void)state;
  layouts("neox", "--method full --weights-dtype fp32", "neox-full");
  layouts("neox_seq", "--method lora,ia3 --lora-init random", "neox-seq-lora-ia3");
  /* SAID's projection is keyed by the file's element order, which one rank
   * holds in another row order too */
  layouts("neox", "--method said --said-dim 24", "neox-said");
}

/* BLOOM: each rank's ALiBi slopes by global head index (bloom_h6: 6 heads,
 * 2 or 1 a rank at --tp 4), the per-head query_key_value, the embedding's
 * norm replicated (full trains it) */
static void test_bloom(void **state) {
  (void)state;
  layouts("bloom_h6", "--method full --weights-dtype fp32", "bloom-h6-full");
  layouts("bloom", "--method lora,ia3,prefix --lora-init random --prefix-tokens 3",
          "bloom-lora-ia3-prefix");
}

/* Falcon: each rank holds whole key/value groups of the grouped
 * query_key_value with their query heads (full trains them, no linear
 * biases); Falcon-7B's multi_query block (one key/value head: the other
 * ranks hold none) with the shared input_layernorm under LoRA and IA3;
 * prefix tuning's key/value per query head (each rank the prefix rows of its
 * groups' query heads, their gradients summed back into the MLP's table) */
static void test_falcon(void **state) {
  (void)state;
  layouts("falcon", "--method full --weights-dtype fp32", "falcon-full");
  layouts("falcon_mq", "--method lora,ia3,bitfit --lora-init random", "falcon-mq-lora-ia3");
  layouts("falcon", "--method prefix --prefix-tokens 3 --prefix-hidden 16", "falcon-prefix");
  layouts("falcon_mq", "--method prefix --prefix-tokens 3", "falcon-mq-prefix");
}

static void test_mistral(void **state) {
  (void)state;
  layouts("mistral", "--method full --weights-dtype fp32", "mistral-full");
  layouts("mistral", "--method prefix --prefix-tokens 3 --prefix-hidden 16", "mistral-prefix");
  layouts("mistral", "--method prompt --prompt-tokens 3", "mistral-prompt");
}

/* Gemma-2: post norms (full trains them), soft-caps, the window of alternate
 * layers, scaled prompt embeddings */
static void test_gemma2(void **state) {
  (void)state;
  layouts("gemma2", "--method full --weights-dtype fp32", "gemma2-full");
  layouts("gemma2", "--method prompt --prompt-tokens 3", "gemma2-prompt");
}

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qwen2),
      cmocka_unit_test(test_mistral),
      cmocka_unit_test(test_opt),
      cmocka_unit_test(test_neox),
      cmocka_unit_test(test_gemma2),
      cmocka_unit_test(test_bloom),
      cmocka_unit_test(test_falcon),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
