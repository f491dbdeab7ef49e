/* Planning, forward and backward of the whole backbone with method hooks.
 *
 * Memory is sized once in dt_model_plan from (B, T) and the methods; a step
 * allocates nothing. Backward propagates into activations; a frozen matrix
 * gets only its input gradient, a trainable one (full, lastlayer, bitfit,
 * said) also accumulates dW. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "error.h"
#include "fwd_parts.h"
#include "mpicheck.h"
#include "gemm_bf16.h"
#include "linear_rows.h"
#include "method.h"
#include "model.h"
#include "ops.h"
#include "pxgemm.h"
#include "quant.h"
#include "bf16.h"
#include "vmath.h"

/* Local widths on this rank (everything when tp = 1). */
#define QKV_L(m) dt_site_out_l((m), DT_SITE_QKV)
#define Q_L(m) dt_site_in_l((m), DT_SITE_ATTN_OUT)
#define FC_L(m) dt_site_out_l((m), DT_SITE_FC)
#define FFN_L(m) dt_site_in_l((m), DT_SITE_PROJ)
#define KV_L(m) ((m)->bb->sh.n_kv_l * (m)->bb->cfg.head_dim)
/* this rank's prefix key/value width: its groups' prefix heads */
#define PKV_L(m) (dt_fwd_prefix_heads_l(m) * (m)->bb->cfg.head_dim)

int dt_model_set_methods(dt_model *m, struct dt_method **methods, int n) {
  free(m->methods);
  m->methods = NULL;
  m->n_methods = n;
  if (n > 0) {
    DT_CALL(dt_malloc(&m->methods, sizeof(dt_method *) * n, "method list"));
    memcpy(m->methods, methods, sizeof(dt_method *) * n);
  }
  return DT_OK;
}

static int wants_pre(const dt_model *m, int k, int l, int s) {
  const dt_method *me = m->methods[k];
  return me->ops->pre_fwd && me->ops->wants_pre && me->ops->wants_pre(me, l, s);
}
static int wants_post(const dt_model *m, int k, int l, int s) {
  const dt_method *me = m->methods[k];
  return me->ops->post_fwd && me->ops->wants_post && me->ops->wants_post(me, l, s);
}
static int any_pre(const dt_model *m, int l, int s) {
  for (int k = 0; k < m->n_methods; k++)
    if (wants_pre(m, k, l, s)) return 1;
  return 0;
}
static int any_post(const dt_model *m, int l, int s) {
  for (int k = 0; k < m->n_methods; k++)
    if (wants_post(m, k, l, s)) return 1;
  return 0;
}

/* Does a backward read the FFN output projection's input (act)? Only a
 * trained matrix there (its weight gradient) or a hook on the site (LoRA's
 * A gradient, IA3's scale gradient); the frozen matrix's own input gradient
 * needs dy and W alone. */
static int proj_input_read(const dt_model *m) {
  for (int l = 0; l < m->bb->cfg.n_layer; l++) {
    if (m->bb->layers[l].lin[DT_SITE_PROJ].trained || m->bb->layers[l].lin[DT_SITE_PROJ].grad ||
        any_pre(m, l, DT_SITE_PROJ))
      return 1;
    for (int k = 0; k < m->n_methods; k++)
      if (wants_post(m, k, l, DT_SITE_PROJ)) return 1;
  }
  return 0;
}

/* Count (or carve) the activation arena. With base == NULL only counts. */
typedef struct {
  float *base;
  size_t used;
} carver;

static float *carve(carver *c, size_t n) {
  size_t n16 = (n + 15) & ~(size_t)15; /* keep 64-byte alignment */
  float *p = c->base ? c->base + c->used : NULL;
  c->used += n16;
  return p;
}

/* Is the saved residual stream kept in the tensor group's shared window? */
static int x_share_on(const dt_model *m, int recompute) {
  return m->x_share_req && !recompute && m->bb->sh.tp_size > 1 && (!m->bb->dist || m->bb->dist->shm_ok);
}

/* Layer l's attention over the pass's rows: this rank's heads, and the
 * query rows it attends with in a group it shares (mpi/shard.h). */
static dt_attn_dims attn_dims(const dt_model *m, int l) {
  const dt_config *c = &m->bb->cfg;
  const dt_shard *sh = &m->bb->sh;
  dt_attn_dims ad = {m->B, m->T, m->n_prefix, sh->n_head_l, sh->n_kv_l, c->head_dim,
                     dt_cfg_window(c, l), dt_cfg_attn_scale(c), c->attn_softcap, m->bb->alibi,
                     dt_fwd_prefix_heads_l(m), sh->kv_share > 1, 0, 0, m->matmul_bf16};
  dt_shard_q_rows(sh, m->T, &ad.q0, &ad.q1);
  return ad;
}

/* cs: where the saved residual stream (x, x1 of every block) goes when the
 * tensor group shares it (x_share_on), else NULL: cv holds everything. */
static void layout(dt_model *m, carver *cv, carver *cs, int B, int T, int recompute) {
  const dt_config *c = &m->bb->cfg;
  const size_t N = (size_t)B * T, d = c->d_model;
  const int n_sets = recompute ? 1 : c->n_layer;
  carver *cx = cs ? cs : cv;
  /* The norm outputs are not kept: both norms of every block write one
   * buffer, read at once by their linear, and the backward recomputes them
   * from the block's saved input and statistics (O(N d), bitwise the same)
   * just before the linear's backward needs them. This saves 2 N d floats a
   * block, the largest replicated activations under tensor parallelism. */
  float *norm_out = carve(cv, N * d);
  /* the FFN activation output is kept per block only when a backward reads
   * it (proj_input_read); otherwise one buffer serves every block */
  const int one_act = n_sets > 1 && !proj_input_read(m);
  float *act_once = one_act ? carve(cv, N * FFN_L(m)) : NULL;
  for (int l = 0; l < n_sets; l++) {
    dt_layer_acts *a = m->acts ? &m->acts[l] : NULL, dummy;
    if (!a) a = &dummy;
    a->x = carve(cx, N * d);
    a->ln1 = norm_out;
    a->ln1_stat = carve(cv, N * 2);
    a->qkv = carve(cv, N * QKV_L(m));
    a->att = carve(cv, N * Q_L(m));
    a->lse = carve(cv, (size_t)B * m->bb->sh.n_head_l * T);
    a->x1 = carve(cx, N * d);
    a->ln2 = norm_out;
    a->ln2_stat = carve(cv, N * 2);
    a->fc = carve(cv, N * FC_L(m));
    a->act = one_act ? act_once : carve(cv, N * FFN_L(m));
    if (dt_cfg_arch(c)->post_norms) {
      a->ao = carve(cv, N * d);
      a->ao_stat = carve(cv, N * 2);
      a->fo = carve(cv, N * d);
      a->fo_stat = carve(cv, N * 2);
    }
    for (int s = 0; s < DT_N_SITES; s++) {
      int need = 0;
      for (int ll = 0; ll < c->n_layer && !need; ll++)
        need = (recompute || ll == l) && any_pre(m, ll, s);
      a->lin_in[s] = need ? carve(cv, N * dt_site_in_l(m, s)) : NULL;
    }
  }
  if (recompute)
    for (int l = 0; l < c->n_layer; l++) {
      float *p = carve(cv, N * d);
      if (m->x_saved) m->x_saved[l] = p;
    }
  for (int l = 0; l < c->n_layer; l++)
    for (int s = 0; s < DT_N_SITES; s++)
      for (int k = 0; k < m->n_methods; k++) {
        const dt_method *me = m->methods[k];
        const size_t Nk = me->nrows ? (size_t)me->nrows * T : N;
        size_t w = me->ops->site_ws ? me->ops->site_ws(me, l, s, (int)Nk) : 0;
        float *p = w ? carve(cv, w) : NULL;
        if (m->hook_ws) m->hook_ws[((size_t)l * DT_N_SITES + s) * m->n_methods + k] = p;
      }
  m->x_last = carve(cv, N * d);
  m->xf = carve(cv, N * d);
  m->xf_stat = carve(cv, N * 2);
  const size_t wide = N * (size_t)(QKV_L(m) > FC_L(m) ? QKV_L(m) : FC_L(m));
  m->d_res = carve(cv, N * d);
  m->d_tmp = carve(cv, N * d);
  m->d_ln = carve(cv, N * d);
  m->d_qkv = carve(cv, N * QKV_L(m));
  m->d_att = carve(cv, N * Q_L(m));
  m->d_fc = carve(cv, wide);
  m->d_act = carve(cv, N * FFN_L(m));
  m->d_xf = carve(cv, N * d);
  dt_attn_dims ad = attn_dims(m, 0);
  ad.B = B, ad.T = T;
  m->att_scratch = carve(cv, (size_t)dt_attention_scratch(&ad));
  if (m->tp_gemm && dt_model_tp(m) > 1) {
    size_t mx_in = 0;
    for (int s = 0; s < DT_N_SITES; s++)
      if ((size_t)dt_site_in_l(m, s) > mx_in) mx_in = (size_t)dt_site_in_l(m, s);
    m->px_scratch = carve(cv, dt_pxgemm_scratch(&m->bb->cfg, &m->bb->sh, (int)N));
    m->px_tmp = carve(cv, N * mx_in);
  }
  const int chunk = N < DT_LOGIT_CHUNK ? (int)N : DT_LOGIT_CHUNK;
  m->logit_chunk_rows = chunk;
  m->logit_chunk = carve(cv, (size_t)chunk * (m->bb->sh.vocab_l > 0 ? m->bb->sh.vocab_l : 1));
  m->logit_tanh = c->final_softcap > 0
                      ? carve(cv, (size_t)chunk * (m->bb->sh.vocab_l > 0 ? m->bb->sh.vocab_l : 1))
                      : NULL;
  m->head_red = carve(cv, 5 * (size_t)chunk);
  if (m->matmul_bf16) {
    /* the bf16 copy of a product's activation operand: x [N,in] forward,
     * dy [N,out] backward, head rows [chunk,d] and their logits [chunk,V] */
    size_t e = (size_t)chunk * (d > (size_t)m->bb->sh.vocab_l ? d : (size_t)m->bb->sh.vocab_l);
    for (int s = 0; s < DT_N_SITES; s++) {
      const size_t io = (size_t)(dt_site_in_l(m, s) > dt_site_out_l(m, s) ? dt_site_in_l(m, s)
                                                                          : dt_site_out_l(m, s));
      if (N * io > e) e = N * io;
    }
    m->a16 = (uint16_t *)carve(cv, (e + 1) / 2);
  }
  const size_t pkv = (size_t)m->n_prefix * dt_cfg_prefix_dim(c);
  m->pk_l = carve(cv, pkv);
  m->pv_l = carve(cv, pkv);
  m->dpk_l = carve(cv, pkv);
  m->dpv_l = carve(cv, pkv);
}

