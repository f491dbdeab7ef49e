/* Model configuration from Hugging Face config.json or a synthetic spec
 * (see hf_config.h). JSON is read with jansson. */
#include "hf_config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ------------------------------------------------------------ validation */

static const char *arch_name(dt_arch a) {
  const dt_arch_desc *d = dt_arch_get(a);
  return d ? d->name : "?";
}

/* where: what the messages name (the config.json path, or the source). */
static int validate(const dt_config *c, int code, const char *where) {
  const char *src = where ? where : c->source[0] ? c->source : "(config)";
  DT_CHECK(dt_arch_get(c->arch), code, "%s: arch %d is not a known family", src, (int)c->arch);
  const struct {
    const char *name;
    int v;
  } pos[] = {{"n_layer", c->n_layer}, {"d_model", c->d_model},
             {"n_head", c->n_head},   {"n_kv_head", c->n_kv_head},
             {"head_dim", c->head_dim}, {"d_ffn", c->d_ffn},
             {"vocab", c->vocab},     {"n_ctx", c->n_ctx}};
  for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
    DT_CHECK(pos[i].v > 0, code, "%s: %s = %d must be positive", src,
             pos[i].name, pos[i].v);
  DT_CHECK(c->n_head % c->n_kv_head == 0, code,
           "%s: n_head = %d is not a multiple of n_kv_head = %d", src,
           c->n_head, c->n_kv_head);
  DT_CHECK(isfinite(c->norm_eps) && c->norm_eps > 0, code,
           "%s: norm_eps = %g must be a positive number", src,
           (double)c->norm_eps);
  DT_CHECK((int64_t)(c->n_head + 2 * (int64_t)c->n_kv_head) * c->head_dim <=
                   INT_MAX &&
               2 * (int64_t)c->d_ffn <= INT_MAX,
           code,
           "%s: sizes too large (n_head = %d, n_kv_head = %d, head_dim = %d, "
           "d_ffn = %d)",
           src, c->n_head, c->n_kv_head, c->head_dim, c->d_ffn);
  DT_CHECK(c->sliding_window >= 0, code, "%s: sliding_window = %d must not be negative",
           src, c->sliding_window);
  const dt_arch_desc *a = dt_cfg_arch(c);
  /* the block's backward (src/forward.c) takes the post norms or the
   * parallel residual, not both; no family has both */
  DT_CHECK(!(a->post_norms && c->parallel_residual), code,
           "%s: %s's post norms with a parallel residual are not supported", src, a->name);
  if (!a->grouped_kv) {
    DT_CHECK(c->n_kv_head == c->n_head, code,
             "%s: %s needs n_kv_head = n_head (got %d and %d)", src, a->name,
             c->n_kv_head, c->n_head);
    DT_CHECK((int64_t)c->n_head * c->head_dim == c->d_model, code,
             "%s: %s needs n_head * head_dim = d_model (got %d * %d != %d; "
             "d_model must be a multiple of n_head)",
             src, a->name, c->n_head, c->head_dim, c->d_model);
  }
  if (a->pos == DT_POS_ROPE) {
    DT_CHECK(c->head_dim % 2 == 0, code,
             "%s: head_dim = %d must be even for rotary embeddings", src,
             c->head_dim);
    DT_CHECK(isfinite(c->rope_theta) && c->rope_theta > 0, code,
             "%s: rope_theta = %g must be a positive number", src,
             (double)c->rope_theta);
    DT_CHECK(c->rope_dim >= 0 && c->rope_dim % 2 == 0 && c->rope_dim <= c->head_dim, code,
             "%s: rotary dimensions = %d must be even and at most head_dim = %d", src,
             c->rope_dim, c->head_dim);
  }
  return DT_OK;
}

int dt_config_validate(const dt_config *c) {
  DT_CALL(validate(c, DT_EINPUT, NULL));
  return DT_OK;
}

/* ------------------------------------------------------------ config.json */

/* A short JSON rendering of v for messages. */
static const char *show(json_t *v, char *buf, size_t cap) {
  char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  snprintf(buf, cap, "%s", s ? s : "?");
  if (s && strlen(s) >= cap && cap > 4) strcpy(buf + cap - 4, "...");
  free(s);
  return buf;
}

/* Integer field. Absent or null: *out = def when !required. */
static int get_int(json_t *root, const char *path, const char *key,
                   int required, int def, int *out) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) {
    DT_CHECK(!required, DT_EINPUT, "%s: required field %s is %s", path, key,
             v ? "null" : "missing");
    *out = def;
    return DT_OK;
  }
  char b[96];
  DT_CHECK(json_is_integer(v), DT_EINPUT,
           "%s: field %s must be an integer, got %s", path, key,
           show(v, b, sizeof b));
  json_int_t x = json_integer_value(v);
  DT_CHECK(x > 0 && x <= INT_MAX, DT_EINPUT,
           "%s: field %s = %lld is out of range (1..%d)", path, key,
           (long long)x, INT_MAX);
  *out = (int)x;
  return DT_OK;
}

static int get_num(json_t *root, const char *path, const char *key, double def,
                   double *out) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return DT_OK;
  }
  char b[96];
  DT_CHECK(json_is_number(v), DT_EINPUT, "%s: field %s must be a number, got %s",
           path, key, show(v, b, sizeof b));
  *out = json_number_value(v);
  return DT_OK;
}

static int get_bool(json_t *root, const char *path, const char *key, int def,
                    int *out) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return DT_OK;
  }
  char b[96];
  DT_CHECK(json_is_boolean(v), DT_EINPUT,
           "%s: field %s must be true or false, got %s", path, key,
           show(v, b, sizeof b));
  *out = json_is_true(v);
  return DT_OK;
}

/* String field; absent or null gives def (which may be NULL). */
static int get_str(json_t *root, const char *path, const char *key,
                   const char *def, const char **out) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return DT_OK;
  }
  char b[96];
  DT_CHECK(json_is_string(v), DT_EINPUT, "%s: field %s must be a string, got %s",
           path, key, show(v, b, sizeof b));
  *out = json_string_value(v);
  return DT_OK;
}

