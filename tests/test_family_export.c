/* export --format peft for Qwen2, Mistral, OPT, GPT-NeoX, Gemma and Gemma-2: with the family's
 * default targets (PEFT's mapping: LoRA q_proj, v_proj; IA3 k_proj, v_proj
 * and the feed-forward down_proj, OPT's q_proj, k_proj, fc2, or GPT-NeoX's
 * query_key_value and dense_4h_to_h) the adapter
 * holds exactly PEFT's tensor names and shapes for the model, and
 * adapter_config.json names those modules (and fan_in_fan_out false: these
 * families store Linear weights).
 *
 * usage: test_family_export MPIRUN... (the launcher) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"
#include "safetensors.h"

/* Train 2 steps of ARGS on families/FAM and export it as PEFT; the folder
 * in dir. */
static void train_export(const char *fam, const char *tag, const char *args, char *dir,
                         size_t cap) {
  /* the LLaMA fixture's batch fits every tiny model (vocab 96) */
  const char *tmp = dt_test_tmpdir();
  char a[4096], *out = NULL;
  snprintf(a, sizeof a,
           "train --model %s/../families/%s/model --data %s/llama/batch.safetensors --batch-size 2 "
           "--steps 2 --lr 1e-2 --out %s/fx-%s --log-every 1000 %s",
           cli_fix(), fam, cli_fix(), tmp, tag, args);
  cli_must(cli_dt(&out, 1, NULL, a), out, a);
  free(out);
  snprintf(dir, cap, "%s/fx-%s/peft", tmp, tag);
  snprintf(a, sizeof a, "export --checkpoint %s/fx-%s/ckpt-0000000002.nc --format peft --out %s",
           tmp, tag, dir);
  cli_must(cli_dt(&out, 1, NULL, a), out, a);
  free(out);
}

/* The adapter's tensors are exactly the 2 layers x modules x suffixes named,
 * each [rows, cols] as listed. */
typedef struct {
  const char *module, *suffix;
  int rows, cols;
} want_tensor;

static void check_tensors_l(const char *dir, const char *blocks, int layers, const want_tensor *w,
                            int n) {
  char p[1300];
  snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, p), 0);
  assert_int_equal(f.n, layers * n);
  for (int l = 0; l < layers; l++)
    for (int i = 0; i < n; i++) {
      char name[256];
      snprintf(name, sizeof name, "base_model.model.%s.%d.%s.%s", blocks, l, w[i].module,
               w[i].suffix);
      int found = 0;
      for (int k = 0; k < f.n; k++) {
        if (strcmp(f.t[k].name, name)) continue;
        found = 1;
        if (f.t[k].ndim != 2 || f.t[k].shape[0] != w[i].rows || f.t[k].shape[1] != w[i].cols)
          fail_msg("%s: shape [%lld, %lld], PEFT's is [%d, %d]", name, (long long)f.t[k].shape[0],
                   (long long)f.t[k].shape[1], w[i].rows, w[i].cols);
      }
      if (!found) fail_msg("%s: no tensor %s", p, name);
    }
  dt_st_close(&f);
}

static void check_tensors(const char *dir, const char *blocks, const want_tensor *w, int n) {
  check_tensors_l(dir, blocks, 2, w, n);
}

static void check_list(json_t *c, const char *key, const char *const *want, int n) {
  json_t *a = json_object_get(c, key);
  if (!json_is_array(a) || (int)json_array_size(a) != n) fail_msg("%s is not a list of %d", key, n);
  for (int i = 0; i < n; i++)
    if (strcmp(json_string_value(json_array_get(a, (size_t)i)), want[i]))
      fail_msg("%s[%d] = %s, expected %s", key, i, json_string_value(json_array_get(a, (size_t)i)),
               want[i]);
}