static int count_tokens(dt_model *m, int *n_virtual, int *n_prefix) {
  *n_virtual = 0;
  *n_prefix = 0;
  m->prefix_method = -1;
  for (int k = 0; k < m->n_methods; k++) {
    const dt_method *me = m->methods[k];
    if (me->ops->virtual_tokens) *n_virtual += me->ops->virtual_tokens(me);
    int p = me->ops->prefix_tokens ? me->ops->prefix_tokens(me) : 0;
    if (p > 0) {
      DT_CHECK(m->prefix_method < 0, DT_EUSAGE,
               "methods '%s' and '%s' both add prefix key/values; use one",
               m->methods[m->prefix_method]->ops->name, me->ops->name);
      m->prefix_method = k;
      *n_prefix = p;
    }
  }
  return DT_OK;
}

size_t dt_model_act_bytes(const dt_model *mc, int B, int T_data, int recompute) {
  dt_model m = *mc;
  int nv, np;
  if (count_tokens(&m, &nv, &np)) return 0;
  m.n_prefix = np;
  m.acts = NULL;
  m.x_saved = NULL;
  m.hook_ws = NULL;
  carver cv = {NULL, 0};
  layout(&m, &cv, NULL, B, T_data + nv, recompute);
  return cv.used * sizeof(float);
}

size_t dt_model_act_shared_bytes(const dt_model *mc, int B, int T_data, int recompute) {
  dt_model m = *mc;
  int nv, np;
  if (!x_share_on(&m, recompute) || count_tokens(&m, &nv, &np)) return 0;
  m.n_prefix = np;
  m.acts = NULL;
  m.x_saved = NULL;
  m.hook_ws = NULL;
  carver cv = {NULL, 0}, cs = {NULL, 0};
  layout(&m, &cv, &cs, B, T_data + nv, recompute);
  return cs.used * sizeof(float);
}

/* The shared window of the saved residual stream (x_share_on): n floats,
 * allocated by tensor rank 0 and mapped by the group. Collective over the
 * tensor group. */
static int x_window(dt_model *m, size_t n) {
  DT_CALL(dt_shmwin_alloc(&m->x_win, m->bb->dist->tp, n * sizeof(float), "the saved residual stream"));
  return DT_OK;
}

static void free_x_window(dt_model *m) {
  dt_shmwin_free(&m->x_win); /* collective over the tensor group */
  m->x_shared = 0;
}

/* Floats of the bf16 -> fp32 conversion scratch: the largest matrix. */
static size_t bf16_scratch_floats(const dt_model *m) {
  /* with bf16 products the head is never widened (IA3's feed-forward unit
   * and PxGEMM still widen a block matrix) */
  size_t mx = m->matmul_bf16 ? 0 : (size_t)m->bb->sh.vocab_l * m->bb->cfg.d_model;
  for (int s = 0; s < DT_N_SITES; s++) {
    size_t v = (size_t)dt_site_in_l(m, s) * dt_site_out_l(m, s);
    if (v > mx) mx = v;
  }
  return mx;
}

/* Floats of the dequantization scratch of quantized matrices (src/quant.h):
 * fp32 products dequantize DT_QTILE_ROWS rows of the widest block matrix at
 * a time; bf16 products (--matmul-dtype bf16) the whole of the largest one
 * in bf16, two values a float, multiplied in one oneDNN product. */
static size_t qtile_floats(const dt_model *m) {
  if (!m->bb->wquant) return 0;
  size_t wide = 1, big = 1;
  for (int s = 0; s < DT_N_SITES; s++) {
    const size_t in = (size_t)dt_site_in_l(m, s), e = in * (size_t)dt_site_out_l(m, s);
    if (in > wide) wide = in;
    if (e > big) big = e;
  }
  return m->matmul_bf16 ? (big + 1) / 2 : (size_t)DT_QTILE_ROWS * wide;
}

/* bf16 products on a quantized backbone multiply the head in bf16 too: a
 * copy of the fp32 head, once per backbone (its replicas' workspaces share
 * it), like the bf16 head --weights-dtype bf16 stores. */
static int needs_head16(const dt_model *m) {
  return m->matmul_bf16 && m->bb->wquant && !m->bb->lm_head.w16;
}
static size_t head16_elems(const dt_model *m) {
  return (size_t)m->bb->sh.vocab_l * m->bb->cfg.d_model;
}

const uint16_t *dt_model_head16(const dt_model *m) {
  if (!m->matmul_bf16) return NULL;
  return m->bb->lm_head.w16 ? m->bb->lm_head.w16 : m->bb->head16;
}

size_t dt_model_plan_extra_bytes(const dt_model *mc, int B, int T_data) {
  dt_model m = *mc;
  int nv, np;
  if (count_tokens(&m, &nv, &np)) return 0;
  const size_t T = (size_t)T_data + nv;
  /* as dt_model_plan allocates them below */
  size_t b = m.bb->weights_bf16 ? (bf16_scratch_floats(&m) * sizeof(float) + 63) / 64 * 64 : 0;
  b += (qtile_floats(&m) * sizeof(float) + 63) / 64 * 64;
  if (needs_head16(&m)) b += (head16_elems(&m) * sizeof(uint16_t) + 63) / 64 * 64;
  if (dt_cfg_arch(&m.bb->cfg)->pos == DT_POS_ROPE)
    b += 2 * ((size_t)np + T) * (size_t)(dt_cfg_rope_dim(&m.bb->cfg) / 2) * sizeof(float);
  b += sizeof(int32_t) * (size_t)B * T_data + sizeof(int32_t) * B * T + sizeof(int) * B * T;
  return b;
}