static int load_gpt2(dt_config *c, json_t *r, const char *p) {
  c->arch = DT_ARCH_GPT2;
  DT_CALL(get_int(r, p, "n_layer", 1, 0, &c->n_layer));
  DT_CALL(get_int(r, p, "n_embd", 1, 0, &c->d_model));
  DT_CALL(get_int(r, p, "n_head", 1, 0, &c->n_head));
  DT_CHECK(c->d_model <= INT_MAX / 4, DT_EINPUT, "%s: n_embd = %d is too large",
           p, c->d_model);
  DT_CALL(get_int(r, p, "n_inner", 0, 4 * c->d_model, &c->d_ffn));
  DT_CALL(get_int(r, p, "vocab_size", 1, 0, &c->vocab));
  DT_CALL(get_int(r, p, "n_positions", 1, 0, &c->n_ctx));
  double eps;
  DT_CALL(get_num(r, p, "layer_norm_epsilon", 1e-5, &eps));
  c->norm_eps = (float)eps;
  const char *act;
  DT_CALL(get_str(r, p, "activation_function", "gelu_new", &act));
  DT_CHECK(strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0,
           DT_EINPUT,
           "%s: field activation_function = \"%s\" is not supported (supported: "
           "gelu_new, gelu_pytorch_tanh)",
           p, act);
  /* Options that change the attention arithmetic. */
  int flag;
  DT_CALL(get_bool(r, p, "scale_attn_by_inverse_layer_idx", 0, &flag));
  DT_CHECK(!flag, DT_EINPUT,
           "%s: field scale_attn_by_inverse_layer_idx = true is not supported",
           p);
  DT_CALL(get_bool(r, p, "scale_attn_weights", 1, &flag));
  DT_CHECK(flag, DT_EINPUT,
           "%s: field scale_attn_weights = false is not supported", p);
  DT_CALL(get_bool(r, p, "tie_word_embeddings", 1, &c->tied_head));
  c->n_kv_head = c->n_head;
  c->head_dim = c->n_head > 0 ? c->d_model / c->n_head : 0;
  c->rope_theta = 0;
  c->has_bias = 1;
  return DT_OK;
}

/* OPT: GPT-2's block with separate q/k/v, ReLU and positions offset by 2.
 * What changes the arithmetic and is not implemented is refused: a
 * post-LayerNorm model (do_layer_norm_before false, OPT-350m), the
 * projections project_in/out (word_embed_proj_dim != hidden_size), no
 * biases, norms without weights, no final norm. */
static int load_opt(dt_config *c, json_t *r, const char *p) {
  c->arch = DT_ARCH_OPT;
  DT_CALL(get_int(r, p, "num_hidden_layers", 1, 0, &c->n_layer));
  DT_CALL(get_int(r, p, "hidden_size", 1, 0, &c->d_model));
  DT_CALL(get_int(r, p, "num_attention_heads", 1, 0, &c->n_head));
  DT_CALL(get_int(r, p, "ffn_dim", 1, 0, &c->d_ffn));
  DT_CALL(get_int(r, p, "vocab_size", 1, 0, &c->vocab));
  DT_CALL(get_int(r, p, "max_position_embeddings", 1, 0, &c->n_ctx));
  DT_CHECK(c->n_ctx <= INT_MAX - 2, DT_EINPUT, "%s: field max_position_embeddings = %d is too large",
           p, c->n_ctx);
  int proj;
  DT_CALL(get_int(r, p, "word_embed_proj_dim", 0, c->d_model, &proj));
  DT_CHECK(proj == c->d_model, DT_EINPUT,
           "%s: field word_embed_proj_dim = %d (!= hidden_size = %d: project_in/out) is not "
           "supported",
           p, proj, c->d_model);
  const char *act;
  DT_CALL(get_str(r, p, "activation_function", "relu", &act));
  DT_CHECK(strcmp(act, "relu") == 0, DT_EINPUT,
           "%s: field activation_function = \"%s\" is not supported (supported: relu)", p, act);
  const struct {
    const char *key;
    int want;
  } flags[] = {{"do_layer_norm_before", 1}, {"enable_bias", 1},
               {"layer_norm_elementwise_affine", 1}, {"_remove_final_layer_norm", 0}};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    int v;
    DT_CALL(get_bool(r, p, flags[i].key, flags[i].want, &v));
    DT_CHECK(v == flags[i].want, DT_EINPUT, "%s: field %s = %s is not supported", p, flags[i].key,
             v ? "true" : "false");
  }
  DT_CALL(get_bool(r, p, "tie_word_embeddings", 1, &c->tied_head));
  c->n_kv_head = c->n_head;
  c->head_dim = c->d_model / c->n_head;
  c->norm_eps = 1e-5f; /* nn.LayerNorm's default: OPT has no epsilon key */
  c->rope_theta = 0;
  c->has_bias = 1;
  return DT_OK;
}

/* A rotary parameter of GPT-NeoX: rope_parameters.<key> (transformers 5),
 * else the top-level legacy key, else def. */
static int neox_rope_num(json_t *r, json_t *rp, const char *p, const char *key,
                         const char *legacy, double def, double *out) {
  json_t *v = rp ? json_object_get(rp, key) : NULL;
  char b[96];
  if (v && !json_is_null(v)) {
    DT_CHECK(json_is_number(v), DT_EINPUT, "%s: field rope_parameters.%s must be a number, got %s",
             p, key, show(v, b, sizeof b));
    *out = json_number_value(v);
    return DT_OK;
  }
  DT_CALL(get_num(r, p, legacy, def, out));
  return DT_OK;
}

/* GPT-NeoX / Pythia: pre-LayerNorm blocks with biases, a fused per-head
 * query_key_value, rotary positions on the first rotary_pct of each head
 * (rope_parameters.partial_rotary_factor), attention and FFN in parallel
 * (use_parallel_residual), GELU. Refused: attention_bias false, rope
 * scaling, an activation other than the GELUs, no rotary dimension. */
