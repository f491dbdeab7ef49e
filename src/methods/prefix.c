/* Prefix tuning (Li & Liang 2021, as PEFT): every layer attends to P extra
 * key/value rows that are trained. The table [P, 2*L*pd] holds, for each
 * virtual token, layer l's key (block 2l) then its value (block 2l+1), each
 * [prefix heads, head_dim] (pd = prefix heads * head_dim): one head per
 * key/value head, or per query head where PEFT's prefix of the family has
 * them (Falcon, dt_cfg_prefix_heads). It is either the parameter itself
 * (prompt_encoder.embedding.weight) or, with --prefix-hidden h > 0, the
 * output of the reparameterisation MLP
 *   table = transform.2(tanh(transform.0(embedding)))
 * with embedding [P, pd] (PEFT sizes it by the key/value width, its
 * token_dim). The engine reads per-layer contiguous K, V [P, pd] and
 * accumulates their gradients; we scatter/gather between them and the table. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "method.h"
#include "peft.h"
#include "rng.h"

static const dt_optdef prefix_opts[] = {
    {"prefix-tokens", DT_OPT_INT, "10", 1, 65536, NULL,
     "virtual key/value positions P added to every layer"},
    {"prefix-hidden", DT_OPT_INT, "0", 0, 1048576, NULL,
     "hidden width of the reparameterisation MLP (0 = train the key/values directly)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const dt_optgroup prefix_group = {"prefix", "Prefix tuning (--method prefix)",
                                         prefix_opts};

typedef struct {
  int P, L, pd, W, h; /* W = 2*L*pd */
  /* parameters (one arena) and their grads (same offsets) */
  float *arena, *garena;
  float *emb, *demb;   /* direct: [P, W]; MLP: [P, pd] */
  float *w0, *dw0;     /* [h, pd] */
  float *b0, *db0;     /* [h] */
  float *w2, *dw2;     /* [W, h] */
  float *b2, *db2;     /* [W] */
  /* per-layer key/values and their grads: [L][P*pd] each */
  float *kv, *dkv;     /* k of layer l at 2l*P*pd, v at (2l+1)*P*pd */
  /* MLP scratch */
  float *table;        /* [P, W] */
  float *dtable;       /* [P, W] */
  float *a;            /* [P, h] tanh output */
  float *da;           /* [P, h] */
} prefix_state;