int dt_model_plan(dt_model *m, int B, int T_data, int recompute) {
  const dt_config *c = &m->bb->cfg;
  DT_CHECK(B >= 1 && T_data >= 2, DT_EUSAGE,
           "batch of %d rows x %d tokens: need at least 1 row of 2 tokens", B,
           T_data);
  int nv, np;
  DT_CALL(count_tokens(m, &nv, &np));
  m->B = m->B_max = B;
  m->T_data = m->T_data_max = T_data;
  m->step_open = 0;
  m->n_virtual = nv;
  m->n_prefix = np;
  m->T = T_data + nv;
  m->recompute = recompute;
  if (dt_cfg_arch(c)->pos == DT_POS_LEARNED)
    DT_CHECK(np + m->T <= c->n_ctx, DT_EUSAGE,
             "sequence of %d positions (%d data + %d virtual + %d prefix) exceeds "
             "the model's n_positions = %d (%s)",
             np + m->T, T_data, nv, np, c->n_ctx, c->source);
  free(m->arena);
  free(m->acts);
  free(m->x_saved);
  free(m->hook_ws);
  DT_CALL(dt_calloc(&m->acts, sizeof(dt_layer_acts) * c->n_layer, "activation table"));
  if (recompute)
    DT_CALL(dt_calloc(&m->x_saved, sizeof(float *) * c->n_layer, "block inputs"));
  size_t nh = (size_t)c->n_layer * DT_N_SITES * (m->n_methods ? m->n_methods : 1);
  DT_CALL(dt_calloc(&m->hook_ws, sizeof(float *) * nh, "hook workspace table"));
  carver cv = {NULL, 0}, cs = {NULL, 0};
  float **keep_ws = m->hook_ws;
  float **keep_xs = m->x_saved;
  dt_layer_acts *keep_acts = m->acts;
  m->hook_ws = NULL;
  m->x_saved = NULL;
  m->acts = NULL;
  free_x_window(m);
  const int xs = x_share_on(m, recompute) && m->bb->dist;
  layout(m, &cv, xs ? &cs : NULL, B, m->T, recompute);
  m->hook_ws = keep_ws;
  m->x_saved = keep_xs;
  m->acts = keep_acts;
  m->arena_floats = cv.used;
  DT_CALL(dt_alloc_aligned(&m->arena, cv.used * sizeof(float),
                           "activations (lower --batch-size or use --recompute)"));
  if (xs) DT_CALL(x_window(m, cs.used));
  m->x_shared = xs;
  cv.base = m->arena;
  cv.used = 0;
  cs.base = m->x_win.base;
  cs.used = 0;
  layout(m, &cv, xs ? &cs : NULL, B, m->T, recompute);
  if (recompute)
    for (int l = 1; l < c->n_layer; l++) m->acts[l] = m->acts[0];
  /* bf16 conversion scratch: the largest matrix */
  if (m->bb->weights_bf16) {
    const size_t mx = bf16_scratch_floats(m);
    free(m->wscratch);
    DT_CALL(dt_alloc_aligned(&m->wscratch, mx * sizeof(float), "bf16 conversion scratch"));
    m->wscratch_floats = mx;
  }
  if (needs_head16(m) && !m->bb->head16 && !m->bb->describe_only) {
    const size_t n = head16_elems(m);
    DT_CALL(dt_alloc_aligned((void **)&m->bb->head16, (n ? n : 1) * sizeof(uint16_t),
                             "bf16 copy of the head"));
    dt_f32_to_bf16_n(m->bb->head16, m->bb->lm_head.w, n);
  }
  if (m->bb->wquant) {
    free(m->qtile);
    DT_CALL(dt_alloc_aligned(&m->qtile, qtile_floats(m) * sizeof(float),
                             "dequantization tile"));
  }
  if (dt_cfg_arch(c)->pos == DT_POS_ROPE) {
    free(m->rope_cos);
    free(m->rope_sin);
    /* tokens sit at positions n_prefix.. (HF: after the past key/values) */
    const size_t h2 = (size_t)(dt_cfg_rope_dim(c) / 2), n = (size_t)(np + m->T) * h2;
    DT_CALL(dt_malloc(&m->rope_cos, n * sizeof(float), "rope table"));
    DT_CALL(dt_malloc(&m->rope_sin, n * sizeof(float), "rope table"));
    dt_rope_tables(m->rope_cos, m->rope_sin, np + m->T, dt_cfg_rope_dim(c), c->rope_theta);
    memmove(m->rope_cos, m->rope_cos + np * h2, sizeof(float) * m->T * h2);
    memmove(m->rope_sin, m->rope_sin + np * h2, sizeof(float) * m->T * h2);
  }
  free(m->ids);
  free(m->labels);
  free(m->scored_rows);
  DT_CALL(dt_malloc(&m->ids, sizeof(int32_t) * B * T_data, "batch ids"));
  DT_CALL(dt_malloc(&m->labels, sizeof(int32_t) * B * m->T, "batch labels"));
  DT_CALL(dt_malloc(&m->scored_rows, sizeof(int) * B * m->T, "scored rows"));
  return DT_OK;
}

int dt_model_set_shape(dt_model *m, int B, int T_data) {
  DT_CHECK(m->arena, DT_EINTERNAL, "dt_model_set_shape before dt_model_plan");
  DT_CHECK(B >= 1 && B <= m->B_max && T_data >= 2 && T_data <= m->T_data_max, DT_EINTERNAL,
           "pass of %d rows x %d tokens outside the planned %d x %d", B, T_data, m->B_max,
           m->T_data_max);
  m->B = B;
  m->T_data = T_data;
  m->T = T_data + m->n_virtual;
  return DT_OK;
}

static int begin_hooks(dt_model *m, int want_grad) {
  for (int k = 0; k < m->n_methods; k++)
    if (m->methods[k]->ops->begin_forward)
      DT_CALL(m->methods[k]->ops->begin_forward(m->methods[k], want_grad));
  return DT_OK;
}

static int end_hooks(dt_model *m) {
  for (int k = 0; k < m->n_methods; k++)
    if (m->methods[k]->ops->end_backward)
      DT_CALL(m->methods[k]->ops->end_backward(m->methods[k]));
  return DT_OK;
}

int dt_model_step_begin(dt_model *m, int want_grad) {
  DT_CHECK(!m->step_open, DT_EINTERNAL, "dt_model_step_begin inside a step");
  DT_CALL(begin_hooks(m, want_grad));
  m->step_open = 1;
  m->next_row0 = 0;
  return DT_OK;
}

int dt_model_step_end(dt_model *m, int want_grad) {
  DT_CHECK(m->step_open, DT_EINTERNAL, "dt_model_step_end without dt_model_step_begin");
  m->step_open = 0;
  if (want_grad) DT_CALL(end_hooks(m));
  return DT_OK;
}

/* --- one frozen linear with hooks ---------------------------------------- */

static float *ws_of(dt_model *m, int l, int s, int k) {
  return m->hook_ws[((size_t)l * DT_N_SITES + s) * m->n_methods + k];
}

/* The rows of a site's activations a method applies to (all, or its task's
 * rows of a combined batch). */
static dt_site_io rows_of(const dt_model *m, const dt_method *me, dt_site_io io) {
  if (me->nrows) {
    const size_t r0 = (size_t)me->row0 * m->T;
    io.N = me->nrows * m->T;
    if (io.x) io.x += r0 * io.in;
    if (io.y) io.y += r0 * io.out;
  }
  return io;
}

/* The bf16 matrix a bf16 product (--matmul-dtype bf16) multiplies: the
 * stored one, or a quantized one dequantized whole into the scratch; NULL
 * with fp32 products or an fp32 (trained) matrix. */
static const uint16_t *product_bf16(dt_model *m, const dt_mat *W) {
  if (!m->matmul_bf16) return NULL;
  if (!W->qm.type) return W->w16;
  uint16_t *w16 = (uint16_t *)m->qtile;
  dt_qmat_dequant_bf16(&W->qm, 0, W->qm.rows, w16);
  return w16;
}

/* y[N,out] = b + x[N,in] W^T with a frozen (or trained) matrix: fp32, bf16
 * widened to fp32, or bf16 products (--matmul-dtype bf16); a quantized one
 * dequantized tile by tile (fp32 products) or whole into bf16 (bf16 ones).
 * x16: NULL, or x already rounded to bf16 (norm_fwd16) for a bf16 product. */
static int frozen_xwt(dt_model *m, float *y, const float *x, const uint16_t *x16, const dt_mat *W,
                      const float *b, int N, int in, int out) {
  if (N == 0 || out == 0) return DT_OK;
  const uint16_t *w16 = product_bf16(m, W);
  if (w16) {
    if (b)
      for (int i = 0; i < N; i++) memcpy(y + (size_t)i * out, b, sizeof(float) * out);
    if (x16 && in > 0)
      return dt_gemm_bf16_ld(y, out, x16, in, 0, w16, in, 1, N, out, in, b ? 1.0f : 0.0f);
    return dt_gemm_bf16(y, x, w16, N, out, in, 1, b ? 1.0f : 0.0f, m->a16);
  }
  if (W->qm.type) dt_qmat_xwt(&W->qm, y, x, b, N, m->qtile);
  else if (N <= m->stream_rows && in > 0 && !W->w) dt_linear_rows_bf16(y, x, W->w16, b, N, in, out);
  else if (N <= m->stream_rows && in > 0) dt_linear_rows(y, x, W->w, b, N, in, out);
  else dt_linear_forward(y, x, dt_mat_f32(m, W), b, N, in, out);
  return DT_OK;
}