static json_t *adapter_config(const char *dir) {
  char p[1300];
  snprintf(p, sizeof p, "%s/adapter_config.json", dir);
  json_error_t e;
  json_t *c = json_load_file(p, 0, &e);
  if (!c) fail_msg("%s: %s", p, e.text);
  assert_true(json_is_false(json_object_get(c, "fan_in_fan_out")) ||
              !json_object_get(c, "fan_in_fan_out"));
  return c;
}

static void test_qwen2_lora(void **state) {
  (void)state;
  char dir[1200];
  train_export("qwen2", "qwen2-lora", "--method lora --lora-rank 4 --lora-init random", dir, sizeof dir);
  const want_tensor w[] = {{"self_attn.q_proj", "lora_A.weight", 4, 48},
                           {"self_attn.q_proj", "lora_B.weight", 48, 4},
                           {"self_attn.v_proj", "lora_A.weight", 4, 48},
                           {"self_attn.v_proj", "lora_B.weight", 24, 4}};
  check_tensors(dir, "model.layers", w, 4);
  json_t *c = adapter_config(dir);
  assert_string_equal(json_string_value(json_object_get(c, "peft_type")), "LORA");
  const char *const t[] = {"self_attn.q_proj", "self_attn.v_proj"};
  check_list(c, "target_modules", t, 2);
  json_decref(c);
}

static void test_mistral_ia3(void **state) {
  (void)state;
  char dir[1200];
  train_export("mistral", "mistral-ia3", "--method ia3", dir, sizeof dir);
  const want_tensor w[] = {{"self_attn.k_proj", "ia3_l", 24, 1},
                           {"self_attn.v_proj", "ia3_l", 24, 1},
                           {"mlp.down_proj", "ia3_l", 1, 128}};
  check_tensors(dir, "model.layers", w, 3);
  json_t *c = adapter_config(dir);
  assert_string_equal(json_string_value(json_object_get(c, "peft_type")), "IA3");
  const char *const t[] = {"mlp.down_proj", "self_attn.k_proj", "self_attn.v_proj"};
  check_list(c, "target_modules", t, 3);
  const char *const ff[] = {"mlp.down_proj"};
  check_list(c, "feedforward_modules", ff, 1);
  json_decref(c);
}

/* OPT: PEFT's opt mapping, LoRA q_proj and v_proj; IA3 q_proj, k_proj and
 * the feed-forward fc2 */
static void test_opt(void **state) {
  (void)state;
  char dir[1200];
  train_export("opt", "opt-lora", "--method lora --lora-rank 4 --lora-init random", dir,
               sizeof dir);
  const want_tensor w[] = {{"self_attn.q_proj", "lora_A.weight", 4, 48},
                           {"self_attn.q_proj", "lora_B.weight", 48, 4},
                           {"self_attn.v_proj", "lora_A.weight", 4, 48},
                           {"self_attn.v_proj", "lora_B.weight", 48, 4}};
  check_tensors(dir, "model.decoder.layers", w, 4);
  json_t *c = adapter_config(dir);
  const char *const t[] = {"self_attn.q_proj", "self_attn.v_proj"};
  check_list(c, "target_modules", t, 2);
  json_decref(c);
  train_export("opt", "opt-ia3", "--method ia3", dir, sizeof dir);
  const want_tensor w3[] = {{"self_attn.q_proj", "ia3_l", 48, 1},
                            {"self_attn.k_proj", "ia3_l", 48, 1},
                            {"fc2", "ia3_l", 1, 192}};
  check_tensors(dir, "model.decoder.layers", w3, 3);
  c = adapter_config(dir);
  const char *const t3[] = {"fc2", "self_attn.k_proj", "self_attn.q_proj"};
  check_list(c, "target_modules", t3, 3);
  const char *const ff[] = {"fc2"};
  check_list(c, "feedforward_modules", ff, 1);
  json_decref(c);
}

/* GPT-NeoX: PEFT's gpt_neox mapping, LoRA query_key_value (the fused
 * per-head rows, 3 d); IA3 query_key_value and the feed-forward
 * dense_4h_to_h */
