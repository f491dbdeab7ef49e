/* The family descriptors (see arch.h). Tensor names and shapes are those
 * of transformers' GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM,
 * MistralForCausalLM, OPTForCausalLM, GPTNeoXForCausalLM, GemmaForCausalLM,
 * Gemma2ForCausalLM, BloomForCausalLM and FalconForCausalLM; module names
 * and default targets are PEFT's for those model types. */
#include "arch.h"

#include <stddef.h>
#include <string.h>

#define L1 1 /* per block */
#define G0 0 /* global */

#define LLAMA_LIKE                                    \
  .module_prefix = "model.layers", .norm = DT_NORM_RMS, \
  .pos = DT_POS_ROPE, .act = DT_ACT_SWIGLU,             \
  .gated_ffn = 1, .conv1d = 0, .grouped_kv = 1,         \
  .ffn_rule = DT_FFN_LLAMA, .norm_eps = 1e-6f,          \
  .tied_head = 0, .has_bias = 0
/* PEFT's default LoRA and IA3 targets of llama and mistral (its
 * TRANSFORMERS_MODELS_TO_*_TARGET_MODULES_MAPPING) */
#define LLAMA_PEFT                                                   \
  .lora_targets = "q_proj,v_proj", .ia3_targets = "k_proj,v_proj,down_proj", \
  .ia3_ff = "down_proj"
/* Gemma's block: LLaMA's with GeGLU, a tied head, RMSNorm by 1 + w and
 * scaled embeddings */
#define GEMMA_LIKE                                    \
  .module_prefix = "model.layers", .norm = DT_NORM_RMS, \
  .pos = DT_POS_ROPE, .act = DT_ACT_GEGLU,              \
  .gated_ffn = 1, .conv1d = 0, .grouped_kv = 1,         \
  .ffn_rule = DT_FFN_LLAMA, .norm_eps = 1e-6f,          \
  .tied_head = 1, .has_bias = 0, .norm_plus_one = 1,    \
  .embed_scale = 1
/* PEFT's default LoRA and IA3 targets of qwen2, gemma and gemma2 (IA3 on
 * q_proj where llama's is on k_proj) */
#define QV_DOWN_PEFT                                                   \
  .lora_targets = "q_proj,v_proj", .ia3_targets = "q_proj,v_proj,down_proj", \
  .ia3_ff = "down_proj"
/* PEFT's module names of a LLaMA-like block */
#define LLAMA_MODULES                                                            \
  .n_modules = 7,                                                               \
  .modules = {                                                                  \
      {"self_attn.q_proj", DT_SITE_QKV, DT_DIM_0, DT_DIM_Q, DT_DIM_D, 0},         \
      {"self_attn.k_proj", DT_SITE_QKV, DT_DIM_Q, DT_DIM_KV, DT_DIM_D, 0},        \
      {"self_attn.v_proj", DT_SITE_QKV, DT_DIM_Q_KV, DT_DIM_KV, DT_DIM_D, 0},     \
      {"self_attn.o_proj", DT_SITE_ATTN_OUT, DT_DIM_0, DT_DIM_D, DT_DIM_Q, 1},    \
      {"mlp.gate_proj", DT_SITE_FC, DT_DIM_0, DT_DIM_F, DT_DIM_D, 0},             \
      {"mlp.up_proj", DT_SITE_FC, DT_DIM_F, DT_DIM_F, DT_DIM_D, 0},               \
      {"mlp.down_proj", DT_SITE_PROJ, DT_DIM_0, DT_DIM_D, DT_DIM_F, 1},           \
  }
