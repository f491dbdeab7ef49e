/* AdamW with PyTorch semantics (bias correction, decoupled weight decay),
 * global-norm clipping and learning-rate schedules over the parameter
 * table. Moments live in one allocation. */
#ifndef DT_OPTIM_H
#define DT_OPTIM_H

#include <stdint.h>

#include "dist.h"
#include "params.h"

typedef enum { DT_SCHED_CONSTANT, DT_SCHED_LINEAR, DT_SCHED_COSINE } dt_schedule;

typedef struct {
  double lr, beta1, beta2, eps, weight_decay, clip_norm; /* clip 0 = off */
  dt_schedule schedule;
  int warmup_steps;
  int total_steps;
  int64_t step;    /* updates done */
  float *m, *v;    /* [numel] each, in table order */
  int64_t numel;
} dt_adamw;

int dt_adamw_init(dt_adamw *o, const dt_params *t);
void dt_adamw_free(dt_adamw *o);
/* Learning rate for update number `step` (0-based). */
double dt_adamw_lr(const dt_adamw *o, int64_t step);
/* Global L2 norm of the gradients into *norm (shards summed over the
 * tensor group; dist may be NULL for one rank). Collective over the tensor
 * group; DT_EMPI when the sum fails. */
int dt_grad_norm(const dt_params *t, dt_dist *dist, double *norm);
/* One update with the gradients in the table; returns the lr used.
 * grad_norm (from dt_grad_norm) drives clipping. */
double dt_adamw_step(dt_adamw *o, dt_params *t, double grad_norm);

#endif
