#include "decode.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "error.h"
#include "fwd_parts.h"
#include "gemm_bf16.h"
#include "linear_rows.h"
#include "method.h"
#include "ops.h"

int dt_decoder_init(dt_decoder *dc, dt_model *m, int B, int T_max) {
  memset(dc, 0, sizeof *dc);
  dc->m = m;
  dc->B = B;
  dc->T_max = T_max < 2 ? 2 : T_max;
  /* one set of site buffers (recompute) for the largest pass: the least
   * multiple of Tc rows that holds B (a plan of plan_B rows x Tc) */
  int nv = 0;
  for (int k = 0; k < m->n_methods; k++)
    if (m->methods[k]->ops->virtual_tokens) nv += m->methods[k]->ops->virtual_tokens(m->methods[k]);
  const int Tc0 = dc->T_max + nv, plan_B = (B + Tc0 - 1) / Tc0;
  DT_CALL(dt_model_plan(m, plan_B, dc->T_max, 1));
  m->stream_rows = DT_STREAM_ROWS; /* a step's few rows: stream each matrix once */
  dc->n_virtual = m->n_virtual;
  dc->n_prefix = m->n_prefix;
  const dt_config *c = &m->bb->cfg;
  const int Tc = m->T, d = c->d_model;
  dc->max_rows = plan_B * Tc;
  const size_t N = (size_t)dc->max_rows;
  DT_CALL(dt_kvcache_init(&dc->kv, c->n_layer, B, Tc, m->bb->sh.n_kv_l * c->head_dim));
  DT_CALL(dt_alloc_aligned(&dc->x, N * d * sizeof(float), "decoder residual stream"));
  DT_CALL(dt_alloc_aligned(&dc->x1, N * d * sizeof(float), "decoder residual stream"));
  DT_CALL(dt_alloc_aligned(&dc->o, N * d * sizeof(float), "decoder site output"));
  DT_CALL(dt_alloc_aligned(&dc->xl, (size_t)B * d * sizeof(float), "decoder last rows"));
  DT_CALL(dt_alloc_aligned(&dc->lg, (size_t)B * (m->bb->sh.vocab_l + 1) * sizeof(float),
                           "decoder logits"));
  DT_CALL(dt_alloc_aligned(&dc->s, (size_t)(dc->n_prefix + Tc) * sizeof(float), "decoder scores"));
  /* the methods' once-per-forward work: their deltas do not change here */
  DT_CALL(dt_fwd_begin(m));
  return DT_OK;
}

void dt_decoder_free(dt_decoder *dc) {
  dt_kvcache_free(&dc->kv);
  free(dc->x);
  free(dc->x1);
  free(dc->o);
  free(dc->xl);
  free(dc->lg);
  free(dc->s);
  memset(dc, 0, sizeof *dc);
}

void dt_decoder_reset(dt_decoder *dc, int b) { dc->kv.len[b] = 0; }

/* x [nb*Tp, d]: token embeddings (vocabulary rows split over the tensor
 * group: each rank fills its own, one sum completes them), virtual token
 * embeddings in a first pass, learned positions at n_prefix + cache index. */
static int embed(dt_decoder *dc, int nb, const int *slots, int Tp, int nvp, const int32_t *ids,
                 int n) {
  dt_model *m = dc->m;
  const dt_config *c = &m->bb->cfg;
  const int d = c->d_model, v0 = m->bb->sh.vocab0, vl = m->bb->sh.vocab_l;
  for (int b = 0; b < nb; b++)
    for (int t = 0; t < Tp; t++) {
      float *row = dc->x + ((size_t)b * Tp + t) * d;
      const int id = t < nvp ? -1 : ids[(size_t)b * n + (t - nvp)] - v0;
      if (id < 0 || id >= vl) memset(row, 0, sizeof(float) * d);
      else if (m->bb->wte.w) memcpy(row, m->bb->wte.w + (size_t)id * d, sizeof(float) * d);
      else
        for (int j = 0; j < d; j++) row[j] = dt_bf16_to_f32(m->bb->wte.w16[(size_t)id * d + j]);
    }
  if (dt_model_tp(m) > 1) DT_CALL(dt_tp_sum(m->bb->dist, dc->x, (size_t)nb * Tp * d));
  const float *pe = NULL;
  if (nvp) DT_CALL(dt_fwd_prompt(m, &pe));
  const float es = dt_cfg_embed_scale(c);
  for (int b = 0; b < nb; b++)
    for (int t = 0; t < Tp; t++) {
      float *row = dc->x + ((size_t)b * Tp + t) * d;
      if (t < nvp)
        memcpy(row, pe + (size_t)t * d, sizeof(float) * d);
      else if (es != 1.0f) /* the tokens' rows, not the prompt's (src/forward.c) */
        for (int j = 0; j < d; j++) row[j] *= es;
      if (dt_cfg_arch(c)->pos == DT_POS_LEARNED) {
        const float *p =
            m->bb->wpe.w + (size_t)dt_cfg_pos_row(c, dc->n_prefix + dc->kv.len[slots[b]] + t) * d;
        for (int j = 0; j < d; j++) row[j] += p[j];
      }
    }
  if (dt_cfg_arch(c)->embed_norm) /* BLOOM's word_embeddings_layernorm, in place */
    dt_fwd_norm(m, dc->x, m->acts[0].ln1_stat, dc->x, &m->bb->embn_w, &m->bb->embn_b, nb * Tp);
  return DT_OK;
}