/* rows of the LLaMA-like tensor table */
#define T_EMBED {"model.embed_tokens.weight", G0, DT_SLOT_WTE, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 0}
#define T_Q {"model.layers.%d.self_attn.q_proj.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_Q, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_Q, 0}
#define T_K {"model.layers.%d.self_attn.k_proj.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_KV, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_Q, DT_DIM_Q_KV, 0}
#define T_V {"model.layers.%d.self_attn.v_proj.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_KV, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_Q_KV, DT_DIM_QKV, 0}
#define T_QB {"model.layers.%d.self_attn.q_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_Q, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_Q, 0}
#define T_KB {"model.layers.%d.self_attn.k_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_KV, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_Q, DT_DIM_Q_KV, 0}
#define T_VB {"model.layers.%d.self_attn.v_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_KV, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_Q_KV, DT_DIM_QKV, 0}
#define T_REST \
  {"model.layers.%d.self_attn.o_proj.weight", L1, DT_SLOT_LIN, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_Q, 0, DT_SHARD_ATT_COLS, DT_DIM_0, DT_DIM_Q, 0}, \
  {"model.layers.%d.mlp.gate_proj.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0}, \
  {"model.layers.%d.mlp.up_proj.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 0, DT_SHARD_FC, DT_DIM_F, DT_DIM_2F, 0}, \
  {"model.layers.%d.mlp.down_proj.weight", L1, DT_SLOT_LIN, DT_SITE_PROJ, DT_DIM_D, DT_DIM_F, 0, DT_SHARD_FFN_COLS, DT_DIM_0, DT_DIM_F, 0}, \
  {"model.layers.%d.input_layernorm.weight", L1, DT_SLOT_LN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0}, \
  {"model.layers.%d.post_attention_layernorm.weight", L1, DT_SLOT_LN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0}, \
  {"model.norm.weight", G0, DT_SLOT_LNF_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0}, \
  {"lm_head.weight", G0, DT_SLOT_HEAD, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 1}

