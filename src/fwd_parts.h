/* Pieces of the training forward (src/forward.c) that the incremental
 * decoder (src/decode.c) runs on its own rows, so that a method's hooks act
 * in generation exactly as in a training forward (no gradient). The model
 * must be planned (dt_model_plan, recompute or not: the site buffers of
 * acts[0] are used) for at least B * T rows. */
#ifndef DT_FWD_PARTS_H
#define DT_FWD_PARTS_H

#include "model.h"

/* y [B*T, out_l] = the linear at (layer l, site s) of x [B*T, in_l] with
 * every method's pre and post hooks and the site's tensor-group sum
 * (collective over the tensor group when tp > 1). */
int dt_fwd_site(dt_model *m, int l, int s, int B, int T, const float *x, float *y);
/* out [N,d], stat [N,2] = the family's norm of x [N,d]. */
void dt_fwd_norm(const dt_model *m, float *out, float *stat, const float *x, const dt_vec *w,
                 const dt_vec *b, int N);
/* This rank's prefix heads: its key/value groups' (dt_cfg_prefix_heads per group). */
int dt_fwd_prefix_heads_l(const dt_model *m);
/* Prefix key/values of layer l for this rank's prefix heads [P, heads_l * hd] (NULL: no
 * prefix). */
int dt_fwd_prefix(dt_model *m, int l, const float **pk, const float **pv);
/* Prompt tuning's virtual token embeddings [n_virtual, d] (NULL: none). */
int dt_fwd_prompt(dt_model *m, const float **e);
/* The methods' once-per-forward work (SAID's weights, the prefix MLP), no gradient. */
int dt_fwd_begin(dt_model *m);

#endif
