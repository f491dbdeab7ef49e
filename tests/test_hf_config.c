/* Model configs: HF config.json (fixtures and hand-written files), validation,
 * synthetic specs and presets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "hf_config.h"
#include "testutil.h"

#define GPT2_BASE                                                           \
  "\"model_type\":\"gpt2\",\"n_layer\":3,\"n_embd\":64,\"n_head\":4,"      \
  "\"vocab_size\":100,\"n_positions\":32"
#define LLAMA_BASE                                                          \
  "\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":64,"   \
  "\"num_attention_heads\":8,\"intermediate_size\":160,\"vocab_size\":100," \
  "\"max_position_embeddings\":128"
/* the same shape as the other families built on LLaMA's block */
#define SHAPE_OF_LLAMA                                                      \
  "\"num_hidden_layers\":2,\"hidden_size\":64,\"num_attention_heads\":8,"   \
  "\"intermediate_size\":160,\"vocab_size\":100,\"max_position_embeddings\":128"
#define MISTRAL_BASE "\"model_type\":\"mistral\"," SHAPE_OF_LLAMA
#define QWEN2_BASE "\"model_type\":\"qwen2\"," SHAPE_OF_LLAMA
#define GEMMA2_BASE "\"model_type\":\"gemma2\"," SHAPE_OF_LLAMA
#define NEOX_BASE                                                                 \
  "\"model_type\":\"gpt_neox\",\"num_hidden_layers\":2,\"hidden_size\":64,"     \
  "\"num_attention_heads\":4,\"intermediate_size\":160,\"vocab_size\":100,"        \
  "\"max_position_embeddings\":128"
#define BLOOM_BASE                                                                \
  "\"model_type\":\"bloom\",\"n_layer\":2,\"hidden_size\":64,\"n_head\":8,"            \
  "\"vocab_size\":100"
#define OPT_BASE                                                                  \
  "\"model_type\":\"opt\",\"num_hidden_layers\":2,\"hidden_size\":64,"          \
  "\"num_attention_heads\":8,\"ffn_dim\":160,\"vocab_size\":100,"               \
  "\"max_position_embeddings\":128"

static void test_gpt2_fixture(void **state) {
  (void)state;
  dt_config c;
  const char *dir = dt_test_fixture("gpt2/model");
  assert_int_equal(dt_hf_config_load(&c, dir), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_GPT2);
  assert_int_equal(c.n_layer, 2);
  assert_int_equal(c.d_model, 48);
  assert_int_equal(c.n_head, 4);
  assert_int_equal(c.n_kv_head, 4);
  assert_int_equal(c.head_dim, 12);
  assert_int_equal(c.d_ffn, 192); /* n_inner null -> 4*48 */
  assert_int_equal(c.vocab, 96);
  assert_int_equal(c.n_ctx, 64);
  assert_true(fabsf(c.norm_eps - 1e-5f) < 1e-12f);
  assert_int_equal(c.tied_head, 1);
  assert_int_equal(c.has_bias, 1);
  assert_string_equal(c.source, dir);
  assert_int_equal(dt_cfg_qkv_dim(&c), 144);
  assert_int_equal(dt_cfg_fc_dim(&c), 192);
  assert_int_equal(dt_config_validate(&c), DT_OK);
}

static void test_llama_fixture(void **state) {
  (void)state;
  dt_config c;
  assert_int_equal(dt_hf_config_load(&c, dt_test_fixture("llama/model")), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_LLAMA);
  assert_int_equal(c.n_layer, 2);
  assert_int_equal(c.d_model, 48);
  assert_int_equal(c.n_head, 4);
  assert_int_equal(c.n_kv_head, 2);
  assert_int_equal(c.head_dim, 12);
  assert_int_equal(c.d_ffn, 128);
  assert_int_equal(c.vocab, 96);
  assert_int_equal(c.n_ctx, 64);
  assert_true(fabsf(c.norm_eps - 1e-6f) < 1e-13f);
  assert_true(c.rope_theta == 10000.0f);
  assert_int_equal(c.tied_head, 0);
  assert_int_equal(c.has_bias, 0);
  assert_int_equal(dt_cfg_q_dim(&c), 48);
  assert_int_equal(dt_cfg_kv_dim(&c), 24);
  assert_int_equal(dt_cfg_qkv_dim(&c), 96);
  assert_int_equal(dt_cfg_fc_dim(&c), 256);
}