static int load_neox(dt_config *c, json_t *r, const char *p) {
  c->arch = DT_ARCH_GPT_NEOX;
  DT_CALL(get_int(r, p, "num_hidden_layers", 1, 0, &c->n_layer));
  DT_CALL(get_int(r, p, "hidden_size", 1, 0, &c->d_model));
  DT_CALL(get_int(r, p, "num_attention_heads", 1, 0, &c->n_head));
  DT_CALL(get_int(r, p, "intermediate_size", 1, 0, &c->d_ffn));
  DT_CALL(get_int(r, p, "vocab_size", 1, 0, &c->vocab));
  DT_CALL(get_int(r, p, "max_position_embeddings", 1, 0, &c->n_ctx));
  double x;
  DT_CALL(get_num(r, p, "layer_norm_eps", 1e-5, &x));
  c->norm_eps = (float)x;
  const char *act;
  DT_CALL(get_str(r, p, "hidden_act", "gelu", &act));
  if (strcmp(act, "gelu") == 0)
    c->act = DT_ACT_GELU_ERF;
  else if (!strcmp(act, "gelu_fast") || !strcmp(act, "gelu_new") ||
           !strcmp(act, "gelu_pytorch_tanh"))
    c->act = DT_ACT_GELU_TANH; /* the tanh approximation, one formula */
  else
    DT_ERR(DT_EINPUT,
           "%s: field hidden_act = \"%s\" is not supported (supported: gelu, gelu_fast, "
           "gelu_new, gelu_pytorch_tanh)",
           p, act);
  char b[96];
  json_t *rp = json_object_get(r, "rope_parameters");
  if (rp && json_is_null(rp)) rp = NULL;
  if (rp) {
    DT_CHECK(json_is_object(rp), DT_EINPUT, "%s: field rope_parameters must be an object, got %s",
             p, show(rp, b, sizeof b));
    const char *rt;
    DT_CALL(get_str(rp, p, "rope_type", "default", &rt));
    DT_CHECK(strcmp(rt, "default") == 0, DT_EINPUT,
             "%s: field rope_parameters.rope_type = \"%s\" is not supported (only default)", p, rt);
  }
  json_t *rs = json_object_get(r, "rope_scaling");
  DT_CHECK(!rs || json_is_null(rs), DT_EINPUT, "%s: field rope_scaling = %s is not supported", p,
           show(rs, b, sizeof b));
  double theta, pct;
  DT_CALL(neox_rope_num(r, rp, p, "rope_theta", "rotary_emb_base", 10000.0, &theta));
  DT_CALL(neox_rope_num(r, rp, p, "partial_rotary_factor", "rotary_pct", 0.25, &pct));
  c->rope_theta = (float)theta;
  c->head_dim = c->d_model / c->n_head;
  /* transformers: rotary_ndims = int(head_size * rotary_pct) */
  const double rd = (double)c->head_dim * pct;
  DT_CHECK(isfinite(pct) && pct > 0 && pct <= 1 && (int)rd >= 2, DT_EINPUT,
           "%s: field rotary_pct (partial_rotary_factor) = %g is not supported (the rotary "
           "dimensions int(%d * %g) must be 2 to head_dim)",
           p, pct, c->head_dim, pct);
  c->rope_dim = (int)rd;
  int flag;
  DT_CALL(get_bool(r, p, "attention_bias", 1, &flag));
  DT_CHECK(flag, DT_EINPUT, "%s: field attention_bias = false is not supported", p);
  DT_CALL(get_bool(r, p, "use_parallel_residual", 1, &c->parallel_residual));
  DT_CALL(get_bool(r, p, "tie_word_embeddings", 0, &c->tied_head));
  c->n_kv_head = c->n_head;
  c->has_bias = 1;
  return DT_OK;
}

/* Falcon (FalconConfig): LayerNorm blocks with attention and FFN in
 * parallel (parallel_attn), rotary positions on the whole head, GELU, biases
 * on the linears only with bias true. The fused query_key_value and the
 * norms' names follow the variant: new_decoder_architecture (Falcon-40B/180B)
 * groups it per key/value head ([kv heads][q heads of the group, k, v]) with
 * ln_attn and ln_mlp (num_ln_in_parallel_attn 2; 1: input_layernorm feeds
 * both); else multi_query (Falcon-7B) is q, k, v blocks with one key/value
 * head, and neither is per head ([heads][q,k,v]), with one input_layernorm
 * feeding both branches (parallel_attn) or input_layernorm and
 * post_attention_layernorm (a sequential block). Refused: alibi, rope
 * scaling, an activation other than the GELUs, a new decoder architecture
 * without parallel_attn (transformers has no such block). */
static int load_falcon(dt_config *c, json_t *r, const char *p) {
  c->arch = DT_ARCH_FALCON;
  char b[96];
  int alibi, nda, mq, par, bias;
  DT_CALL(get_bool(r, p, "alibi", 0, &alibi));
  DT_CHECK(!alibi, DT_EINPUT,
           "%s: field alibi = true is not supported (Falcon with ALiBi positions; only rotary)",
           p);
  DT_CALL(get_int(r, p, "num_hidden_layers", 1, 0, &c->n_layer));
  DT_CALL(get_int(r, p, "hidden_size", 1, 0, &c->d_model));
  DT_CALL(get_int(r, p, "num_attention_heads", 1, 0, &c->n_head));
  DT_CALL(get_int(r, p, "vocab_size", 1, 0, &c->vocab));
  DT_CALL(get_int(r, p, "max_position_embeddings", 0, 2048, &c->n_ctx));
  DT_CALL(get_int(r, p, "ffn_hidden_size", 0, 0, &c->d_ffn));
  if (!c->d_ffn) {
    DT_CHECK(c->d_model <= INT_MAX / 4, DT_EINPUT, "%s: field hidden_size = %d is too large", p,
             c->d_model);
    c->d_ffn = 4 * c->d_model;
  }
  c->head_dim = c->d_model / c->n_head;
  DT_CHECK(c->head_dim * c->n_head == c->d_model, DT_EINPUT,
           "%s: field hidden_size = %d is not a multiple of num_attention_heads = %d", p,
           c->d_model, c->n_head);
  double x;
  DT_CALL(get_num(r, p, "layer_norm_epsilon", 1e-5, &x));
  c->norm_eps = (float)x;
  const char *act;
  DT_CALL(get_str(r, p, "activation", "gelu", &act));
  if (strcmp(act, "gelu") == 0)
    c->act = DT_ACT_GELU_ERF;
  else if (!strcmp(act, "gelu_fast") || !strcmp(act, "gelu_new") ||
           !strcmp(act, "gelu_pytorch_tanh"))
    c->act = DT_ACT_GELU_TANH;
  else
    DT_ERR(DT_EINPUT,
           "%s: field activation = \"%s\" is not supported (supported: gelu, gelu_fast, "
           "gelu_new, gelu_pytorch_tanh)",
           p, act);
  /* rotary: rope_theta at the top (FalconConfig) or rope_parameters (5.x) */
  json_t *rp = json_object_get(r, "rope_parameters");
  if (rp && json_is_null(rp)) rp = NULL;
  if (rp) {
    DT_CHECK(json_is_object(rp), DT_EINPUT, "%s: field rope_parameters must be an object, got %s",
             p, show(rp, b, sizeof b));
    const char *rt;
    DT_CALL(get_str(rp, p, "rope_type", "default", &rt));
    DT_CHECK(strcmp(rt, "default") == 0, DT_EINPUT,
             "%s: field rope_parameters.rope_type = \"%s\" is not supported (only default)", p, rt);
  }
  json_t *rs = json_object_get(r, "rope_scaling");
  DT_CHECK(!rs || json_is_null(rs), DT_EINPUT, "%s: field rope_scaling = %s is not supported", p,
           show(rs, b, sizeof b));
  DT_CALL(neox_rope_num(r, rp, p, "rope_theta", "rope_theta", 10000.0, &x));
  c->rope_theta = (float)x;
  DT_CALL(get_bool(r, p, "new_decoder_architecture", 0, &nda));
  DT_CALL(get_bool(r, p, "multi_query", 1, &mq));
  DT_CALL(get_bool(r, p, "parallel_attn", 1, &par));
  DT_CALL(get_bool(r, p, "bias", 0, &bias));
  if (nda) {
    DT_CALL(get_int(r, p, "num_kv_heads", 0, c->n_head, &c->n_kv_head));
    DT_CHECK(c->n_head % c->n_kv_head == 0, DT_EINPUT,
             "%s: field num_kv_heads = %d does not divide num_attention_heads = %d", p,
             c->n_kv_head, c->n_head);
    DT_CHECK(par, DT_EINPUT,
             "%s: field parallel_attn = false is not supported with new_decoder_architecture = "
             "true (transformers' FalconDecoderLayer has no such block)",
             p);
    int nln;
    DT_CALL(get_int(r, p, "num_ln_in_parallel_attn", 0, 2, &nln));
    DT_CHECK(nln == 1 || nln == 2, DT_EINPUT,
             "%s: field num_ln_in_parallel_attn = %d is not supported (1 or 2)", p, nln);
    c->shared_norm = nln == 1;
  } else {
    /* multi_query: one key/value head, q|k|v blocks; else per head, as
     * many key/value heads as query heads (query_key_value is 3 hidden) */
    int kv;
    DT_CALL(get_int(r, p, "num_kv_heads", 0, c->n_head, &kv));
    DT_CHECK(mq || kv == c->n_head, DT_EINPUT,
             "%s: field num_kv_heads = %d is not supported without multi_query or "
             "new_decoder_architecture (needs num_attention_heads = %d)",
             p, kv, c->n_head);
    c->n_kv_head = mq ? 1 : c->n_head;
    c->qkv_blocks = mq;
    c->shared_norm = par;
  }
  c->parallel_residual = par;
  c->has_bias = 1; /* the LayerNorms */
  c->no_linear_bias = !bias;
  DT_CALL(get_bool(r, p, "tie_word_embeddings", 1, &c->tied_head));
  return DT_OK;
}

