/* Falcon's config.json (io/hf_config.c's load_falcon) and its presets: the
 * three variants' layouts and norms (new_decoder_architecture with
 * ln_attn / ln_mlp or one shared norm, multi_query, the old per-head
 * block), FalconConfig's defaults, the refusals naming file, field and
 * value, and `plan`'s parameter counts of synthetic:falcon-40b and
 * falcon-180b against the published ones computed from tiiuae's
 * config.json (docs/usage.md). The forward and backward of the three tiny
 * folders are checked against numpy and finite differences
 * (tests/family_falcon.cmake). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "hf_config.h"
#include "testutil.h"

#define FALCON_BASE                                                                \
  "\"model_type\":\"falcon\",\"num_hidden_layers\":2,\"hidden_size\":64,"         \
  "\"num_attention_heads\":8,\"vocab_size\":100"

/* the three tiny folders */
static void test_folders(void **state) {
  (void)state;
  dt_config c;
  char d[1200];
  snprintf(d, sizeof d, "%s/families/falcon/model", DT_TESTDATA_DIR);
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_FALCON);
  assert_int_equal(c.n_head, 8);
  assert_int_equal(c.n_kv_head, 4);
  assert_int_equal(c.head_dim, 6);
  assert_int_equal(c.qkv_blocks, 0);
  assert_int_equal(c.shared_norm, 0);
  assert_int_equal(c.parallel_residual, 1);
  assert_int_equal(c.no_linear_bias, 1);
  assert_int_equal(dt_cfg_lin_bias(&c), 0);
  assert_int_equal(c.has_bias, 1);
  assert_int_equal(c.tied_head, 0);
  assert_int_equal(dt_cfg_act(&c), DT_ACT_GELU_ERF);
  assert_true(c.rope_theta == 10000.0f);
  assert_int_equal(dt_cfg_rope_dim(&c), 6);
  snprintf(d, sizeof d, "%s/families/falcon_mq/model", DT_TESTDATA_DIR);
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.n_kv_head, 1);
  assert_int_equal(c.qkv_blocks, 1);
  assert_int_equal(c.shared_norm, 1);
  assert_int_equal(dt_cfg_has_ln2(&c), 0);
  assert_int_equal(c.parallel_residual, 1);
  assert_int_equal(dt_cfg_lin_bias(&c), 1);
  assert_int_equal(c.tied_head, 1);
  snprintf(d, sizeof d, "%s/families/falcon_seq/model", DT_TESTDATA_DIR);
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.n_kv_head, 8);
  assert_int_equal(c.qkv_blocks, 0);
  assert_int_equal(c.shared_norm, 0);
  assert_int_equal(c.parallel_residual, 0);
  assert_int_equal(dt_cfg_act(&c), DT_ACT_GELU_TANH);
  assert_true(c.rope_theta == 500.0f);
}

/* FalconConfig's defaults: multi_query, parallel_attn with one norm, no
 * linear biases, ffn 4 d, 2048 positions, a tied head; the new
 * architecture's num_ln_in_parallel_attn 1 shares the norm */
static void test_defaults(void **state) {
  (void)state;
  dt_config c;
  assert_int_equal(dt_hf_config_load(&c, dt_test_config_dir("f1", "{" FALCON_BASE "}")), DT_OK);
  assert_int_equal(c.n_kv_head, 1);
  assert_int_equal(c.qkv_blocks, 1);
  assert_int_equal(c.shared_norm, 1);
  assert_int_equal(c.parallel_residual, 1);
  assert_int_equal(c.no_linear_bias, 1);
  assert_int_equal(c.d_ffn, 256);
  assert_int_equal(c.n_ctx, 2048);
  assert_int_equal(c.tied_head, 1);
  assert_true(fabsf(c.norm_eps - 1e-5f) < 1e-12f);
  assert_int_equal(dt_hf_config_load(&c, dt_test_config_dir("f2", "{" FALCON_BASE
                                                    ",\"new_decoder_architecture\":true,"
                                                    "\"num_kv_heads\":2,"
                                                    "\"num_ln_in_parallel_attn\":1}")),
                   DT_OK);
  assert_int_equal(c.n_kv_head, 2);
  assert_int_equal(c.qkv_blocks, 0);
  assert_int_equal(c.shared_norm, 1);
  assert_int_equal(dt_hf_config_load(&c, dt_test_config_dir("f3", "{" FALCON_BASE
                                                    ",\"new_decoder_architecture\":true}")),
                   DT_OK);
  assert_int_equal(c.n_kv_head, 8); /* num_kv_heads defaults to the heads */
  assert_int_equal(c.shared_norm, 0);
}