/* One block over the pass's rows: x [nb*Tp, d] in place. */
static int block(dt_decoder *dc, int l, int nb, const int *slots, int Tp) {
  dt_model *m = dc->m;
  const dt_config *c = &m->bb->cfg;
  dt_layer *L = &m->bb->layers[l];
  dt_layer_acts *a = &m->acts[0];
  const int d = c->d_model, N = nb * Tp, hd = c->head_dim;
  const int H = m->bb->sh.n_head_l, KV = m->bb->sh.n_kv_l, qd = H * hd, kvl = KV * hd;
  const int ld = dt_site_out_l(m, DT_SITE_QKV);
  dt_fwd_norm(m, a->ln1, a->ln1_stat, dc->x, &L->ln1_w, &L->ln1_b, N);
  DT_CALL(dt_fwd_site(m, l, DT_SITE_QKV, nb, Tp, a->ln1, a->qkv));
  const int rope = dt_cfg_arch(c)->pos == DT_POS_ROPE;
  for (int b = 0; b < nb; b++) {
    const int c0 = dc->kv.len[slots[b]];
    float *K = dt_kvcache_k(&dc->kv, l, slots[b]), *V = dt_kvcache_v(&dc->kv, l, slots[b]);
    for (int t = 0; t < Tp; t++) {
      float *row = a->qkv + ((size_t)b * Tp + t) * ld;
      if (rope) { /* at the token's own position (the tables start after the prefix) */
        const int rd = dt_cfg_rope_dim(c);
        const size_t at = (size_t)(c0 + t) * (rd / 2);
        dt_rope_apply_part(row, 1, ld, 0, H, hd, rd, 1, m->rope_cos + at, m->rope_sin + at, 0);
        dt_rope_apply_part(row, 1, ld, qd, KV, hd, rd, 1, m->rope_cos + at, m->rope_sin + at, 0);
      }
      memcpy(K + (size_t)(c0 + t) * kvl, row + qd, sizeof(float) * kvl);
      memcpy(V + (size_t)(c0 + t) * kvl, row + qd + kvl, sizeof(float) * kvl);
    }
  }
  const float *pk, *pv;
  DT_CALL(dt_fwd_prefix(m, l, &pk, &pv));
  for (int b = 0; b < nb; b++)
    dt_kv_attend(a->att + (size_t)b * Tp * qd, a->qkv + (size_t)b * Tp * ld, ld,
                 dt_kvcache_k(&dc->kv, l, slots[b]), dt_kvcache_v(&dc->kv, l, slots[b]),
                 dc->kv.len[slots[b]], Tp, pk, pv, dc->n_prefix, dt_fwd_prefix_heads_l(m),
                 dt_cfg_window(c, l), m->bb->alibi, H, KV, hd, dt_cfg_attn_scale(c),
                 c->attn_softcap, dc->s);
  const dt_shard *sh = &m->bb->sh;
  if (sh->kv_share > 1 && sh->kv_share_i > 0) { /* a shared group decodes on its first rank */
    const int gq = qd / KV; /* its query columns: the last local group's (mpi/shard.h) */
    for (int i = 0; i < N; i++) memset(a->att + (size_t)i * qd + qd - gq, 0, sizeof(float) * gq);
  }
  DT_CALL(dt_fwd_site(m, l, DT_SITE_ATTN_OUT, nb, Tp, a->att, dc->o));
  /* post_norms (Gemma-2): the branch outputs through their norms, in the
   * norm buffer (free once the block's product has read it) */
  const int post = dt_cfg_arch(c)->post_norms;
  const float *br = dc->o;
  if (post) {
    dt_fwd_norm(m, a->ln1, a->ln1_stat, dc->o, &L->pn1_w, &L->ln1_b, N);
    br = a->ln1;
  }
  for (size_t i = 0; i < (size_t)N * d; i++) dc->x1[i] = dc->x[i] + br[i];
  /* GPT-NeoX's parallel residual: the FFN reads the block input */
  dt_fwd_norm(m, a->ln2, a->ln2_stat, c->parallel_residual ? dc->x : dc->x1,
              dt_layer_ffn_norm_w(L, c), dt_layer_ffn_norm_b(L, c), N);
  DT_CALL(dt_fwd_site(m, l, DT_SITE_FC, nb, Tp, a->ln2, a->fc));
  const int F = dt_site_in_l(m, DT_SITE_PROJ);
  dt_ffn_act_forward(dt_cfg_act(c), a->act, a->fc, N, F);
  DT_CALL(dt_fwd_site(m, l, DT_SITE_PROJ, nb, Tp, a->act, dc->o));
  if (post) dt_fwd_norm(m, a->ln2, a->ln2_stat, dc->o, &L->pn2_w, &L->ln2_b, N);
  for (size_t i = 0; i < (size_t)N * d; i++) dc->x[i] = dc->x1[i] + (post ? a->ln2 : dc->o)[i];
  return DT_OK;
}