/* An integer field under its name in transformers' saved config (key) or
 * in BLOOM's original config.json (alt). */
static int get_int_alt(json_t *r, const char *p, const char *key, const char *alt, int *out) {
  json_t *v = json_object_get(r, key);
  if (v && !json_is_null(v)) return get_int(r, p, key, 1, 0, out);
  v = json_object_get(r, alt);
  if (v && !json_is_null(v)) return get_int(r, p, alt, 1, 0, out);
  DT_ERR(DT_EINPUT, "%s: required field %s (or %s) is missing", p, key, alt);
}

/* BLOOM: ALiBi instead of positions, a LayerNorm on the embeddings,
 * pre-LayerNorm blocks with biases, a fused per-head query_key_value, the
 * tanh GELU, an FFN of 4 hidden_size, the head tied to the embedding.
 * transformers saves hidden_size / n_layer / n_head; BigScience's files
 * have n_embed / n_layer / num_attention_heads. No position limit exists
 * (ALiBi): n_ctx is seq_length where given, else 2048 (the training
 * length). Refused: apply_residual_connection_post_layernorm true. */
static int load_bloom(dt_config *c, json_t *r, const char *p) {
  c->arch = DT_ARCH_BLOOM;
  DT_CALL(get_int_alt(r, p, "n_layer", "num_hidden_layers", &c->n_layer));
  DT_CALL(get_int_alt(r, p, "hidden_size", "n_embed", &c->d_model));
  DT_CALL(get_int_alt(r, p, "n_head", "num_attention_heads", &c->n_head));
  DT_CALL(get_int(r, p, "vocab_size", 1, 0, &c->vocab));
  DT_CALL(get_int(r, p, "seq_length", 0, 2048, &c->n_ctx));
  double x;
  DT_CALL(get_num(r, p, "layer_norm_epsilon", 1e-5, &x));
  c->norm_eps = (float)x;
  int flag;
  DT_CALL(get_bool(r, p, "apply_residual_connection_post_layernorm", 0, &flag));
  DT_CHECK(!flag, DT_EINPUT,
           "%s: field apply_residual_connection_post_layernorm = true is not supported", p);
  DT_CALL(get_bool(r, p, "tie_word_embeddings", 1, &c->tied_head));
  DT_CHECK(c->d_model <= INT_MAX / 4, DT_EINPUT, "%s: field hidden_size = %d is too large", p,
           c->d_model);
  c->d_ffn = 4 * c->d_model;
  c->head_dim = c->d_model / c->n_head;
  c->n_kv_head = c->n_head;
  c->has_bias = 1;
  return DT_OK;
}

/* An integer field that may be absent (def) or null (0: none). */
static int get_window(json_t *r, const char *p, const char *key, int def, int *out) {
  json_t *v = json_object_get(r, key);
  char b[96];
  if (!v) {
    *out = def;
    return DT_OK;
  }
  if (json_is_null(v)) {
    *out = 0;
    return DT_OK;
  }
  DT_CHECK(json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= INT_MAX,
           DT_EINPUT, "%s: field %s must be a positive integer or null, got %s", p, key,
           show(v, b, sizeof b));
  *out = (int)json_integer_value(v);
  return DT_OK;
}

/* rope_theta at top level (older files) or under rope_parameters (only the
 * default rope type), no rope_scaling: the LLaMA-like families' rotary
 * embeddings. */