static const dt_arch_desc arch_table[] = {
    {
        .id = DT_ARCH_GPT2,
        .name = "gpt2",
        .title = "GPT-2",
        .module_prefix = "transformer.h",
        .norm = DT_NORM_LAYER,
        .pos = DT_POS_LEARNED,
        .act = DT_ACT_GELU_TANH,
        .gated_ffn = 0,
        .conv1d = 1,
        .grouped_kv = 0,
        .ffn_rule = DT_FFN_4D,
        .norm_eps = 1e-5f,
        .tied_head = 1,
        .has_bias = 1,
        .lora_targets = "c_attn",
        .ia3_targets = "c_attn,mlp.c_proj",
        .ia3_ff = "mlp.c_proj",
        .n_modules = 4,
        .modules = {
            {"attn.c_attn", DT_SITE_QKV, DT_DIM_0, DT_DIM_QKV, DT_DIM_D, 1},
            {"attn.c_proj", DT_SITE_ATTN_OUT, DT_DIM_0, DT_DIM_D, DT_DIM_Q, 1},
            {"mlp.c_fc", DT_SITE_FC, DT_DIM_0, DT_DIM_F, DT_DIM_D, 1},
            {"mlp.c_proj", DT_SITE_PROJ, DT_DIM_0, DT_DIM_D, DT_DIM_F, 1},
        },
        .n_tensors = 16,
        .tensors = {
            {"transformer.wte.weight", G0, DT_SLOT_WTE, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 0},
            {"transformer.wpe.weight", G0, DT_SLOT_WPE, 0, DT_DIM_CTX, DT_DIM_D, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.ln_1.weight", L1, DT_SLOT_LN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.ln_1.bias", L1, DT_SLOT_LN1_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.attn.c_attn.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_QKV, DT_DIM_D, 1, DT_SHARD_QKV, DT_DIM_0, DT_DIM_QKV, 0},
            {"transformer.h.%d.attn.c_attn.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_QKV, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_QKV, 0},
            {"transformer.h.%d.attn.c_proj.weight", L1, DT_SLOT_LIN, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_Q, 1, DT_SHARD_ATT_COLS, DT_DIM_0, DT_DIM_Q, 0},
            {"transformer.h.%d.attn.c_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.ln_2.weight", L1, DT_SLOT_LN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.ln_2.bias", L1, DT_SLOT_LN2_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.mlp.c_fc.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 1, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
            {"transformer.h.%d.mlp.c_fc.bias", L1, DT_SLOT_BIAS, DT_SITE_FC, DT_DIM_F, DT_DIM_1, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
            {"transformer.h.%d.mlp.c_proj.weight", L1, DT_SLOT_LIN, DT_SITE_PROJ, DT_DIM_D, DT_DIM_F, 1, DT_SHARD_FFN_COLS, DT_DIM_0, DT_DIM_F, 0},
            {"transformer.h.%d.mlp.c_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_PROJ, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.ln_f.weight", G0, DT_SLOT_LNF_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.ln_f.bias", G0, DT_SLOT_LNF_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
        },
    },
    {
        .id = DT_ARCH_LLAMA,
        .name = "llama",
        .title = "LLaMA",
        LLAMA_LIKE,
        LLAMA_PEFT,
        LLAMA_MODULES,
        .n_tensors = 12,
        .tensors = {T_EMBED, T_Q, T_K, T_V, T_REST},
    },
    /* Qwen2ForCausalLM: LLaMA's block with biases on q, k and v */
    {
        .id = DT_ARCH_QWEN2,
        .name = "qwen2",
        .title = "Qwen2",
        LLAMA_LIKE,
        .qkv_bias = 1,
        QV_DOWN_PEFT,
        LLAMA_MODULES,
        .n_tensors = 15,
        .tensors = {T_EMBED, T_Q, T_QB, T_K, T_KB, T_V, T_VB, T_REST},
    },
    /* MistralForCausalLM: LLaMA's tensors, attention within a sliding window */
    {
        .id = DT_ARCH_MISTRAL,
        .name = "mistral",
        .title = "Mistral",
        LLAMA_LIKE,
        .sliding_window = 1,
        LLAMA_PEFT,
        LLAMA_MODULES,
        .n_tensors = 12,
        .tensors = {T_EMBED, T_Q, T_K, T_V, T_REST},
    },
    /* OPTForCausalLM: GPT-2's block (pre-LayerNorm, biases, tied head) with
     * separate q/k/v (in the files as k, v, q, out), ReLU, and learned
     * positions offset by 2; the decoder's final norm comes before the blocks */
    {
        .id = DT_ARCH_OPT,
        .name = "opt",
        .title = "OPT",
        .module_prefix = "model.decoder.layers",
        .norm = DT_NORM_LAYER,
        .pos = DT_POS_LEARNED,
        .act = DT_ACT_RELU,
        .gated_ffn = 0,
        .conv1d = 0,
        .grouped_kv = 0,
        .ffn_rule = DT_FFN_4D,
        .norm_eps = 1e-5f,
        .tied_head = 1,
        .has_bias = 1,
        .pos_offset = 2,
        .lora_targets = "q_proj,v_proj",
        .ia3_targets = "q_proj,k_proj,fc2",
        .ia3_ff = "fc2",
        .n_modules = 6,
        .modules = {
            {"self_attn.q_proj", DT_SITE_QKV, DT_DIM_0, DT_DIM_Q, DT_DIM_D, 0},
            {"self_attn.k_proj", DT_SITE_QKV, DT_DIM_Q, DT_DIM_KV, DT_DIM_D, 0},
            {"self_attn.v_proj", DT_SITE_QKV, DT_DIM_Q_KV, DT_DIM_KV, DT_DIM_D, 0},
            {"self_attn.out_proj", DT_SITE_ATTN_OUT, DT_DIM_0, DT_DIM_D, DT_DIM_Q, 1},
            {"fc1", DT_SITE_FC, DT_DIM_0, DT_DIM_F, DT_DIM_D, 1},
            {"fc2", DT_SITE_PROJ, DT_DIM_0, DT_DIM_D, DT_DIM_F, 1},
        },
        .n_tensors = 21,
        .tensors = {
            {"model.decoder.embed_tokens.weight", G0, DT_SLOT_WTE, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 0},
            {"model.decoder.embed_positions.weight", G0, DT_SLOT_WPE, 0, DT_DIM_POS, DT_DIM_D, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"model.decoder.final_layer_norm.weight", G0, DT_SLOT_LNF_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"model.decoder.final_layer_norm.bias", G0, DT_SLOT_LNF_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"model.decoder.layers.%d.self_attn.k_proj.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_KV, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_Q, DT_DIM_Q_KV, 0},
            {"model.decoder.layers.%d.self_attn.k_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_KV, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_Q, DT_DIM_Q_KV, 0},
            {"model.decoder.layers.%d.self_attn.v_proj.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_KV, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_Q_KV, DT_DIM_QKV, 0},
            {"model.decoder.layers.%d.self_attn.v_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_KV, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_Q_KV, DT_DIM_QKV, 0},
            {"model.decoder.layers.%d.self_attn.q_proj.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_Q, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_Q, 0},
            {"model.decoder.layers.%d.self_attn.q_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_Q, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_Q, 0},
            {"model.decoder.layers.%d.self_attn.out_proj.weight", L1, DT_SLOT_LIN, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_Q, 0, DT_SHARD_ATT_COLS, DT_DIM_0, DT_DIM_Q, 0},
            {"model.decoder.layers.%d.self_attn.out_proj.bias", L1, DT_SLOT_BIAS, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"model.decoder.layers.%d.self_attn_layer_norm.weight", L1, DT_SLOT_LN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"model.decoder.layers.%d.self_attn_layer_norm.bias", L1, DT_SLOT_LN1_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"model.decoder.layers.%d.fc1.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
            {"model.decoder.layers.%d.fc1.bias", L1, DT_SLOT_BIAS, DT_SITE_FC, DT_DIM_F, DT_DIM_1, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
            {"model.decoder.layers.%d.fc2.weight", L1, DT_SLOT_LIN, DT_SITE_PROJ, DT_DIM_D, DT_DIM_F, 0, DT_SHARD_FFN_COLS, DT_DIM_0, DT_DIM_F, 0},
            {"model.decoder.layers.%d.fc2.bias", L1, DT_SLOT_BIAS, DT_SITE_PROJ, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"model.decoder.layers.%d.final_layer_norm.weight", L1, DT_SLOT_LN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"model.decoder.layers.%d.final_layer_norm.bias", L1, DT_SLOT_LN2_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"lm_head.weight", G0, DT_SLOT_HEAD, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 1},
        },
    },
    /* GPTNeoXForCausalLM (GPT-NeoX, Pythia): LayerNorm with biases, a fused
     * query_key_value laid out per head ([heads][q,k,v][head_dim]), rotary
     * on part of each head, GELU, attention and FFN in parallel (the
     * config's use_parallel_residual), an untied embed_out */
    {
        .id = DT_ARCH_GPT_NEOX,
        .name = "gpt_neox",
        .title = "GPT-NeoX",
        .module_prefix = "gpt_neox.layers",
        .norm = DT_NORM_LAYER,
        .pos = DT_POS_ROPE,
        .act = DT_ACT_GELU_ERF,
        .gated_ffn = 0,
        .conv1d = 0,
        .grouped_kv = 0,
        .ffn_rule = DT_FFN_4D,
        .norm_eps = 1e-5f,
        .tied_head = 0,
        .has_bias = 1,
        .qkv_per_head = 1,
        .parallel_residual = 1,
        .rope_pct = 0.25f,
        .lora_targets = "query_key_value",
        .ia3_targets = "query_key_value,dense_4h_to_h",
        .ia3_ff = "dense_4h_to_h",
        .n_modules = 4,
        .modules = {
            {"attention.query_key_value", DT_SITE_QKV, DT_DIM_0, DT_DIM_QKV, DT_DIM_D, 1},
            {"attention.dense", DT_SITE_ATTN_OUT, DT_DIM_0, DT_DIM_D, DT_DIM_Q, 1},
            {"mlp.dense_h_to_4h", DT_SITE_FC, DT_DIM_0, DT_DIM_F, DT_DIM_D, 1},
            {"mlp.dense_4h_to_h", DT_SITE_PROJ, DT_DIM_0, DT_DIM_D, DT_DIM_F, 1},
        },
        .n_tensors = 16,
        .tensors = {
            {"gpt_neox.embed_in.weight", G0, DT_SLOT_WTE, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 0},
            {"gpt_neox.layers.%d.input_layernorm.weight", L1, DT_SLOT_LN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"gpt_neox.layers.%d.input_layernorm.bias", L1, DT_SLOT_LN1_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"gpt_neox.layers.%d.attention.query_key_value.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_QKV, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_QKV, 0},
            {"gpt_neox.layers.%d.attention.query_key_value.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_QKV, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_QKV, 0},
            {"gpt_neox.layers.%d.attention.dense.weight", L1, DT_SLOT_LIN, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_Q, 0, DT_SHARD_ATT_COLS, DT_DIM_0, DT_DIM_Q, 0},
            {"gpt_neox.layers.%d.attention.dense.bias", L1, DT_SLOT_BIAS, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"gpt_neox.layers.%d.post_attention_layernorm.weight", L1, DT_SLOT_LN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"gpt_neox.layers.%d.post_attention_layernorm.bias", L1, DT_SLOT_LN2_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"gpt_neox.layers.%d.mlp.dense_h_to_4h.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
            {"gpt_neox.layers.%d.mlp.dense_h_to_4h.bias", L1, DT_SLOT_BIAS, DT_SITE_FC, DT_DIM_F, DT_DIM_1, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
            {"gpt_neox.layers.%d.mlp.dense_4h_to_h.weight", L1, DT_SLOT_LIN, DT_SITE_PROJ, DT_DIM_D, DT_DIM_F, 0, DT_SHARD_FFN_COLS, DT_DIM_0, DT_DIM_F, 0},
            {"gpt_neox.layers.%d.mlp.dense_4h_to_h.bias", L1, DT_SLOT_BIAS, DT_SITE_PROJ, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"gpt_neox.final_layer_norm.weight", G0, DT_SLOT_LNF_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"gpt_neox.final_layer_norm.bias", G0, DT_SLOT_LNF_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"embed_out.weight", G0, DT_SLOT_HEAD, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 1, 0, "lm_head.weight"},
        },
    },
    /* GemmaForCausalLM: LLaMA's tensors (tied head) with RMSNorm scaling by
     * 1 + w, embeddings times sqrt(hidden_size) and GeGLU (tanh GELU) */
    {
        .id = DT_ARCH_GEMMA,
        .name = "gemma",
        .title = "Gemma",
        GEMMA_LIKE,
        QV_DOWN_PEFT,
        LLAMA_MODULES,
        .n_tensors = 12,
        .tensors = {T_EMBED, T_Q, T_K, T_V, T_REST},
    },
    /* Gemma2ForCausalLM: Gemma's block with four norms (input_layernorm
     * before attention, post_attention_layernorm on its output,
     * pre_feedforward_layernorm before the FFN, post_feedforward_layernorm
     * on its output); soft-capping, query_pre_attn_scalar and the window of
     * alternate layers are config values (io/hf_config.c) */
    {
        .id = DT_ARCH_GEMMA2,
        .name = "gemma2",
        .title = "Gemma-2",
        GEMMA_LIKE,
        .post_norms = 1,
        .sliding_window = 1,
        .window_alternate = 1,
        .attn_softcap = 50.0f, /* Gemma2Config's defaults */
        .final_softcap = 30.0f,
        QV_DOWN_PEFT,
        LLAMA_MODULES,
        .n_tensors = 14,
        .tensors = {T_EMBED, T_Q, T_K, T_V,
                    {"model.layers.%d.self_attn.o_proj.weight", L1, DT_SLOT_LIN, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_Q, 0, DT_SHARD_ATT_COLS, DT_DIM_0, DT_DIM_Q, 0},
                    {"model.layers.%d.mlp.gate_proj.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
                    {"model.layers.%d.mlp.up_proj.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 0, DT_SHARD_FC, DT_DIM_F, DT_DIM_2F, 0},
                    {"model.layers.%d.mlp.down_proj.weight", L1, DT_SLOT_LIN, DT_SITE_PROJ, DT_DIM_D, DT_DIM_F, 0, DT_SHARD_FFN_COLS, DT_DIM_0, DT_DIM_F, 0},
                    {"model.layers.%d.input_layernorm.weight", L1, DT_SLOT_LN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
                    {"model.layers.%d.post_attention_layernorm.weight", L1, DT_SLOT_PN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
                    {"model.layers.%d.pre_feedforward_layernorm.weight", L1, DT_SLOT_LN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
                    {"model.layers.%d.post_feedforward_layernorm.weight", L1, DT_SLOT_PN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
                    {"model.norm.weight", G0, DT_SLOT_LNF_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
                    {"lm_head.weight", G0, DT_SLOT_HEAD, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 1}},
    },
    /* BloomForCausalLM: no position input but ALiBi (a per-head linear
     * bias on the attention scores), a LayerNorm right after the
     * embedding, LayerNorm with biases, a fused query_key_value laid out
     * per head ([heads][q,k,v][head_dim]) as GPT-NeoX's, the tanh GELU
     * (bloom_gelu_forward is gelu_new's formula), sequential residual,
     * the head tied to the embedding */
    {
        .id = DT_ARCH_BLOOM,
        .name = "bloom",
        .title = "BLOOM",
        .module_prefix = "transformer.h",
        .norm = DT_NORM_LAYER,
        .pos = DT_POS_ALIBI,
        .act = DT_ACT_GELU_TANH,
        .gated_ffn = 0,
        .conv1d = 0,
        .grouped_kv = 0,
        .ffn_rule = DT_FFN_4D,
        .norm_eps = 1e-5f,
        .tied_head = 1,
        .has_bias = 1,
        .qkv_per_head = 1,
        .embed_norm = 1,
        .lora_targets = "query_key_value",
        .ia3_targets = "query_key_value,mlp.dense_4h_to_h",
        .ia3_ff = "mlp.dense_4h_to_h",
        .n_modules = 4,
        .modules = {
            {"self_attention.query_key_value", DT_SITE_QKV, DT_DIM_0, DT_DIM_QKV, DT_DIM_D, 1},
            {"self_attention.dense", DT_SITE_ATTN_OUT, DT_DIM_0, DT_DIM_D, DT_DIM_Q, 1},
            {"mlp.dense_h_to_4h", DT_SITE_FC, DT_DIM_0, DT_DIM_F, DT_DIM_D, 1},
            {"mlp.dense_4h_to_h", DT_SITE_PROJ, DT_DIM_0, DT_DIM_D, DT_DIM_F, 1},
        },
        .n_tensors = 18,
        .tensors = {
            {"transformer.word_embeddings.weight", G0, DT_SLOT_WTE, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 0},
            {"transformer.word_embeddings_layernorm.weight", G0, DT_SLOT_EMBN_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.word_embeddings_layernorm.bias", G0, DT_SLOT_EMBN_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.input_layernorm.weight", L1, DT_SLOT_LN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.input_layernorm.bias", L1, DT_SLOT_LN1_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.self_attention.query_key_value.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_QKV, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_QKV, 0},
            {"transformer.h.%d.self_attention.query_key_value.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_QKV, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_QKV, 0},
            {"transformer.h.%d.self_attention.dense.weight", L1, DT_SLOT_LIN, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_Q, 0, DT_SHARD_ATT_COLS, DT_DIM_0, DT_DIM_Q, 0},
            {"transformer.h.%d.self_attention.dense.bias", L1, DT_SLOT_BIAS, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.post_attention_layernorm.weight", L1, DT_SLOT_LN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.post_attention_layernorm.bias", L1, DT_SLOT_LN2_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.h.%d.mlp.dense_h_to_4h.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
            {"transformer.h.%d.mlp.dense_h_to_4h.bias", L1, DT_SLOT_BIAS, DT_SITE_FC, DT_DIM_F, DT_DIM_1, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0},
            {"transformer.h.%d.mlp.dense_4h_to_h.weight", L1, DT_SLOT_LIN, DT_SITE_PROJ, DT_DIM_D, DT_DIM_F, 0, DT_SHARD_FFN_COLS, DT_DIM_0, DT_DIM_F, 0},
            {"transformer.h.%d.mlp.dense_4h_to_h.bias", L1, DT_SLOT_BIAS, DT_SITE_PROJ, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.ln_f.weight", G0, DT_SLOT_LNF_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"transformer.ln_f.bias", G0, DT_SLOT_LNF_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0},
            {"lm_head.weight", G0, DT_SLOT_HEAD, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 1},
        },
    },
    /* FalconForCausalLM (Falcon-7B/40B/180B): LayerNorm with biases, rotary
     * on the whole head, GELU, no biases on the linears unless the config's
     * bias, attention and FFN in parallel (parallel_attn), the fused
     * query_key_value laid out per key/value group with the new decoder
     * architecture (io/hf_config.c picks the layout and the norms' names,
     * hence the rows' `when`), a tied or untied lm_head */
    {
        .id = DT_ARCH_FALCON,
        .no_linear_bias = 1,
        .peft_prefix_per_query = 1,
        .name = "falcon",
        .title = "Falcon",
        .module_prefix = "transformer.h",
        .norm = DT_NORM_LAYER,
        .pos = DT_POS_ROPE,
        .act = DT_ACT_GELU_ERF,
        .gated_ffn = 0,
        .conv1d = 0,
        .grouped_kv = 1,
        .ffn_rule = DT_FFN_4D,
        .norm_eps = 1e-5f,
        .tied_head = 0,
        .has_bias = 1,
        .qkv_per_head = 1,
        .parallel_residual = 1,
        .lora_targets = "query_key_value",
        .ia3_targets = "query_key_value,dense_4h_to_h",
        .ia3_ff = "dense_4h_to_h",
        .n_modules = 4,
        .modules = {
            {"self_attention.query_key_value", DT_SITE_QKV, DT_DIM_0, DT_DIM_QKV, DT_DIM_D, 1},
            {"self_attention.dense", DT_SITE_ATTN_OUT, DT_DIM_0, DT_DIM_D, DT_DIM_Q, 1},
            {"mlp.dense_h_to_4h", DT_SITE_FC, DT_DIM_0, DT_DIM_F, DT_DIM_D, 1},
            {"mlp.dense_4h_to_h", DT_SITE_PROJ, DT_DIM_0, DT_DIM_D, DT_DIM_F, 1},
        },
        .n_tensors = 20,
        .tensors = {
            {"transformer.word_embeddings.weight", G0, DT_SLOT_WTE, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 0, 0},
            {"transformer.h.%d.ln_attn.weight", L1, DT_SLOT_LN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_TWO_NORMS},
            {"transformer.h.%d.ln_attn.bias", L1, DT_SLOT_LN1_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_TWO_NORMS},
            {"transformer.h.%d.ln_mlp.weight", L1, DT_SLOT_LN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_TWO_NORMS},
            {"transformer.h.%d.ln_mlp.bias", L1, DT_SLOT_LN2_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_TWO_NORMS},
            {"transformer.h.%d.input_layernorm.weight", L1, DT_SLOT_LN1_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_NOT_TWO_NORMS},
            {"transformer.h.%d.input_layernorm.bias", L1, DT_SLOT_LN1_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_NOT_TWO_NORMS},
            {"transformer.h.%d.self_attention.query_key_value.weight", L1, DT_SLOT_LIN, DT_SITE_QKV, DT_DIM_QKV, DT_DIM_D, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_QKV, 0, 0},
            {"transformer.h.%d.self_attention.query_key_value.bias", L1, DT_SLOT_BIAS, DT_SITE_QKV, DT_DIM_QKV, DT_DIM_1, 0, DT_SHARD_QKV, DT_DIM_0, DT_DIM_QKV, 0, DT_WHEN_LIN_BIAS},
            {"transformer.h.%d.self_attention.dense.weight", L1, DT_SLOT_LIN, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_Q, 0, DT_SHARD_ATT_COLS, DT_DIM_0, DT_DIM_Q, 0, 0},
            {"transformer.h.%d.self_attention.dense.bias", L1, DT_SLOT_BIAS, DT_SITE_ATTN_OUT, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_LIN_BIAS},
            {"transformer.h.%d.post_attention_layernorm.weight", L1, DT_SLOT_LN2_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_SEQUENTIAL},
            {"transformer.h.%d.post_attention_layernorm.bias", L1, DT_SLOT_LN2_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_SEQUENTIAL},
            {"transformer.h.%d.mlp.dense_h_to_4h.weight", L1, DT_SLOT_LIN, DT_SITE_FC, DT_DIM_F, DT_DIM_D, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0, 0},
            {"transformer.h.%d.mlp.dense_h_to_4h.bias", L1, DT_SLOT_BIAS, DT_SITE_FC, DT_DIM_F, DT_DIM_1, 0, DT_SHARD_FC, DT_DIM_0, DT_DIM_F, 0, DT_WHEN_LIN_BIAS},
            {"transformer.h.%d.mlp.dense_4h_to_h.weight", L1, DT_SLOT_LIN, DT_SITE_PROJ, DT_DIM_D, DT_DIM_F, 0, DT_SHARD_FFN_COLS, DT_DIM_0, DT_DIM_F, 0, 0},
            {"transformer.h.%d.mlp.dense_4h_to_h.bias", L1, DT_SLOT_BIAS, DT_SITE_PROJ, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, DT_WHEN_LIN_BIAS},
            {"transformer.ln_f.weight", G0, DT_SLOT_LNF_W, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, 0},
            {"transformer.ln_f.bias", G0, DT_SLOT_LNF_B, 0, DT_DIM_D, DT_DIM_1, 0, DT_SHARD_REPL, DT_DIM_0, DT_DIM_0, 0, 0},
            {"lm_head.weight", G0, DT_SLOT_HEAD, 0, DT_DIM_VOCAB, DT_DIM_D, 0, DT_SHARD_VOCAB, DT_DIM_0, DT_DIM_VOCAB, 1, 0},
        },
    },
};

const dt_arch_desc *dt_arch_get(dt_arch a) {
  for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
    if (arch_table[i].id == a) return &arch_table[i];
  return NULL;
}

const dt_arch_desc *dt_arch_by_name(const char *name) {
  for (size_t i = 0; i < sizeof arch_table / sizeof arch_table[0]; i++)
    if (!strcmp(arch_table[i].name, name)) return &arch_table[i];
  return NULL;
}
