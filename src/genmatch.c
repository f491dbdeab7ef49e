#include "genmatch.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "error.h"
#include "mpicheck.h"
#include "sampler.h"

/* The completion of row r: [*t0, *t1) the first run of scored tokens
 * (positions >= 1); 0 when the row has none. */
static int completion_of(const dt_dataset *d, int64_t r, int *t0, int *t1) {
  const int32_t *lab = d->labels + r * d->seq_len;
  int t = 1;
  while (t < d->seq_len && lab[t] < 0) t++;
  if (t >= d->seq_len) return 0;
  *t0 = t;
  while (t < d->seq_len && lab[t] >= 0) t++;
  *t1 = t;
  return 1;
}

/* Do the texts (or ids, without a tokenizer) of a and b agree? */
static int same_text(dt_tokenizer *tok, const int32_t *a, int na, const int32_t *b, int nb,
                     char **ta, size_t *ca, char **tb, size_t *cb, int *eq) {
  if (!tok) {
    *eq = na == nb && !memcmp(a, b, sizeof(int32_t) * (size_t)na);
    return DT_OK;
  }
  size_t la, lb;
  DT_CALL(dt_tokenizer_decode(tok, a, (size_t)na, 1, ta, &la, ca));
  DT_CALL(dt_tokenizer_decode(tok, b, (size_t)nb, 1, tb, &lb, cb));
  *eq = la == lb && !memcmp(*ta, *tb, la);
  return DT_OK;
}

int dt_generated_match(dt_model *m, dt_dist *dist, const dt_dataset *d, int64_t rows,
                       dt_tokenizer *tok, int64_t *match, int64_t *scored) {
  const int dp = dist ? dist->dp_size : 1, dr = dist ? dist->dp_rank : 0;
  const int64_t first = rows * dr / dp, last = rows * (dr + 1) / dp;
  const int V = m->bb->cfg.vocab, extra = 8; /* room for a completion tokenized otherwise */
  const int tp_root = !dist || dist->tp_rank == 0;
  dt_decoder dc;
  DT_CALL(dt_decoder_init(&dc, m, 1, d->seq_len + extra));
  float *logits = NULL;
  int32_t *gen = NULL;
  char *ta = NULL, *tb = NULL;
  size_t ca = 0, cb = 0;
  int rc = dt_malloc(&logits, sizeof(float) * (size_t)V, "logits");
  if (rc == DT_OK) rc = dt_malloc(&gen, sizeof(int32_t) * (size_t)(d->seq_len + extra), "generated ids");
  const dt_sampling greedy = {0, 0, 1, 0};
  int64_t n_match = 0, n_scored = 0;
  for (int64_t r = first; rc == DT_OK && r < last; r++) {
    int t0, t1;
    if (!completion_of(d, r, &t0, &t1)) continue;
    const int32_t *ids = d->input_ids + r * d->seq_len, eos = ids[t1 - 1];
    const int want = t1 - t0, max_new = want + extra;
    int slot = 0, n = 0, hit = 0;
    dt_decoder_reset(&dc, 0);
    rc = dt_decoder_step(&dc, 1, &slot, t0, ids, logits);
    while (rc == DT_OK) {
      int32_t next = tp_root ? dt_sample_token(&greedy, logits, V, r, n, NULL, NULL) : 0;
      if (dist && dist->tp_size > 1)
        rc = DT_MPI_RC(MPI_Bcast(&next, 1, MPI_INT32_T, 0, dist->tp), "MPI_Bcast of a token");
      if (rc) break;
      gen[n++] = next;
      if (next == eos) {
        hit = 1;
        break;
      }
      if (n >= max_new || t0 + n >= dc.kv.Tc) break;
      rc = dt_decoder_step(&dc, 1, &slot, 1, &next, logits);
    }
    int eq = 0;
    if (rc == DT_OK) rc = same_text(tok, gen, n, ids + t0, want, &ta, &ca, &tb, &cb, &eq);
    n_scored++;
    n_match += eq && hit;
  }
  free(logits);
  free(gen);
  free(ta);
  free(tb);
  dt_decoder_free(&dc);
  DT_CALL(rc);
  int64_t v[2] = {n_match, n_scored};
  if (dist && dist->dp_size > 1)
    DT_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT64_T, MPI_SUM, dist->dp),
           "MPI_Allreduce of the generated exact matches");
  *match = v[0], *scored = v[1];
  return DT_OK;
}