static int prefix_create(dt_method *me, const dt_options *opt, dt_model *m,
                         dt_params *params, uint64_t seed) {
  const dt_config *c = &m->bb->cfg;
  prefix_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "prefix state"));
  me->state = s;
  s->P = dt_opt_int(opt, "prefix-tokens");
  s->h = dt_opt_int(opt, "prefix-hidden");
  s->L = c->n_layer;
  s->pd = dt_cfg_prefix_dim(c);
  s->W = 2 * s->L * s->pd;
  const size_t P = (size_t)s->P, W = (size_t)s->W, pd = (size_t)s->pd, h = (size_t)s->h;
  const size_t n_emb = s->h ? P * pd : P * W;
  const size_t total = n_emb + (s->h ? h * pd + h + W * h + W : 0);
  DT_CALL(dt_model_alloc(m, &s->arena, sizeof(float) * total, "prefix parameters"));
  DT_CALL(dt_model_alloc(m, &s->garena, sizeof(float) * total, "prefix gradients"));
  DT_CALL(dt_model_alloc(m, &s->kv, sizeof(float) * P * W, "prefix key/values"));
  DT_CALL(dt_model_alloc(m, &s->dkv, sizeof(float) * P * W, "prefix key/value grads"));
  size_t off = 0;
  s->emb = dt_at(s->arena, off);
  s->demb = dt_at(s->garena, off);
  off += n_emb;
  /* nn.Embedding init: N(0, 1) */
  const uint64_t ke = dt_rng_key(seed, 0x9f1e0);
  for (size_t j = 0; s->emb && j < n_emb; j++) s->emb[j] = (float)dt_rng_normal(ke, j);
  const char *pre = "prompt_encoder";
  char nm[DT_PARAM_NAME_MAX];
  int64_t sh[2] = {(int64_t)P, (int64_t)(s->h ? pd : W)};
  snprintf(nm, sizeof nm, "%s.embedding.weight", pre);
  DT_CALL(dt_params_add(params, "prefix", nm, 2, sh, s->emb, s->demb, 0));
  if (s->h) {
    s->w0 = dt_at(s->arena, off), s->dw0 = dt_at(s->garena, off), off += h * pd;
    s->b0 = dt_at(s->arena, off), s->db0 = dt_at(s->garena, off), off += h;
    s->w2 = dt_at(s->arena, off), s->dw2 = dt_at(s->garena, off), off += W * h;
    s->b2 = dt_at(s->arena, off), s->db2 = dt_at(s->garena, off), off += W;
    /* torch Linear init: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
    const double bd0 = 1.0 / sqrt((double)pd), bd2 = 1.0 / sqrt((double)h);
    const uint64_t k0 = dt_rng_key(seed, 0x9f1e1), k1 = dt_rng_key(seed, 0x9f1e2);
    const uint64_t k2 = dt_rng_key(seed, 0x9f1e3), k3 = dt_rng_key(seed, 0x9f1e4);
    for (size_t j = 0; s->arena && j < h * pd; j++)
      s->w0[j] = (float)((2.0 * dt_rng_uniform(k0, j) - 1.0) * bd0);
    for (size_t j = 0; s->arena && j < h; j++) s->b0[j] = (float)((2.0 * dt_rng_uniform(k1, j) - 1.0) * bd0);
    for (size_t j = 0; s->arena && j < W * h; j++)
      s->w2[j] = (float)((2.0 * dt_rng_uniform(k2, j) - 1.0) * bd2);
    for (size_t j = 0; s->arena && j < W; j++) s->b2[j] = (float)((2.0 * dt_rng_uniform(k3, j) - 1.0) * bd2);
    int64_t s0[2] = {(int64_t)h, (int64_t)pd}, s0b[1] = {(int64_t)h};
    int64_t s2[2] = {(int64_t)W, (int64_t)h}, s2b[1] = {(int64_t)W};
    snprintf(nm, sizeof nm, "%s.transform.0.weight", pre);
    DT_CALL(dt_params_add(params, "prefix", nm, 2, s0, s->w0, s->dw0, 0));
    snprintf(nm, sizeof nm, "%s.transform.0.bias", pre);
    DT_CALL(dt_params_add(params, "prefix", nm, 1, s0b, s->b0, s->db0, 0));
    snprintf(nm, sizeof nm, "%s.transform.2.weight", pre);
    DT_CALL(dt_params_add(params, "prefix", nm, 2, s2, s->w2, s->dw2, 0));
    snprintf(nm, sizeof nm, "%s.transform.2.bias", pre);
    DT_CALL(dt_params_add(params, "prefix", nm, 1, s2b, s->b2, s->db2, 0));
    DT_CALL(dt_model_alloc(m, &s->table, sizeof(float) * P * W, "prefix MLP output"));
    DT_CALL(dt_model_alloc(m, &s->dtable, sizeof(float) * P * W, "prefix MLP scratch"));
    DT_CALL(dt_model_alloc(m, &s->a, sizeof(float) * P * h, "prefix MLP scratch"));
    DT_CALL(dt_model_alloc(m, &s->da, sizeof(float) * P * h, "prefix MLP scratch"));
  }
  return DT_OK;
}

static void prefix_destroy(dt_method *me) {
  prefix_state *s = me->state;
  if (!s) return;
  free(s->arena);
  free(s->garena);
  free(s->kv);
  free(s->dkv);
  free(s->table);
  free(s->dtable);
  free(s->a);
  free(s->da);
  free(s);
}

static int prefix_tokens(const dt_method *me) {
  return ((const prefix_state *)me->state)->P;
}

static int prefix_begin_forward(dt_method *me, int train) {
  prefix_state *s = me->state;
  const int P = s->P, W = s->W, pd = s->pd, h = s->h;
  const float *table = s->emb;
  if (h) {
    /* a = tanh(emb w0^T + b0); table = a w2^T + b2 */
    for (int i = 0; i < P; i++) memcpy(s->a + (size_t)i * h, s->b0, sizeof(float) * h);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, h, pd, 1.0f, s->emb, pd,
                s->w0, pd, 1.0f, s->a, h);
    for (size_t j = 0; j < (size_t)P * h; j++) s->a[j] = tanhf(s->a[j]);
    for (int i = 0; i < P; i++) memcpy(s->table + (size_t)i * W, s->b2, sizeof(float) * W);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, W, h, 1.0f, s->a, h, s->w2, h,
                1.0f, s->table, W);
    table = s->table;
  }
  /* block j (= 2l key, 2l+1 value) of row i -> kv[j][i] */
  for (int j = 0; j < 2 * s->L; j++)
    for (int i = 0; i < P; i++)
      memcpy(s->kv + ((size_t)j * P + i) * pd, table + (size_t)i * W + (size_t)j * pd,
             sizeof(float) * pd);
  if (train) memset(s->dkv, 0, sizeof(float) * (size_t)P * W);
  return DT_OK;
}