/* dx[N,in] += dy[N,out] W, the input gradient through the same matrix. */
static int frozen_dyw(dt_model *m, float *dx, const float *dy, const dt_mat *W, int N, int in,
                      int out) {
  if (N == 0 || in == 0 || out == 0) return DT_OK;
  const uint16_t *w16 = product_bf16(m, W);
  if (w16) return dt_gemm_bf16(dx, dy, w16, N, in, out, 0, 1.0f, m->a16);
  if (W->qm.type) dt_qmat_dyw(&W->qm, dx, dy, N, m->qtile);
  else dt_linear_backward_input(dx, dy, dt_mat_f32(m, W), N, in, out);
  return DT_OK;
}

/* y [N,out] = the site's output of x [N,in]; x16 NULL, or x rounded to
 * bf16 for the site's bf16 product (norm_fwd16). yv NULL, or *yv = where the
 * output is: y, or, for a row-parallel site without post hooks, the tensor
 * group's shared sum with the bias added, read-only until the next
 * tensor-group sum (dt_tp_sum_view: no copy into y). */
static int site_forward(dt_model *m, dt_layer_acts *a, int l, int s, const float *x,
                        const uint16_t *x16, float *y, int train, const float **yv) {
  const int N = m->B * m->T, in = dt_site_in_l(m, s), out = dt_site_out_l(m, s);
  dt_site_io io = {l, (dt_site)s, N, in, out, x, y, NULL, train};
  const float *xin = x;
  if (any_pre(m, l, s)) {
    /* pre hooks rescale their rows of a copy of the input, in place */
    memcpy(a->lin_in[s], x, sizeof(float) * (size_t)N * in);
    xin = a->lin_in[s];
    for (int k = 0; k < m->n_methods; k++)
      if (wants_pre(m, k, l, s)) {
        io.x = xin;
        io.ws = ws_of(m, l, s, k);
        dt_site_io sub = rows_of(m, m->methods[k], io);
        DT_CALL(m->methods[k]->ops->pre_fwd(m->methods[k], &sub, (float *)sub.x));
      }
  }
  if (xin != x) x16 = NULL; /* the hooks changed the input: its rounding is stale */
  const dt_layer *L = &m->bb->layers[l];
  if (yv) *yv = y;
  if (m->tp_gemm && dt_model_tp(m) > 1) {
    /* the PxGEMM formulation: psgemm moves the operands itself */
    DT_CALL(dt_pxgemm_forward(&m->bb->cfg, &m->bb->sh, m->bb->dist, s, y, xin, dt_mat_f32(m, &L->lin[s]), N,
                              m->px_scratch));
    if (L->bias[s].v)
      for (int i = 0; i < N; i++)
        for (int j = 0; j < out; j++) y[(size_t)i * out + j] += L->bias[s].v[j];
  } else if (dt_site_row_parallel(s)) {
    /* row-parallel: partial products (computed where the group's sum reads
     * them), g = sum over the tensor group, bias */
    if (!m->bb->dist) { /* one rank: no sum, the bias goes in with the product */
      DT_CALL(frozen_xwt(m, y, xin, x16, &L->lin[s], L->bias[s].v, N, in, out));
    } else {
      float *part = y;
      DT_CALL(dt_tp_sum_part(m->bb->dist, y, (size_t)N * out, &part));
      DT_CALL(frozen_xwt(m, part, xin, x16, &L->lin[s], NULL, N, in, out));
      if (yv && !any_post(m, l, s))
        return dt_tp_sum_view(m->bb->dist, y, part, (size_t)N * out, L->bias[s].v, (size_t)out, yv);
      DT_CALL(dt_tp_sum_into(m->bb->dist, y, part, (size_t)N * out));
      if (L->bias[s].v)
        for (int i = 0; i < N; i++)
          for (int j = 0; j < out; j++) y[(size_t)i * out + j] += L->bias[s].v[j];
    }
  } else {
    DT_CALL(frozen_xwt(m, y, xin, x16, &L->lin[s], L->bias[s].v, N, in, out));
  }
  io.x = xin;
  for (int k = 0; k < m->n_methods; k++)
    if (wants_post(m, k, l, s)) {
      io.ws = ws_of(m, l, s, k);
      dt_site_io sub = rows_of(m, m->methods[k], io);
      DT_CALL(m->methods[k]->ops->post_fwd(m->methods[k], &sub));
    }
  return DT_OK;
}

/* dy [N,out] (clobbered) -> dx [N,in] (overwritten). With want_dx = 0 the
 * frozen matrix's share of dx is not computed (dx then holds only the
 * hooks' partial terms: the caller does not read it). dxv NULL, or *dxv =
 * where dx is: dx, or, for a column-parallel site without pre hooks, the
 * tensor group's shared sum (as site_forward's yv). */
static int site_backward(dt_model *m, dt_layer_acts *a, int l, int s,
                         const float *x, float *dy, float *dx, int want_dx, const float **dxv) {
  const int N = m->B * m->T, in = dt_site_in_l(m, s), out = dt_site_out_l(m, s);
  const float *xin = a->lin_in[s] && any_pre(m, l, s) ? a->lin_in[s] : x;
  dt_site_io io = {l, (dt_site)s, N, in, out, xin, NULL, NULL, 1};
  /* a column-parallel input gradient is summed over the tensor group: its
   * partial terms go where the sum reads them */
  float *dx_out = dx;
  if (dxv) *dxv = dx;
  if (want_dx && !dt_site_row_parallel(s) && m->bb->dist && !(m->tp_gemm && dt_model_tp(m) > 1))
    DT_CALL(dt_tp_sum_part(m->bb->dist, dx_out, (size_t)N * in, &dx));
  memset(dx, 0, sizeof(float) * (size_t)N * in);
  for (int k = m->n_methods - 1; k >= 0; k--)
    if (wants_post(m, k, l, s) && m->methods[k]->ops->post_bwd) {
      io.ws = ws_of(m, l, s, k);
      dt_site_io sub = rows_of(m, m->methods[k], io);
      const size_t r0 = m->methods[k]->nrows ? (size_t)m->methods[k]->row0 * m->T : 0;
      DT_CALL(m->methods[k]->ops->post_bwd(m->methods[k], &sub, dy + r0 * out, dx + r0 * in));
    }
  dt_layer *L = &m->bb->layers[l];
  if (L->lin[s].grad) {
    dt_linear_backward_weight(L->lin[s].grad, L->bias[s].grad, dy, xin, N, in, out);
  } else if (L->bias[s].grad) {
    for (int i = 0; i < N; i++)
      for (int j = 0; j < out; j++) L->bias[s].grad[j] += dy[(size_t)i * out + j];
  }
  if (m->tp_gemm && dt_model_tp(m) > 1) {
    /* hooks' partial contributions are summed; psgemm gives the rest whole */
    if (!dt_site_row_parallel(s)) DT_CALL(dt_tp_sum(m->bb->dist, dx, (size_t)N * in));
    DT_CALL(dt_pxgemm_backward_input(&m->bb->cfg, &m->bb->sh, m->bb->dist, s, m->px_tmp, dy,
                                     dt_mat_f32(m, &L->lin[s]), N, m->px_scratch));
    for (size_t i = 0; i < (size_t)N * in; i++) dx[i] += m->px_tmp[i];
  } else if (want_dx) {
    DT_CALL(frozen_dyw(m, dx, dy, &L->lin[s], N, in, out));
    /* column-parallel: f backward = sum of the partial input gradients */
    if (!dt_site_row_parallel(s) && m->bb->dist) {
      if (dxv && !any_pre(m, l, s))
        return dt_tp_sum_view(m->bb->dist, dx_out, dx, (size_t)N * in, NULL, 0, dxv);
      DT_CALL(dt_tp_sum_into(m->bb->dist, dx_out, dx, (size_t)N * in));
    }
  }
  dx = dx_out;
  io.x = x;
  for (int k = m->n_methods - 1; k >= 0; k--)
    if (wants_pre(m, k, l, s) && m->methods[k]->ops->pre_bwd) {
      io.ws = ws_of(m, l, s, k);
      dt_site_io sub = rows_of(m, m->methods[k], io);
      const size_t r0 = m->methods[k]->nrows ? (size_t)m->methods[k]->row0 * m->T : 0;
      DT_CALL(m->methods[k]->ops->pre_bwd(m->methods[k], &sub, dx + r0 * in));
    }
  return DT_OK;
}

