/* Incremental decoding: the backbone's forward over a few new tokens per
 * sequence at a position offset, attending to the key/value cache of the
 * earlier ones (src/kvcache.h), with every method's hooks as in a training
 * forward (no gradient) and the same tensor parallelism (each rank caches
 * its own heads; collective over the tensor group).
 *
 * Positions as in the training forward (src/forward.c), which matches
 * transformers + PEFT: with prefix tuning the P prefix key/values are seen
 * by every query and take no position, real tokens sit at positions P.. ;
 * with prompt tuning the virtual token embeddings are the first positions
 * of a sequence, prepended in its first pass (the prefill) only.
 *
 * Only the last position of each sequence in a pass reaches the head:
 * logits [nb, vocab], complete on every rank of the tensor group. */
#ifndef DT_DECODE_H
#define DT_DECODE_H

#include <stdint.h>

#include "kvcache.h"
#include "model.h"

typedef struct {
  dt_model *m;   /* planned by dt_decoder_init: B rows x T_max data tokens */
  dt_kvcache kv; /* B slots x Tc = n_virtual + T_max positions */
  int B, T_max;
  int n_virtual, n_prefix;
  int max_rows;      /* rows (sequences x tokens) one pass may have: >= B and >= Tc */
  float *x, *x1, *o; /* [max_rows, d] residual stream and a site output */
  float *xl;         /* [B, d] the last row of each sequence */
  float *lg;         /* [B, vocab_l] this rank's logits columns */
  float *s;          /* [n_prefix + Tc] attention scores of one query */
} dt_decoder;

/* Plan m (methods attached, their parameters loaded) for B sequences of up
 * to T_max data tokens (prompt + new tokens) and allocate the cache. The
 * activations are sized for max_rows rows, the least multiple of the
 * sequence length Tc that holds B (one token of every sequence, or one
 * whole sequence), not for B x Tc: a prefill of several prompts must fit
 * max_rows (the caller splits it).
 * Collective over the tensor group (the methods' begin_forward). */
int dt_decoder_init(dt_decoder *dc, dt_model *m, int B, int T_max);
void dt_decoder_free(dt_decoder *dc);
/* Empty slot b (a new sequence starts there). */
void dt_decoder_reset(dt_decoder *dc, int b);

/* Forward n new tokens ids [nb, n] of the sequences in slots[nb] (distinct;
 * nb x (n + virtual tokens of a first pass) <= max_rows):
 * a slot's first pass prepends the virtual tokens (all slots of one pass
 * are either empty or not), then its cache grows by the pass's tokens.
 * logits [nb, vocab]: the next-token logits after each sequence's last
 * token, on every rank. Collective over the tensor group. */
int dt_decoder_step(dt_decoder *dc, int nb, const int *slots, int n, const int32_t *ids,
                    float *logits);

#endif
