#include "shard.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

void dt_shard_free(dt_shard *sh) { memset(sh, 0, sizeof *sh); }

int dt_shard_init(dt_shard *sh, const dt_config *c, int r, int T) {
  memset(sh, 0, sizeof *sh);
  sh->tp_rank = r;
  sh->tp_size = T;
  const int hd = c->head_dim, group = c->n_head / c->n_kv_head;
  const int qd = dt_cfg_q_dim(c), kvd = dt_cfg_kv_dim(c), F = c->d_ffn;
  for (int g = r; g < c->n_kv_head; g += T) sh->n_kv_l++;
  sh->n_head_l = sh->n_kv_l * group;
  const int ql = sh->n_head_l * hd, kvl = sh->n_kv_l * hd;
  /* q | k | v rows of owned groups, local order: q of owned, k, v */
  int j = 0;
  if (dt_cfg_arch(c)->qkv_per_head) {
    /* the fused tensor's rows per head, [heads][q,k,v][hd] (one query head
     * a group): head g's q, k, v to the local q, k, v blocks */
    DT_CHECK(3 * sh->n_kv_l <= DT_SEGS_MAX, DT_EUSAGE,
             "%s: %d attention heads on a rank need %d runs of query_key_value rows, more than "
             "%d; use --tp %d or more",
             c->source, sh->n_kv_l, 3 * sh->n_kv_l, DT_SEGS_MAX,
             (3 * c->n_kv_head + DT_SEGS_MAX - 1) / DT_SEGS_MAX);
    for (int g = r; g < c->n_kv_head; g += T, j++) {
      DT_CALL(dt_segs_push(&sh->qkv_rows, 3 * g * hd, hd, j * hd));
      DT_CALL(dt_segs_push(&sh->qkv_rows, 3 * g * hd + hd, hd, ql + j * hd));
      DT_CALL(dt_segs_push(&sh->qkv_rows, 3 * g * hd + 2 * hd, hd, ql + kvl + j * hd));
    }
  } else {
    for (int g = r; g < c->n_kv_head; g += T, j++)
      DT_CALL(dt_segs_push(&sh->qkv_rows, g * group * hd, group * hd, j * group * hd));
    j = 0;
    for (int g = r; g < c->n_kv_head; g += T, j++)
      DT_CALL(dt_segs_push(&sh->qkv_rows, qd + g * hd, hd, ql + j * hd));
    j = 0;
    for (int g = r; g < c->n_kv_head; g += T, j++)
      DT_CALL(dt_segs_push(&sh->qkv_rows, qd + kvd + g * hd, hd, ql + kvl + j * hd));
  }
  j = 0;
  for (int g = r; g < c->n_kv_head; g += T, j++)
    DT_CALL(dt_segs_push(&sh->att_cols, g * group * hd, group * hd, j * group * hd));
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