/* --- blocks -------------------------------------------------------------- */

static void norm_fwd(const dt_model *m, float *out, float *stat, const float *x,
                     const dt_vec *w, const dt_vec *b, int N) {
  const dt_config *c = &m->bb->cfg;
  if (dt_cfg_arch(c)->norm == DT_NORM_LAYER)
    dt_layernorm_forward(out, stat, x, w->v, b->v, N, c->d_model, c->norm_eps);
  else
    dt_rmsnorm_forward(out, stat, x, w->v, dt_cfg_arch(c)->norm_plus_one ? 1.0f : 0.0f, N,
                       c->d_model, c->norm_eps);
}

/* Rows the norm and the rounding pass over together (norm_fwd16): 16 rows
 * of d 5120 are 320 KB, in L2. */
#define NORM16_ROWS 16

/* norm_fwd, and with out16 the output rounded to bf16 as well, 16 rows at a
 * time while they are in cache: the input of the next bf16 product, which
 * then skips its own rounding pass over [N, d] in memory. */
static void norm_fwd16(const dt_model *m, float *out, uint16_t *out16, float *stat, const float *x,
                       const dt_vec *w, const dt_vec *b, int N) {
  if (!out16) {
    norm_fwd(m, out, stat, x, w, b, N);
    return;
  }
  const size_t d = (size_t)m->bb->cfg.d_model;
  for (int r0 = 0; r0 < N; r0 += NORM16_ROWS) {
    const int n = N - r0 < NORM16_ROWS ? N - r0 : NORM16_ROWS;
    norm_fwd(m, out + r0 * d, stat + 2 * (size_t)r0, x + r0 * d, w, b, n);
    dt_f32_to_bf16_n(out16 + r0 * d, out + r0 * d, (size_t)n * d);
  }
}

/* Where norm_fwd16 may round a norm's output for site s of layer l: the
 * site multiplies bf16 weights (stored or quantized) with bf16 products,
 * its input reaches the product unchanged (no pre hooks) and not through
 * the PxGEMM formulation. NULL: the product rounds its input itself. */
static uint16_t *norm_out16(dt_model *m, int l, int s) {
  const dt_mat *W = &m->bb->layers[l].lin[s];
  if (!m->matmul_bf16 || any_pre(m, l, s) || (m->tp_gemm && dt_model_tp(m) > 1)) return NULL;
  return W->qm.type || W->w16 ? m->a16 : NULL;
}

static void norm_bwd(const dt_model *m, float *dx, const float *dout,
                     const float *x, dt_vec *w, dt_vec *b, const float *stat,
                     int N) {
  const dt_config *c = &m->bb->cfg;
  if (dt_cfg_arch(c)->norm == DT_NORM_LAYER)
    dt_layernorm_backward(dx, w->grad, b->grad, dout, x, w->v, stat, N, c->d_model);
  else
    dt_rmsnorm_backward(dx, w->grad, dout, x, w->v, dt_cfg_arch(c)->norm_plus_one ? 1.0f : 0.0f,
                        stat, N, c->d_model);
}

/* The prefix key/values of layer l for this rank's key/value groups (each
 * group's n = prefix / kv heads prefix heads, contiguous), gathered into
 * [P, PKV_L] buffers (and where their gradients go). */
static int prefix_of(dt_model *m, int l, const float **pk, const float **pv,
                     float **dpk, float **dpv) {
  *pk = *pv = NULL;
  *dpk = *dpv = NULL;
  if (m->prefix_method < 0) return DT_OK;
  dt_method *me = m->methods[m->prefix_method];
  const float *K, *V;
  float *dK, *dV;
  DT_CALL(me->ops->prefix_kv(me, l, &K, &V, &dK, &dV));
  const dt_config *c = &m->bb->cfg;
  const int pd = dt_cfg_prefix_dim(c), pl = PKV_L(m);
  const int gw = pd / c->n_kv_head; /* a group's prefix width */
  const int P = m->n_prefix;
  if (pl == pd) { /* every head is local */
    *pk = K, *pv = V, *dpk = dK, *dpv = dV;
    return DT_OK;
  }
  for (int p = 0; p < P; p++) {
    for (int j = 0; j < m->bb->sh.n_kv_l; j++) {
      const int g = dt_shard_kv_group(&m->bb->sh, c, j);
      memcpy(m->pk_l + (size_t)p * pl + j * gw, K + (size_t)p * pd + g * gw, sizeof(float) * gw);
      memcpy(m->pv_l + (size_t)p * pl + j * gw, V + (size_t)p * pd + g * gw, sizeof(float) * gw);
    }
  }
  *pk = m->pk_l, *pv = m->pv_l;
  if (dK) {
    memset(m->dpk_l, 0, sizeof(float) * (size_t)P * pl);
    memset(m->dpv_l, 0, sizeof(float) * (size_t)P * pl);
    *dpk = m->dpk_l, *dpv = m->dpv_l;
  }
  m->prefix_dk = dK, m->prefix_dv = dV;
  return DT_OK;
}

/* After the attention backward: add the local groups' prefix gradients into
 * the method's full [P, prefix dim] buffers (zero elsewhere: a partial sum). */
static void prefix_scatter_grad(dt_model *m) {
  const dt_config *c = &m->bb->cfg;
  const int pd = dt_cfg_prefix_dim(c), pl = PKV_L(m), gw = pd / c->n_kv_head;
  if (m->prefix_method < 0 || pl == pd || !m->prefix_dk) return;
  for (int p = 0; p < m->n_prefix; p++)
    for (int j = 0; j < m->bb->sh.n_kv_l; j++) {
      const int g = dt_shard_kv_group(&m->bb->sh, c, j);
      for (int e = 0; e < gw; e++) {
        m->prefix_dk[(size_t)p * pd + g * gw + e] += m->dpk_l[(size_t)p * pl + j * gw + e];
        m->prefix_dv[(size_t)p * pd + g * gw + e] += m->dpv_l[(size_t)p * pl + j * gw + e];
      }
  }
}

/* This tensor rank's slice of the N rows of src into the group's shared dst. */
static void store_rows(const dt_model *m, float *dst, const float *src) {
  const size_t N = (size_t)m->B * m->T, d = m->bb->cfg.d_model, T = (size_t)dt_model_tp(m);
  const size_t r = (size_t)m->bb->dist->tp_rank, r0 = N * r / T, r1 = N * (r + 1) / T;
  memcpy(dst + r0 * d, src + r0 * d, sizeof(float) * (r1 - r0) * d);
}

