/* One trainer: what `train` (src/train.c) and `sweep` (src/sweep.c) do with
 * one set of deltas (a run, or one task of a sweep) after a step's backward:
 * complete the gradients over the ranks, sum the loss, take the gradient
 * norm, apply the numerical-fault policy (--nan-policy), update with AdamW
 * and write the step's metrics line. The drivers differ only in how a
 * step's batch runs through the model.
 *
 * The metrics line (JSON, one per optimizer step, the same fields for both
 * commands): step, loss, lr, grad_norm, scored_tokens, elapsed_s,
 * tokens_per_s, skipped_steps; a skipped step has "loss": null,
 * "grad_norm": null, "skipped": true; a sweep's lines end with its task's
 * name ("task"). */
#ifndef DT_TRAINER_H
#define DT_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "ckpt_run.h"
#include "dist.h"
#include "model.h"
#include "optim.h"
#include "options.h"
#include "params.h"

typedef struct {
  dt_dist *dist;
  dt_params *params;
  dt_adamw optim;
  const char *task;     /* a sweep's task name (metrics, messages); NULL in train */
  FILE *metrics;        /* rank 0, with --metrics */
  const char *dump_grads; /* --dump-grads: step 0's gradients to this file */
  int steps;            /* --steps */
  int rank;
  int nan_skip, nan_max; /* --nan-policy skip, --nan-max-skips */
  int64_t skipped;      /* steps skipped so far */
  int skipped_run;      /* consecutive */
  double loss0, last;   /* the loss of step 0 and of the last step that updated */
  double grad_norm;     /* of the last step */
  double t_start;       /* for elapsed_s */
  double sync_s, opt_s; /* seconds in the gradient sums + norm, in AdamW */
  float *gbuf;          /* gradient buckets (dt_grad_sync) */
  size_t gbuf_n;
} dt_trainer;

/* What one step did. */
typedef struct {
  double loss, grad_norm, lr, scored, tokens_per_s;
  int skipped; /* the update was dropped (--nan-policy skip) */
} dt_step_out;

/* From the options (optimizer, fault and --dump-grads groups): AdamW over
 * params. Errors name the option (--betas). */
int dt_trainer_init(dt_trainer *tr, const dt_options *o, dt_params *params, dt_dist *dist);
/* The --metrics file (rank 0; appended to when the run resumes at start > 0). */
int dt_trainer_open_metrics(dt_trainer *tr, const dt_options *o, int64_t start);
void dt_trainer_free(dt_trainer *tr);

/* Step `step` (from 0) after its backward: st holds this rank's loss
 * statistics (summed here over the data-parallel replicas), tokens the
 * global batch's tokens (for tokens_per_s), t0 when the step began
 * (dt_now). Collective over the world. A non-finite loss or gradient norm
 * skips the update (--nan-policy skip) or ends with DT_ENUMERIC (agreed on
 * every rank), its message naming the step, the values and ck's last
 * checkpoint (ck may be NULL: none). */
int dt_trainer_step(dt_trainer *tr, int64_t step, dt_loss_stats *st, double tokens, double t0,
                    const dt_train_ckpt *ck, dt_step_out *out);

/* After step done - 1: the checkpoint that is due (ck's --save-every, or
 * the last step), after checking that every trainable value is finite
 * (DT_ENUMERIC, agreed, naming the tensor, when not). Collective. */
int dt_trainer_checkpoint(dt_trainer *tr, dt_train_ckpt *ck, const dt_train_state *ts,
                          int64_t done);

/* --nan-max-skips given without --nan-policy skip: a usage error. */
int dt_fault_options_check(const dt_options *o);

/* Sum the loss statistics over the data-parallel replicas (every rank of
 * a tensor group holds the same). Collective over dp. */
int dt_loss_stats_sum(dt_loss_stats *s, MPI_Comm dp);

/* "NaN", "inf", "-inf" or the number, alike in every message (buf: 32). */
const char *dt_num(double v, char *buf);

#endif