static void test_neox(void **state) {
  (void)state;
  char dir[1200];
  train_export("neox", "neox-lora", "--method lora --lora-rank 4 --lora-init random", dir,
               sizeof dir);
  const want_tensor w[] = {{"attention.query_key_value", "lora_A.weight", 4, 48},
                           {"attention.query_key_value", "lora_B.weight", 144, 4}};
  check_tensors(dir, "gpt_neox.layers", w, 2);
  json_t *c = adapter_config(dir);
  const char *const t[] = {"attention.query_key_value"};
  check_list(c, "target_modules", t, 1);
  json_decref(c);
  train_export("neox", "neox-ia3", "--method ia3", dir, sizeof dir);
  const want_tensor w3[] = {{"attention.query_key_value", "ia3_l", 144, 1},
                            {"mlp.dense_4h_to_h", "ia3_l", 1, 192}};
  check_tensors(dir, "gpt_neox.layers", w3, 2);
  c = adapter_config(dir);
  const char *const t3[] = {"attention.query_key_value", "mlp.dense_4h_to_h"};
  check_list(c, "target_modules", t3, 2);
  const char *const ff[] = {"mlp.dense_4h_to_h"};
  check_list(c, "feedforward_modules", ff, 1);
  json_decref(c);
}

/* Falcon: PEFT's falcon mapping, LoRA query_key_value (the rows of the
 * grouped layout, (8 + 2 * 4) heads of 6); IA3 query_key_value and the
 * feed-forward dense_4h_to_h */
static void test_falcon(void **state) {
  (void)state;
  char dir[1200];
  train_export("falcon", "falcon-lora", "--method lora --lora-rank 4 --lora-init random", dir,
               sizeof dir);
  const want_tensor w[] = {{"self_attention.query_key_value", "lora_A.weight", 4, 48},
                           {"self_attention.query_key_value", "lora_B.weight", 96, 4}};
  check_tensors(dir, "transformer.h", w, 2);
  json_t *c = adapter_config(dir);
  const char *const t[] = {"self_attention.query_key_value"};
  check_list(c, "target_modules", t, 1);
  json_decref(c);
  train_export("falcon", "falcon-ia3", "--method ia3", dir, sizeof dir);
  const want_tensor w3[] = {{"self_attention.query_key_value", "ia3_l", 96, 1},
                            {"mlp.dense_4h_to_h", "ia3_l", 1, 192}};
  check_tensors(dir, "transformer.h", w3, 2);
  c = adapter_config(dir);
  const char *const t3[] = {"mlp.dense_4h_to_h", "self_attention.query_key_value"}; /* sorted */
  check_list(c, "target_modules", t3, 2);
  const char *const ff[] = {"mlp.dense_4h_to_h"};
  check_list(c, "feedforward_modules", ff, 1);
  json_decref(c);
  /* a prefix on 4 key/value heads for 8 query heads: PEFT's Falcon prefix
   * has one key/value per query head (FalconConfig has no
   * num_key_value_heads), so prompt_embeddings is [P, 2 layers x 8 heads x 6]
   * and num_attention_heads = token_dim / head_dim = 8 */
  train_export("falcon", "falcon-prefix", "--method prefix --prefix-tokens 2", dir, sizeof dir);
  char p[1300];
  snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, p), 0);
  assert_int_equal(f.n, 1);
  const dt_st_tensor *e = dt_st_find(&f, "prompt_embeddings");
  if (!e || e->ndim != 2 || e->shape[0] != 2 || e->shape[1] != 2 * 2 * 8 * 6)
    fail_msg("%s: prompt_embeddings is not [2, 192]", p);
  dt_st_close(&f);
  c = adapter_config(dir);
  assert_int_equal(json_integer_value(json_object_get(c, "num_attention_heads")), 8);
  assert_int_equal(json_integer_value(json_object_get(c, "token_dim")), 48);
  assert_int_equal(json_integer_value(json_object_get(c, "num_layers")), 2);
  json_decref(c);
}

