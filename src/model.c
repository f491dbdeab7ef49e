/* Backbone weights: allocation, the HF name table, loading from safetensors
 * or synthetic generation, gradients for trainable backbone tensors. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rng.h"
#include "safetensors.h"

static int alloc_mat(dt_mat *a, int rows, int cols, int bf16, const char *what) {
  a->rows = rows;
  a->cols = cols;
  size_t n = (size_t)rows * cols;
  if (bf16) DT_CALL(dt_alloc_aligned(&a->w16, n * sizeof(uint16_t), what));
  else DT_CALL(dt_alloc_aligned(&a->w, n * sizeof(float), what));
  return DT_OK;
}

static int alloc_vec(dt_vec *v, int n, const char *what) {
  v->n = n;
  DT_CALL(dt_alloc_aligned(&v->v, (size_t)n * sizeof(float), what));
  return DT_OK;
}

static int alloc_weights(dt_model *m) {
  const dt_config *c = &m->cfg;
  const int d = c->d_model, bf = m->weights_bf16;
  DT_CALL(alloc_mat(&m->wte, c->vocab, d, bf, "token embedding"));
  if (c->arch == DT_ARCH_GPT2)
    DT_CALL(alloc_mat(&m->wpe, c->n_ctx, d, 0, "position embedding"));
  DT_CALL(alloc_vec(&m->lnf_w, d, "final norm"));
  if (c->has_bias) DT_CALL(alloc_vec(&m->lnf_b, d, "final norm bias"));
  if (c->tied_head) m->lm_head = m->wte;
  else DT_CALL(alloc_mat(&m->lm_head, c->vocab, d, bf, "lm_head"));
  DT_CALL(dt_calloc(&m->layers, sizeof(dt_layer) * c->n_layer, "layers"));
  const int out[DT_N_SITES] = {dt_cfg_qkv_dim(c), d, dt_cfg_fc_dim(c), d};
  const int in[DT_N_SITES] = {d, dt_cfg_q_dim(c), d, c->d_ffn};
  for (int l = 0; l < c->n_layer; l++) {
    dt_layer *L = &m->layers[l];
    DT_CALL(alloc_vec(&L->ln1_w, d, "norm"));
    DT_CALL(alloc_vec(&L->ln2_w, d, "norm"));
    if (c->has_bias) {
      DT_CALL(alloc_vec(&L->ln1_b, d, "norm bias"));
      DT_CALL(alloc_vec(&L->ln2_b, d, "norm bias"));
    }
    for (int s = 0; s < DT_N_SITES; s++) {
      DT_CALL(alloc_mat(&L->lin[s], out[s], in[s], bf, "block matrix"));
      if (c->has_bias) DT_CALL(alloc_vec(&L->bias[s], out[s], "bias"));
    }
  }
  return DT_OK;
}

/* --- the name table ------------------------------------------------------ */