static int layer_forward(dt_model *m, dt_layer_acts *a, int l, const float *xin,
                         float *xout, int train) {
  const dt_config *c = &m->bb->cfg;
  const int N = m->B * m->T, d = c->d_model;
  dt_layer *L = &m->bb->layers[l];
  /* x, x1: the residual stream of this block; with the group's shared copy
   * (m->x_shared) it runs through private buffers and each rank stores its
   * slice of the rows for the backward */
  const float *x = m->x_shared ? xin : a->x;
  float *x1 = m->x_shared ? m->xf : a->x1;
  if (m->x_shared) store_rows(m, a->x, xin);
  else if (a->x != xin) memcpy(a->x, xin, sizeof(float) * (size_t)N * d);
  uint16_t *x16 = norm_out16(m, l, DT_SITE_QKV);
  norm_fwd16(m, a->ln1, x16, a->ln1_stat, x, &L->ln1_w, &L->ln1_b, N);
  DT_CALL(site_forward(m, a, l, DT_SITE_QKV, a->ln1, x16, a->qkv, train, NULL));
  const int qd = Q_L(m), ld = QKV_L(m);
  if (dt_cfg_arch(c)->pos == DT_POS_ROPE) {
    const int rd = dt_cfg_rope_dim(c);
    dt_rope_apply_part(a->qkv, N, ld, 0, m->bb->sh.n_head_l, c->head_dim, rd, m->T, m->rope_cos,
                       m->rope_sin, 0);
    dt_rope_apply_part(a->qkv, N, ld, qd, m->bb->sh.n_kv_l, c->head_dim, rd, m->T, m->rope_cos,
                       m->rope_sin, 0);
  }
  const float *pk, *pv;
  float *dpk, *dpv;
  DT_CALL(prefix_of(m, l, &pk, &pv, &dpk, &dpv));
  const dt_attn_dims ad = attn_dims(m, l);
  DT_CALL(dt_attention_forward(a->att, a->lse, a->qkv, pk, pv, &ad, m->att_scratch));
  float *o = m->d_tmp; /* [N,d] scratch during forward */
  const float *ov = o;   /* the branch output: o, or the group's sum */
  const int post = dt_cfg_arch(c)->post_norms;
  /* post_norms: the branch output is kept (ao, fo) and its norm added */
  DT_CALL(site_forward(m, a, l, DT_SITE_ATTN_OUT, a->att, NULL, post ? a->ao : o, train,
                       post ? NULL : &ov));
  if (post) norm_fwd(m, o, a->ao_stat, a->ao, &L->pn1_w, &L->ln1_b, N);
  for (size_t i = 0; i < (size_t)N * d; i++) x1[i] = x[i] + ov[i];
  if (m->x_shared) store_rows(m, a->x1, x1);
  /* GPT-NeoX's parallel residual: the FFN reads the block input, and the
   * block's output is x + attention + FFN */
  x16 = norm_out16(m, l, DT_SITE_FC);
  norm_fwd16(m, a->ln2, x16, a->ln2_stat, c->parallel_residual ? x : x1, dt_layer_ffn_norm_w(L, c),
             dt_layer_ffn_norm_b(L, c), N);
  DT_CALL(site_forward(m, a, l, DT_SITE_FC, a->ln2, x16, a->fc, train, NULL));
  dt_ffn_act_forward(dt_cfg_act(c), a->act, a->fc, N, FFN_L(m));
  ov = o;
  DT_CALL(site_forward(m, a, l, DT_SITE_PROJ, a->act, NULL, post ? a->fo : o, train,
                       post ? NULL : &ov));
  if (post) norm_fwd(m, o, a->fo_stat, a->fo, &L->pn2_w, &L->ln2_b, N);
  for (size_t i = 0; i < (size_t)N * d; i++) xout[i] = x1[i] + ov[i];
  return DT_OK;
}

int dt_model_first_dx_needed(const dt_model *m) {
  const dt_layer *L = &m->bb->layers[0];
  int virt = 0;
  for (int k = 0; k < m->n_methods; k++) {
    const dt_method *me = m->methods[k];
    if (me->ops->virtual_tokens && me->ops->virtual_tokens(me) > 0) virt = 1;
  }
  return m->bb->wte.trained || m->bb->wpe.trained || virt || L->ln1_w.trained || L->ln1_b.trained ||
         m->bb->embn_w.trained || m->bb->embn_b.trained ||
         any_pre(m, 0, DT_SITE_QKV) || (m->tp_gemm && dt_model_tp(m) > 1);
}

/* m->d_res: grad w.r.t. the block output on entry, w.r.t. its input on exit
 * (on exit from the first block only when dt_model_first_dx_needed). */
static int layer_backward(dt_model *m, dt_layer_acts *a, int l) {
  const dt_config *c = &m->bb->cfg;
  const int N = m->B * m->T, d = c->d_model;
  const size_t Nd = (size_t)N * d;
  dt_layer *L = &m->bb->layers[l];
  const int post = dt_cfg_arch(c)->post_norms;
  /* FFN (post_norms: through the norm of its output first); its input is
   * x1, or x with the parallel residual (GPT-NeoX) */
  const int par = c->parallel_residual;
  const float *fin = par ? a->x : a->x1;
  if (post) {
    memset(m->d_tmp, 0, sizeof(float) * Nd);
    norm_bwd(m, m->d_tmp, m->d_res, a->fo, &L->pn2_w, &L->ln2_b, a->fo_stat, N);
  } else {
    memcpy(m->d_tmp, m->d_res, sizeof(float) * Nd);
  }
  DT_CALL(site_backward(m, a, l, DT_SITE_PROJ, a->act, m->d_tmp, m->d_act, 1, NULL));
  dt_ffn_act_backward(dt_cfg_act(c), m->d_fc, m->d_act, a->fc, N, FFN_L(m));
  dt_vec *w2 = dt_layer_ffn_norm_w(L, c), *b2 = dt_layer_ffn_norm_b(L, c);
  norm_fwd(m, a->ln2, a->ln2_stat, fin, w2, b2, N); /* not kept: layout() */
  const float *dln; /* d_ln, or the group's sum of it */
  DT_CALL(site_backward(m, a, l, DT_SITE_FC, a->ln2, m->d_fc, m->d_ln, 1, &dln));
  /* parallel: the attention's output gradient is the block's (d_res before
   * the FFN's input gradient joins it) */
  if (par) memcpy(m->d_tmp, m->d_res, sizeof(float) * Nd);
  /* (Falcon's shared norm: ln1's backward on the FFN's part; linear in
   * its output gradient, so the attention's part adds the rest below) */
  norm_bwd(m, m->d_res, dln, fin, w2, b2, a->ln2_stat, N);
  /* attention (post_norms: through the norm of its output; never with the
   * parallel residual, whose d_tmp is already the block's: the config check
   * refuses both) */
  if (post) {
    memset(m->d_tmp, 0, sizeof(float) * Nd);
    norm_bwd(m, m->d_tmp, m->d_res, a->ao, &L->pn1_w, &L->ln1_b, a->ao_stat, N);
  } else if (!par) {
    memcpy(m->d_tmp, m->d_res, sizeof(float) * Nd);
  }
  DT_CALL(site_backward(m, a, l, DT_SITE_ATTN_OUT, a->att, m->d_tmp, m->d_att, 1, NULL));
  memset(m->d_qkv, 0, sizeof(float) * (size_t)N * QKV_L(m));
  const float *pk, *pv;
  float *dpk, *dpv;
  DT_CALL(prefix_of(m, l, &pk, &pv, &dpk, &dpv));
  const dt_attn_dims ad = attn_dims(m, l);
  DT_CALL(dt_attention_backward(m->d_qkv, dpk, dpv, m->d_att, a->att, a->lse, a->qkv, pk, pv, &ad,
                                m->att_scratch));
  prefix_scatter_grad(m);
  if (dt_cfg_arch(c)->pos == DT_POS_ROPE) {
    const int qd = Q_L(m), ld = QKV_L(m);
    const int rd = dt_cfg_rope_dim(c);
    dt_rope_apply_part(m->d_qkv, N, ld, 0, m->bb->sh.n_head_l, c->head_dim, rd, m->T, m->rope_cos,
                       m->rope_sin, 1);
    dt_rope_apply_part(m->d_qkv, N, ld, qd, m->bb->sh.n_kv_l, c->head_dim, rd, m->T, m->rope_cos,
                       m->rope_sin, 1);
  }
  /* the first block's input gradient feeds only the embedding backward:
   * skip it (a frozen N x d x 3d GEMM and the norm) when nothing there, in
   * ln_1 or in a pre hook of this site takes a gradient */
  const int want_dx = l > 0 || dt_model_first_dx_needed(m);
  norm_fwd(m, a->ln1, a->ln1_stat, a->x, &L->ln1_w, &L->ln1_b, N);
  DT_CALL(site_backward(m, a, l, DT_SITE_QKV, a->ln1, m->d_qkv, m->d_ln, want_dx, &dln));
  if (want_dx) norm_bwd(m, m->d_res, dln, a->x, &L->ln1_w, &L->ln1_b, a->ln1_stat, N);
  return DT_OK;
}

/* --- embedding ----------------------------------------------------------- */

static int prompt_of(dt_model *m, const float **e, float **de) {
  *e = NULL;
  *de = NULL;
  for (int k = 0; k < m->n_methods; k++) {
    dt_method *me = m->methods[k];
    if (me->ops->prompt_embed && me->ops->virtual_tokens &&
        me->ops->virtual_tokens(me) > 0) {
      DT_CALL(me->ops->prompt_embed(me, e, de));
      return DT_OK;
    }
  }
  return DT_OK;
}

/* Token embeddings are split by vocabulary rows: each rank fills the rows
 * of the tokens it owns (zeros elsewhere), one sum over the tensor group
 * completes them; then prompt rows and positions are added (replicated). */