/* Gemma and Gemma-2: PEFT's gemma / gemma2 mappings, LoRA q_proj and v_proj
 * (q_proj 64 wide: head_dim 16 x 4 heads != hidden 48); IA3 q_proj, v_proj
 * and the feed-forward down_proj */
static void test_gemma(void **state) {
  (void)state;
  char dir[1200];
  train_export("gemma", "gemma-lora", "--method lora --lora-rank 4 --lora-init random", dir,
               sizeof dir);
  const want_tensor w[] = {{"self_attn.q_proj", "lora_A.weight", 4, 48},
                           {"self_attn.q_proj", "lora_B.weight", 64, 4},
                           {"self_attn.v_proj", "lora_A.weight", 4, 48},
                           {"self_attn.v_proj", "lora_B.weight", 32, 4}};
  check_tensors(dir, "model.layers", w, 4);
  json_t *c = adapter_config(dir);
  const char *const t[] = {"self_attn.q_proj", "self_attn.v_proj"};
  check_list(c, "target_modules", t, 2);
  json_decref(c);
  train_export("gemma2", "gemma2-ia3", "--method ia3", dir, sizeof dir);
  const want_tensor w3[] = {{"self_attn.q_proj", "ia3_l", 64, 1},
                            {"self_attn.v_proj", "ia3_l", 32, 1},
                            {"mlp.down_proj", "ia3_l", 1, 128}};
  check_tensors_l(dir, "model.layers", 3, w3, 3);
  c = adapter_config(dir);
  assert_string_equal(json_string_value(json_object_get(c, "peft_type")), "IA3");
  const char *const t3[] = {"mlp.down_proj", "self_attn.q_proj", "self_attn.v_proj"};
  check_list(c, "target_modules", t3, 3);
  const char *const ff[] = {"mlp.down_proj"};
  check_list(c, "feedforward_modules", ff, 1);
  json_decref(c);
}

/* BLOOM: PEFT's bloom mapping, LoRA query_key_value (the fused per-head
 * rows, 3 d); IA3 query_key_value and the feed-forward mlp.dense_4h_to_h */
static void test_bloom(void **state) {
  (void)state;
  char dir[1200];
  train_export("bloom", "bloom-lora", "--method lora --lora-rank 4 --lora-init random", dir,
               sizeof dir);
  const want_tensor w[] = {{"self_attention.query_key_value", "lora_A.weight", 4, 48},
                           {"self_attention.query_key_value", "lora_B.weight", 144, 4}};
  check_tensors(dir, "transformer.h", w, 2);
  json_t *c = adapter_config(dir);
  const char *const t[] = {"self_attention.query_key_value"};
  check_list(c, "target_modules", t, 1);
  json_decref(c);
  train_export("bloom_h6", "bloom-ia3", "--method ia3", dir, sizeof dir);
  const want_tensor w3[] = {{"self_attention.query_key_value", "ia3_l", 144, 1},
                            {"mlp.dense_4h_to_h", "ia3_l", 1, 192}};
  check_tensors(dir, "transformer.h", w3, 2);
  c = adapter_config(dir);
  const char *const t3[] = {"mlp.dense_4h_to_h", "self_attention.query_key_value"}; /* sorted */
  check_list(c, "target_modules", t3, 2);
  const char *const ff[] = {"mlp.dense_4h_to_h"};
  check_list(c, "feedforward_modules", ff, 1);
  json_decref(c);
}

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qwen2_lora),
      cmocka_unit_test(test_mistral_ia3),
      cmocka_unit_test(test_opt),
      cmocka_unit_test(test_neox),
      cmocka_unit_test(test_gemma),
      cmocka_unit_test(test_bloom),
      cmocka_unit_test(test_falcon),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