static void add_ref(dt_tensor_ref *r, int *n, const char *name, int layer,
                    dt_mat *mat, dt_vec *vec, int64_t offset, int64_t rows,
                    int64_t cols, int transposed) {
  dt_tensor_ref *e = &r[(*n)++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  e->layer = layer;
  e->mat = mat;
  e->vec = vec;
  e->offset = offset;
  e->transposed = transposed;
  if (mat) {
    e->ndim = 2;
    e->shape[0] = transposed ? cols : rows;
    e->shape[1] = transposed ? rows : cols;
    e->numel = rows * cols;
    e->is_matrix = layer >= 0;
  } else {
    e->ndim = 1;
    e->shape[0] = vec->n;
    e->numel = vec->n;
  }
  size_t len = strlen(name);
  e->is_bias = len > 5 && strcmp(name + len - 5, ".bias") == 0;
}

int dt_model_tensors(dt_model *m, dt_tensor_ref **refs, int *n) {
  const dt_config *c = &m->cfg;
  int cap = 8 + 16 * c->n_layer, k = 0;
  dt_tensor_ref *r;
  DT_CALL(dt_calloc(&r, sizeof *r * cap, "tensor table"));
  char nm[128];
  const int d = c->d_model;
  if (c->arch == DT_ARCH_GPT2) {
    add_ref(r, &k, "transformer.wte.weight", -1, &m->wte, NULL, 0, c->vocab, d, 0);
    add_ref(r, &k, "transformer.wpe.weight", -1, &m->wpe, NULL, 0, c->n_ctx, d, 0);
    static const char *lin_names[DT_N_SITES] = {"attn.c_attn", "attn.c_proj",
                                                "mlp.c_fc", "mlp.c_proj"};
    for (int l = 0; l < c->n_layer; l++) {
      dt_layer *L = &m->layers[l];
#define NAME(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
      add_ref(r, &k, NAME("transformer.h.%d.ln_1.weight", l), l, NULL, &L->ln1_w, 0, 0, 0, 0);
      add_ref(r, &k, NAME("transformer.h.%d.ln_1.bias", l), l, NULL, &L->ln1_b, 0, 0, 0, 0);
      for (int s = 0; s < DT_N_SITES; s++) {
        if (s == DT_SITE_FC) {
          add_ref(r, &k, NAME("transformer.h.%d.ln_2.weight", l), l, NULL, &L->ln2_w, 0, 0, 0, 0);
          add_ref(r, &k, NAME("transformer.h.%d.ln_2.bias", l), l, NULL, &L->ln2_b, 0, 0, 0, 0);
        }
        add_ref(r, &k, NAME("transformer.h.%d.%s.weight", l, lin_names[s]), l,
                &L->lin[s], NULL, 0, L->lin[s].rows, L->lin[s].cols, 1);
        add_ref(r, &k, NAME("transformer.h.%d.%s.bias", l, lin_names[s]), l,
                NULL, &L->bias[s], 0, 0, 0, 0);
      }
    }
    add_ref(r, &k, "transformer.ln_f.weight", -1, NULL, &m->lnf_w, 0, 0, 0, 0);
    add_ref(r, &k, "transformer.ln_f.bias", -1, NULL, &m->lnf_b, 0, 0, 0, 0);
  } else {
    const int qd = dt_cfg_q_dim(c), kvd = dt_cfg_kv_dim(c), F = c->d_ffn;
    add_ref(r, &k, "model.embed_tokens.weight", -1, &m->wte, NULL, 0, c->vocab, d, 0);
    for (int l = 0; l < c->n_layer; l++) {
      dt_layer *L = &m->layers[l];
      dt_mat *qkv = &L->lin[DT_SITE_QKV], *fc = &L->lin[DT_SITE_FC];
      add_ref(r, &k, NAME("model.layers.%d.self_attn.q_proj.weight", l), l, qkv, NULL, 0, qd, d, 0);
      add_ref(r, &k, NAME("model.layers.%d.self_attn.k_proj.weight", l), l, qkv, NULL, (int64_t)qd * d, kvd, d, 0);
      add_ref(r, &k, NAME("model.layers.%d.self_attn.v_proj.weight", l), l, qkv, NULL, (int64_t)(qd + kvd) * d, kvd, d, 0);
      add_ref(r, &k, NAME("model.layers.%d.self_attn.o_proj.weight", l), l, &L->lin[DT_SITE_ATTN_OUT], NULL, 0, d, qd, 0);
      add_ref(r, &k, NAME("model.layers.%d.mlp.gate_proj.weight", l), l, fc, NULL, 0, F, d, 0);
      add_ref(r, &k, NAME("model.layers.%d.mlp.up_proj.weight", l), l, fc, NULL, (int64_t)F * d, F, d, 0);
      add_ref(r, &k, NAME("model.layers.%d.mlp.down_proj.weight", l), l, &L->lin[DT_SITE_PROJ], NULL, 0, d, F, 0);
      add_ref(r, &k, NAME("model.layers.%d.input_layernorm.weight", l), l, NULL, &L->ln1_w, 0, 0, 0, 0);
      add_ref(r, &k, NAME("model.layers.%d.post_attention_layernorm.weight", l), l, NULL, &L->ln2_w, 0, 0, 0, 0);
#undef NAME
    }
    add_ref(r, &k, "model.norm.weight", -1, NULL, &m->lnf_w, 0, 0, 0, 0);
    if (!c->tied_head)
      add_ref(r, &k, "lm_head.weight", -1, &m->lm_head, NULL, 0, c->vocab, d, 0);
  }
  *refs = r;
  *n = k;
  return DT_OK;
}

/* --- loading ------------------------------------------------------------- */

/* Read one HF tensor into its storage (transposing Conv1D weights). */
static int load_ref(const dt_tensor_ref *r, const dt_st_set *set) {
  const dt_st_file *f;
  const dt_st_tensor *t = dt_st_set_find(set, r->name, &f);
  DT_CHECK(t, DT_EINPUT, "%s: tensor '%s' is missing from the checkpoint",
           set->dir, r->name);
  int ok = t->ndim == r->ndim;
  for (int i = 0; ok && i < r->ndim; i++) ok = t->shape[i] == r->shape[i];
  DT_CHECK(ok, DT_EINPUT,
           "%s: tensor '%s' has shape [%lld%s%lld], config.json implies [%lld%s%lld]",
           f->path, r->name, (long long)t->shape[0], t->ndim > 1 ? "," : "",
           t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)r->shape[0],
           r->ndim > 1 ? "," : "", r->ndim > 1 ? (long long)r->shape[1] : 0LL);
  DT_CHECK(t->dtype == DT_DTYPE_F32 || t->dtype == DT_DTYPE_BF16 ||
               t->dtype == DT_DTYPE_F16,
           DT_EINPUT, "%s: tensor '%s' has dtype %s; expected F32, BF16 or F16",
           f->path, r->name, dt_dtype_name(t->dtype));
  if (r->vec) {
    DT_CALL(dt_st_read_f32(f, t, 0, r->numel, r->vec->v));
    return DT_OK;
  }
  dt_mat *a = r->mat;
  if (!r->transposed) {
    if (a->w) DT_CALL(dt_st_read_f32(f, t, 0, r->numel, a->w + r->offset));
    else DT_CALL(dt_st_read_bf16(f, t, 0, r->numel, a->w16 + r->offset));
    return DT_OK;
  }
  /* HF [in, out] -> storage [out, in] */
  float *tmp;
  DT_CALL(dt_malloc(&tmp, sizeof(float) * r->numel, r->name));
  int rc = dt_st_read_f32(f, t, 0, r->numel, tmp);
  if (rc) {
    free(tmp);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  const int64_t in = r->shape[0], out = r->shape[1];
  for (int64_t i = 0; i < in; i++)
    for (int64_t o = 0; o < out; o++) {
      float v = tmp[i * out + o];
      if (a->w) a->w[r->offset + o * in + i] = v;
      else a->w16[r->offset + o * in + i] = dt_f32_to_bf16(v);
    }
  free(tmp);
  return DT_OK;
}

static int load_hf(dt_model *m, const char *dir) {
  dt_st_set set;
  DT_CALL(dt_st_set_open(&set, dir));
  dt_tensor_ref *refs;
  int n, rc = dt_model_tensors(m, &refs, &n);
  for (int i = 0; rc == DT_OK && i < n; i++) rc = load_ref(&refs[i], &set);
  free(refs);
  dt_st_set_close(&set);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* Seeded weights: N(0, 0.02) matrices, ones for norm weights, zeros for
 * biases. Each tensor has its own stream, each element its own counter, so a
 * shard can be generated alone. */
static int init_synthetic(dt_model *m, uint64_t seed) {
  dt_tensor_ref *refs;
  int n;
  DT_CALL(dt_model_tensors(m, &refs, &n));
  for (int i = 0; i < n; i++) {
    dt_tensor_ref *r = &refs[i];
    uint64_t key = dt_rng_key(seed, (uint64_t)i);
    if (r->vec) {
      float v = r->is_bias ? 0.0f : 1.0f;
      for (int j = 0; j < r->vec->n; j++) r->vec->v[j] = v;
      continue;
    }
    /* Box-Muller in float, both outputs used: element j takes output j%2
     * of pair j/2, so any slice can still be generated alone. */
    for (int64_t j = 0; j < r->numel; j++) {
      const uint64_t pair = (uint64_t)j >> 1;
      float u1 = (float)dt_rng_uniform(key, 2 * pair), u2 = (float)dt_rng_uniform(key, 2 * pair + 1);
      if (u1 < 1e-30f) u1 = 1e-30f;
      const float rad = sqrtf(-2.0f * logf(u1)), ang = 6.2831853f * u2;
      float v = 0.02f * rad * ((j & 1) ? sinf(ang) : cosf(ang));
      if (r->mat->w) r->mat->w[r->offset + j] = v;
      else r->mat->w16[r->offset + j] = dt_f32_to_bf16(v);
    }
  }
  free(refs);
  return DT_OK;
}

int dt_model_load(dt_model *m, const char *spec, int weights_bf16,
                  uint64_t seed) {
  memset(m, 0, sizeof *m);
  m->weights_bf16 = weights_bf16;
  if (strncmp(spec, "synthetic:", 10) == 0) {
    DT_CALL(dt_synthetic_config_parse(&m->cfg, spec));
    DT_CALL(dt_config_validate(&m->cfg));
    DT_CALL(alloc_weights(m));
    DT_CALL(init_synthetic(m, seed));
  } else {
    DT_CALL(dt_hf_config_load(&m->cfg, spec));
    DT_CALL(alloc_weights(m));
    DT_CALL(load_hf(m, spec));
  }
  return DT_OK;
}

static void free_mat(dt_mat *a) {
  free(a->w);
  free(a->w16);
  free(a->grad);
}

static void free_vec(dt_vec *v) {
  free(v->v);
  free(v->grad);
}

void dt_model_free(dt_model *m) {
  if (!m) return;
  free_mat(&m->wte);
  free_mat(&m->wpe);
  free_vec(&m->lnf_w);
  free_vec(&m->lnf_b);
  if (!m->cfg.tied_head) free_mat(&m->lm_head);
  for (int l = 0; m->layers && l < m->cfg.n_layer; l++) {
    dt_layer *L = &m->layers[l];
    free_vec(&L->ln1_w);
    free_vec(&L->ln1_b);
    free_vec(&L->ln2_w);
    free_vec(&L->ln2_b);
    for (int s = 0; s < DT_N_SITES; s++) {
      free_mat(&L->lin[s]);
      free_vec(&L->bias[s]);
    }
  }
  free(m->layers);
  free(m->arena);
  free(m->acts);
  free(m->hook_ws);
  free(m->scored_rows);
  free(m->x_saved);
  free(m->wscratch);
  free(m->rope_cos);
  free(m->rope_sin);
  free(m->ids);
  free(m->labels);
  free(m->methods);
  memset(m, 0, sizeof *m);
}

int dt_model_require_grad(dt_model *m, const dt_tensor_ref *r, float **data,
                          float **grad) {
  if (r->mat) {
    DT_CHECK(r->mat->w, DT_EUSAGE,
             "tensor '%s' is trained by the chosen method, which needs "
             "--weights-dtype fp32 (frozen bf16 weights cannot be updated)",
             r->name);
    if (!r->mat->grad)
      DT_CALL(dt_alloc_aligned(&r->mat->grad,
                               sizeof(float) * r->mat->rows * r->mat->cols,
                               r->name));
    *data = r->mat->w + r->offset;
    *grad = r->mat->grad + r->offset;
  } else {
    if (!r->vec->grad)
      DT_CALL(dt_alloc_aligned(&r->vec->grad, sizeof(float) * r->vec->n, r->name));
    *data = r->vec->v;
    *grad = r->vec->grad;
  }
  (void)m;
  return DT_OK;
}

static void zero_mat(dt_mat *a) {
  if (a->grad) memset(a->grad, 0, sizeof(float) * a->rows * a->cols);
}
static void zero_vec(dt_vec *v) {
  if (v->grad) memset(v->grad, 0, sizeof(float) * v->n);
}

void dt_model_zero_backbone_grads(dt_model *m) {
  zero_mat(&m->wte);
  zero_mat(&m->wpe);
  zero_vec(&m->lnf_w);
  zero_vec(&m->lnf_b);
  if (!m->cfg.tied_head) zero_mat(&m->lm_head);
  for (int l = 0; l < m->cfg.n_layer; l++) {
    dt_layer *L = &m->layers[l];
    zero_vec(&L->ln1_w);
    zero_vec(&L->ln1_b);
    zero_vec(&L->ln2_w);
    zero_vec(&L->ln2_b);
    for (int s = 0; s < DT_N_SITES; s++) {
      zero_mat(&L->lin[s]);
      zero_vec(&L->bias[s]);
    }
  }
}

int64_t dt_model_param_count(const dt_model *m) {
  const dt_config *c = &m->cfg;
  int64_t d = c->d_model, n = (int64_t)c->vocab * d;
  if (c->arch == DT_ARCH_GPT2) n += (int64_t)c->n_ctx * d;
  if (!c->tied_head) n += (int64_t)c->vocab * d;
  n += d * (c->has_bias ? 2 : 1);
  int64_t per = 0;
  const int out[DT_N_SITES] = {dt_cfg_qkv_dim(c), c->d_model, dt_cfg_fc_dim(c), c->d_model};
  const int in[DT_N_SITES] = {c->d_model, dt_cfg_q_dim(c), c->d_model, c->d_ffn};
  for (int s = 0; s < DT_N_SITES; s++)
    per += (int64_t)out[s] * in[s] + (c->has_bias ? out[s] : 0);
  per += 2 * d * (c->has_bias ? 2 : 1);
  return n + per * c->n_layer;
}

const float *dt_mat_f32(dt_model *m, const dt_mat *a) {
  if (a->w) return a->w;
  size_t n = (size_t)a->rows * a->cols;
  for (size_t i = 0; i < n; i++) m->wscratch[i] = dt_bf16_to_f32(a->w16[i]);
  return m->wscratch;
}

int64_t dt_model_matmul_params(const dt_model *m) {
  const dt_config *c = &m->cfg;
  int64_t per = (int64_t)c->d_model * dt_cfg_qkv_dim(c) +
                (int64_t)dt_cfg_q_dim(c) * c->d_model +
                (int64_t)c->d_model * dt_cfg_fc_dim(c) + (int64_t)c->d_ffn * c->d_model;
  return per * c->n_layer + (int64_t)c->vocab * c->d_model;
}

double dt_model_step_flops(const dt_model *m, int T, double tokens, double scored) {
  const dt_config *c = &m->cfg;
  const double head = (double)c->vocab * c->d_model;
  double per = 4.0 * ((double)dt_model_matmul_params(m) - head);
  per += 3.0 * c->n_layer * 4.0 * (T + 1) / 2.0 * dt_cfg_q_dim(c);
  for (int l = 0; l < c->n_layer; l++)
    for (int s = 0; s < DT_N_SITES; s++)
      if (m->layers[l].lin[s].grad)
        per += 2.0 * (double)m->layers[l].lin[s].rows * m->layers[l].lin[s].cols;
  return per * tokens + 4.0 * head * scored;
}
