#include "shard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void dt_shard_free(dt_shard *sh) { memset(sh, 0, sizeof *sh); }

int dt_shard_can_share(const dt_config *c, int T) {
  const int R = T > 1 ? c->n_kv_head % T : 0;
  return R > 0 && T % R == 0;
}

/* whole groups of rank r: g = r + j T for j < n_whole (of the first G - R
 * when shared, of all G when not) */
static int n_whole(const dt_shard *sh) { return sh->n_kv_l - (sh->kv_share > 1); }

int dt_shard_kv_group(const dt_shard *sh, const dt_config *c, int j) {
  const int T = sh->tp_size, r = sh->tp_rank;
  if (j < n_whole(sh)) return r + j * T;
  return c->n_kv_head - c->n_kv_head % T + r / sh->kv_share;
}

void dt_shard_q_rows(const dt_shard *sh, int T, int *q0, int *q1) {
  const int k = sh->kv_share, i = sh->kv_share_i;
  *q0 = 0, *q1 = T;
  if (k <= 1) return;
  *q0 = (int)lround(T * sqrt((double)i / k));
  *q1 = i + 1 == k ? T : (int)lround(T * sqrt((double)(i + 1) / k));
}

int dt_shard_init(dt_shard *sh, const dt_config *c, int r, int T, int share) {
  memset(sh, 0, sizeof *sh);
  sh->tp_rank = r;
  sh->tp_size = T;
  const int hd = c->head_dim, group = c->n_head / c->n_kv_head;
  const int qd = dt_cfg_q_dim(c), kvd = dt_cfg_kv_dim(c), F = c->d_ffn;
  sh->kv_share = 1;
  const int R = T > 1 ? c->n_kv_head % T : 0;
  DT_CHECK(share != DT_SPLIT_HEADS_ASKED || R == 0 || T % R == 0, DT_EUSAGE,
           "--tp-heads rows: %s has %d key/value groups; over --tp %d that leaves %d, which do not "
           "share %d ranks evenly (the left-over groups must divide --tp); use --tp-heads whole "
           "or auto",
           c->source, c->n_kv_head, T, R, T);
  if (share && dt_shard_can_share(c, T)) {
    sh->kv_share = T / R;
    sh->kv_share_i = r % sh->kv_share;
    sh->n_kv_l = (c->n_kv_head - R) / T + 1;
  } else {
    for (int g = r; g < c->n_kv_head; g += T) sh->n_kv_l++;
  }
  sh->n_head_l = sh->n_kv_l * group;
  const int ql = sh->n_head_l * hd, kvl = sh->n_kv_l * hd;
  /* q | k | v rows of owned groups, local order: q of owned, k, v */
  int j = 0;
  if (dt_cfg_arch(c)->qkv_per_head && !c->qkv_blocks) {
    /* the fused tensor's rows per key/value group, [kv heads][group q
     * heads, k, v][hd] (Falcon's new decoder architecture; GPT-NeoX's per
     * head layout is a group of one): group g's q, k, v to the local q, k,
     * v blocks, so a rank holds whole groups with their query heads */
    const int gs = (group + 2) * hd;
    DT_CHECK(3 * sh->n_kv_l <= DT_SEGS_MAX, DT_EUSAGE,
             "%s: %d attention heads on a rank need %d runs of query_key_value rows, more than "
             "%d; use --tp %d or more",
             c->source, sh->n_kv_l, 3 * sh->n_kv_l, DT_SEGS_MAX,
             (3 * c->n_kv_head + DT_SEGS_MAX - 1) / DT_SEGS_MAX);
    for (; j < sh->n_kv_l; j++) {
      const int g = dt_shard_kv_group(sh, c, j);
      DT_CALL(dt_segs_push(&sh->qkv_rows, g * gs, group * hd, j * group * hd));
      DT_CALL(dt_segs_push(&sh->qkv_rows, g * gs + group * hd, hd, ql + j * hd));
      DT_CALL(dt_segs_push(&sh->qkv_rows, g * gs + (group + 1) * hd, hd, ql + kvl + j * hd));
    }
  } else {
    for (j = 0; j < sh->n_kv_l; j++)
      DT_CALL(dt_segs_push(&sh->qkv_rows, dt_shard_kv_group(sh, c, j) * group * hd, group * hd,
                           j * group * hd));
    for (j = 0; j < sh->n_kv_l; j++)
      DT_CALL(dt_segs_push(&sh->qkv_rows, qd + dt_shard_kv_group(sh, c, j) * hd, hd, ql + j * hd));
    for (j = 0; j < sh->n_kv_l; j++)
      DT_CALL(dt_segs_push(&sh->qkv_rows, qd + kvd + dt_shard_kv_group(sh, c, j) * hd, hd,
                           ql + kvl + j * hd));
  }
  for (j = 0; j < sh->n_kv_l; j++)
    DT_CALL(dt_segs_push(&sh->att_cols, dt_shard_kv_group(sh, c, j) * group * hd, group * hd,
                         j * group * hd));
  /* FFN block distribution */
  sh->ffn_nb = (F + T - 1) / T;
  sh->ffn0 = r * sh->ffn_nb < F ? r * sh->ffn_nb : F;
  sh->ffn_l = (sh->ffn0 + sh->ffn_nb < F ? sh->ffn0 + sh->ffn_nb : F) - sh->ffn0;
  DT_CALL(dt_segs_push(&sh->fc_rows, sh->ffn0, sh->ffn_l, 0));
  if (dt_cfg_arch(c)->gated_ffn)
    DT_CALL(dt_segs_push(&sh->fc_rows, F + sh->ffn0, sh->ffn_l, sh->ffn_l));
  DT_CALL(dt_segs_push(&sh->ffn_cols, sh->ffn0, sh->ffn_l, 0));
  /* vocabulary block distribution */
  sh->vocab_nb = (c->vocab + T - 1) / T;
  sh->vocab0 = r * sh->vocab_nb < c->vocab ? r * sh->vocab_nb : c->vocab;
  sh->vocab_l = (sh->vocab0 + sh->vocab_nb < c->vocab ? sh->vocab0 + sh->vocab_nb : c->vocab) -
                sh->vocab0;
  DT_CALL(dt_segs_push(&sh->vocab_rows, sh->vocab0, sh->vocab_l, 0));
  (void)ql;
  return DT_OK;
}