static int prefix_kv(dt_method *me, int layer, const float **k, const float **v,
                     float **dk, float **dv) {
  prefix_state *s = me->state;
  const size_t blk = (size_t)s->P * s->pd;
  DT_CHECK(layer >= 0 && layer < s->L, DT_EINTERNAL, "prefix: layer %d of %d", layer, s->L);
  *k = s->kv + (size_t)(2 * layer) * blk;
  *v = s->kv + (size_t)(2 * layer + 1) * blk;
  *dk = s->dkv + (size_t)(2 * layer) * blk;
  *dv = s->dkv + (size_t)(2 * layer + 1) * blk;
  return DT_OK;
}

static int prefix_end_backward(dt_method *me) {
  prefix_state *s = me->state;
  const int P = s->P, W = s->W, pd = s->pd, h = s->h;
  float *dt = h ? s->dtable : s->demb;
  if (h) memset(dt, 0, sizeof(float) * (size_t)P * W);
  for (int j = 0; j < 2 * s->L; j++)
    for (int i = 0; i < P; i++) {
      const float *src = s->dkv + ((size_t)j * P + i) * pd;
      float *dst = dt + (size_t)i * W + (size_t)j * pd;
      for (int e = 0; e < pd; e++) dst[e] += src[e];
    }
  if (!h) return DT_OK;
  /* table = a w2^T + b2: dw2 += dt^T a; db2 += colsum dt; da = dt w2 */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, W, h, P, 1.0f, dt, W, s->a, h, 1.0f,
              s->dw2, h);
  for (int i = 0; i < P; i++)
    for (int e = 0; e < W; e++) s->db2[e] += dt[(size_t)i * W + e];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, h, W, 1.0f, dt, W, s->w2, h,
              0.0f, s->da, h);
  /* a = tanh(z): dz = da (1 - a^2) */
  for (size_t j = 0; j < (size_t)P * h; j++) s->da[j] *= 1.0f - s->a[j] * s->a[j];
  /* z = emb w0^T + b0: dw0 += dz^T emb; db0 += colsum dz; demb += dz w0 */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h, pd, P, 1.0f, s->da, h, s->emb,
              pd, 1.0f, s->dw0, pd);
  for (int i = 0; i < P; i++)
    for (int e = 0; e < h; e++) s->db0[e] += s->da[(size_t)i * h + e];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, P, pd, h, 1.0f, s->da, h, s->w0,
              pd, 1.0f, s->demb, pd);
  return DT_OK;
}

static void prefix_describe(const dt_method *me, char *buf, size_t cap) {
  const prefix_state *s = me->state;
  if (s->h)
    snprintf(buf, cap, "prefix tuning: %d key/values x %d layers (kv width %d) from an MLP "
             "(hidden %d)", s->P, s->L, s->pd, s->h);
  else
    snprintf(buf, cap, "prefix tuning: %d key/values x %d layers (kv width %d)", s->P, s->L,
             s->pd);
}