static int read_rope(dt_config *c, json_t *r, const char *p) {
  double x;
  json_t *rp = json_object_get(r, "rope_parameters");
  char b[96];
  if (rp && !json_is_null(rp)) {
    DT_CHECK(json_is_object(rp), DT_EINPUT,
             "%s: field rope_parameters must be an object, got %s", p,
             show(rp, b, sizeof b));
    const char *rt;
    DT_CALL(get_str(rp, p, "rope_type", "default", &rt));
    DT_CHECK(strcmp(rt, "default") == 0, DT_EINPUT,
             "%s: field rope_parameters.rope_type = \"%s\" is not supported "
             "(only default)",
             p, rt);
  }
  json_t *top = json_object_get(r, "rope_theta");
  if (top && !json_is_null(top)) {
    DT_CALL(get_num(r, p, "rope_theta", 10000.0, &x));
  } else if (rp && json_object_get(rp, "rope_theta")) {
    json_t *v = json_object_get(rp, "rope_theta");
    DT_CHECK(json_is_number(v), DT_EINPUT,
             "%s: field rope_parameters.rope_theta must be a number, got %s", p,
             show(v, b, sizeof b));
    x = json_number_value(v);
  } else {
    x = 10000.0;
  }
  c->rope_theta = (float)x;
  json_t *rs = json_object_get(r, "rope_scaling");
  DT_CHECK(!rs || json_is_null(rs), DT_EINPUT,
           "%s: field rope_scaling = %s is not supported", p,
           show(rs, b, sizeof b));
  return DT_OK;
}

/* LLaMA and the families built on its block: qwen2 (q/k/v biases), mistral
 * (a sliding attention window). */
static int load_llama(dt_config *c, json_t *r, const char *p,
                      const char *type) {
  const int qwen2 = strcmp(type, "qwen2") == 0, mistral = strcmp(type, "mistral") == 0;
  c->arch = qwen2 ? DT_ARCH_QWEN2 : mistral ? DT_ARCH_MISTRAL : DT_ARCH_LLAMA;
  DT_CALL(get_int(r, p, "num_hidden_layers", 1, 0, &c->n_layer));
  DT_CALL(get_int(r, p, "hidden_size", 1, 0, &c->d_model));
  DT_CALL(get_int(r, p, "num_attention_heads", 1, 0, &c->n_head));
  DT_CALL(get_int(r, p, "num_key_value_heads", 0, c->n_head, &c->n_kv_head));
  DT_CALL(get_int(r, p, "head_dim", 0, c->d_model / c->n_head, &c->head_dim));
  DT_CALL(get_int(r, p, "intermediate_size", 1, 0, &c->d_ffn));
  DT_CALL(get_int(r, p, "vocab_size", 1, 0, &c->vocab));
  DT_CALL(get_int(r, p, "max_position_embeddings", 1, 0, &c->n_ctx));
  double x;
  DT_CALL(get_num(r, p, "rms_norm_eps", 1e-6, &x));
  c->norm_eps = (float)x;
  DT_CALL(read_rope(c, r, p));
  char b[96];

  const char *act;
  DT_CALL(get_str(r, p, "hidden_act", "silu", &act));
  DT_CHECK(strcmp(act, "silu") == 0, DT_EINPUT,
           "%s: field hidden_act = \"%s\" is not supported (supported: silu)",
           p, act);
  int flag;
  if (!qwen2) { /* Qwen2's q/k/v biases are not a config key */
    DT_CALL(get_bool(r, p, "attention_bias", 0, &flag));
    DT_CHECK(!flag, DT_EINPUT, "%s: field attention_bias = true is not supported",
             p);
    DT_CALL(get_bool(r, p, "mlp_bias", 0, &flag));
    DT_CHECK(!flag, DT_EINPUT, "%s: field mlp_bias = true is not supported", p);
  }
  if (mistral) {
    /* MistralConfig's default window is 4096; null: full causal attention */
    DT_CALL(get_window(r, p, "sliding_window", 4096, &c->sliding_window));
  }
  if (qwen2) {
    /* Qwen2 slides a window only over the layers from max_window_layers on,
     * when use_sliding_window is set: refused, not ignored */
    DT_CALL(get_bool(r, p, "use_sliding_window", 0, &flag));
    DT_CHECK(!flag, DT_EINPUT,
             "%s: field use_sliding_window = true is not supported (Qwen2's "
             "per-layer sliding window)",
             p);
    json_t *lt = json_object_get(r, "layer_types");
    if (lt && json_is_array(lt)) {
      size_t i;
      json_t *e;
      json_array_foreach(lt, i, e) {
        DT_CHECK(json_is_string(e) && !strcmp(json_string_value(e), "full_attention"),
                 DT_EINPUT,
                 "%s: field layer_types[%zu] = %s is not supported (only "
                 "full_attention)",
                 p, i, show(e, b, sizeof b));
      }
    }
    c->qkv_bias = 1;
  }
  DT_CALL(get_bool(r, p, "tie_word_embeddings", 0, &c->tied_head));
  c->has_bias = 0;
  return DT_OK;
}

/* Gemma and Gemma-2: LLaMA's tensors with a tied head, RMSNorm by 1 + w,
 * scaled embeddings and GeGLU; Gemma-2 adds the post norms, soft-capping,
 * query_pre_attn_scalar and a sliding window in alternate layers. What
 * changes the arithmetic and is not implemented is refused: another
 * activation, attention biases, bidirectional attention, layer types other
 * than the alternation sliding, full, sliding, ... (or all full). */
