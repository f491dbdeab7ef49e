/* Checkpoints in the train and eval drivers: the options, the final and
 * periodic saves into --out, --resume, and eval --checkpoint. The file
 * format is io/checkpoint.h; this is what the drivers put in and take out.
 * Every function is collective over the communicator it is given. */
#ifndef DT_CKPT_RUN_H
#define DT_CKPT_RUN_H

#include <mpi.h>
#include <stdint.h>

#include "checkpoint.h"
#include "dataset.h"
#include "method.h"
#include "optim.h"
#include "options.h"
#include "params.h"

/* Option tables: train (--save-every, --save-optimizer, --keep, --resume)
 * and eval (--checkpoint). */
extern const dt_optgroup dt_ckpt_train_group;
extern const dt_optgroup dt_ckpt_eval_group;

/* What the step loop hands to a save. */
typedef struct {
  const dt_options *opt;
  const dt_config *cfg;
  const dt_params *params;
  const dt_adamw *adamw;
  dt_method **methods;
  int n_methods;
  int64_t steps_total; /* --steps */
  int64_t batch_size;  /* global rows per step */
  const dt_dataset *data;
  int tp_size; /* ranks of a tensor-parallel group */
  MPI_Comm tp_comm; /* this rank's tensor-parallel group (sharded tensors) */
  /* the backbone's identity when the caller has it (a sweep identifies its
   * shared backbone once, with its own seed); NULL: identify cfg with --seed */
  const dt_backbone_id *backbone;
} dt_train_state;

typedef struct {
  MPI_Comm comm;
  int rank, nranks;
  const char *dir; /* --out; NULL: no checkpoints */
  int save_every, keep, save_optimizer;
  dt_backbone_id backbone;
  int64_t saved_step; /* newest checkpoint written or resumed from, -1 */
  char saved_path[4200];
  int64_t saved_bytes, saved_data_bytes, saved_opt_bytes;
} dt_train_ckpt;

/* Before the first step: check the options, create --out, identify the
 * backbone and, with --resume, continue from the newest complete checkpoint
 * of --out: the backbone, the methods and their options must match (an
 * error names what differs; other differences that make the run depart
 * from an uninterrupted one are printed as notes); the parameters, AdamW's
 * moments and step and the methods' counters are restored. *start is the
 * next step (0 without a checkpoint), *loss_first the loss of step 0 (NaN
 * when unknown). */
int dt_train_ckpt_begin(dt_train_ckpt *t, const dt_train_state *s, dt_params *params,
                        dt_adamw *adamw, int64_t *start, double *loss_first, MPI_Comm comm);

/* After `done` updates: write DIR/ckpt-<done>.nc when --save-every says so
 * or when `final`, unless that step is already saved; then keep the --keep
 * newest. */
int dt_train_ckpt_save(dt_train_ckpt *t, const dt_train_state *s, int64_t done, int final,
                       double loss_first, double loss_last);

/* Rank 0: the summary line of the newest checkpoint written. */
void dt_train_ckpt_summary(const dt_train_ckpt *t);

/* eval --checkpoint FILE, before parsing: the file's methods, their
 * options, --seed, --model and --weights-dtype are added to argv where the
 * command line does not give them. *av is argv itself when there is no
 * --checkpoint; free with dt_ckpt_eval_argv_free. */
int dt_ckpt_eval_argv(int argc, char **argv, int *ac, char ***av, MPI_Comm comm);
void dt_ckpt_eval_argv_free(int argc, char **argv, int ac, char **av);

/* eval --checkpoint FILE, after setup: check that the methods, their
 * options and --seed match the file's and the backbone is the file's, then
 * load the deltas. Nothing when --checkpoint is not given. bb: the
 * backbone's identity when known (dt_ckpt_precheck), NULL: identify cfg. */
int dt_ckpt_eval_load(const dt_options *o, const dt_config *cfg, dt_params *params,
                      const dt_backbone_id *bb, MPI_Comm comm);

/* Before the backbone is built (docs/reliability.md): the checkpoint that
 * train --resume (train 1: the newest in --out) or eval --checkpoint
 * (train 0) will read is checked whole: the file's size against its
 * variables (truncated), complete, every variable's checksum (corrupted),
 * the methods and their options, the backbone's identity against cfg
 * (config.json and the weight files' hashes, or the synthetic spec: no
 * weights are loaded) and, for --resume, its step against --steps. The
 * same messages as the later reads. *bb receives the backbone's identity
 * and *have_bb is 1 when it was computed (reuse it: hashing the weight
 * files of a large model takes a while). Collective over comm. */
int dt_ckpt_precheck(const dt_options *o, const dt_config *cfg, int train, dt_backbone_id *bb,
                     int *have_bb, MPI_Comm comm);

/* Store every option of o (the command's groups and those of the methods
 * in the comma-separated list) into i->opts and i->options_given. */
int dt_ckpt_info_set_options(dt_ckpt_info *i, const dt_options *o, const char *methods);

#endif
