/* `deltatune plan`: memory, time, storage and communication of a training
 * job, before it is submitted (docs/plan.md).
 *
 * Sizes come from the code that sizes the real allocations: the backbone of
 * every distinct tensor-parallel rank is described without weights
 * (dt_model_describe, the same walk as dt_model_load's allocation), the
 * methods are created on it (their own create(), which registers the
 * trainable tensors and allocates their state; on a describe_only model the
 * large backbone-sized parts are only counted), and the activations are
 * laid out by dt_model_act_bytes (the layout dt_model_plan carves). */
#ifndef DT_PLAN_H
#define DT_PLAN_H

#include <stdint.h>

#include "machine.h"
#include "options.h"

typedef struct {
  const char *model;     /* synthetic:... or a HF folder (config.json only) */
  const char *methods;   /* comma-separated, as --method */
  const dt_options *opt; /* the methods' options */
  int nodes, ranks_per_node, tp;
  int batch;             /* global rows per step (per task) */
  int seq;               /* data tokens per row */
  int weights;           /* dt_wdtype (src/quant.h): fp32, bf16, int8, nf4 */
  int tasks;             /* K tasks on one backbone (combined batch of K x batch rows) */
  int recompute;         /* the run uses --recompute */
  int scored_per_row;    /* scored tokens per row; < 0: every one (seq - 1, + 1 with prompt tokens) */
  int64_t data_rows;     /* rows of the data file every rank loads (0: not counted) */
  uint64_t seed;
  int micro;             /* rows per forward/backward pass (--micro-batch; 0 = all of a replica's) */
  int matmul_bf16;       /* --matmul-dtype bf16 (needs bf16) */
  const char *share_weights; /* --share-weights auto|yes|no (NULL: auto) */
  int split_heads;       /* left-over key/value groups shared by query rows (--tp-heads) */
} dt_plan_in;

/* Bytes held by one rank (the largest). */
typedef struct {
  int tp_rank;           /* a rank that holds the most */
  int64_t weights;       /* frozen shard (dt_model_load's allocation) */
  int64_t method;        /* the methods' allocations x tasks: deltas, their gradients,
                          * state, trained backbone gradients */
  int64_t adamw;         /* AdamW's two moments x tasks */
  int64_t buckets;       /* gradient buckets x tasks (more than one rank) */
  int64_t acts;          /* activation arena (with or without --recompute, as the run) */
  int64_t acts_plain, acts_recompute; /* both */
  int64_t engine;        /* dt_model_plan's other buffers (bf16 scratch, rope, ids) */
  int64_t hook_scratch;  /* hooks' backward scratch, allocated at the first backward */
  int64_t blas;          /* OpenBLAS packing memory of the GEMM with the most output rows */
  int64_t batch_bufs;    /* the driver's batch ids and labels */
  int64_t dataset;       /* the data file's ids and labels */
  int64_t mpi_scratch;   /* MPI_Allreduce's transient memory on the largest message */
  int64_t shm_touched;   /* pages of the shared sum window this rank touches */
  int64_t shm_share;     /* this rank's share of the window: (T + 1) slots / T */
  int64_t baseline;      /* process + MPI + BLAS (machine constant) */
  int64_t rss;           /* predicted peak RSS (what train's summary measures) */
  int64_t node_share;    /* memory this rank adds to its node (window share, not touched pages;
                          * the frozen matrices split among the replicas that share them) */
  int64_t acts_shared;   /* of acts, the saved residual stream in the tensor group's shared
                          * window (groups within a node, no --recompute): once per group */
  int share_replicas;    /* replicas of a shard on a node mapping one copy (--share-weights), 1 = none */
  int64_t numel_l;       /* trainable elements this rank holds (one task) */
} dt_plan_mem;

typedef struct {
  int ranks, dp, tp, B_local, T, n_virtual, n_prefix;
  int B_pass, passes; /* rows per forward/backward pass and passes per step (--micro-batch) */
  int shm;                        /* tensor-group sums through the shared window */
  dt_plan_mem mem;
  int64_t frozen_params, trainable, n_tensors;
  int64_t weight_bytes_total;     /* the whole backbone at this dtype (tp = 1) */
  char describe[1024];            /* the methods' own one-line descriptions */
  /* FLOPs (dt_model_step_flops) */
  double flops_step, flops_token, flops_rank;
  double matmul_global;           /* frozen-matmul parameters of the whole model */
  /* communication per step and rank (counted as forward.c and the hooks
   * call dt_tp_sum) */
  long long tp_sums, tp_sums_shm, tp_sum_floats, small_allreduces;
  int64_t bucket_world_floats, bucket_dp_floats;
  int bucket_reductions;
  /* time per step: compute, tensor-group sums, gradient buckets and other
   * small reductions, the optimizer update (memory-bound) */
  double t_compute, t_tp, t_reduce, t_update, t_step, tokens_per_s;
  int bf16_rate;         /* t_compute used the calibrated bf16 rate (--matmul-dtype bf16) */
  /* checkpoint variables, one task: deltas; deltas + AdamW moments */
  int64_t ckpt_deltas, ckpt_with_opt;
  /* fit */
  int64_t node_bytes;             /* the node that needs the most: its ranks' node_share summed
                                     (ranks_per_node x the largest where groups do not tile nodes) */
} dt_plan_out;

/* The plan of one configuration. Not collective (one process computes). */
int dt_plan_compute(const dt_plan_in *in, const dt_machine *mc, dt_plan_out *out);

/* One tensor-group size of a layout advisor (dt_plan_layouts). */
typedef struct {
  int tp, dp;
  int refused;       /* the split is refused (why): not planned */
  char why[256];
  int fits;          /* node memory <= mem_per_node (1 when none is given) */
  dt_plan_out out;
} dt_plan_layout;

/* Every tensor-group size t that divides in's nodes x ranks, planned as
 * `--tp t` (in->tp is ignored), into rows[0..*n) (at most max): refused
 * (with why) where the rows of a step do not split over its replicas or the
 * shards refuse the split; *best: the row of the most tokens/s among those
 * whose node memory fits mem_per_node (every one when <= 0), -1 when none
 * does. */
int dt_plan_layouts(const dt_plan_in *in, const dt_machine *mc, double mem_per_node,
                    dt_plan_layout *rows, int max, int *n, int *best);

/* The smallest node count (ranks_per_node fixed, tp chosen) whose nodes hold
 * the job within mem_per_node bytes: *nodes and the smallest tp that fits
 * there (*nodes = 0 when none up to max_nodes does). */
int dt_plan_min_nodes(const dt_plan_in *in, const dt_machine *mc, double mem_per_node,
                      int max_nodes, int *nodes, int *tp);

#endif
