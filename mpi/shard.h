/* How the frozen backbone is split across the ranks of a tensor-parallel
 * group (Megatron's column-then-row scheme, described as ScaLAPACK
 * block-cyclic arrays):
 *   - attention by whole key/value groups, cyclically: kv group g (with its
 *     H/KV query heads) lives on tp rank g % T; q|k|v rows of the fused
 *     QKV matrix (column-parallel) and the matching input columns of the
 *     output projection (row-parallel) follow;
 *   - split by query rows (`share`, dt_shard_can_share): when the G groups
 *     do not divide over T but their remainder R divides T, the first G - R
 *     go cyclically as above and each of the last R is held by k = T / R
 *     ranks (group G - R + r / k on rank r), every one of which attends
 *     with a k-th of the query rows (dt_shard_q_rows) and writes zeros for
 *     the others: the output projection's sum over the group adds the
 *     pieces, and every gradient of the group's weights is a partial sum
 *     (docs/parallel.md, "Uneven heads");
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
  int kv_share;         /* ranks sharing the last local group by query rows
                           (1: every local group is whole) */
  int kv_share_i;       /* this rank's place among them */
  int ffn0, ffn_l;      /* local FFN columns [ffn0, ffn0 + ffn_l) */
  int vocab0, vocab_l;  /* local vocabulary rows */
  int ffn_nb, vocab_nb; /* ScaLAPACK block sizes of those distributions */
  dt_segs qkv_rows;     /* fused q|k|v output rows (global -> local) */
  dt_segs fc_rows;      /* c_fc or fused gate|up output rows */
  dt_segs att_cols;     /* attention output / o_proj input columns */
  dt_segs ffn_cols;     /* c_proj / down_proj input columns */
  dt_segs vocab_rows;
} dt_shard;

/* Can the key/value groups of c be split by query rows over T ranks? (G
 * does not divide over T, and G mod T divides T.) */
int dt_shard_can_share(const dt_config *c, int T);
/* The split of config c for tp rank r of T; share: the left-over groups by
 * query rows where dt_shard_can_share (else as share = 0; with
 * DT_SPLIT_HEADS_ASKED, groups left over that cannot be shared are a
 * DT_EUSAGE error naming --tp-heads rows). */
#define DT_SPLIT_HEADS_ASKED 2
int dt_shard_init(dt_shard *sh, const dt_config *c, int r, int T, int share);
/* Global index of local key/value group j. */
int dt_shard_kv_group(const dt_shard *sh, const dt_config *c, int j);
/* The query rows [*q0, *q1) of T positions this rank attends with in its
 * shared group (all T when it has none), balanced for causal attention:
 * member i of k takes [T sqrt(i/k), T sqrt((i+1)/k)). */
void dt_shard_q_rows(const dt_shard *sh, int T, int *q0, int *q1);
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