static int embed_forward(dt_model *m, float *x) {
  const dt_config *c = &m->bb->cfg;
  const int d = c->d_model, T = m->T, P = m->n_virtual;
  const int v0 = m->bb->sh.vocab0, vl = m->bb->sh.vocab_l;
  const float *pe;
  float *dpe;
  DT_CALL(prompt_of(m, &pe, &dpe));
  for (int b = 0; b < m->B; b++)
    for (int t = P; t < T; t++) {
      float *row = x + ((size_t)b * T + t) * d;
      const int id = m->ids[b * m->T_data + (t - P)] - v0;
      if (id < 0 || id >= vl) {
        memset(row, 0, sizeof(float) * d);
      } else if (m->bb->wte.w) {
        memcpy(row, m->bb->wte.w + (size_t)id * d, sizeof(float) * d);
      } else {
        for (int j = 0; j < d; j++) row[j] = dt_bf16_to_f32(m->bb->wte.w16[(size_t)id * d + j]);
      }
    }
  if (dt_model_tp(m) > 1) DT_CALL(dt_tp_sum(m->bb->dist, x, (size_t)m->B * T * d));
  const float es = dt_cfg_embed_scale(c);
  for (int b = 0; b < m->B; b++)
    for (int t = 0; t < T; t++) {
      float *row = x + ((size_t)b * T + t) * d;
      if (t < P)
        memcpy(row, pe + (size_t)t * d, sizeof(float) * d);
      else if (es != 1.0f) /* Gemma: the tokens' rows only (transformers 5 scales inside
                              embed_tokens; PEFT's prompt rows come as inputs_embeds) */
        for (int j = 0; j < d; j++) row[j] *= es;
      if (dt_cfg_arch(c)->pos == DT_POS_LEARNED) {
        const float *p = m->bb->wpe.w + (size_t)dt_cfg_pos_row(c, m->n_prefix + t) * d;
        for (int j = 0; j < d; j++) row[j] += p[j];
      }
    }
  return DT_OK;
}

static int embed_backward(dt_model *m, const float *dx) {
  const dt_config *c = &m->bb->cfg;
  const int d = c->d_model, T = m->T, P = m->n_virtual;
  const int v0 = m->bb->sh.vocab0, vl = m->bb->sh.vocab_l;
  const float *pe;
  float *dpe;
  DT_CALL(prompt_of(m, &pe, &dpe));
  for (int b = 0; b < m->B; b++)
    for (int t = 0; t < T; t++) {
      const float *g = dx + ((size_t)b * T + t) * d;
      float *dst = NULL;
      if (t < P) {
        dst = dpe ? dpe + (size_t)t * d : NULL;
      } else if (m->bb->wte.grad) {
        const int id = m->ids[b * m->T_data + (t - P)] - v0;
        if (id >= 0 && id < vl) dst = m->bb->wte.grad + (size_t)id * d;
      }
      const float es = t < P ? 1.0f : dt_cfg_embed_scale(c);
      if (dst)
        for (int j = 0; j < d; j++) dst[j] += es * g[j];
      if (dt_cfg_arch(c)->pos == DT_POS_LEARNED && m->bb->wpe.grad) {
        float *p = m->bb->wpe.grad + (size_t)dt_cfg_pos_row(c, m->n_prefix + t) * d;
        for (int j = 0; j < d; j++) p[j] += g[j];
      }
    }
  return DT_OK;
}

/* --- head and loss ------------------------------------------------------- */

/* The label that row r (b * T + t) predicts: the next position's, -100
 * (not scored) at a row's end. */
static inline int next_label(const dt_model *m, int r) {
  const int b = r / m->T, t = r % m->T;
  return t + 1 < m->T ? m->labels[b * m->T + t + 1] : -100;
}

/* Logits for a chunk of rows (gathered by index) and the loss terms. With
 * tensor parallelism each rank holds a block of vocabulary columns: the row
 * maximum, the sum of exponentials and the label's logit are reduced over
 * the tensor group (Megatron's parallel cross-entropy); every rank then
 * holds the same loss. */
static int head_chunk(dt_model *m, const int *rows, int n, const uint16_t *W16, const float *W,
                      int want_grad, double norm, dt_loss_stats *st,
                      float *logits_out) {
  const dt_config *c = &m->bb->cfg;
  const int d = c->d_model, V = m->bb->sh.vocab_l, Vg = c->vocab, v0 = m->bb->sh.vocab0;
  const int tp = dt_model_tp(m);
  float *xg = m->d_tmp; /* [n, d] gathered rows */
  for (int i = 0; i < n; i++)
    memcpy(xg + (size_t)i * d, m->xf + (size_t)rows[i] * d, sizeof(float) * d);
  float *lg = m->logit_chunk;
  const int bf16_math = W == NULL; /* bf16 products of the head's bf16 W16 */
  if (V > 0 && bf16_math)
    DT_CALL(dt_gemm_bf16(lg, xg, W16, n, V, d, 1, 0.0f, m->a16));
  else if (V > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, V, d, 1.0f, xg, d, W,
                d, 0.0f, lg, V);
  const float fcap = c->final_softcap;
  if (fcap > 0) /* Gemma-2: z = c tanh(z / c), tanh kept for the gradient */
    for (size_t i = 0; i < (size_t)n * V; i++) {
      m->logit_tanh[i] = tanhf(lg[i] / fcap);
      lg[i] = fcap * m->logit_tanh[i];
    }
  /* [n] each: row maximum, sum of exponentials, label logit (the three
   * reduced over the tensor group), and the gradient's row factor and label
   * coefficient (below) */
  float *mx = m->head_red, *se = mx + n, *zl = se + n, *fr = zl + n, *lc = fr + n;
  for (int i = 0; i < n; i++) {
    const int r = rows[i], label = next_label(m, r);
    const float *z = lg + (size_t)i * V;
    if (logits_out) memcpy(logits_out + (size_t)r * Vg + v0, z, sizeof(float) * V);
    mx[i] = dt_row_max(z, V);
    zl[i] = label >= v0 && label < v0 + V ? z[label - v0] : 0.0f;
  }
  if (tp > 1) DT_CALL(dt_tp_max(m->bb->dist, mx, (size_t)n));
  /* the exponentials E replace the logits (copied out above) */
  for (int i = 0; i < n; i++) se[i] = (float)dt_exp_shift_sum(lg + (size_t)i * V, V, mx[i]);
  if (tp > 1) DT_CALL(dt_tp_sum(m->bb->dist, se, 2 * (size_t)n)); /* se and zl */
  for (int i = 0; i < n; i++) {
    const int r = rows[i], b = r / m->T, label = next_label(m, r);
    float *z = lg + (size_t)i * V;
    fr[i] = lc[i] = 0.0f;
    if (label < 0) {
      if (want_grad) memset(z, 0, sizeof(float) * V);
      continue;
    }
    const double lse = (double)mx[i] + log((double)se[i]);
    st->loss_sum += lse - zl[i];
    st->n_scored++;
    if (m->row_loss) {
      m->row_loss[b] += lse - zl[i];
      m->row_scored[b]++;
    }
    const int ok = zl[i] >= mx[i]; /* the label attains the maximum */
    st->n_correct_tokens += ok;
    if (!ok) m->labels[b * m->T] = -101; /* flag: row is not exact (t=0 is never scored) */
    if (want_grad) {
      /* d logits = softmax - onehot(label), times the loss normalisation
       * inv: fr E - lc onehot, fr = inv / sum; the row factor and the
       * label's term are applied to the [n, d] sides of the products below,
       * not to the [n, V] logits */
      const float inv = m->row_norm ? m->row_norm[b] : (float)(1.0 / norm);
      fr[i] = (float)((double)inv / (double)se[i]);
      if (label >= v0 && label < v0 + V) lc[i] = inv;
      if (fcap > 0) { /* through z = c tanh(z / c): times 1 - tanh^2 */
        const float *th = m->logit_tanh + (size_t)i * V;
        for (int j = 0; j < V; j++) z[j] *= 1.0f - th[j] * th[j];
        if (lc[i] != 0.0f) lc[i] *= 1.0f - th[label - v0] * th[label - v0];
      }
    }
  }
  if (!want_grad || V == 0) {
    if (want_grad)
      for (int i = 0; i < n; i++) memset(m->d_xf + (size_t)rows[i] * d, 0, sizeof(float) * d);
    return DT_OK;
  }
  /* d xf rows = dlogits W = fr (E W) - lc W[label] (a partial sum over
   * vocabulary blocks) */
  float *dxg = m->d_ln; /* [n, d] */
  if (bf16_math)
    DT_CALL(dt_gemm_bf16(dxg, lg, W16, n, d, V, 0, 0.0f, m->a16));
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, V, 1.0f, lg, V,
                W, d, 0.0f, dxg, d);
  for (int i = 0; i < n; i++) {
    const int r = rows[i], label = next_label(m, r);
    float *dx = m->d_xf + (size_t)r * d;
    const float *e = dxg + (size_t)i * d, f = fr[i], l = lc[i];
    for (int k = 0; k < d; k++) dx[k] = f * e[k];
    if (l == 0.0f) continue;
    const size_t wl = (size_t)(label - v0) * d; /* the label's row of W */
    if (bf16_math)
      for (int k = 0; k < d; k++) dx[k] -= l * dt_bf16_to_f32(W16[wl + k]);
    else
      for (int k = 0; k < d; k++) dx[k] -= l * W[wl + k];
  }
  /* dW += dlogits^T x = E^T (fr x) - lc onehot^T x */
  float *dW = m->bb->cfg.tied_head ? m->bb->wte.grad : m->bb->lm_head.grad;
  if (dW) {
    for (int i = 0; i < n; i++) {
      const int label = next_label(m, rows[i]);
      float *x = xg + (size_t)i * d;
      if (lc[i] != 0.0f)
        for (int k = 0; k < d; k++) dW[(size_t)(label - v0) * d + k] -= lc[i] * x[k];
      for (int k = 0; k < d; k++) x[k] *= fr[i];
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, d, n, 1.0f, lg, V,
                xg, d, 1.0f, dW, d);
  }
  return DT_OK;
}

