/* Model configuration: Hugging Face config.json (GPT-2, LLaMA, Qwen2,
 * Mistral, OPT, GPT-NeoX, Gemma, Gemma-2, BLOOM and Falcon families) and
 * synthetic specs. */
#ifndef DT_HF_CONFIG_H
#define DT_HF_CONFIG_H

#include <math.h>

#include "arch.h"

typedef struct {
  dt_arch arch;
  int n_layer;
  int d_model;
  int n_head;
  int n_kv_head; /* == n_head for GPT-2 */
  int head_dim;  /* d_model / n_head unless config says otherwise */
  int d_ffn;     /* GPT-2: n_inner or 4*d; LLaMA: intermediate_size */
  int vocab;
  int n_ctx;     /* n_positions / max_position_embeddings */
  float norm_eps;   /* layer_norm_epsilon / rms_norm_eps */
  float rope_theta; /* LLaMA: rope_theta or rope_parameters.rope_theta */
  int tied_head;    /* lm_head shares the token embedding */
  int has_bias;     /* GPT-2: biases on every linear and LayerNorm */
  int qkv_bias;     /* Qwen2: biases on q, k and v only */
  int sliding_window; /* Mistral: a query sees itself and the window - 1 keys
                         before it (HF: kv_idx > q_idx - window); 0: no window */
  dt_act_kind act;    /* the FFN activation where the config picks it (GPT-NeoX's
                         hidden_act); 0: the family's (dt_cfg_act) */
  int parallel_residual; /* GPT-NeoX's use_parallel_residual: a block's output is
                            x + attn(ln1(x)) + mlp(ln2(x)) */
  int rope_dim;       /* rotary dimensions at the start of each head (GPT-NeoX's
                         rotary_pct * head_dim); 0: the whole head (dt_cfg_rope_dim) */
  int window_alternate; /* Gemma-2: the window only in layers 0, 2, 4, ...
                           (layer_types' sliding_attention), full attention
                           in the others */
  float attn_scalar;    /* Gemma-2's query_pre_attn_scalar: scores scaled by
                           its -1/2 power; 0: head_dim's */
  float attn_softcap;   /* Gemma-2: scores become c tanh(s / c) before the
                           mask and softmax; 0: none */
  float final_softcap;  /* Gemma-2: logits become c tanh(z / c); 0: none */
  int no_linear_bias; /* Falcon's bias = false: the linears have no biases, the
                         LayerNorms keep theirs (has_bias stays 1) */
  int shared_norm;    /* Falcon's one input_layernorm in a parallel block: the
                         FFN reads the attention's norm (ln1) output, ln2 unused */
  int qkv_blocks;     /* Falcon's multi_query: the fused q|k|v is q, k, v blocks
                         although the family's descriptor says qkv_per_head */
  char source[512]; /* folder, or the synthetic spec */
} dt_config;

/* Parse DIR/config.json. Supports model_type gpt2 (activation gelu_new /
 * gelu_pytorch_tanh), llama (hidden_act silu, no attention/mlp bias), qwen2
 * (q/k/v biases; no per-layer sliding window), mistral (sliding_window), opt,
 * gemma (tanh GELU only) and gemma2 (soft-caps, query_pre_attn_scalar, the
 * window of alternate layers). Errors name the file, field and value. */
int dt_hf_config_load(dt_config *c, const char *dir);

/* Parse "synthetic:gpt2:layers=12,d=768,heads=12,ffn=3072,vocab=50257,ctx=1024",
 * "synthetic:llama:...,kv_heads=N" or a preset "synthetic:gpt3-175b",
 * "synthetic:llama2-70b", "synthetic:llama2-13b", "synthetic:gpt2-small", ...
 * Errors name the key and value. */
int dt_synthetic_config_parse(dt_config *c, const char *spec);

/* Derived sizes. */
static inline int dt_cfg_q_dim(const dt_config *c) { return c->n_head * c->head_dim; }
static inline int dt_cfg_kv_dim(const dt_config *c) { return c->n_kv_head * c->head_dim; }
/* The key/value heads of prefix tuning: one per query head where PEFT's
 * prefix of the family has them (Falcon: arch peft_prefix_per_query), else
 * one per key/value head. A key/value group's prefix heads are contiguous:
 * group g holds prefix heads g*n, .., g*n + n - 1 (n = prefix / kv heads). */
