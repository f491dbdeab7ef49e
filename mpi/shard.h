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

typedef struct {
  int g0, len, l0;
} dt_seg;

#define DT_SEGS_MAX 256

typedef struct {
  int n;
  dt_seg s[DT_SEGS_MAX]; /* merged runs */
} dt_segs;

static inline const dt_seg *dt_segs_at(const dt_segs *s, int i) { return &s->s[i]; }

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
/* Segments of `all` restricted to global [lo, hi), shifted by -lo. */
int dt_segs_restrict(dt_segs *out, const dt_segs *all, int lo, int hi);
int dt_segs_total(const dt_segs *s);
/* One segment covering [0, n) -> [l0, l0 + n). */
void dt_segs_full(dt_segs *s, int n, int l0);

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

#endif