int dt_model_forward(dt_model *m, const int32_t *ids, const int32_t *labels,
                     int want_grad, double grad_norm_count,
                     dt_loss_stats *stats, float *logits) {
  const dt_config *c = &m->bb->cfg;
  const int B = m->B, T = m->T, Td = m->T_data, P = m->n_virtual;
  const int N = B * T, d = c->d_model;
  DT_CHECK(m->arena, DT_EINTERNAL, "dt_model_forward before dt_model_plan");
  memcpy(m->ids, ids, sizeof(int32_t) * B * Td);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      m->labels[b * T + t] =
          t < P ? -100 : (labels ? labels : ids)[b * Td + (t - P)];
  if (!m->step_open) DT_CALL(begin_hooks(m, want_grad));
  m->pass_row0 = m->step_open ? m->next_row0 : 0;
  m->next_row0 = m->pass_row0 + N;
  /* embeddings -> blocks */
  /* the block inputs: the saved ones, or (shared residual stream) d_res and
   * d_ln in turn, idle until the head and the backward */
  float *xpp[2] = {m->d_res, m->d_ln};
  float *x0 = m->recompute ? m->x_saved[0] : m->x_shared ? xpp[0] : m->acts[0].x;
  DT_CALL(embed_forward(m, x0));
  /* BLOOM's word_embeddings_layernorm, in place (its input is recomputed
   * for the backward) */
  if (dt_cfg_arch(c)->embed_norm)
    norm_fwd(m, x0, m->xf_stat, x0, &m->bb->embn_w, &m->bb->embn_b, N);
  for (int l = 0; l < c->n_layer; l++) {
    dt_layer_acts *a = &m->acts[m->recompute ? 0 : l];
    const float *xin = m->recompute ? m->x_saved[l] : m->x_shared ? xpp[l % 2] : a->x;
    float *xout = l + 1 < c->n_layer
                      ? (m->recompute ? m->x_saved[l + 1]
                                      : m->x_shared ? xpp[(l + 1) % 2] : m->acts[l + 1].x)
                      : m->x_last;
    if (m->recompute) a->x = m->x_saved[l];
    DT_CALL(layer_forward(m, a, l, xin, xout, want_grad));
  }
  norm_fwd(m, m->xf, m->xf_stat, m->x_last, &m->bb->lnf_w, &m->bb->lnf_b, N);
  /* head over scored rows only (all rows when logits are wanted) */
  int n_rows = 0;
  for (int r = 0; r < N; r++) {
    const int b = r / T, t = r % T;
    if (logits || (t + 1 < T && m->labels[b * T + t + 1] >= 0))
      m->scored_rows[n_rows++] = r;
  }
  if (want_grad) memset(m->d_xf, 0, sizeof(float) * (size_t)N * d);
  /* fp32 products: the head as fp32 (widened once for every chunk when
   * stored in bf16); bf16 products: NULL, the chunks use its bf16 */
  const uint16_t *W16 = dt_model_head16(m);
  const float *W = W16 ? NULL : dt_mat_f32(m, &m->bb->lm_head);
  dt_loss_stats st = {0};
  /* row-exact bookkeeping uses labels[b*T] (never scored) as a flag */
  for (int b = 0; b < B; b++) m->labels[b * T] = -100;
  if (logits) memset(logits, 0, sizeof(float) * (size_t)N * c->vocab);
  for (int i = 0; i < n_rows; i += m->logit_chunk_rows) {
    int n = n_rows - i < m->logit_chunk_rows ? n_rows - i : m->logit_chunk_rows;
    DT_CALL(head_chunk(m, m->scored_rows + i, n, W16, W, want_grad, grad_norm_count, &st,
                       logits));
  }
  if (dt_model_tp(m) > 1) {
    if (logits) DT_CALL(dt_tp_sum(m->bb->dist, logits, (size_t)N * c->vocab));
    if (want_grad) DT_CALL(dt_tp_sum(m->bb->dist, m->d_xf, (size_t)N * d));
  }
  for (int b = 0; b < B; b++) {
    int scored = 0;
    for (int t = 1; t < T; t++) scored += m->labels[b * T + t] >= 0;
    if (scored) {
      st.n_rows_scored++;
      st.n_rows_exact += m->labels[b * T] != -101;
    }
    m->labels[b * T] = -100;
  }
  if (stats) *stats = st;
  return DT_OK;
}

int dt_model_backward(dt_model *m) {
  const dt_config *c = &m->bb->cfg;
  const int N = m->B * m->T;
  memset(m->d_res, 0, sizeof(float) * (size_t)N * c->d_model);
  norm_bwd(m, m->d_res, m->d_xf, m->x_last, &m->bb->lnf_w, &m->bb->lnf_b, m->xf_stat, N);
  for (int l = c->n_layer - 1; l >= 0; l--) {
    dt_layer_acts *a = &m->acts[m->recompute ? 0 : l];
    if (m->recompute) {
      a->x = m->x_saved[l];
      DT_CALL(layer_forward(m, a, l, a->x, m->d_ln, 1));
    }
    DT_CALL(layer_backward(m, a, l));
  }
  if (dt_cfg_arch(c)->embed_norm && dt_model_first_dx_needed(m)) {
    /* the embedding's norm: its input again (d_tmp), its statistics, its
     * input gradient into d_xf (idle after the final norm's backward) */
    const size_t Nd = (size_t)N * c->d_model;
    DT_CALL(embed_forward(m, m->d_tmp));
    norm_fwd(m, m->d_ln, m->xf_stat, m->d_tmp, &m->bb->embn_w, &m->bb->embn_b, N);
    memset(m->d_xf, 0, sizeof(float) * Nd);
    norm_bwd(m, m->d_xf, m->d_res, m->d_tmp, &m->bb->embn_w, &m->bb->embn_b, m->xf_stat, N);
    DT_CALL(embed_backward(m, m->d_xf));
  } else {
    DT_CALL(embed_backward(m, m->d_res));
  }
  if (!m->step_open) DT_CALL(end_hooks(m));
  return DT_OK;
}

/* --- parts the incremental decoder reuses (src/fwd_parts.h) -------------- */

int dt_fwd_site(dt_model *m, int l, int s, int B, int T, const float *x, float *y) {
  const int B0 = m->B, T0 = m->T;
  m->B = B, m->T = T; /* the pass's rows: site_forward and the hooks read them */
  const int rc = site_forward(m, &m->acts[0], l, s, x, NULL, y, 0, NULL);
  m->B = B0, m->T = T0;
  return rc;
}

void dt_fwd_norm(const dt_model *m, float *out, float *stat, const float *x, const dt_vec *w,
                 const dt_vec *b, int N) {
  norm_fwd(m, out, stat, x, w, b, N);
}

int dt_fwd_prefix_heads_l(const dt_model *m) {
  const dt_config *c = &m->bb->cfg;
  return m->bb->sh.n_kv_l * (dt_cfg_prefix_heads(c) / c->n_kv_head);
}

int dt_fwd_prefix(dt_model *m, int l, const float **pk, const float **pv) {
  float *dpk, *dpv;
  return prefix_of(m, l, pk, pv, &dpk, &dpv);
}

int dt_fwd_prompt(dt_model *m, const float **e) {
  float *de;
  return prompt_of(m, e, &de);
}

int dt_fwd_begin(dt_model *m) { return begin_hooks(m, 0); }
