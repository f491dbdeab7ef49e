/* How the frozen backbone is split across the ranks of a tensor-parallel
 * group (Megatron's column-then-row scheme, described as ScaLAPACK
 * block-cyclic arrays):
 *   - attention by whole key/value groups, cyclically: kv group g (with its
 *     H/KV query heads) lives on tp rank g % T; q|k|v rows of the fused
 *     QKV matrix (column-parallel) and the matching input columns of the
 *     output projection (row-parallel) follow;
 *   - the FFN by blocks of ceil(F/T) columns: c_fc / gate|up rows
 *     (column-parallel) and c_proj / down_proj input columns (row-parallel);
 *   - the vocabulary by blocks of ceil(V/T) rows (embedding and lm_head).
 * Uneven splits are fine (a rank may own nothing of a dimension).
 *
 * A segment list maps a global index range of one dimension to local
 * indices: global [g0, g0+len) -> local [l0, l0+len).
 */
#ifndef DT_SHARD_H
#define DT_SHARD_H

#include "hf_config.h"
#include "segs.h"

typedef struct {
  int tp_rank, tp_size;
  int n_kv_l, n_head_l; /* local key/value groups and query heads */
  int ffn0, ffn_l;      /* local FFN columns [ffn0, ffn0 + ffn_l) */
  int vocab0, vocab_l;  /* local vocabulary rows */
  int ffn_nb, vocab_nb; /* ScaLAPACK block sizes of those distributions */
  dt_segs qkv_rows;     /* fused q|k|v output rows (global -> local) */
  dt_segs fc_rows;      /* c_fc or fused gate|up output rows */
  dt_segs att_cols;     /* attention output / o_proj input columns */
  dt_segs ffn_cols;     /* c_proj / down_proj input columns */
  dt_segs vocab_rows;
} dt_shard;

/* The split of config c for tp rank r of T. */
int dt_shard_init(dt_shard *sh, const dt_config *c, int r, int T);
void dt_shard_free(dt_shard *sh);

/* ScaLAPACK descriptors (9 ints, 0-based field order DTYPE, CTXT, M, N, MB,
 * NB, RSRC, CSRC, LLD) of this rank's pieces, so that the layout can be
 * consumed by other ScaLAPACK code (e.g. p?gemr2d to redistribute):
 *   column-parallel part  W^T [in, out_part]: 1 x T grid, column blocks;
 *   row-parallel matrix   W^T [in_part, out]: T x 1 grid, row blocks.
 * `which`: 0 q, 1 k, 2 v (W^T [d, q_dim | kv_dim]), 3 c_fc / gate, 4 up,
 * 5 o_proj (W^T [q_dim, d]), 6 c_proj / down (W^T [ffn, d]),
 * 7 lm_head / embedding W^T [d, vocab]. ctx_row is the 1 x T context, ctx_col
 * the T x 1 one. Returns the ScaLAPACK info (0 = ok). */
int dt_shard_descriptor(const dt_shard *sh, const dt_config *c, int which,
                        int ctx_row, int ctx_col, int desc[9]);

/* Local widths of a linear site (io/arch.h dt_site) on this rank:
 * column-parallel sites (QKV, FC) own part of their outputs, row-parallel
 * ones (ATTN_OUT, PROJ) part of their inputs. */
static inline int dt_shard_site_in_l(const dt_shard *sh, const dt_config *c, int s) {
  switch (s) {
    case DT_SITE_ATTN_OUT: return sh->n_head_l * c->head_dim;
    case DT_SITE_PROJ: return sh->ffn_l;
    default: return c->d_model;
  }
}
static inline int dt_shard_site_out_l(const dt_shard *sh, const dt_config *c, int s) {
  switch (s) {
    case DT_SITE_QKV: return (sh->n_head_l + 2 * sh->n_kv_l) * c->head_dim;
    case DT_SITE_FC: return (dt_cfg_arch(c)->gated_ffn ? 2 : 1) * sh->ffn_l;
    default: return c->d_model;
  }
}
/* Is the site row-parallel (its output is a partial sum before dt_tp_sum)? */
static inline int dt_site_row_parallel(int s) {
  return s == DT_SITE_ATTN_OUT || s == DT_SITE_PROJ;
}
/* Global index segments of the site's sharded dimension: output rows of a
 * column-parallel site, input columns of a row-parallel one. */
static inline const dt_segs *dt_shard_site_segs(const dt_shard *sh, int s) {
  switch (s) {
    case DT_SITE_QKV: return &sh->qkv_rows;
    case DT_SITE_FC: return &sh->fc_rows;
    case DT_SITE_ATTN_OUT: return &sh->att_cols;
    default: return &sh->ffn_cols;
  }
}

#endif