static int load_gemma(dt_config *c, json_t *r, const char *p, int v2) {
  c->arch = v2 ? DT_ARCH_GEMMA2 : DT_ARCH_GEMMA;
  DT_CALL(get_int(r, p, "num_hidden_layers", 1, 0, &c->n_layer));
  DT_CALL(get_int(r, p, "hidden_size", 1, 0, &c->d_model));
  DT_CALL(get_int(r, p, "num_attention_heads", 1, 0, &c->n_head));
  DT_CALL(get_int(r, p, "num_key_value_heads", 0, c->n_head, &c->n_kv_head));
  DT_CALL(get_int(r, p, "head_dim", 0, 256, &c->head_dim)); /* GemmaConfig's default */
  DT_CALL(get_int(r, p, "intermediate_size", 1, 0, &c->d_ffn));
  DT_CALL(get_int(r, p, "vocab_size", 1, 0, &c->vocab));
  DT_CALL(get_int(r, p, "max_position_embeddings", 1, 0, &c->n_ctx));
  double x;
  DT_CALL(get_num(r, p, "rms_norm_eps", 1e-6, &x));
  c->norm_eps = (float)x;
  DT_CALL(read_rope(c, r, p));
  /* the MLP's activation: hidden_activation where the file sets it (the
   * hub's Gemma files: gelu_pytorch_tanh beside hidden_act "gelu"), else
   * hidden_act; only the tanh GELU is implemented */
  const char *act, *key = "hidden_activation";
  DT_CALL(get_str(r, p, key, NULL, &act));
  if (!act) DT_CALL(get_str(r, p, key = "hidden_act", "gelu_pytorch_tanh", &act));
  DT_CHECK(strcmp(act, "gelu_pytorch_tanh") == 0 || strcmp(act, "gelu_new") == 0, DT_EINPUT,
           "%s: field %s = \"%s\" is not supported (supported: gelu_pytorch_tanh, "
           "gelu_new)",
           p, key, act);
  int flag;
  DT_CALL(get_bool(r, p, "attention_bias", 0, &flag));
  DT_CHECK(!flag, DT_EINPUT, "%s: field attention_bias = true is not supported", p);
  DT_CALL(get_bool(r, p, "use_bidirectional_attention", 0, &flag));
  DT_CHECK(!flag, DT_EINPUT, "%s: field use_bidirectional_attention = true is not supported",
           p);
  DT_CALL(get_bool(r, p, "tie_word_embeddings", 1, &c->tied_head));
  c->has_bias = 0;
  if (!v2) return DT_OK;
  /* Gemma2Config's defaults: 256, 50, 30, 4096 */
  DT_CALL(get_num(r, p, "query_pre_attn_scalar", 256.0, &x));
  char b[96];
  DT_CHECK(isfinite(x) && x > 0, DT_EINPUT,
           "%s: field query_pre_attn_scalar = %g must be a positive number", p, x);
  c->attn_scalar = (float)x;
  const struct {
    const char *key;
    float *to;
  } caps[] = {{"attn_logit_softcapping", &c->attn_softcap},
              {"final_logit_softcapping", &c->final_softcap}};
  for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
    json_t *v = json_object_get(r, caps[i].key);
    x = !v ? (i == 0 ? 50.0 : 30.0) : json_is_null(v) ? 0.0 : -1.0; /* null: no capping */
    if (v && !json_is_null(v)) {
      DT_CHECK(json_is_number(v) && json_number_value(v) > 0 && isfinite(json_number_value(v)),
               DT_EINPUT, "%s: field %s must be a positive number or null, got %s", p,
               caps[i].key, show(v, b, sizeof b));
      x = json_number_value(v);
    }
    *caps[i].to = (float)x;
  }
  DT_CALL(get_window(r, p, "sliding_window", 4096, &c->sliding_window));
  /* layer_types (absent: Gemma2Config's sliding for even layers, full for
   * odd): that alternation, or full attention everywhere */
  c->window_alternate = 1;
  json_t *lt = json_object_get(r, "layer_types");
  if (lt && !json_is_null(lt)) {
    DT_CHECK(json_is_array(lt) && (int)json_array_size(lt) == c->n_layer, DT_EINPUT,
             "%s: field layer_types must be a list of num_hidden_layers = %d strings, got %s", p,
             c->n_layer, show(lt, b, sizeof b));
    int n_full = 0;
    size_t i;
    json_t *e;
    json_array_foreach(lt, i, e) {
      const char *t = json_is_string(e) ? json_string_value(e) : "";
      n_full += strcmp(t, "full_attention") == 0;
      DT_CHECK(!strcmp(t, i % 2 ? "full_attention" : "sliding_attention") ||
                   !strcmp(t, "full_attention"),
               DT_EINPUT,
               "%s: field layer_types[%zu] = %s is not supported (supported: "
               "sliding_attention in even layers and full_attention in odd ones, or "
               "full_attention everywhere)",
               p, i, show(e, b, sizeof b));
    }
    DT_CHECK(n_full == c->n_layer || n_full == c->n_layer / 2, DT_EINPUT,
             "%s: field layer_types mixes the alternation with full layers (%d of %d "
             "full_attention); supported: sliding_attention in even layers and "
             "full_attention in odd ones, or full_attention everywhere",
             p, n_full, c->n_layer);
    if (n_full == c->n_layer) c->window_alternate = 0, c->sliding_window = 0;
  }
  return DT_OK;
}

int dt_hf_config_load(dt_config *c, const char *dir) {
  memset(c, 0, sizeof *c);
  DT_CHECK(strlen(dir) < sizeof c->source, DT_EINPUT,
           "model folder path is too long (%zu characters, at most %zu): %s",
           strlen(dir), sizeof c->source - 1, dir);
  char path[4096];
  DT_CHECK((size_t)snprintf(path, sizeof path, "%s/config.json", dir) <
               sizeof path,
           DT_EINPUT, "model folder path is too long: %s", dir);
  json_error_t jerr;
  json_t *r = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!r) {
    FILE *probe = fopen(path, "r");
    if (!probe)
      DT_ERR(DT_EINPUT, "%s: cannot open model config: %s", path,
             strerror(errno));
    fclose(probe);
    DT_ERR(DT_EINPUT, "%s: not valid JSON (%s at line %d, column %d)", path,
           jerr.text, jerr.line, jerr.column);
  }
  int rc = DT_OK;
  if (!json_is_object(r)) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: not a JSON object", path);
    goto done;
  }
  const char *type = NULL;
  if ((rc = get_str(r, path, "model_type", NULL, &type)) != DT_OK) goto done;
  if (!type) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: required field model_type is missing (supported: "
                      "gpt2, llama, qwen2, mistral, opt, gpt_neox, gemma, gemma2, bloom, falcon)",
                      path);
    goto done;
  }
  snprintf(c->source, sizeof c->source, "%s", dir);
  if (strcmp(type, "gpt2") == 0)
    rc = load_gpt2(c, r, path);
  else if (strcmp(type, "llama") == 0 || strcmp(type, "mistral") == 0 ||
           strcmp(type, "qwen2") == 0)
    rc = load_llama(c, r, path, type);
  else if (strcmp(type, "opt") == 0)
    rc = load_opt(c, r, path);
  else if (strcmp(type, "gpt_neox") == 0)
    rc = load_neox(c, r, path);
  else if (strcmp(type, "gemma") == 0 || strcmp(type, "gemma2") == 0)
    rc = load_gemma(c, r, path, strcmp(type, "gemma2") == 0);
  else if (strcmp(type, "bloom") == 0)
    rc = load_bloom(c, r, path);
  else if (strcmp(type, "falcon") == 0)
    rc = load_falcon(c, r, path);
  else
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: field model_type = \"%s\" is not supported "
                      "(supported: gpt2, llama, qwen2, mistral, opt, gpt_neox, gemma, gemma2, bloom, "
                      "falcon)",
                      path, type);
  if (rc == DT_OK) rc = validate(c, DT_EINPUT, path);
done:
  json_decref(r);
  if (rc != DT_OK) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* ------------------------------------------------------------ synthetic */

enum { K_LAYERS, K_D, K_HEADS, K_KV, K_FFN, K_VOCAB, K_CTX, K_HEAD_DIM, K_THETA, K_WINDOW,
       K_QSCALAR, K_N };