void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld,
               int *info);
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc,
            const int *nprocs);

int dt_shard_descriptor(const dt_shard *sh, const dt_config *c, int which,
                        int ctx_row, int ctx_col, int desc[9]) {
  const int d = c->d_model, hd = c->head_dim, group = c->n_head / c->n_kv_head;
  const int zero = 0, T = sh->tp_size, r = sh->tp_rank;
  int M, N, MB, NB, lld, info = 0, ctx;
  switch (which) {
    case 0: case 1: case 2: /* W^T [d, part] column blocks of kv groups */
      M = d;
      N = which == 0 ? dt_cfg_q_dim(c) : dt_cfg_kv_dim(c);
      MB = d;
      NB = which == 0 ? group * hd : hd;
      lld = d;
      ctx = ctx_row;
      break;
    case 3: case 4:
      M = d, N = c->d_ffn, MB = d, NB = sh->ffn_nb, lld = d, ctx = ctx_row;
      break;
    case 7:
      M = d, N = c->vocab, MB = d, NB = sh->vocab_nb, lld = d, ctx = ctx_row;
      break;
    case 5: case 6: { /* W^T [part, d] row blocks */
      M = which == 5 ? dt_cfg_q_dim(c) : c->d_ffn;
      N = d;
      MB = which == 5 ? group * hd : sh->ffn_nb;
      NB = d;
      int loc = numroc_(&M, &MB, &r, &zero, &T);
      lld = loc > 1 ? loc : 1;
      ctx = ctx_col;
      break;
    }
    default:
      return -1;
  }
  descinit_(desc, &M, &N, &MB, &NB, &zero, &zero, &ctx, &lld, &info);
  return info;
}
