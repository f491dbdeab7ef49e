/* One small interface for every delta method.
 *
 * A method is created from the options, registers its trainable tensors in
 * the parameter table, and hooks into the blocks at named places. Every hook
 * is optional (NULL). Adding a method = one file + one line in methods.c
 * (DT_METHOD_TABLE).
 *
 * Hook order inside a frozen linear at (layer, site):
 *   x -> [pre hooks] -> x' -> y = x' W^T + b -> [post hooks, method order] -> y
 * Backward runs the post hooks in reverse, then the frozen GEMM, then the pre
 * hooks. Hooks add their parameter gradients into their own buffers.
 */
#ifndef DT_METHOD_H
#define DT_METHOD_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "options.h"
#include "params.h"

typedef struct {
  int layer;
  dt_site site;
  int N;          /* rows */
  int in, out;    /* widths */
  const float *x; /* [N,in] the site input (before pre hooks) */
  float *y;       /* [N,out] output, modified in place by post hooks */
  float *ws;      /* this method's saved space for (layer, site) */
  int train;      /* forward of a training step (save what backward needs) */
} dt_site_io;

typedef struct dt_method dt_method;
typedef struct dt_peft_export dt_peft_export; /* src/peft.h */
typedef struct dt_merge_rule dt_merge_rule;   /* src/merge_rule.h */

/* What a method does to the backbone (dt_method_ops.flags). */
enum {
  DT_METHOD_WRITES_MATRICES = 1 << 0, /* trains or rewrites frozen matrices (full, lastlayer, said) */
  DT_METHOD_WRITES_BIASES = 1 << 1,   /* trains backbone vectors in place (bitfit) */
};

typedef struct {
  const char *name;
  const char *summary;
  const dt_optgroup *options; /* may be NULL */
  unsigned flags;             /* DT_METHOD_WRITES_* */
  /* Why `merge` cannot fold this method into the weights; NULL: it can
   * (merge.c then knows how). */
  const char *merge_refusal;

  /* Check the method's options against the model's configuration before
   * the backbone is built (targets that name no module of the family, a
   * layer the model lacks): a DT_EUSAGE error naming the option. Called by
   * every command that creates the method (dt_methods_check_config). NULL:
   * create() checks all there is. */
  int (*check_config)(const dt_options *opt, const dt_config *cfg);

  /* Allocate state and parameters; register them in params. */
  int (*create)(dt_method *me, const dt_options *opt, dt_model *m,
                dt_params *params, uint64_t seed);
  void (*destroy)(dt_method *me);

  /* Sizes the model needs before planning. */
  int (*virtual_tokens)(const dt_method *me); /* prompt tokens per row */
  int (*prefix_tokens)(const dt_method *me);  /* prefix key/values */
  /* floats of workspace per (layer, site) for N rows */
  size_t (*site_ws)(const dt_method *me, int layer, dt_site site, int N);
  /* Bytes of backward scratch the hooks allocate on first use
   * (dt_ensure_floats) for N rows, as plan counts them; NULL: none. */
  int (*scratch_bytes)(const dt_method *me, const dt_options *opt, const dt_model *m, int64_t N,
                       int64_t *bytes);

  /* Sums over the tensor-parallel group the hooks at (layer, site) make in
   * one forward (dt_tp_sum), each of *width floats per row; plan counts
   * them. NULL or 0: none (LoRA: one h [N, r] per unit on a row-parallel
   * site). */
  int (*tp_sums)(const dt_method *me, int layer, dt_site site, int *width);

  /* Once per forward / after each backward. */
  int (*begin_forward)(dt_method *me, int train);
  int (*end_backward)(dt_method *me);

  /* Linear-site hooks. */
  int (*pre_fwd)(dt_method *me, const dt_site_io *io, float *x_out /*[N,in]*/);
  int (*pre_bwd)(dt_method *me, const dt_site_io *io, float *dx /*[N,in] in/out*/);
  int (*post_fwd)(dt_method *me, const dt_site_io *io);
  /* dy [N,out]: grad w.r.t. the hook's output on entry, w.r.t. its input on
   * return. dx [N,in] accumulates the gradient w.r.t. the linear's input. */
  int (*post_bwd)(dt_method *me, const dt_site_io *io, float *dy, float *dx);
  int (*wants_pre)(const dt_method *me, int layer, dt_site site);
  int (*wants_post)(const dt_method *me, int layer, dt_site site);

  /* Prefix tuning: key/value rows [P, kv_dim] of a layer (shared by all
   * rows of the batch, no rotary position) and where their grads go. */
  int (*prefix_kv)(dt_method *me, int layer, const float **k, const float **v,
                   float **dk, float **dv);
  /* Prompt tuning: virtual token embeddings [P, d] and their grad. */
  int (*prompt_embed)(dt_method *me, const float **e, float **de);

  /* `export --format peft`: the checkpoint's tensors as a PEFT adapter
   * (tensors into x->out, adapter_config.json into x->cfg; src/peft.h).
   * NULL: PEFT has no such adapter (export refuses, naming the methods
   * that have one). */
  int (*export_peft)(dt_peft_export *x);

  /* `merge`: fold the checkpoint's trained tensor k into the weights
   * (x->add_lowrank / x->add_scale; set x->used for what it folds;
   * src/merge_rule.h). NULL: its tensors replace the backbone's (flags
   * DT_METHOD_WRITES_*) or merge_refusal says why it cannot be merged. */
  int (*merge_tensor)(dt_merge_rule *x, int k);

  /* One line about what is trained. */
  void (*describe)(const dt_method *me, char *buf, size_t cap);

  /* Checkpoints: state that is not a parameter but must survive a resume
   * for the run to continue exactly, as a few int64 counters (LoRA: the
   * training forwards that key its dropout stream). save_counters writes at
   * most cap values and returns how many; load_counters restores them (an
   * error when n is not what save_counters writes). Both NULL: no state. */
  int (*save_counters)(const dt_method *me, int64_t *v, int cap);
  int (*load_counters)(dt_method *me, const int64_t *v, int n);
} dt_method_ops;