static const char *const k_keys[K_N] = {"layers", "d",        "heads",
                                        "kv_heads", "ffn",    "vocab",
                                        "ctx",    "head_dim", "theta", "window",
                                        "attn_scalar"};

typedef struct {
  const char *name;
  dt_arch arch;
  /* 0 = derived after overrides (ffn, kv_heads, head_dim). */
  long v[K_N];
} preset;

/* Family bases (named as the family) derive ffn/kv_heads/head_dim from the
 * final values; presets fix the shapes they name exactly. The shapes of the
 * real models are those of their config.json on the Hugging Face hub
 * (docs/usage.md lists the parameter counts `plan` prints for them). */
static const preset k_presets[] = {
    {"gpt2", DT_ARCH_GPT2, {12, 768, 12, 0, 0, 50257, 1024, 0, 0}},
    {"llama", DT_ARCH_LLAMA, {32, 4096, 32, 0, 0, 32000, 4096, 0, 10000}},
    /* Qwen2Config's and MistralConfig's sizes; the FFN and kv heads derived
     * as LLaMA's (their presets below fix them) */
    {"qwen2", DT_ARCH_QWEN2, {32, 4096, 32, 0, 0, 151936, 32768, 0, 10000, 0}},
    {"mistral", DT_ARCH_MISTRAL, {32, 4096, 32, 0, 0, 32000, 32768, 0, 10000, 4096}},
    {"gpt2-small", DT_ARCH_GPT2, {12, 768, 12, 0, 3072, 50257, 1024, 0, 0}},
    {"gpt2-medium", DT_ARCH_GPT2, {24, 1024, 16, 0, 4096, 50257, 1024, 0, 0}},
    {"gpt2-xl", DT_ARCH_GPT2, {48, 1600, 25, 0, 6400, 50257, 1024, 0, 0}},
    {"gpt3-175b", DT_ARCH_GPT2, {96, 12288, 96, 0, 49152, 50257, 2048, 0, 0}},
    {"opt", DT_ARCH_OPT, {12, 768, 12, 0, 0, 50272, 2048, 0, 0}}, /* OPTConfig's */
    {"opt-13b", DT_ARCH_OPT, {40, 5120, 40, 0, 20480, 50272, 2048, 0, 0}},
    {"opt-30b", DT_ARCH_OPT, {48, 7168, 56, 0, 28672, 50272, 2048, 0, 0}},
    {"opt-66b", DT_ARCH_OPT, {64, 9216, 72, 0, 36864, 50272, 2048, 0, 0}},
    {"opt-175b", DT_ARCH_OPT, {96, 12288, 96, 0, 49152, 50272, 2048, 0, 0}},
    /* GPTNeoXConfig's sizes; EleutherAI's gpt-neox-20b and pythia-12b */
    {"gpt_neox", DT_ARCH_GPT_NEOX, {44, 6144, 64, 0, 0, 50432, 2048, 0, 10000}},
    {"gpt-neox-20b", DT_ARCH_GPT_NEOX, {44, 6144, 64, 0, 24576, 50432, 2048, 0, 10000}},
    {"pythia-12b", DT_ARCH_GPT_NEOX, {36, 5120, 40, 0, 20480, 50688, 2048, 0, 10000}},
    /* FalconConfig's sizes; tiiuae's falcon-40b and falcon-180B (the new
     * decoder architecture: 8 key/value groups, no linear biases, an lm_head
     * of its own) */
    {"falcon", DT_ARCH_FALCON, {32, 4544, 71, 0, 0, 65024, 2048, 0, 10000}},
    {"falcon-40b", DT_ARCH_FALCON, {60, 8192, 128, 8, 32768, 65024, 2048, 0, 10000}},
    {"falcon-180b", DT_ARCH_FALCON, {80, 14848, 232, 8, 59392, 65024, 2048, 0, 10000}},
    /* BloomConfig's sizes; BigScience's bloom (176B) and bloom-7b1 */
    {"bloom", DT_ARCH_BLOOM, {2, 64, 8, 0, 0, 250880, 2048, 0, 0}},
    {"bloom-7b1", DT_ARCH_BLOOM, {30, 4096, 32, 0, 16384, 250880, 2048, 0, 0}},
    {"bloom-176b", DT_ARCH_BLOOM, {70, 14336, 112, 0, 57344, 250880, 2048, 0, 0}},
    {"llama2-7b", DT_ARCH_LLAMA, {32, 4096, 32, 0, 11008, 32000, 4096, 0, 10000}},
    {"llama2-13b", DT_ARCH_LLAMA, {40, 5120, 40, 0, 13824, 32000, 4096, 0, 10000}},
    {"llama2-70b", DT_ARCH_LLAMA, {80, 8192, 64, 8, 28672, 32000, 4096, 0, 10000}},
    {"qwen2.5-14b", DT_ARCH_QWEN2, {48, 5120, 40, 8, 13824, 152064, 131072, 0, 1000000, 0}},
    {"qwen2.5-32b", DT_ARCH_QWEN2, {64, 5120, 40, 8, 27648, 152064, 131072, 0, 1000000, 0}},
    {"qwen2.5-72b", DT_ARCH_QWEN2, {80, 8192, 64, 8, 29568, 152064, 131072, 0, 1000000, 0}},
    {"mistral-7b", DT_ARCH_MISTRAL, {32, 4096, 32, 8, 14336, 32000, 32768, 0, 10000, 4096}},
    /* GemmaConfig's defaults are Gemma-7B's; Gemma2Config's Gemma-2-2B's */
    {"gemma", DT_ARCH_GEMMA, {28, 3072, 16, 0, 24576, 256000, 8192, 256, 10000}},
    {"gemma-7b", DT_ARCH_GEMMA, {28, 3072, 16, 16, 24576, 256000, 8192, 256, 10000}},
    {"gemma2", DT_ARCH_GEMMA2, {26, 2304, 8, 4, 9216, 256000, 8192, 256, 10000, 4096, 256}},
    {"gemma2-9b", DT_ARCH_GEMMA2, {42, 3584, 16, 8, 14336, 256000, 8192, 256, 10000, 4096, 256}},
    {"gemma2-27b", DT_ARCH_GEMMA2, {46, 4608, 32, 16, 36864, 256000, 8192, 128, 10000, 4096, 144}},
};
#define N_PRESETS ((int)(sizeof k_presets / sizeof k_presets[0]))

static const char *preset_list(void) {
  static char buf[1024];
  if (!buf[0]) {
    size_t n = 0;
    for (int i = 0; i < N_PRESETS; i++)
      n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "",
                            k_presets[i].name);
  }
  return buf;
}