/* `export --format peft` (src/peft.h). */
static int prefix_export_peft(dt_peft_export *x) {
  const dt_ckpt_info *i = x->info;
  const dt_peft_tensors *p = x->in;
  dt_peft_out *l = x->out;
  const int e = dt_peft_find(p, "prompt_encoder.embedding.weight");
  DT_CHECK(e >= 0 && p->v[e]->ndim == 2, DT_EINPUT,
           "export: no prompt_encoder.embedding.weight [P, width] in the checkpoint");
  const int64_t P = p->v[e]->shape[0];
  /* PEFT's num_attention_heads: the prefix's heads (a Falcon prefix has one
   * per query head, dt_cfg_prefix_heads) */
  const dt_arch_desc *a = dt_arch_by_name(i->arch);
  const int heads = a && a->peft_prefix_per_query ? i->heads : i->kv_heads;
  const int pd = heads * i->head_dim, W = 2 * i->layers * pd;
  const int w0 = dt_peft_find(p, "prompt_encoder.transform.0.weight");
  const int hidden = w0 >= 0 ? (int)p->v[w0]->shape[0] : 0;
  static dt_ckpt_var table_var;
  memset(&table_var, 0, sizeof table_var);
  table_var.ndim = 2;
  table_var.shape[0] = P;
  table_var.shape[1] = W;
  if (!hidden) {
    DT_CHECK(p->v[e]->shape[1] == W, DT_EINPUT,
             "export: prompt_encoder.embedding.weight is [%lld, %lld]; 2 x %d layers x kv width "
             "%d = %d columns expected", (long long)P, (long long)p->v[e]->shape[1], i->layers,
             pd, W);
    DT_CALL(dt_peft_push(l, "prompt_embeddings", &table_var, p->data[e]));
  } else {
    const int b0 = dt_peft_find(p, "prompt_encoder.transform.0.bias");
    const int w2 = dt_peft_find(p, "prompt_encoder.transform.2.weight");
    const int b2 = dt_peft_find(p, "prompt_encoder.transform.2.bias");
    DT_CHECK(b0 >= 0 && w2 >= 0 && b2 >= 0 && p->v[e]->shape[1] == pd &&
                 p->v[w0]->shape[1] == pd && p->v[w2]->shape[0] == W &&
                 p->v[w2]->shape[1] == hidden,
             DT_EINPUT, "export: the prefix MLP tensors prompt_encoder.transform.{0,2}.{weight,"
             "bias} are missing or do not fit embedding [%lld, %d] -> %d -> %d", (long long)P,
             pd, hidden, W);
    float *a = NULL;
    DT_CALL(dt_malloc(&l->owned, sizeof(float) * (size_t)(P * W), "prompt_embeddings"));
    DT_CALL(dt_malloc(&a, sizeof(float) * (size_t)hidden, "the prefix MLP"));
    const float *emb = p->data[e], *W0 = p->data[w0], *B0 = p->data[b0], *W2 = p->data[w2],
                *B2 = p->data[b2];
    for (int64_t r = 0; r < P; r++) {
      for (int h = 0; h < hidden; h++) {
        float s = B0[h];
        for (int j = 0; j < pd; j++) s += emb[r * pd + j] * W0[(size_t)h * pd + j];
        a[h] = tanhf(s);
      }
      for (int o = 0; o < W; o++) {
        float s = B2[o];
        for (int h = 0; h < hidden; h++) s += a[h] * W2[(size_t)o * hidden + h];
        l->owned[r * W + o] = s;
      }
    }
    free(a);
    DT_CALL(dt_peft_push(l, "prompt_embeddings", &table_var, l->owned));
  }
  json_t *c = dt_peft_config_common(i, "PREFIX_TUNING");
  json_object_set_new(c, "num_virtual_tokens", json_integer(P));
  json_object_set_new(c, "token_dim", json_integer(pd));
  json_object_set_new(c, "num_transformer_submodules", json_integer(1));
  json_object_set_new(c, "num_attention_heads", json_integer(heads));
  json_object_set_new(c, "num_layers", json_integer(i->layers));
  json_object_set_new(c, "encoder_hidden_size", hidden ? json_integer(hidden) : json_null());
  json_object_set_new(c, "prefix_projection", json_boolean(hidden > 0));
  json_object_set_new(c, "modules_to_save", json_null());
  x->cfg = c;
  return DT_OK;
}

const dt_method_ops dt_method_prefix = {
    .name = "prefix",
    .summary = "trained key/value prefixes in every layer (Li & Liang 2021)",
    .options = &prefix_group,
    .merge_refusal = "its key/value prefix is attended by every query, an input of attention "
                     "and not a weight",
    .create = prefix_create,
    .destroy = prefix_destroy,
    .prefix_tokens = prefix_tokens,
    .begin_forward = prefix_begin_forward,
    .end_backward = prefix_end_backward,
    .prefix_kv = prefix_kv,
    .describe = prefix_describe,
    .export_peft = prefix_export_peft,
};
