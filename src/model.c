/* Backbone weights: allocation, the HF name table, loading from safetensors
 * or synthetic generation, gradients for trainable backbone tensors. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agree.h"
#include "bnb4.h"
#include "error.h"
#include "mpicheck.h"
#include "ops.h"
#include "rng.h"
#include "quant.h"
#include "safetensors.h"
#include "testhook.h"

/* The weight storage is sized and allocated by one walk (alloc_weights):
 * each piece adds its bytes (as dt_alloc_aligned rounds them) to
 * the backbone's weight_bytes and is allocated unless the model is describe_only, so
 * `deltatune plan` and a real load cannot disagree. */
static size_t aligned_bytes(size_t bytes) { return bytes ? (bytes + 63) / 64 * 64 : 64; }

/* A quantized block matrix (src/quant.h); cols_global: the global columns
 * of a row-parallel shard (NULL: its columns are the matrix's). Its numbers
 * (codes and scales) are carved from the node's shared copy when there is
 * one, as alloc_mat's matrices are (the writer zeroes them); the small block
 * maps stay the rank's. */
static int alloc_qmat(dt_backbone *b, dt_mat *a, int rows, int cols, const dt_segs *cols_global,
                      int64_t dq_scales) {
  a->rows = rows;
  a->cols = cols;
  int64_t bytes, numbers;
  void *at = b->slab && !b->describe_only ? b->slab + b->slab_used : NULL;
  DT_CALL(dt_qmat_init_at(&a->qm, b->wquant, rows, cols, cols_global, dq_scales, b->describe_only,
                          at, &bytes, &numbers));
  b->weight_bytes += bytes;
  b->mat_bytes += numbers;
  if (at) {
    b->slab_used += (size_t)numbers;
    a->shared = 1;
    if (b->slab_writer) memset(at, 0, (size_t)numbers);
  }
  return DT_OK;
}

static int alloc_mat(dt_backbone *b, dt_mat *a, int rows, int cols, int bf16, const char *what) {
  a->rows = rows;
  a->cols = cols;
  size_t n = (size_t)rows * cols;
  const size_t bytes = aligned_bytes(n * (bf16 ? sizeof(uint16_t) : sizeof(float)));
  b->weight_bytes += (int64_t)bytes;
  b->mat_bytes += (int64_t)bytes;
  if (b->describe_only) return DT_OK;
  if (b->slab) { /* carved from the node's shared copy (64-byte aligned) */
    void *p = b->slab + b->slab_used;
    b->slab_used += bytes;
    if (bf16) a->w16 = p;
    else a->w = p;
    a->shared = 1;
    return DT_OK;
  }
  if (bf16) DT_CALL(dt_alloc_aligned(&a->w16, n * sizeof(uint16_t), what));
  else DT_CALL(dt_alloc_aligned(&a->w, n * sizeof(float), what));
  return DT_OK;
}

static int alloc_vec(dt_backbone *b, dt_vec *v, int n, const char *what) {
  v->n = n;
  b->weight_bytes += (int64_t)aligned_bytes((size_t)n * sizeof(float));
  if (b->describe_only) return DT_OK;
  DT_CALL(dt_alloc_aligned(&v->v, (size_t)n * sizeof(float), what));
  return DT_OK;
}

/* nf4: the block scales of a site's whole (global) matrix, all its HF
 * tensors: out rows x ceil(in / 64) (double quantization, src/quant.h) */
static int64_t site_nf4_scales(const dt_config *c, int s) {
  const int out = s == DT_SITE_QKV ? dt_cfg_qkv_dim(c) : s == DT_SITE_FC ? dt_cfg_fc_dim(c) : c->d_model;
  const int in = s == DT_SITE_ATTN_OUT ? dt_cfg_q_dim(c) : s == DT_SITE_PROJ ? c->d_ffn : c->d_model;
  return (int64_t)out * ((in + DT_NF4_BLOCK - 1) / DT_NF4_BLOCK);
}

static int alloc_weights(dt_backbone *b) {
  const dt_config *c = &b->cfg;
  const int d = c->d_model, bf = b->weights_bf16, V = b->sh.vocab_l;
  b->weight_bytes = b->mat_bytes = 0;
  DT_CALL(alloc_mat(b, &b->wte, V, d, bf, "token embedding"));
  if (dt_cfg_arch(c)->pos == DT_POS_LEARNED)
    DT_CALL(alloc_mat(b, &b->wpe, dt_cfg_dim(c, DT_DIM_POS), d, 0, "position embedding"));
  if (dt_cfg_arch(c)->embed_norm) {
    DT_CALL(alloc_vec(b, &b->embn_w, d, "embedding norm"));
    if (c->has_bias) DT_CALL(alloc_vec(b, &b->embn_b, d, "embedding norm bias"));
  }
  if (dt_cfg_arch(c)->pos == DT_POS_ALIBI && !b->describe_only) {
    /* the slopes of this rank's heads, by their global index */
    DT_CALL(dt_malloc(&b->alibi, sizeof(float) * (size_t)(b->sh.n_head_l + 1), "alibi slopes"));
    const int grp = c->n_head / c->n_kv_head; /* local head j: group j / grp (mpi/shard.h) */
    for (int j = 0; j < b->sh.n_head_l; j++)
      b->alibi[j] = dt_alibi_slope(c->n_head, dt_shard_kv_group(&b->sh, c, j / grp) * grp + j % grp);
  }
  DT_CALL(alloc_vec(b, &b->lnf_w, d, "final norm"));
  if (c->has_bias) DT_CALL(alloc_vec(b, &b->lnf_b, d, "final norm bias"));
  if (c->tied_head) b->lm_head = b->wte;
  else DT_CALL(alloc_mat(b, &b->lm_head, V, d, bf, "lm_head"));
  DT_CALL(dt_calloc(&b->layers, sizeof(dt_layer) * c->n_layer, "layers"));
  for (int l = 0; l < c->n_layer; l++) {
    dt_layer *L = &b->layers[l];
    DT_CALL(alloc_vec(b, &L->ln1_w, d, "norm"));
    if (dt_cfg_has_ln2(c)) DT_CALL(alloc_vec(b, &L->ln2_w, d, "norm"));
    if (dt_cfg_arch(c)->post_norms) {
      DT_CALL(alloc_vec(b, &L->pn1_w, d, "norm"));
      DT_CALL(alloc_vec(b, &L->pn2_w, d, "norm"));
    }
    if (c->has_bias) {
      DT_CALL(alloc_vec(b, &L->ln1_b, d, "norm bias"));
      if (dt_cfg_has_ln2(c)) DT_CALL(alloc_vec(b, &L->ln2_b, d, "norm bias"));
    }
    for (int s = 0; s < DT_N_SITES; s++) {
      const int out = dt_shard_site_out_l(&b->sh, c, s), in = dt_shard_site_in_l(&b->sh, c, s);
      if (b->wquant)
        DT_CALL(alloc_qmat(b, &L->lin[s], out, in,
                           dt_site_row_parallel(s) && b->sh.tp_size > 1 ? dt_shard_site_segs(&b->sh, s) : NULL,
                           b->wquant == DT_Q_NF4 ? site_nf4_scales(c, s) : 0));
      else DT_CALL(alloc_mat(b, &L->lin[s], out, in, bf, "block matrix"));
      if (dt_cfg_lin_bias(c) || (s == DT_SITE_QKV && c->qkv_bias))
        DT_CALL(alloc_vec(b, &L->bias[s], out, "bias"));
    }
  }
  return DT_OK;
}