static void test_gpt2_variants(void **state) {
  (void)state;
  dt_config c;
  const char *d = dt_test_config_dir("g1", "{" GPT2_BASE ",\"n_inner\":100,"
                             "\"activation_function\":\"gelu_pytorch_tanh\","
                             "\"layer_norm_epsilon\":1e-3,"
                             "\"tie_word_embeddings\":false}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.d_ffn, 100);
  assert_int_equal(c.n_layer, 3);
  assert_int_equal(c.head_dim, 16);
  assert_true(fabsf(c.norm_eps - 1e-3f) < 1e-9f);
  assert_int_equal(c.tied_head, 0);
  /* defaults: activation gelu_new, eps 1e-5, tied */
  d = dt_test_config_dir("g2", "{" GPT2_BASE "}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.d_ffn, 256);
  assert_true(fabsf(c.norm_eps - 1e-5f) < 1e-12f);
  assert_int_equal(c.tied_head, 1);
}

static void test_llama_variants(void **state) {
  (void)state;
  dt_config c;
  /* top-level rope_theta, defaults for kv heads, head_dim, eps, tie */
  const char *d = dt_test_config_dir("l1", "{" LLAMA_BASE ",\"rope_theta\":500000}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.n_kv_head, 8);
  assert_int_equal(c.head_dim, 8);
  assert_true(c.rope_theta == 500000.0f);
  assert_true(fabsf(c.norm_eps - 1e-6f) < 1e-13f);
  assert_int_equal(c.tied_head, 0);
  assert_int_equal(c.d_ffn, 160);
  /* no rope_theta anywhere: 10000; explicit head_dim and tie */
  d = dt_test_config_dir("l2", "{" LLAMA_BASE ",\"num_key_value_heads\":2,"
                 "\"head_dim\":16,\"tie_word_embeddings\":true,"
                 "\"attention_bias\":false,\"mlp_bias\":false,"
                 "\"rms_norm_eps\":1e-5}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_true(c.rope_theta == 10000.0f);
  assert_int_equal(c.n_kv_head, 2);
  assert_int_equal(c.head_dim, 16);
  assert_int_equal(c.tied_head, 1);
  assert_true(fabsf(c.norm_eps - 1e-5f) < 1e-12f);
  /* rope_parameters.rope_theta */
  d = dt_test_config_dir("l3", "{" LLAMA_BASE ",\"rope_parameters\":{\"rope_theta\":"
                 "250000.0,\"rope_type\":\"default\"}}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_true(c.rope_theta == 250000.0f);
  /* mistral with a window as long as the context */
  d = dt_test_config_dir("m1", "{\"model_type\":\"mistral\",\"num_hidden_layers\":2,"
                 "\"hidden_size\":64,\"num_attention_heads\":8,"
                 "\"num_key_value_heads\":4,\"intermediate_size\":160,"
                 "\"vocab_size\":100,\"max_position_embeddings\":128,"
                 "\"sliding_window\":null,\"hidden_act\":\"silu\"}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_MISTRAL);
  assert_int_equal(c.n_kv_head, 4);
  assert_int_equal(c.sliding_window, 0); /* null: full causal attention */
  assert_int_equal(c.qkv_bias, 0);
  /* mistral: a window shorter than the context is kept (and honoured by the
   * attention); an absent one is MistralConfig's default 4096 */
  d = dt_test_config_dir("m2", "{" MISTRAL_BASE ","
                 "\"sliding_window\":16}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_MISTRAL);
  assert_int_equal(c.sliding_window, 16);
  d = dt_test_config_dir("m3", "{\"model_type\":\"mistral\",\"num_hidden_layers\":2,"
                 "\"hidden_size\":64,\"num_attention_heads\":8,\"intermediate_size\":160,"
                 "\"vocab_size\":100,\"max_position_embeddings\":128}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.sliding_window, 4096);
  /* qwen2: q/k/v biases, untied by default, tied when it says so; the
   * window keys are ignored while use_sliding_window is false */
  d = dt_test_config_dir("q1", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":2,"
                 "\"hidden_size\":64,\"num_attention_heads\":8,\"num_key_value_heads\":2,"
                 "\"intermediate_size\":160,\"vocab_size\":100,\"max_position_embeddings\":128,"
                 "\"use_sliding_window\":false,\"sliding_window\":32,\"max_window_layers\":1,"
                 "\"layer_types\":[\"full_attention\",\"full_attention\"]}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_QWEN2);
  assert_int_equal(c.qkv_bias, 1);
  assert_int_equal(c.has_bias, 0);
  assert_int_equal(c.tied_head, 0);
  assert_int_equal(c.sliding_window, 0);
  d = dt_test_config_dir("q2", "{" QWEN2_BASE ","
                 "\"tie_word_embeddings\":true}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.tied_head, 1);
  /* opt: heads of d / n_head, tied, biases, LayerNorm 1e-5 */
  d = dt_test_config_dir("o1", "{" OPT_BASE "}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_OPT);
  assert_int_equal(c.d_ffn, 160);
  assert_int_equal(c.head_dim, 8);
  assert_int_equal(c.tied_head, 1);
  assert_int_equal(c.has_bias, 1);
  assert_int_equal(dt_cfg_dim(&c, DT_DIM_POS), 130); /* OPT's 2 extra position rows */
  /* gemma: head_dim GemmaConfig's 256 when absent, tied, no window or caps;
   * hidden_activation read before hidden_act (the hub's files say "gelu"
   * there beside gelu_pytorch_tanh) */
  d = dt_test_config_dir("g1", "{\"model_type\":\"gemma\"," SHAPE_OF_LLAMA ",\"hidden_act\":\"gelu\","
                 "\"hidden_activation\":\"gelu_pytorch_tanh\"}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_GEMMA);
  assert_int_equal(c.head_dim, 256);
  assert_int_equal(dt_cfg_act(&c), DT_ACT_GEGLU); /* the family's, distinct from NeoX's erf GELU */
  assert_int_equal(c.tied_head, 1);
  assert_int_equal(c.sliding_window, 0);
  assert_true(c.attn_softcap == 0.0f && c.final_softcap == 0.0f && c.attn_scalar == 0.0f);
  assert_true(fabsf(dt_cfg_attn_scale(&c) - 1.0f / 16.0f) < 1e-9f);
  assert_true(fabsf(dt_cfg_embed_scale(&c) - 8.0f) < 1e-6f); /* sqrt(64) */
  /* gemma2: Gemma2Config's defaults where the keys are absent (caps 50
   * and 30, query_pre_attn_scalar 256, window 4096 in even layers) */
  d = dt_test_config_dir("g2", "{" GEMMA2_BASE ",\"head_dim\":16}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_GEMMA2);
  assert_true(c.attn_softcap == 50.0f && c.final_softcap == 30.0f && c.attn_scalar == 256.0f);
  assert_int_equal(dt_cfg_window(&c, 0), 4096);
  assert_int_equal(dt_cfg_window(&c, 1), 0);
  /* null caps: none; full_attention everywhere: no window in any layer */
  d = dt_test_config_dir("g3", "{" GEMMA2_BASE ",\"attn_logit_softcapping\":null,"
                 "\"final_logit_softcapping\":null,\"query_pre_attn_scalar\":144,"
                 "\"sliding_window\":8,\"layer_types\":[\"full_attention\",\"full_attention\"]}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_true(c.attn_softcap == 0.0f && c.final_softcap == 0.0f);
  assert_true(fabsf(dt_cfg_attn_scale(&c) - 1.0f / 12.0f) < 1e-9f);
  assert_int_equal(dt_cfg_window(&c, 0), 0);
  d = dt_test_config_dir("g4", "{" GEMMA2_BASE ",\"sliding_window\":8,"
                 "\"layer_types\":[\"sliding_attention\",\"full_attention\"]}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(dt_cfg_window(&c, 0), 8);
  assert_int_equal(dt_cfg_window(&c, 1), 0);
}

/* BLOOM: transformers' saved keys and BigScience's original ones, the FFN
 * of 4 hidden_size, tied, no position limit of its own (seq_length or
 * 2048), the real presets */
static void test_bloom(void **state) {
  (void)state;
  dt_config c;
  const char *d = dt_test_config_dir("b1", "{" BLOOM_BASE "}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_BLOOM);
  assert_int_equal(c.n_layer, 2);
  assert_int_equal(c.head_dim, 8);
  assert_int_equal(c.d_ffn, 256);
  assert_int_equal(c.n_ctx, 2048);
  assert_int_equal(c.tied_head, 1);
  assert_int_equal(c.has_bias, 1);
  assert_int_equal(dt_cfg_arch(&c)->pos, DT_POS_ALIBI);
  assert_int_equal(dt_cfg_arch(&c)->embed_norm, 1);
  assert_int_equal(dt_cfg_act(&c), DT_ACT_GELU_TANH);
  assert_true(fabsf(c.norm_eps - 1e-5f) < 1e-12f);
  d = dt_test_config_dir("b2", "{\"model_type\":\"bloom\",\"n_layer\":3,\"n_embed\":96,"
                 "\"num_attention_heads\":12,\"vocab_size\":100,\"seq_length\":512,"
                 "\"layer_norm_epsilon\":1e-6}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.n_layer, 3);
  assert_int_equal(c.d_model, 96);
  assert_int_equal(c.n_head, 12);
  assert_int_equal(c.d_ffn, 384);
  assert_int_equal(c.n_ctx, 512);
  assert_true(fabsf(c.norm_eps - 1e-6f) < 1e-13f);
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:bloom-176b"), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_BLOOM);
  assert_int_equal(c.head_dim, 128);
}

/* GPT-NeoX: GPTNeoXConfig's defaults (rotary_pct 0.25, parallel residual,
 * gelu with erf, untied), the legacy keys and transformers 5's
 * rope_parameters (which win over them) */
static void test_neox(void **state) {
  (void)state;
  dt_config c;
  const char *d = dt_test_config_dir("n1", "{" NEOX_BASE "}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_GPT_NEOX);
  assert_int_equal(c.head_dim, 16);
  assert_int_equal(c.rope_dim, 4); /* int(16 * 0.25) */
  assert_int_equal(dt_cfg_rope_dim(&c), 4);
  assert_true(c.rope_theta == 10000.0f);
  assert_int_equal(c.parallel_residual, 1);
  assert_int_equal(dt_cfg_act(&c), DT_ACT_GELU_ERF);
  assert_int_equal(c.tied_head, 0);
  assert_int_equal(c.has_bias, 1);
  assert_true(fabsf(c.norm_eps - 1e-5f) < 1e-12f);
  d = dt_test_config_dir("n2", "{" NEOX_BASE ",\"rotary_pct\":0.5,\"rotary_emb_base\":500,"
                 "\"use_parallel_residual\":false,\"hidden_act\":\"gelu_fast\","
                 "\"tie_word_embeddings\":true,\"layer_norm_eps\":1e-6}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.rope_dim, 8);
  assert_true(c.rope_theta == 500.0f);
  assert_int_equal(c.parallel_residual, 0);
  assert_int_equal(dt_cfg_act(&c), DT_ACT_GELU_TANH);
  assert_int_equal(c.tied_head, 1);
  assert_true(fabsf(c.norm_eps - 1e-6f) < 1e-13f);
  d = dt_test_config_dir("n3", "{" NEOX_BASE ",\"rotary_pct\":0.5,\"rotary_emb_base\":500,"
                 "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":20000,"
                 "\"partial_rotary_factor\":1.0}}");
  assert_int_equal(dt_hf_config_load(&c, d), DT_OK);
  assert_int_equal(c.rope_dim, 16);
  assert_true(c.rope_theta == 20000.0f);
  /* the presets: the real sizes, a quarter of each head rotating */
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:gpt-neox-20b"), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_GPT_NEOX);
  assert_int_equal(c.head_dim, 96);
  assert_int_equal(c.rope_dim, 24);
  assert_int_equal(c.parallel_residual, 1);
  assert_int_equal(c.tied_head, 0);
  assert_int_equal(c.has_bias, 1);
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:pythia-12b"), DT_OK);
  assert_int_equal(c.head_dim, 128);
  assert_int_equal(c.rope_dim, 32);
  assert_int_equal(c.vocab, 50688);
}

typedef struct {
  const char *label, *json, *must1, *must2;
} bad_cfg;

static void test_bad_configs(void **state) {
  (void)state;
  const bad_cfg cases[] = {
      {"unknown", "{\"model_type\":\"bert\",\"hidden_size\":8}", "model_type", "bert"},
      {"notype", "{\"n_layer\":2}", "model_type", NULL},
      {"missing", "{\"model_type\":\"gpt2\",\"n_layer\":3,\"n_embd\":64,"
       "\"vocab_size\":100,\"n_positions\":32}", "n_head", "missing"},
      {"act", "{" GPT2_BASE ",\"activation_function\":\"relu\"}",
       "activation_function", "relu"},
      {"type", "{" GPT2_BASE ",\"n_inner\":\"big\"}", "n_inner", "\"big\""},
      {"neg", "{\"model_type\":\"gpt2\",\"n_layer\":-3,\"n_embd\":64,\"n_head\":4,"
       "\"vocab_size\":100,\"n_positions\":32}", "n_layer", "-3"},
      {"float", "{\"model_type\":\"gpt2\",\"n_layer\":2.5,\"n_embd\":64,"
       "\"n_head\":4,\"vocab_size\":100,\"n_positions\":32}", "n_layer", "2.5"},
      {"eps", "{" GPT2_BASE ",\"layer_norm_epsilon\":\"x\"}", "layer_norm_epsilon", NULL},
      {"tie", "{" GPT2_BASE ",\"tie_word_embeddings\":1}", "tie_word_embeddings", NULL},
      {"gpt2div", "{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_embd\":50,"
       "\"n_head\":4,\"vocab_size\":100,\"n_positions\":32}", "d_model", "50"},
      {"silu", "{" LLAMA_BASE ",\"hidden_act\":\"gelu\"}", "hidden_act", "gelu"},
      {"attnbias", "{" LLAMA_BASE ",\"attention_bias\":true}", "attention_bias",
       "not supported"},
      {"mlpbias", "{" LLAMA_BASE ",\"mlp_bias\":true}", "mlp_bias", "not supported"},
      {"kvdiv", "{" LLAMA_BASE ",\"num_key_value_heads\":3}", "n_kv_head", "3"},
      {"oddhd", "{" LLAMA_BASE ",\"head_dim\":7}", "head_dim", "7"},
      {"ropetype", "{" LLAMA_BASE ",\"rope_parameters\":{\"rope_theta\":1e4,"
       "\"rope_type\":\"yarn\"}}", "rope_type", "yarn"},
      {"ropescaling", "{" LLAMA_BASE ",\"rope_scaling\":{\"type\":\"linear\","
       "\"factor\":2.0}}", "rope_scaling", NULL},
      {"llamamissing", "{\"model_type\":\"llama\",\"num_hidden_layers\":2,"
       "\"hidden_size\":64,\"num_attention_heads\":8,\"vocab_size\":100,"
       "\"max_position_embeddings\":128}", "intermediate_size", NULL},
      {"window", "{" MISTRAL_BASE ","
       "\"sliding_window\":-16}", "sliding_window", "-16"},
      {"optpost", "{" OPT_BASE ",\"do_layer_norm_before\":false}", "do_layer_norm_before",
       "false"},
      {"optproj", "{" OPT_BASE ",\"word_embed_proj_dim\":32}", "word_embed_proj_dim", "32"},
      {"optact", "{" OPT_BASE ",\"activation_function\":\"gelu\"}", "activation_function",
       "gelu"},
      {"optbias", "{" OPT_BASE ",\"enable_bias\":false}", "enable_bias", "false"},
      {"neoxbias", "{" NEOX_BASE ",\"attention_bias\":false}", "attention_bias", "false"},
      {"neoxact", "{" NEOX_BASE ",\"hidden_act\":\"relu\"}", "hidden_act", "relu"},
      {"neoxpct", "{" NEOX_BASE ",\"rotary_pct\":0.1}", "rotary_pct", "0.1"},
      {"neoxpct2", "{" NEOX_BASE ",\"rotary_pct\":1.5}", "rotary_pct", "1.5"},
      {"neoxodd", "{" NEOX_BASE ",\"rotary_pct\":0.3125}", "rotary dimensions", "5"},
      {"neoxscale", "{" NEOX_BASE ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}",
       "rope_scaling", "linear"},
      {"neoxtype", "{" NEOX_BASE ",\"rope_parameters\":{\"rope_type\":\"dynamic\"}}",
       "rope_parameters.rope_type", "dynamic"},
      {"neoxheads", "{\"model_type\":\"gpt_neox\",\"num_hidden_layers\":2,\"hidden_size\":64,"
       "\"num_attention_heads\":6,\"intermediate_size\":160,\"vocab_size\":100,"
       "\"max_position_embeddings\":128}", "n_head", "6"},
      {"bloompost", "{" BLOOM_BASE ",\"apply_residual_connection_post_layernorm\":true}",
       "apply_residual_connection_post_layernorm", "true"},
      {"bloomheads", "{\"model_type\":\"bloom\",\"n_layer\":2,\"hidden_size\":64,\"n_head\":6,"
       "\"vocab_size\":100}", "n_head", "6"},
      {"bloomnod", "{\"model_type\":\"bloom\",\"n_layer\":2,\"n_head\":8,\"vocab_size\":100}",
       "hidden_size", "n_embed"},
      {"qwen2window", "{" QWEN2_BASE ","
       "\"use_sliding_window\":true,\"sliding_window\":16}", "use_sliding_window", "true"},
      {"qwen2layers", "{" QWEN2_BASE ","
       "\"layer_types\":[\"full_attention\",\"sliding_attention\"]}", "layer_types[1]",
       "sliding_attention"},
      {"gemmaact", "{\"model_type\":\"gemma\"," SHAPE_OF_LLAMA ",\"hidden_act\":\"gelu\"}",
       "hidden_act", "gelu"},
      {"gemma2act", "{" GEMMA2_BASE ",\"hidden_activation\":\"silu\"}", "hidden_activation",
       "silu"},
      {"gemmabias", "{\"model_type\":\"gemma\"," SHAPE_OF_LLAMA ",\"attention_bias\":true}",
       "attention_bias", "true"},
      {"gemmabidir", "{" GEMMA2_BASE ",\"use_bidirectional_attention\":true}",
       "use_bidirectional_attention", "true"},
      {"gemma2layers", "{" GEMMA2_BASE ",\"layer_types\":[\"full_attention\",\"sliding_attention\"]}",
       "layer_types[1]", "sliding_attention"},
      {"gemma2cap", "{" GEMMA2_BASE ",\"attn_logit_softcapping\":-1}", "attn_logit_softcapping",
       "-1"},
      {"gemma2scalar", "{" GEMMA2_BASE ",\"query_pre_attn_scalar\":0}", "query_pre_attn_scalar",
       "0"},
      {"badjson", "{\"model_type\":", "config.json", "JSON"},
      {"array", "[1]", "config.json", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[64];
    snprintf(name, sizeof name, "bad-%s", cases[i].label);
    const char *d = dt_test_config_dir(name, cases[i].json);
    dt_config c;
    dt_error_clear();
    int rc = dt_hf_config_load(&c, d);
    if (rc != DT_EINPUT)
      fail_msg("case %s: rc %d (%s)", cases[i].label, rc, dt_error_message());
    dt_test_error_has("config.json");
    dt_test_error_has(d);
    if (cases[i].must1) dt_test_error_has(cases[i].must1);
    if (cases[i].must2) dt_test_error_has(cases[i].must2);
  }
  /* The unknown model type lists the supported ones. */
  dt_config c;
  assert_int_equal(dt_hf_config_load(&c, dt_test_config_dir("bad-unknown2",
                   "{\"model_type\":\"t5\"}")), DT_EINPUT);
  dt_test_error_has("gpt2");
  dt_test_error_has("llama");
  /* No config.json at all. */
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/noconfig", dt_test_tmpdir());
  mkdir(dir, 0755);
  assert_int_equal(dt_hf_config_load(&c, dir), DT_EINPUT);
  dt_test_error_has(dir);
  dt_test_error_has("config.json");
}

static void test_validate(void **state) {
  (void)state;
  dt_config c;
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:llama:layers=2,d=64,heads=8,kv_heads=4"), DT_OK);
  assert_int_equal(dt_config_validate(&c), DT_OK);
  dt_config b = c;
  b.n_kv_head = 3;
  assert_int_equal(dt_config_validate(&b), DT_EINPUT);
  dt_test_error_has("n_kv_head");
  b = c;
  b.vocab = 0;
  assert_int_equal(dt_config_validate(&b), DT_EINPUT);
  dt_test_error_has("vocab");
  b = c;
  b.head_dim = 9;
  assert_int_equal(dt_config_validate(&b), DT_EINPUT);
  dt_test_error_has("head_dim");
  b = c;
  b.norm_eps = 0;
  assert_int_equal(dt_config_validate(&b), DT_EINPUT);
  dt_test_error_has("norm_eps");
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:gpt2:layers=2,d=64,heads=4"), DT_OK);
  b = c;
  b.head_dim = 8;
  assert_int_equal(dt_config_validate(&b), DT_EINPUT);
  dt_test_error_has("d_model");
  b = c;
  b.n_layer = -1;
  assert_int_equal(dt_config_validate(&b), DT_EINPUT);
  dt_test_error_has("n_layer");
}

/* ------------------------------------------------------------ synthetic */

typedef struct {
  const char *spec;
  dt_arch arch;
  int layers, d, heads, kv, head_dim, ffn, vocab, ctx, tied;
} want_cfg;

static void check_cfg(const dt_config *c, const want_cfg *w) {
  if (c->arch != w->arch || c->n_layer != w->layers || c->d_model != w->d ||
      c->n_head != w->heads || c->n_kv_head != w->kv ||
      c->head_dim != w->head_dim || c->d_ffn != w->ffn || c->vocab != w->vocab ||
      c->n_ctx != w->ctx || c->tied_head != w->tied)
    fail_msg("%s: got arch %d L%d d%d h%d kv%d hd%d ffn%d V%d ctx%d tied%d",
             w->spec, c->arch, c->n_layer, c->d_model, c->n_head, c->n_kv_head,
             c->head_dim, c->d_ffn, c->vocab, c->n_ctx, c->tied_head);
  assert_string_equal(c->source, w->spec);
}

static void test_synthetic_presets(void **state) {
  (void)state;
  const dt_arch G = DT_ARCH_GPT2, L = DT_ARCH_LLAMA;
  const want_cfg cases[] = {
      {"synthetic:gpt2-small", G, 12, 768, 12, 12, 64, 3072, 50257, 1024, 1},
      {"synthetic:gpt2-medium", G, 24, 1024, 16, 16, 64, 4096, 50257, 1024, 1},
      {"synthetic:gpt2-xl", G, 48, 1600, 25, 25, 64, 6400, 50257, 1024, 1},
      {"synthetic:gpt3-175b", G, 96, 12288, 96, 96, 128, 49152, 50257, 2048, 1},
      {"synthetic:opt-175b", DT_ARCH_OPT, 96, 12288, 96, 96, 128, 49152, 50272, 2048, 1},
      {"synthetic:gpt-neox-20b", DT_ARCH_GPT_NEOX, 44, 6144, 64, 64, 96, 24576, 50432, 2048, 0},
      {"synthetic:pythia-12b", DT_ARCH_GPT_NEOX, 36, 5120, 40, 40, 128, 20480, 50688, 2048, 0},
      {"synthetic:bloom-176b", DT_ARCH_BLOOM, 70, 14336, 112, 112, 128, 57344, 250880, 2048, 1},
      {"synthetic:bloom-7b1", DT_ARCH_BLOOM, 30, 4096, 32, 32, 128, 16384, 250880, 2048, 1},
      {"synthetic:llama2-7b", L, 32, 4096, 32, 32, 128, 11008, 32000, 4096, 0},
      {"synthetic:llama2-13b", L, 40, 5120, 40, 40, 128, 13824, 32000, 4096, 0},
      {"synthetic:llama2-70b", L, 80, 8192, 64, 8, 128, 28672, 32000, 4096, 0},
      {"synthetic:falcon-180b", DT_ARCH_FALCON, 80, 14848, 232, 8, 64, 59392, 65024, 2048, 0},
      {"synthetic:falcon-40b", DT_ARCH_FALCON, 60, 8192, 128, 8, 64, 32768, 65024, 2048, 0},
      /* overrides on presets keep the rest of the preset */
      {"synthetic:llama2-70b:layers=2", L, 2, 8192, 64, 8, 128, 28672, 32000, 4096, 0},
      {"synthetic:gpt3-175b:layers=1,ctx=128", G, 1, 12288, 96, 96, 128, 49152, 50257, 128, 1},
      /* families with explicit keys */
      {"synthetic:gpt2:layers=12,d=768,heads=12,ffn=3072,vocab=50257,ctx=1024",
       G, 12, 768, 12, 12, 64, 3072, 50257, 1024, 1},
      {"synthetic:gpt2:layers=2,d=64,heads=4", G, 2, 64, 4, 4, 16, 256, 50257, 1024, 1},
      {"synthetic:llama:layers=2,d=64,heads=8,kv_heads=2,ffn=96,vocab=100,ctx=32",
       L, 2, 64, 8, 2, 8, 96, 100, 32, 0},
      {"synthetic:llama:layers=2,d=64,heads=4", L, 2, 64, 4, 4, 16, 256, 32000, 4096, 0},
      {"synthetic:llama:layers=1,d=64,heads=4,head_dim=32", L, 1, 64, 4, 4, 32, 256, 32000, 4096, 0},
      {"synthetic:llama:d=4096", L, 32, 4096, 32, 32, 128, 11008, 32000, 4096, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dt_config c;
    dt_error_clear();
    int rc = dt_synthetic_config_parse(&c, cases[i].spec);
    if (rc != DT_OK) fail_msg("%s: %s", cases[i].spec, dt_error_message());
    check_cfg(&c, &cases[i]);
    assert_int_equal(dt_config_validate(&c), DT_OK);
    if (c.arch == DT_ARCH_GPT2 || c.arch == DT_ARCH_OPT || c.arch == DT_ARCH_GPT_NEOX ||
        c.arch == DT_ARCH_BLOOM || c.arch == DT_ARCH_FALCON) {
      assert_int_equal(c.has_bias, 1); /* Falcon: the LayerNorms' (no linear biases) */
      assert_int_equal(c.no_linear_bias, c.arch == DT_ARCH_FALCON);
      assert_true(fabsf(c.norm_eps - 1e-5f) < 1e-12f);
    } else {
      assert_int_equal(c.has_bias, 0);
      assert_true(fabsf(c.norm_eps - 1e-6f) < 1e-13f);
    }
  }
  dt_config c;
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:llama2-7b"), DT_OK);
  assert_true(c.rope_theta == 10000.0f);
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:llama:layers=2,theta=500000"), DT_OK);
  assert_true(c.rope_theta == 500000.0f);
  /* the families built on LLaMA's block: Qwen2's biases, Mistral's window */
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:qwen2.5-72b"), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_QWEN2);
  assert_int_equal(c.qkv_bias, 1);
  assert_int_equal(c.n_kv_head, 8);
  assert_int_equal(c.d_ffn, 29568);
  assert_true(c.rope_theta == 1000000.0f);
  assert_int_equal(c.sliding_window, 0);
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:mistral-7b"), DT_OK);
  assert_int_equal(c.arch, DT_ARCH_MISTRAL);
  assert_int_equal(c.sliding_window, 4096);
  assert_int_equal(c.qkv_bias, 0);
  assert_int_equal(dt_synthetic_config_parse(&c, "synthetic:mistral:layers=2,d=64,heads=4,kv_heads=2,window=8"),
                   DT_OK);
  assert_int_equal(c.sliding_window, 8);
}

typedef struct {
  const char *spec, *must1, *must2;
} bad_spec;

static void test_synthetic_errors(void **state) {
  (void)state;
  const bad_spec cases[] = {
      {"synthetic:gpt5", "gpt5", "llama2-70b"},
      {"synthetic:gpt2:layers=abc", "layers", "abc"},
      {"synthetic:gpt2:layers=12x", "layers", "12x"},
      {"synthetic:gpt2:layers=0", "layers", "0"},
      {"synthetic:gpt2:layers=", "layers", NULL},
      {"synthetic:gpt2:depth=3", "depth", "3"},
      {"synthetic:gpt2:kv_heads=2", "kv_heads", "layers, d, heads"},
      {"synthetic:llama:theta=fast", "theta", "fast"},
      {"synthetic:llama:layers", "layers", "key=value"},
      {"synthetic:gpt2:layers=2,layers=3", "layers", "twice"},
      {"synthetic:gpt2:d=100,heads=3", "d_model", "100"},
      {"synthetic:llama:heads=32,kv_heads=5", "n_kv_head", "5"},
      {"synthetic:llama2-70b:bogus=1", "bogus", "kv_heads"},
      {"synthetic:llama:window=8", "window", "theta"},
      {"synthetic:mistral:window=0", "window", "0"},
      {"gpt2-small", "synthetic:", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dt_config c;
    dt_error_clear();
    int rc = dt_synthetic_config_parse(&c, cases[i].spec);
    if (rc != DT_EUSAGE)
      fail_msg("%s: rc %d (%s)", cases[i].spec, rc, dt_error_message());
    if (cases[i].must1) dt_test_error_has(cases[i].must1);
    if (cases[i].must2) dt_test_error_has(cases[i].must2);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gpt2_fixture),
      cmocka_unit_test(test_llama_fixture),
      cmocka_unit_test(test_gpt2_variants),
      cmocka_unit_test(test_llama_variants),
      cmocka_unit_test(test_neox),
      cmocka_unit_test(test_bloom),
      cmocka_unit_test(test_bad_configs),
      cmocka_unit_test(test_validate),
      cmocka_unit_test(test_synthetic_presets),
      cmocka_unit_test(test_synthetic_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