static void test_refusals(void **state) {
  (void)state;
  const struct {
    const char *label, *json, *must1, *must2;
  } cases[] = {
      {"alibi", "{" FALCON_BASE ",\"alibi\":true}", "alibi", "true"},
      {"act", "{" FALCON_BASE ",\"activation\":\"relu\"}", "activation", "relu"},
      {"scaling", "{" FALCON_BASE ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}",
       "rope_scaling", "linear"},
      {"ropetype", "{" FALCON_BASE ",\"rope_parameters\":{\"rope_type\":\"yarn\"}}",
       "rope_parameters.rope_type", "yarn"},
      {"ndapar", "{" FALCON_BASE ",\"new_decoder_architecture\":true,\"parallel_attn\":false}",
       "parallel_attn", "false"},
      {"nln", "{" FALCON_BASE ",\"new_decoder_architecture\":true,"
       "\"num_ln_in_parallel_attn\":3}", "num_ln_in_parallel_attn", "3"},
      {"kvdiv", "{" FALCON_BASE ",\"new_decoder_architecture\":true,\"num_kv_heads\":3}",
       "num_kv_heads", "3"},
      {"kvold", "{" FALCON_BASE ",\"multi_query\":false,\"num_kv_heads\":2}", "num_kv_heads",
       "2"},
      {"heads", "{\"model_type\":\"falcon\",\"num_hidden_layers\":2,\"hidden_size\":64,"
       "\"num_attention_heads\":6,\"vocab_size\":100}", "hidden_size", "6"},
      {"missing", "{\"model_type\":\"falcon\",\"num_hidden_layers\":2,\"hidden_size\":64,"
       "\"vocab_size\":100}", "num_attention_heads", "missing"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "bad-%s", cases[i].label);
    const char *d = dt_test_config_dir(name, cases[i].json);
    dt_config c;
    dt_error_clear();
    const int rc = dt_hf_config_load(&c, d);
    if (rc != DT_EINPUT) fail_msg("case %s: rc %d (%s)", cases[i].label, rc, dt_error_message());
    dt_test_error_has("config.json");
    dt_test_error_has(d);
    dt_test_error_has(cases[i].must1);
    dt_test_error_has(cases[i].must2);
  }
}

static long long frozen_parameters(const char *model) {
  char *out = NULL;
  const int rc = dt_test_run(&out, "%s plan --model %s --method lora --json --compare-full no",
                             DT_BINARY, model);
  json_error_t je;
  json_t *root = rc == 0 && out && strchr(out, '{') ? json_loads(strchr(out, '{'), 0, &je) : NULL;
  if (!root) fail_msg("plan --model %s: exit %d\n%s", model, rc, out ? out : "");
  free(out);
  const long long n = (long long)json_integer_value(
      json_object_get(json_object_get(root, "plan"), "frozen_parameters"));
  json_decref(root);
  return n;
}

/* tiiuae/falcon-40b (60 layers, d 8192, 128 heads, 8 kv) and falcon-180B
 * (80, 14848, 232, 8), vocab 65024, no linear biases: a block holds
 * (heads + 2 kv) * 64 * d + d^2 + 8 d^2 + 4 d (ln_attn, ln_mlp), plus the
 * embedding and the lm_head (vocab x d each) and ln_f (2 d): 41.8B and
 * 179.5B, the published sizes */
static void test_presets(void **state) {
  (void)state;
  dt_config c;
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:falcon-180b"), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_FALCON);
  assert_int_equal(c.n_kv_head, 8);
  assert_int_equal(c.qkv_blocks, 0);
  assert_int_equal(c.shared_norm, 0);
  assert_int_equal(c.parallel_residual, 1);
  assert_int_equal(dt_cfg_lin_bias(&c), 0);
  assert_int_equal(c.tied_head, 0);
  const struct {
    const char *preset;
    long long want;
  } cases[] = {{"synthetic:falcon-40b", 41835970560LL},
               {"synthetic:falcon-180b", 179522565120LL}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const long long got = frozen_parameters(cases[i].preset);
    printf("%s: %lld parameters, published %lld\n", cases[i].preset, got, cases[i].want);
    if (got != cases[i].want)
      fail_msg("%s: %lld parameters, expected %lld", cases[i].preset, got, cases[i].want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_folders),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_presets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