struct dt_method {
  const dt_method_ops *ops;
  dt_model *model;
  void *state;
  /* Batch rows the method applies to (a task's rows of a combined batch in
   * a sweep): rows [row0, row0 + nrows) of the B rows; nrows = 0: all. Hooks
   * then see only those rows (io->N = nrows * T). */
  int row0, nrows;
};

/* The registry (methods.c). */
const dt_method_ops *dt_method_lookup(const char *name);
int dt_method_count(void);
const dt_method_ops *dt_method_at(int i);

/* Create the methods named in the comma-separated list ("lora,bitfit"). */
int dt_methods_create(const char *list, const dt_options *opt, dt_model *m,
                      dt_params *params, uint64_t seed, dt_method ***out,
                      int *n_out);
void dt_methods_destroy(dt_method **ms, int n);

/* An unknown method in the list ml, or method options given on the command
 * line for a method that is not in it: a usage error naming the method, or
 * the option and the list. Checked before the backbone is built. */
int dt_methods_check_options(const dt_options *o, const char *ml);

/* Each method of the list ml checks its options against cfg (its
 * check_config), before anything is built. */
int dt_methods_check_config(const dt_options *o, const char *ml, const dt_config *cfg);

/* Does the comma-separated method list train or rewrite frozen backbone
 * matrices (a method flagged DT_METHOD_WRITES_MATRICES)? Such a run gains
 * nothing from one node-local copy of the frozen weights (every rewritten
 * matrix becomes private). */
int dt_methods_write_matrices(const char *list);
/* Does it write any backbone tensor (matrices or, as bitfit, vectors)? */
int dt_methods_write_backbone(const char *list);
/* Should a run of these methods map the frozen matrices from one copy per
 * node (--share-weights auto|yes|no)? */
int dt_share_weights(const char *choice, const char *methods);
/* Should the key/value groups left over from an even split over the tensor
 * group be shared by query rows (--tp-heads auto|rows|whole, mpi/shard.h)?
 * Not where a method trains backbone tensors, whose gradients are complete
 * per rank, or with pxgemm's block-cyclic products: *split 0 there, and
 * rows is a DT_EUSAGE error. *split: 0, 1 (auto: where the layout allows)
 * or DT_SPLIT_HEADS_ASKED (rows: a layout that does not allow it is an
 * error of dt_shard_init). */
int dt_split_heads(const char *choice, const char *methods, int pxgemm, int *split);

#endif