int64_t dt_model_local_weight_bytes(const dt_model *m) {
  dt_tensor_ref *refs;
  int n;
  if (dt_model_tensors((dt_model *)m, &refs, &n)) return -1;
  int64_t b = 0;
  for (int i = 0; i < n; i++)
    b += refs[i].numel_l * (refs[i].mat && m->bb->weights_bf16 && refs[i].mat != &m->bb->wpe ? 2 : 4);
  free(refs);
  return b;
}

/* --- the name table ------------------------------------------------------ */

/* rows x cols: the tensor's global storage shape ([out, in] for matrices,
 * n x 1 for vectors); kind/lo/hi: which shard dimension and which global
 * index range of it the tensor covers (fused q|k|v, gate|up). */
static int add_ref(dt_model *m, dt_tensor_ref *r, int *n, const char *name, int layer,
                   dt_mat *mat, dt_vec *vec, int64_t rows, int64_t cols, int transposed,
                   int kind, int lo, int hi) {
  dt_tensor_ref *e = &r[(*n)++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  e->layer = layer;
  e->mat = mat;
  e->vec = vec;
  e->transposed = transposed;
  e->rows = rows;
  e->cols = cols;
  e->numel = rows * cols;
  if (mat) {
    e->ndim = 2;
    e->shape[0] = transposed ? cols : rows;
    e->shape[1] = transposed ? rows : cols;
    e->is_matrix = layer >= 0;
  } else {
    e->ndim = 1;
    e->shape[0] = rows;
  }
  const dt_shard *sh = &m->bb->sh;
  e->shard_dim = 0;
  switch (kind) {
    case DT_SHARD_QKV: DT_CALL(dt_segs_restrict(&e->segs, &sh->qkv_rows, lo, hi)); break;
    case DT_SHARD_FC: DT_CALL(dt_segs_restrict(&e->segs, &sh->fc_rows, lo, hi)); break;
    case DT_SHARD_VOCAB: DT_CALL(dt_segs_restrict(&e->segs, &sh->vocab_rows, lo, hi)); break;
    case DT_SHARD_ATT_COLS:
      e->shard_dim = 1;
      DT_CALL(dt_segs_restrict(&e->segs, &sh->att_cols, lo, hi));
      break;
    case DT_SHARD_FFN_COLS:
      e->shard_dim = 1;
      DT_CALL(dt_segs_restrict(&e->segs, &sh->ffn_cols, lo, hi));
      break;
    default: dt_segs_full(&e->segs, (int)rows, 0); break;
  }
  const int tot = dt_segs_total(&e->segs);
  const int first = e->segs.n ? dt_segs_at(&e->segs, 0)->l0 : 0;
  if (e->shard_dim == 0) {
    e->offset = (int64_t)first * cols;
    e->numel_l = (int64_t)tot * cols;
  } else {
    e->offset = 0;
    e->numel_l = rows * (int64_t)tot;
  }
  /* a part, or the whole in another row order than the file's (GPT-NeoX's
   * per-head query_key_value rows go to the engine's q|k|v blocks) */
  e->sharded = e->numel_l != e->numel || e->segs.n != 1 || dt_segs_at(&e->segs, 0)->g0 != 0;
  /* the same on every rank of the tensor group: with one key/value head
   * (Falcon-7B's multi_query) one rank holds all of q|k|v, the others none */
  if (kind != DT_SHARD_REPL && sh->tp_size > 1) e->sharded = 1;
  size_t len = strlen(name);
  e->is_bias = len > 5 && strcmp(name + len - 5, ".bias") == 0;
  return DT_OK;
}

/* Does the config have a tensor row of this kind (dt_tensor_when)? */
static int tensor_exists(const dt_config *c, dt_tensor_when w) {
  const int two = c->parallel_residual && !c->shared_norm;
  switch (w) {
    case DT_WHEN_LIN_BIAS: return dt_cfg_lin_bias(c);
    case DT_WHEN_TWO_NORMS: return two;
    case DT_WHEN_NOT_TWO_NORMS: return !two;
    case DT_WHEN_SEQUENTIAL: return !c->parallel_residual;
    default: return 1;
  }
}

int dt_model_tensors(dt_model *m, dt_tensor_ref **refs, int *n) {
  const dt_config *c = &m->bb->cfg;
  int cap = dt_cfg_arch(c)->n_tensors * (c->n_layer + 1), k = 0;
  dt_tensor_ref *r;
  DT_CALL(dt_calloc(&r, sizeof *r * cap, "tensor table"));
  char nm[128];
  int rc = DT_OK;
#define NAME(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
#define ADD(...) \
  do { if (rc == DT_OK) rc = add_ref(m, r, &k, __VA_ARGS__); } while (0)
  /* the family's tensor table (io/arch.c) in the files' order: the global
   * rows before the first block row, every block's rows, then the other
   * global rows (the order is the parameter tables' and the checkpoints') */
  const dt_arch_desc *A = dt_cfg_arch(c);
  int first = 0;
  while (first < A->n_tensors && !A->tensors[first].per_layer) first++;
  for (int pass = 0; pass < 3; pass++) {
    const int l0 = pass == 1 ? 0 : -1, l1 = pass == 1 ? c->n_layer : 0;
    for (int l = l0; l < l1; l++) {
      for (int i = pass == 2 ? first : 0; i < (pass == 0 ? first : A->n_tensors); i++) {
        const dt_arch_tensor *t = &A->tensors[i];
        if (t->per_layer != (pass == 1) || (t->untied_only && c->tied_head)) continue;
        if (!tensor_exists(c, t->when)) continue;
        dt_layer *L = pass == 1 ? &m->bb->layers[l] : NULL;
        dt_mat *mat = NULL;
        dt_vec *vec = NULL;
        switch (t->slot) {
          case DT_SLOT_WTE: mat = &m->bb->wte; break;
          case DT_SLOT_WPE: mat = &m->bb->wpe; break;
          case DT_SLOT_HEAD: mat = &m->bb->lm_head; break;
          case DT_SLOT_LNF_W: vec = &m->bb->lnf_w; break;
          case DT_SLOT_EMBN_W: vec = &m->bb->embn_w; break;
          case DT_SLOT_EMBN_B: vec = &m->bb->embn_b; break;
          case DT_SLOT_LNF_B: vec = &m->bb->lnf_b; break;
          case DT_SLOT_LN1_W: vec = &L->ln1_w; break;
          case DT_SLOT_LN1_B: vec = &L->ln1_b; break;
          case DT_SLOT_LN2_W: vec = &L->ln2_w; break;
          case DT_SLOT_LN2_B: vec = &L->ln2_b; break;
          case DT_SLOT_LIN: mat = &L->lin[t->site]; break;
          case DT_SLOT_BIAS: vec = &L->bias[t->site]; break;
          case DT_SLOT_PN1_W: vec = &L->pn1_w; break;
          case DT_SLOT_PN2_W: vec = &L->pn2_w; break;
        }
        ADD(pass == 1 ? NAME(t->name, l) : t->name, l, mat, vec, dt_cfg_dim(c, t->rows),
            dt_cfg_dim(c, t->cols), t->transposed, (int)t->shard, dt_cfg_dim(c, t->lo),
            dt_cfg_dim(c, t->hi));
        if (rc == DT_OK && pass != 1) r[k - 1].alias = t->alias;
      }
    }
  }
#undef ADD
#undef NAME
  if (rc) {
    free(r);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  *refs = r;
  *n = k;
  return DT_OK;
}

/* --- loading ------------------------------------------------------------- */

/* Store n floats at element e of an owner (fp32 or bf16). */
static void put(const dt_tensor_ref *r, int64_t e, const float *v, int64_t n,
                int64_t stride) {
  if (r->vec) {
    for (int64_t j = 0; j < n; j++) r->vec->v[e + j * stride] = v[j];
  } else if (r->mat->w) {
    for (int64_t j = 0; j < n; j++) r->mat->w[e + j * stride] = v[j];
  } else {
    for (int64_t j = 0; j < n; j++) r->mat->w16[e + j * stride] = dt_f32_to_bf16(v[j]);
  }
}

/* Is one HF tensor in the files, with the shape config.json implies and a
 * floating-point dtype? Every tensor is checked before any is read. */
static int check_ref(const dt_tensor_ref *r, const dt_st_set *set) {
  if (r->mat && dt_bnb4_in(set, r->name)) { /* bitsandbytes 4-bit (src/bnb4.h) */
    DT_CHECK(r->mat->qm.dq, DT_EINPUT,
             "%s: tensor '%s' is stored 4-bit by bitsandbytes (a *-bnb-4bit folder): it loads only as "
             "--weights-dtype nf4, and only into a block matrix", set->dir, r->name);
    dt_bnb4 b;
    const int rc = dt_bnb4_open(&b, set, r->name, r->rows, r->cols);
    dt_bnb4_close(&b);
    return rc ? dt_error_trace(rc, __FILE__, __LINE__, __func__) : DT_OK;
  }
  const dt_st_file *f;
  const dt_st_tensor *t = dt_st_set_find(set, r->name, &f);
  DT_CHECK(t, DT_EINPUT,
           "%s: tensor '%s' is missing from the model's safetensors file(s) (config.json "
           "implies it)", set->dir, r->name);
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
  return DT_OK;
}

/* Read this rank's part of one HF tensor (checked by check_ref): only the
 * bytes of its shard, at their offsets (transposing Conv1D weights). */
static int load_ref(const dt_tensor_ref *r, const dt_st_set *set, float *tmp) {
  const dt_st_file *f;
  const dt_st_tensor *t = dt_st_set_find(set, r->name, &f);
  DT_CHECK(t, DT_EINTERNAL, "%s: tensor '%s' vanished", set->dir, r->name);
  const int64_t R = r->rows, C = r->cols;
  const int64_t lc = r->mat ? r->mat->cols : 1; /* owner's local row length */
  for (int i = 0; i < r->segs.n; i++) {
    const dt_seg *g = dt_segs_at(&r->segs, i);
    if (r->shard_dim == 0 && !r->transposed) {
      /* HF rows [g0, g0+len) are contiguous */
      for (int64_t row = 0; row < g->len; row++) {
        DT_CALL(dt_st_read_f32(f, t, (g->g0 + row) * C, C, tmp));
        put(r, (g->l0 + row) * lc, tmp, C, 1);
      }
    } else if (r->shard_dim == 0) {
      /* storage rows = HF columns: for each HF row, the segment's columns */
      for (int64_t i2 = 0; i2 < C; i2++) {
        DT_CALL(dt_st_read_f32(f, t, i2 * R + g->g0, g->len, tmp));
        put(r, (int64_t)g->l0 * lc + i2, tmp, g->len, lc);
      }
    } else if (!r->transposed) {
      /* column shard of a [rows, cols] tensor: per row, the segment */
      for (int64_t row = 0; row < R; row++) {
        DT_CALL(dt_st_read_f32(f, t, row * C + g->g0, g->len, tmp));
        put(r, row * lc + g->l0, tmp, g->len, 1);
      }
    } else {
      /* storage columns = HF rows (contiguous in the file) */
      for (int64_t c2 = 0; c2 < g->len; c2++) {
        DT_CALL(dt_st_read_f32(f, t, (g->g0 + c2) * R, R, tmp));
        put(r, g->l0 + c2, tmp, R, lc);
      }
    }
  }
  return DT_OK;
}

/* --- quantized matrices (src/quant.h) --------------------------------------
 * A quantized matrix loads into an fp32 staging copy of its shard (mat->w),
 * one matrix at a time, and is quantized once its last tensor is in. The
 * copy then waits as the backbone's spare for the next matrix that fits in
 * it, and the spare goes at the end of the load (stage_spare_free): a fresh
 * copy a matrix had the kernel clear every page of it again (38% of a
 * LLaMA-2-70B-width nf4 load, 2026-12-05). A matrix larger than the spare
 * frees it before taking its own, so no more copies are held at once than
 * before; one lent to a smaller matrix is larger than that matrix needs. */
static void stage_spare_free(dt_backbone *bb) {
  free(bb->stage_spare);
  bb->stage_spare = NULL;
  bb->stage_spare_n = 0;
}

static int stage_begin(dt_backbone *bb, const dt_tensor_ref *r) {
  dt_mat *a = r->mat;
  if (!a || !a->qm.type || a->w) return DT_OK;
  const size_t n = (size_t)a->rows * a->cols;
  if (bb->stage_spare && bb->stage_spare_n >= n) {
    a->w = bb->stage_spare; /* lent: its size goes with it */
    bb->stage_lent = a->w;
    bb->stage_lent_n = bb->stage_spare_n;
    bb->stage_spare = NULL;
    bb->stage_spare_n = 0;
    return DT_OK;
  }
  stage_spare_free(bb);
  DT_CALL(dt_alloc_aligned(&a->w, sizeof(float) * n, "staging of a matrix being quantized"));
  return DT_OK;
}

/* Matrix a is quantized: its staging copy becomes the spare, unless the
 * spare is at least as large. */
static void stage_release(dt_backbone *bb, dt_mat *a) {
  size_t cap = (size_t)a->rows * a->cols;
  if (a->w == bb->stage_lent) {
    cap = bb->stage_lent_n;
    bb->stage_lent = NULL;
  }
  if (bb->stage_spare && bb->stage_spare_n >= cap) {
    free(a->w);
  } else {
    free(bb->stage_spare);
    bb->stage_spare = a->w;
    bb->stage_spare_n = cap;
  }
  a->w = NULL;
}

/* This rank's rows of HF tensor r (storage [out, in]): local row lrows[i]
 * of the owner is global row grows[i] of the tensor, i < *nr (malloc'd). */
static int ref_rows(const dt_tensor_ref *r, int **lrows, int64_t **grows, int *nr) {
  int n = 0;
  if (r->shard_dim == 0)
    for (int s = 0; s < r->segs.n; s++) n += dt_segs_at(&r->segs, s)->len;
  else n = (int)r->rows;
  *lrows = NULL;
  *grows = NULL;
  int rc = dt_malloc(lrows, sizeof(int) * (n ? n : 1), "rows of a tensor");
  if (rc == DT_OK) rc = dt_malloc(grows, sizeof(int64_t) * (n ? n : 1), "rows of a tensor");
  if (rc) {
    free(*lrows);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  int k = 0;
  if (r->shard_dim == 0)
    for (int s = 0; s < r->segs.n; s++) {
      const dt_seg *sg = dt_segs_at(&r->segs, s);
      for (int i = 0; i < sg->len; i++, k++) (*lrows)[k] = sg->l0 + i, (*grows)[k] = sg->g0 + i;
    }
  else
    for (; k < n; k++) (*lrows)[k] = k, (*grows)[k] = k;
  *nr = n;
  return DT_OK;
}

/* Double quantization of one HF tensor r of quantized matrix a (group g):
 * its whole block-absmax vector [rows, ceil(cols / 64)] (this rank's
 * entries from amax, its local absmax; a maximum over the tensor group
 * fills the others), back into amax (the agreed values the 4-bit codes
 * use), and the tensor's offset, scale codes and nested absmax into a->qm
 * (src/quant.h). Collective over the tensor group. */
static int dq_tensor(const dt_dist *dist, dt_mat *a, const dt_tensor_ref *r, int g, float *amax) {
  dt_qmat *q = &a->qm;
  const int gb = (int)((r->cols + DT_NF4_BLOCK - 1) / DT_NF4_BLOCK);
  const size_t n = (size_t)r->rows * gb, nn = dt_nf4_dq_nested(n);
  float *vec = NULL, *nabs = NULL;
  uint8_t *codes = NULL;
  int *lrows = NULL, nr = 0;
  int64_t *grows = NULL;
  int rc = ref_rows(r, &lrows, &grows, &nr);
  if (rc == DT_OK) rc = dt_calloc(&vec, sizeof(float) * (n ? n : 1), "block scales of a tensor");
  if (rc == DT_OK) rc = dt_malloc(&codes, n ? n : 1, "block scales of a tensor");
  if (rc == DT_OK) rc = dt_malloc(&nabs, sizeof(float) * (nn ? nn : 1), "block scales of a tensor");
  if (rc == DT_OK) {
    for (int i = 0; i < nr; i++)
      for (int b = 0; b < q->nb; b++)
        vec[grows[i] * gb + q->gblk[b]] = amax[(size_t)lrows[i] * q->nb + b];
    if (dist && dist->tp_size > 1)
      rc = DT_MPI_RC(MPI_Allreduce(MPI_IN_PLACE, vec, (int)n, MPI_FLOAT, MPI_MAX, dist->tp),
                     "block scales of a quantized tensor");
  }
  if (rc == DT_OK) {
    for (int i = 0; i < nr; i++)
      for (int b = 0; b < q->nb; b++)
        amax[(size_t)lrows[i] * q->nb + b] = vec[grows[i] * gb + q->gblk[b]];
    float off;
    dt_nf4_double_quant(vec, n, &off, codes, nabs);
    rc = dt_qmat_dq_set(q, g, lrows, grows, nr, gb, codes, nabs, (int64_t)nn, off);
  }
  free(vec);
  free(codes);
  free(nabs);
  free(lrows);
  free(grows);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* Does stage_end of tensor i communicate (under --tp): the last tensor of a
 * quantized matrix? The same on every rank of a tensor group. */
static int stage_collective(const dt_tensor_ref *refs, int n, int i) {
  const dt_mat *a = refs[i].mat;
  if (!a || !a->qm.type) return 0;
  for (int j = i + 1; j < n; j++)
    if (refs[j].mat == a) return 0;
  return 1;
}

/* Test hook DT_TEST_LOAD_FAULT=RANK:TENSOR: that rank's read of that tensor
 * (its index in the load order) fails, as an I/O error would. */
static int load_fault(const dt_dist *dist, int i) {
  const char *h = dt_test_hook("DT_TEST_LOAD_FAULT");
  int r = -1, t = -1;
  if (!h || sscanf(h, "%d:%d", &r, &t) != 2 || t != i || r != (dist ? dist->rank : 0)) return DT_OK;
  DT_ERR(DT_EIO, "reading tensor %d failed (test hook DT_TEST_LOAD_FAULT=%s)", i, h);
}

static int stage_end(dt_model *m, const dt_tensor_ref *refs, int n, int i) {
  dt_mat *a = refs[i].mat;
  if (!a || !a->qm.type) return DT_OK;
  for (int j = i + 1; j < n; j++)
    if (refs[j].mat == a) return DT_OK; /* more of it to come */
  const dt_dist *dist = m->bb->dist;
  if (a->qm.dq) { /* nf4 with double quantization: per HF tensor, in order */
    const size_t na = dt_qmat_absmax_count(&a->qm);
    float *amax = NULL;
    int rc = dt_malloc(&amax, sizeof(float) * (na ? na : 1), "scales of a quantized matrix");
    if (rc == DT_OK) dt_qmat_local_absmax(&a->qm, a->w, amax);
    for (int j = 0, g = 0; rc == DT_OK && j <= i; j++)
      if (refs[j].mat == a) rc = dq_tensor(dist, a, &refs[j], g++, amax);
    if (rc == DT_OK) dt_qmat_quantize(&a->qm, a->w, amax);
    free(amax);
    stage_release(m->bb, a);
    if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    return DT_OK;
  }
  /* a row-parallel shard holds part of every row: the scales of the whole
   * rows / blocks are agreed over the tensor group (a maximum in an array
   * of the whole matrix's, each rank filling its own) */
  int64_t gcols = 0;
  for (int j = 0; j < n; j++)
    if (refs[j].mat == a && refs[j].shard_dim == 1 && dist && dist->tp_size > 1) gcols = refs[j].cols;
  float *amax = NULL, *all = NULL;
  int rc = DT_OK;
  if (gcols > 0) {
    const int gblocks = (int)((gcols + DT_NF4_BLOCK - 1) / DT_NF4_BLOCK);
    const size_t na = dt_qmat_absmax_count(&a->qm);
    const size_t nall = a->qm.type == DT_Q_INT8 ? (size_t)a->rows : (size_t)a->rows * gblocks;
    rc = dt_malloc(&amax, sizeof(float) * (na ? na : 1), "scales of a quantized matrix");
    if (rc == DT_OK) rc = dt_calloc(&all, sizeof(float) * (nall ? nall : 1), "scales of a quantized matrix");
    if (rc == DT_OK) {
      dt_qmat_local_absmax(&a->qm, a->w, amax);
      for (size_t k = 0; k < na; k++) all[dt_qmat_absmax_global_index(&a->qm, k, gblocks)] = amax[k];
      rc = DT_MPI_RC(MPI_Allreduce(MPI_IN_PLACE, all, (int)nall, MPI_FLOAT, MPI_MAX, dist->tp),
                     "scales of a quantized matrix");
    }
    if (rc == DT_OK)
      for (size_t k = 0; k < na; k++) amax[k] = all[dt_qmat_absmax_global_index(&a->qm, k, gblocks)];
  }
  if (rc == DT_OK) dt_qmat_quantize(&a->qm, a->w, amax);
  free(amax);
  free(all);
  stage_release(m->bb, a);
  return rc;
}

/* HF tensor i, stored 4-bit by bitsandbytes (checked by check_ref): this
 * rank's rows and columns of it straight into its matrix (src/bnb4.h), as
 * the matrix's tensor number g (its earlier tensors counted). */
static int load_bnb4(const dt_tensor_ref *refs, int i, const dt_st_set *set) {
  const dt_tensor_ref *r = &refs[i];
  int g = 0;
  for (int j = 0; j < i; j++) g += refs[j].mat == r->mat;
  int *lrows = NULL, nr = 0;
  int64_t *grows = NULL;
  dt_bnb4 b;
  memset(&b, 0, sizeof b);
  int rc = ref_rows(r, &lrows, &grows, &nr);
  if (rc == DT_OK) rc = dt_bnb4_open(&b, set, r->name, r->rows, r->cols);
  if (rc == DT_OK)
    rc = dt_bnb4_load(&b, &r->mat->qm, g, lrows, grows, nr, r->shard_dim == 1 ? &r->segs : NULL);
  dt_bnb4_close(&b);
  free(lrows);
  free(grows);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

static int load_hf(dt_model *m, const char *dir) {
  dt_st_set set;
  DT_CALL(dt_st_set_open(&set, dir));
  dt_tensor_ref *refs;
  int n, rc = dt_model_tensors(m, &refs, &n);
  int64_t mx = 1;
  for (int i = 0; rc == DT_OK && i < n; i++) {
    if (refs[i].rows > mx) mx = refs[i].rows;
    if (refs[i].cols > mx) mx = refs[i].cols;
  }
  float *tmp = NULL;
  if (rc == DT_OK) rc = dt_malloc(&tmp, sizeof(float) * mx, "read buffer");
  for (int i = 0; rc == DT_OK && i < n; i++) rc = check_ref(&refs[i], &set);
  /* stored 4-bit by bitsandbytes (src/bnb4.h): a matrix whole or not at all */
  char *bnb = NULL;
  if (rc == DT_OK) rc = dt_calloc(&bnb, (size_t)(n ? n : 1), "tensor table");
  for (int i = 0; rc == DT_OK && i < n; i++) {
    bnb[i] = refs[i].mat && dt_bnb4_in(&set, refs[i].name);
    for (int j = i - 1; rc == DT_OK && j >= 0; j--)
      if (refs[i].mat && refs[j].mat == refs[i].mat && bnb[i] != bnb[j])
        rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                          "%s: tensors '%s' and '%s' make one matrix, and only one is stored 4-bit by "
                          "bitsandbytes", set.dir, refs[j].name, refs[i].name);
  }
  /* Quantized matrices agree their scales over the tensor group when their
   * last tensor is read (stage_end): a read that failed on one rank must not
   * leave the others waiting there, so the group agrees on the result first
   * (and once more at the end, for a failure after the last such point). */
  const dt_dist *dist = m->bb->dist;
  const int agree = m->bb->wquant && dist && dist->tp_size > 1;
  for (int i = 0; i < n && (rc == DT_OK || agree); i++) {
    if (refs[i].mat && refs[i].mat->shared && !m->bb->slab_writer) continue; /* another replica reads it */
    if (bnb[i]) {
      if (rc == DT_OK) rc = load_bnb4(refs, i, &set);
      continue;
    }
    if (rc == DT_OK) rc = stage_begin(m->bb, &refs[i]);
    if (rc == DT_OK) rc = load_fault(dist, i);
    if (rc == DT_OK) rc = load_ref(&refs[i], &set, tmp);
    if (agree && stage_collective(refs, n, i)) {
      rc = dt_agree(rc, dist->tp);
      if (rc) break; /* every rank of the group, together */
    }
    if (rc == DT_OK) rc = stage_end(m, refs, n, i);
  }
  if (agree) rc = dt_agree(rc, dist->tp);
  free(tmp);
  free(bnb);
  free(refs);
  dt_st_set_close(&set);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* Seeded weights: N(0, 0.02) matrices, ones for norm weights, zeros for
 * biases. Each tensor has its own stream and each element the counter of
 * its global storage index, so a rank generates only its shard and every
 * rank count derives the same model. */
/* out[0..n) = the values of elements j0..j0+n-1: each pair's two uniforms
 * and transcendentals are computed once (element j is output j%2 of pair
 * j/2, as one element at a time gives it) */
static void synth_fill(uint64_t key, int64_t j0, int64_t n, float *out) {
  for (int64_t j = j0; j < j0 + n;) {
    const uint64_t pair = (uint64_t)j >> 1;
    float u1 = (float)dt_rng_uniform(key, 2 * pair), u2 = (float)dt_rng_uniform(key, 2 * pair + 1);
    if (u1 < 1e-30f) u1 = 1e-30f;
    const float rad = sqrtf(-2.0f * logf(u1)), ang = 6.2831853f * u2;
    if (!(j & 1)) {
      out[j - j0] = 0.02f * rad * cosf(ang);
      j++;
    }
    if (j < j0 + n) {
      out[j - j0] = 0.02f * rad * sinf(ang);
      j++;
    }
  }
}

static int init_synthetic(dt_model *m, uint64_t seed) {
  dt_tensor_ref *refs;
  int n;
  DT_CALL(dt_model_tensors(m, &refs, &n));
  for (int i = 0; i < n; i++) {
    dt_tensor_ref *r = &refs[i];
    uint64_t key = dt_rng_key(seed, (uint64_t)i);
    if (r->mat && r->mat->shared && !m->bb->slab_writer) continue; /* another replica fills it */
    if (r->vec) {
      /* norms scale by 1 (a family whose norms scale by 1 + w: w = 0, as
       * transformers initializes Gemma's), biases 0 */
      float v = r->is_bias || dt_cfg_arch(&m->bb->cfg)->norm_plus_one ? 0.0f : 1.0f;
      for (int j = 0; j < r->vec->n; j++) r->vec->v[j] = v;
      continue;
    }
    const int64_t C = r->cols, lc = r->mat->cols;
    float *row_v = NULL; /* one row's values */
    int rc = stage_begin(m->bb, r);
    if (rc == DT_OK) rc = dt_malloc(&row_v, sizeof(float) * (size_t)(C > 0 ? C : 1), "a row of weights");
    if (rc) {
      free(refs);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
    for (int s = 0; s < r->segs.n; s++) {
      const dt_seg *g = dt_segs_at(&r->segs, s);
      if (r->shard_dim == 0) {
        for (int64_t row = 0; row < g->len; row++) {
          synth_fill(key, (g->g0 + row) * C, C, row_v);
          put(r, (g->l0 + row) * lc, row_v, C, 1);
        }
      } else {
        for (int64_t row = 0; row < r->rows; row++) {
          synth_fill(key, row * C + g->g0, g->len, row_v);
          put(r, row * lc + g->l0, row_v, g->len, 1);
        }
      }
    }
    free(row_v);
    rc = stage_end(m, refs, n, i);
    if (rc) {
      free(refs);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
  }
  free(refs);
  return DT_OK;
}

static int load_config(dt_backbone *b, const char *spec) {
  if (strncmp(spec, "synthetic:", 10) == 0) {
    DT_CALL(dt_synthetic_config_parse(&b->cfg, spec));
    DT_CALL(dt_config_validate(&b->cfg));
  } else {
    DT_CALL(dt_hf_config_load(&b->cfg, spec));
  }
  return DT_OK;
}

/* One shared window for the frozen matrices of this shard: sized by a
 * describe pass of the same allocation walk, allocated by the first replica
 * of the node (dist->peers), mapped by the others. Collective over peers. */
static int share_alloc(dt_backbone *b, dt_dist *dist) {
  b->describe_only = 1;
  int rc = alloc_weights(b);
  free(b->layers);
  b->layers = NULL;
  b->describe_only = 0;
  DT_CALL(rc);
  DT_CALL(dt_shmwin_alloc(&b->frozen_win, dist->peers, b->mat_bytes, "the frozen weights"));
  b->slab = b->frozen_win.base;
  b->slab_used = 0;
  b->slab_writer = dist->peers_rank == 0;
  return DT_OK;
}

int dt_model_unshare(dt_model *m, dt_mat *a) {
  if (!a->shared) return DT_OK;
  DT_CHECK(!a->qm.type, DT_EINTERNAL,
           "a quantized matrix is never written, so it never needs a private copy");
  const size_t n = (size_t)a->rows * a->cols, bytes = n * (a->w ? sizeof(float) : sizeof(uint16_t));
  void *p = NULL;
  DT_CALL(dt_alloc_aligned(&p, bytes, "private copy of a shared matrix"));
  memcpy(p, a->w ? (void *)a->w : (void *)a->w16, bytes);
  const void *old = a->w ? (void *)a->w : (void *)a->w16;
  if (a->w) a->w = p;
  else a->w16 = p;
  a->shared = 0;
  /* a tied head aliases the embedding's storage: keep it aliased */
  dt_mat *twin = a == &m->bb->wte ? &m->bb->lm_head : a == &m->bb->lm_head ? &m->bb->wte : NULL;
  if (m->bb->cfg.tied_head && twin && (twin->w == old || twin->w16 == old)) {
    twin->w = a->w, twin->w16 = a->w16;
    twin->shared = 0;
  }
  return DT_OK;
}

/* A model with a fresh, empty backbone of its own. */
static int new_backbone(dt_model *m) {
  memset(m, 0, sizeof *m);
  DT_CALL(dt_calloc(&m->bb, sizeof *m->bb, "the backbone"));
  m->owns_bb = 1;
  return DT_OK;
}

int dt_model_load(dt_model *m, const char *spec, int weights,
                  uint64_t seed, dt_dist *dist, int share) {
  DT_CALL(new_backbone(m));
  m->bb->weights_bf16 = weights == DT_W_BF16;
  m->bb->wquant = dt_wdtype_quant(weights);
  m->bb->dist = dist;
  DT_CALL(load_config(m->bb, spec));
  DT_CALL(dt_shard_init(&m->bb->sh, &m->bb->cfg, dist ? dist->tp_rank : 0, dist ? dist->tp_size : 1,
                        dist ? dist->split_heads : 0));
  if (share && dist && dist->peers_size > 1) DT_CALL(share_alloc(m->bb, dist));
  DT_CALL(alloc_weights(m->bb));
  int rc = strncmp(spec, "synthetic:", 10) == 0 ? init_synthetic(m, seed) : load_hf(m, spec);
  stage_spare_free(m->bb);
  if (m->bb->slab) {
    /* the writer's values are visible to the other replicas after this
     * (a collective over the peers), and its failure is theirs too */
    __sync_synchronize();
    rc = dt_agree(rc, dist->peers);
  }
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

int dt_model_describe(dt_model *m, const char *spec, int weights, int tp_rank,
                      int tp_size, int split_heads) {
  DT_CALL(new_backbone(m));
  m->bb->weights_bf16 = weights == DT_W_BF16;
  m->bb->wquant = dt_wdtype_quant(weights);
  m->bb->describe_only = 1;
  DT_CHECK(tp_size >= 1 && tp_rank >= 0 && tp_rank < tp_size, DT_EUSAGE,
           "tensor-parallel rank %d of %d", tp_rank, tp_size);
  DT_CALL(load_config(m->bb, spec));
  DT_CALL(dt_shard_init(&m->bb->sh, &m->bb->cfg, tp_rank, tp_size, split_heads));
  DT_CALL(alloc_weights(m->bb));
  return DT_OK;
}

void dt_model_describe_bytes(dt_model *m, size_t bytes) {
  m->described_bytes += (int64_t)aligned_bytes(bytes);
}

int dt_model_alloc(dt_model *m, void *pptr, size_t bytes, const char *what) {
  if (m->bb->describe_only) {
    dt_model_describe_bytes(m, bytes);
    *(void **)pptr = NULL;
    return DT_OK;
  }
  return dt_alloc_aligned(pptr, bytes, what);
}

static void free_mat(dt_mat *a) {
  if (!a->shared) {
    free(a->w);
    free(a->w16);
  }
  dt_qmat_free(&a->qm);
  free(a->grad);
}

static void free_vec(dt_vec *v) {
  free(v->v);
  free(v->grad);
}

static void free_backbone(dt_backbone *b) {
  free_mat(&b->wte);
  free_mat(&b->wpe);
  free_vec(&b->lnf_w);
  free_vec(&b->lnf_b);
  free_vec(&b->embn_w);
  free_vec(&b->embn_b);
  free(b->alibi);
  if (!b->cfg.tied_head) free_mat(&b->lm_head);
  for (int l = 0; b->layers && l < b->cfg.n_layer; l++) {
    dt_layer *L = &b->layers[l];
    free_vec(&L->ln1_w);
    free_vec(&L->ln1_b);
    free_vec(&L->ln2_w);
    free_vec(&L->ln2_b);
    free_vec(&L->pn1_w);
    free_vec(&L->pn2_w);
    for (int s = 0; s < DT_N_SITES; s++) {
      free_mat(&L->lin[s]);
      free_vec(&L->bias[s]);
    }
  }
  free(b->layers);
  free(b->head16);
  dt_shmwin_free(&b->frozen_win); /* collective over the peers */
  dt_shard_free(&b->sh);
  free(b);
}

void dt_model_free(dt_model *m) {
  if (!m) return;
  dt_model_free_workspace(m);
  if (m->owns_bb && m->bb) free_backbone(m->bb);
  memset(m, 0, sizeof *m);
}

/* Every allocation of the workspace: what dt_model_set_methods,
 * dt_model_plan and the steps allocate (the arena holds the activations
 * and most scratch). */
static void clear_workspace(dt_model *m) {
  m->arena = NULL, m->acts = NULL, m->hook_ws = NULL, m->x_saved = NULL, m->wscratch = NULL;
  m->qtile = NULL;
  m->rope_cos = m->rope_sin = NULL, m->ids = m->labels = NULL, m->scored_rows = NULL;
  m->methods = NULL, m->n_methods = 0;
  memset(&m->x_win, 0, sizeof m->x_win); /* the residual stream's window */
  m->x_shared = 0;
}

void dt_model_free_workspace(dt_model *m) {
  dt_shmwin_free(&m->x_win); /* collective over the tensor group */
  free(m->arena);
  free(m->acts);
  free(m->hook_ws);
  free(m->scored_rows);
  free(m->x_saved);
  free(m->wscratch);
  free(m->qtile);
  free(m->rope_cos);
  free(m->rope_sin);
  free(m->ids);
  free(m->labels);
  free(m->methods);
  clear_workspace(m);
}

void dt_model_workspace(dt_model *ws, const dt_model *base) {
  memset(ws, 0, sizeof *ws);
  ws->bb = base->bb; /* not owned */
  ws->tp_gemm = base->tp_gemm;
  ws->matmul_bf16 = base->matmul_bf16;
  ws->x_share_req = base->x_share_req;
}

int dt_model_require_grad(dt_model *m, const dt_tensor_ref *r, float **data,
                          float **grad) {
  if (m->bb->describe_only) {
    /* sizes only: the gradient the real call allocates (its whole owner) */
    const int bf16 = r->mat && (m->bb->weights_bf16 || r->mat->qm.type) && r->mat != &m->bb->wpe;
    DT_CHECK(!bf16, DT_EUSAGE,
             "tensor '%s' is trained by the chosen method, which needs "
             "--weights-dtype fp32 (frozen bf16, int8 or nf4 weights cannot be updated)",
             r->name);
    if (r->mat && !r->mat->trained)
      dt_model_describe_bytes(m, sizeof(float) * (size_t)r->mat->rows * r->mat->cols);
    else if (!r->mat)
      dt_model_describe_bytes(m, sizeof(float) * (size_t)r->vec->n);
    if (r->mat) r->mat->trained = 1;
    else r->vec->trained = 1;
    *data = *grad = NULL;
    return DT_OK;
  }
  if (r->mat) {
    r->mat->trained = 1;
    DT_CALL(dt_model_unshare(m, r->mat));
    DT_CHECK(r->mat->w, DT_EUSAGE,
             "tensor '%s' is trained by the chosen method, which needs "
             "--weights-dtype fp32 (frozen bf16, int8 or nf4 weights cannot be updated)",
             r->name);
    if (!r->mat->grad)
      DT_CALL(dt_alloc_aligned(&r->mat->grad,
                               sizeof(float) * r->mat->rows * r->mat->cols,
                               r->name));
    *data = r->mat->w + r->offset;
    *grad = r->mat->grad + r->offset;
  } else {
    r->vec->trained = 1;
    if (!r->vec->grad)
      DT_CALL(dt_alloc_aligned(&r->vec->grad, sizeof(float) * r->vec->n, r->name));
    *data = r->vec->v + r->offset;
    *grad = r->vec->grad + r->offset;
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
  zero_mat(&m->bb->wte);
  zero_mat(&m->bb->wpe);
  zero_vec(&m->bb->lnf_w);
  zero_vec(&m->bb->lnf_b);
  zero_vec(&m->bb->embn_w);
  zero_vec(&m->bb->embn_b);
  if (!m->bb->cfg.tied_head) zero_mat(&m->bb->lm_head);
  for (int l = 0; l < m->bb->cfg.n_layer; l++) {
    dt_layer *L = &m->bb->layers[l];
    zero_vec(&L->ln1_w);
    zero_vec(&L->ln1_b);
    zero_vec(&L->ln2_w);
    zero_vec(&L->ln2_b);
    zero_vec(&L->pn1_w);
    zero_vec(&L->pn2_w);
    for (int s = 0; s < DT_N_SITES; s++) {
      zero_mat(&L->lin[s]);
      zero_vec(&L->bias[s]);
    }
  }
}

int64_t dt_model_param_count(const dt_model *m) {
  const dt_config *c = &m->bb->cfg;
  int64_t d = c->d_model, n = (int64_t)c->vocab * d;
  if (dt_cfg_arch(c)->pos == DT_POS_LEARNED) n += (int64_t)dt_cfg_dim(c, DT_DIM_POS) * d;
  if (!c->tied_head) n += (int64_t)c->vocab * d;
  n += d * (c->has_bias ? 2 : 1) * (dt_cfg_arch(c)->embed_norm ? 2 : 1);
  int64_t per = 0;
  const int out[DT_N_SITES] = {dt_cfg_qkv_dim(c), c->d_model, dt_cfg_fc_dim(c), c->d_model};
  const int in[DT_N_SITES] = {c->d_model, dt_cfg_q_dim(c), c->d_model, c->d_ffn};
  for (int s = 0; s < DT_N_SITES; s++)
    per += (int64_t)out[s] * in[s] +
           (dt_cfg_lin_bias(c) || (s == DT_SITE_QKV && c->qkv_bias) ? out[s] : 0);
  per += ((dt_cfg_has_ln2(c) ? 2 : 1) + (dt_cfg_arch(c)->post_norms ? 2 : 0)) * d *
         (c->has_bias ? 2 : 1);
  return n + per * c->n_layer;
}

const float *dt_mat_f32(dt_model *m, const dt_mat *a) {
  if (a->w) return a->w;
  if (!a->w16) return NULL; /* quantized: only tiles (dt_qmat_xwt); callers refuse it */
  size_t n = (size_t)a->rows * a->cols;
  for (size_t i = 0; i < n; i++) m->wscratch[i] = dt_bf16_to_f32(a->w16[i]);
  return m->wscratch;
}

int64_t dt_model_matmul_params(const dt_model *m) {
  const dt_config *c = &m->bb->cfg;
  int64_t per = (int64_t)c->d_model * dt_cfg_qkv_dim(c) +
                (int64_t)dt_cfg_q_dim(c) * c->d_model +
                (int64_t)c->d_model * dt_cfg_fc_dim(c) + (int64_t)c->d_ffn * c->d_model;
  return per * c->n_layer + (int64_t)c->vocab * c->d_model;
}

double dt_model_step_flops(const dt_model *m, int T, double tokens, double scored) {
  const dt_config *c = &m->bb->cfg;
  const double head = (double)c->vocab * c->d_model;
  double per = 4.0 * ((double)dt_model_matmul_params(m) - head);
  per += 3.0 * c->n_layer * 4.0 * (T + 1) / 2.0 * dt_cfg_q_dim(c);
  for (int l = 0; l < c->n_layer; l++)
    for (int s = 0; s < DT_N_SITES; s++)
      if (m->bb->layers[l].lin[s].trained)
        per += 2.0 * (double)m->bb->layers[l].lin[s].rows * m->bb->layers[l].lin[s].cols;
  return per * tokens + 4.0 * head * scored;
}