/* logits [nb, vocab] of the rows' last positions: final norm, this rank's
 * vocabulary columns, one sum over the tensor group. */
static int head(dt_decoder *dc, int nb, int Tp, float *logits) {
  dt_model *m = dc->m;
  const dt_config *c = &m->bb->cfg;
  const int d = c->d_model, V = m->bb->sh.vocab_l, v0 = m->bb->sh.vocab0;
  dt_layer_acts *a = &m->acts[0];
  for (int b = 0; b < nb; b++)
    memcpy(dc->xl + (size_t)b * d, dc->x + ((size_t)b * Tp + Tp - 1) * d, sizeof(float) * d);
  dt_fwd_norm(m, a->ln1, a->ln1_stat, dc->xl, &m->bb->lnf_w, &m->bb->lnf_b, nb);
  const dt_mat *W = &m->bb->lm_head;
  const uint16_t *h16 = dt_model_head16(m);
  if (V > 0 && h16)
    DT_CALL(dt_gemm_bf16(dc->lg, a->ln1, h16, nb, V, d, 1, 0.0f, m->a16));
  else if (V > 0 && nb <= m->stream_rows && !W->w)
    dt_linear_rows_bf16(dc->lg, a->ln1, W->w16, NULL, nb, d, V);
  else if (V > 0 && nb <= m->stream_rows)
    dt_linear_rows(dc->lg, a->ln1, W->w, NULL, nb, d, V);
  else if (V > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, V, d, 1.0f, a->ln1, d,
                dt_mat_f32(m, W), d, 0.0f, dc->lg, V);
  if (c->final_softcap > 0) /* Gemma-2 */
    for (size_t i = 0; i < (size_t)nb * V; i++)
      dc->lg[i] = c->final_softcap * tanhf(dc->lg[i] / c->final_softcap);
  memset(logits, 0, sizeof(float) * (size_t)nb * c->vocab);
  for (int b = 0; b < nb; b++)
    memcpy(logits + (size_t)b * c->vocab + v0, dc->lg + (size_t)b * V, sizeof(float) * V);
  if (dt_model_tp(m) > 1) DT_CALL(dt_tp_sum(m->bb->dist, logits, (size_t)nb * c->vocab));
  return DT_OK;
}

int dt_decoder_step(dt_decoder *dc, int nb, const int *slots, int n, const int32_t *ids,
                    float *logits) {
  DT_CHECK(nb >= 1 && nb <= dc->B && n >= 1, DT_EINTERNAL, "decoder pass of %d x %d tokens (%d slots)",
           nb, n, dc->B);
  const int first = dc->kv.len[slots[0]] == 0;
  const int nvp = first ? dc->n_virtual : 0, Tp = n + nvp;
  DT_CHECK(nb * Tp <= dc->max_rows, DT_EINTERNAL, "decoder pass of %d x %d rows > %d", nb, Tp,
           dc->max_rows);
  for (int b = 0; b < nb; b++) {
    DT_CHECK(slots[b] >= 0 && slots[b] < dc->B && (dc->kv.len[slots[b]] == 0) == first,
             DT_EINTERNAL, "decoder slot %d (len %d) in a %s pass", slots[b],
             slots[b] >= 0 && slots[b] < dc->B ? dc->kv.len[slots[b]] : -1,
             first ? "first" : "later");
    DT_CHECK(dc->kv.len[slots[b]] + Tp <= dc->kv.Tc, DT_EINTERNAL,
             "decoder slot %d: %d + %d positions exceed the cache's %d", slots[b],
             dc->kv.len[slots[b]], Tp, dc->kv.Tc);
  }
  DT_CALL(embed(dc, nb, slots, Tp, nvp, ids, n));
  for (int l = 0; l < dc->m->bb->cfg.n_layer; l++) DT_CALL(block(dc, l, nb, slots, Tp));
  for (int b = 0; b < nb; b++) dc->kv.len[slots[b]] += Tp;
  DT_CALL(head(dc, nb, Tp, logits));
  return DT_OK;
}