static inline int dt_cfg_prefix_heads(const dt_config *c) {
  return dt_arch_get(c->arch)->peft_prefix_per_query ? c->n_head : c->n_kv_head;
}
static inline int dt_cfg_prefix_dim(const dt_config *c) {
  return dt_cfg_prefix_heads(c) * c->head_dim;
}
static inline int dt_cfg_qkv_dim(const dt_config *c) {
  return dt_cfg_q_dim(c) + 2 * dt_cfg_kv_dim(c);
}
/* The family's descriptor (io/arch.h); never NULL for a validated config. */
static inline const dt_arch_desc *dt_cfg_arch(const dt_config *c) { return dt_arch_get(c->arch); }
/* The FFN activation: the config's, else the family's. */
static inline dt_act_kind dt_cfg_act(const dt_config *c) {
  return c->act ? c->act : dt_cfg_arch(c)->act;
}
/* How many leading dimensions of a head rotate (rotary positions). */
static inline int dt_cfg_rope_dim(const dt_config *c) {
  return c->rope_dim ? c->rope_dim : c->head_dim;
}
/* Do the block's linears have biases (has_bias, unless Falcon's bias false)? */
static inline int dt_cfg_lin_bias(const dt_config *c) {
  return c->has_bias && !c->no_linear_bias;
}
/* Does the block have a second norm of its own (ln2: post-attention or the
 * FFN's parallel norm)? Not with Falcon's shared input_layernorm. */
static inline int dt_cfg_has_ln2(const dt_config *c) { return !c->shared_norm; }
/* Width of the first FFN matrix: ffn, or 2*ffn for a fused gate|up. */
static inline int dt_cfg_fc_dim(const dt_config *c) {
  return dt_cfg_arch(c)->gated_ffn ? 2 * c->d_ffn : c->d_ffn;
}
/* The value of a named size (the descriptor's tables use them). */
static inline int dt_cfg_dim(const dt_config *c, dt_dim d) {
  switch (d) {
    case DT_DIM_D: return c->d_model;
    case DT_DIM_Q: return dt_cfg_q_dim(c);
    case DT_DIM_KV: return dt_cfg_kv_dim(c);
    case DT_DIM_Q_KV: return dt_cfg_q_dim(c) + dt_cfg_kv_dim(c);
    case DT_DIM_QKV: return dt_cfg_qkv_dim(c);
    case DT_DIM_F: return c->d_ffn;
    case DT_DIM_2F: return 2 * c->d_ffn;
    case DT_DIM_VOCAB: return c->vocab;
    case DT_DIM_CTX: return c->n_ctx;
    case DT_DIM_POS: return c->n_ctx + dt_cfg_arch(c)->pos_offset;
    case DT_DIM_1: return 1;
    default: return 0;
  }
}
/* The row of a learned position table that position pos reads (OPT's
 * table starts 2 rows down). */
static inline int dt_cfg_pos_row(const dt_config *c, int pos) {
  return pos + dt_cfg_arch(c)->pos_offset;
}
/* The sliding window of layer l (0: full causal attention). */
static inline int dt_cfg_window(const dt_config *c, int l) {
  return c->window_alternate && l % 2 ? 0 : c->sliding_window;
}
/* The factor of the token embeddings: sqrt(d_model) (Gemma; transformers
 * casts it to the model's dtype, here fp32), else 1. */
static inline float dt_cfg_embed_scale(const dt_config *c) {
  return dt_cfg_arch(c)->embed_scale ? (float)sqrt((double)c->d_model) : 1.0f;
}
/* The attention scores' scale: 1/sqrt(query_pre_attn_scalar or head_dim). */
static inline float dt_cfg_attn_scale(const dt_config *c) {
  return 1.0f / sqrtf(c->attn_scalar > 0 ? c->attn_scalar : (float)c->head_dim);
}
/* Check the config for consistency (positive sizes, heads divide, ...). */
int dt_config_validate(const dt_config *c);

#endif