/* kv_heads and head_dim where the family has them free, theta with rotary
 * positions, window where the family has a sliding window */
static int key_allowed(dt_arch a, int k) {
  const dt_arch_desc *d = dt_arch_get(a);
  if (k == K_KV || k == K_HEAD_DIM) return d->grouped_kv;
  if (k == K_THETA) return d->pos == DT_POS_ROPE;
  if (k == K_WINDOW) return d->sliding_window;
  if (k == K_QSCALAR) return d->post_norms; /* Gemma-2's query_pre_attn_scalar */
  return 1;
}

static const char *key_list(dt_arch a) {
  static char buf[128];
  size_t n = 0;
  buf[0] = 0;
  for (int k = 0; k < K_N; k++)
    if (key_allowed(a, k))
      n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? ", " : "", k_keys[k]);
  return buf;
}

int dt_synthetic_config_parse(dt_config *c, const char *spec) {
  memset(c, 0, sizeof *c);
  static const char prefix[] = "synthetic:";
  DT_CHECK(spec && strncmp(spec, prefix, sizeof prefix - 1) == 0, DT_EUSAGE,
           "model spec '%s' does not start with 'synthetic:'",
           spec ? spec : "(null)");
  DT_CHECK(strlen(spec) < sizeof c->source, DT_EUSAGE,
           "synthetic model spec is too long (%zu characters, at most %zu)",
           strlen(spec), sizeof c->source - 1);
  char buf[sizeof c->source];
  snprintf(buf, sizeof buf, "%s", spec + sizeof prefix - 1);
  char *name = buf;
  char *args = strchr(buf, ':');
  if (args) *args++ = 0;

  const preset *p = NULL;
  for (int i = 0; i < N_PRESETS && !p; i++)
    if (strcmp(k_presets[i].name, name) == 0) p = &k_presets[i];
  DT_CHECK(p != NULL, DT_EUSAGE,
           "%s: unknown synthetic model '%s' (families: gpt2, llama, qwen2, "
           "mistral, opt, gpt_neox, gemma, gemma2, bloom, falcon; presets: %s)",
           spec, name, preset_list());

  long v[K_N];
  memcpy(v, p->v, sizeof v);
  int given[K_N] = {0};
  double theta = (double)v[K_THETA];

  if (args && *args) {
    char *save = NULL;
    for (char *item = strtok_r(args, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
      char *eq = strchr(item, '=');
      DT_CHECK(eq != NULL, DT_EUSAGE,
               "%s: '%s' is not key=value (keys for %s: %s)", spec, item,
               arch_name(p->arch), key_list(p->arch));
      *eq = 0;
      const char *key = item, *val = eq + 1;
      int k = -1;
      for (int i = 0; i < K_N && k < 0; i++)
        if (strcmp(k_keys[i], key) == 0) k = i;
      DT_CHECK(k >= 0 && key_allowed(p->arch, k), DT_EUSAGE,
               "%s: unknown key '%s' (value '%s'); allowed for %s: %s", spec,
               key, val, arch_name(p->arch), key_list(p->arch));
      DT_CHECK(!given[k], DT_EUSAGE, "%s: key '%s' given twice", spec, key);
      given[k] = 1;
      char *end = NULL;
      errno = 0;
      if (k == K_THETA) {
        double t = strtod(val, &end);
        DT_CHECK(*val && end && *end == 0 && errno == 0 && isfinite(t) && t > 0,
                 DT_EUSAGE,
                 "%s: key '%s' has value '%s', expected a positive number",
                 spec, key, val);
        theta = t;
      } else {
        long long x = strtoll(val, &end, 10);
        DT_CHECK(*val && end && *end == 0 && errno == 0 && x > 0 && x <= INT_MAX,
                 DT_EUSAGE,
                 "%s: key '%s' has value '%s', expected a positive integer",
                 spec, key, val);
        v[k] = (long)x;
      }
    }
  }

  c->arch = p->arch;
  c->n_layer = (int)v[K_LAYERS];
  c->d_model = (int)v[K_D];
  c->n_head = (int)v[K_HEADS];
  c->vocab = (int)v[K_VOCAB];
  c->n_ctx = (int)v[K_CTX];
  const dt_arch_desc *a = dt_arch_get(p->arch);
  if (a->ffn_rule == DT_FFN_4D) {
    DT_CHECK(c->d_model <= INT_MAX / 4, DT_EUSAGE, "%s: d = %d is too large",
             spec, c->d_model);
    c->d_ffn = v[K_FFN] ? (int)v[K_FFN] : 4 * c->d_model;
  } else {
    /* LLaMA's FFN rule: 2/3 of 4d, rounded up to a multiple of 256. */
    int64_t ffn = ((int64_t)8 * c->d_model / 3 + 255) / 256 * 256;
    DT_CHECK(v[K_FFN] || ffn <= INT_MAX, DT_EUSAGE, "%s: d = %d is too large",
             spec, c->d_model);
    c->d_ffn = v[K_FFN] ? (int)v[K_FFN] : (int)ffn;
  }
  /* kv_heads and head_dim are keys only where the family has them free */
  c->n_kv_head = v[K_KV] ? (int)v[K_KV] : c->n_head;
  c->head_dim = v[K_HEAD_DIM] ? (int)v[K_HEAD_DIM] : c->d_model / c->n_head;
  c->norm_eps = a->norm_eps;
  c->rope_theta = a->pos == DT_POS_ROPE ? (float)theta : 0;
  c->tied_head = a->tied_head;
  c->has_bias = a->has_bias;
  c->qkv_bias = a->qkv_bias;
  c->sliding_window = a->sliding_window ? (int)v[K_WINDOW] : 0;
  c->parallel_residual = a->parallel_residual;
  c->no_linear_bias = a->no_linear_bias;
  /* the family's rotary share of a head (GPT-NeoX: int(head_dim * 0.25)),
   * even and at least 2 */
  if (a->rope_pct > 0 && a->pos == DT_POS_ROPE && c->head_dim > 0) {
    const int rd = (int)((double)c->head_dim * (double)a->rope_pct) & ~1;
    c->rope_dim = rd >= 2 ? rd : 2;
  }
  c->window_alternate = a->window_alternate;
  c->attn_scalar = (float)v[K_QSCALAR];
  c->attn_softcap = a->attn_softcap;
  c->final_softcap = a->final_softcap;
  snprintf(c->source, sizeof c->source, "%s", spec);
  int rc = validate(c, DT_EUSAGE, NULL);
  if (rc != DT_OK) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
