/* The frozen transformer backbone: weights, activations, forward and backward.
 *
 * Layout conventions (row-major everywhere):
 *   N = B * T rows, T = tokens per row including virtual (prompt) tokens.
 *   Every linear weight is stored [out, in] (Linear layout); GPT-2 Conv1D
 *   tensors are transposed on load. q|k|v are fused into one [qkv_dim, d]
 *   matrix; LLaMA's gate|up are fused into one [2*ffn, d] matrix (gate rows
 *   first). HF names map onto row blocks of these (see model_tensors.c).
 *
 * Weights are frozen unless a method asks for a gradient on a tensor
 * (dt_model_require_grad); backward then also accumulates dW for it.
 */
#ifndef DT_MODEL_H
#define DT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dist.h"
#include "hf_config.h"
#include "quant.h"
#include "shard.h"
#include "shmwin.h"

struct dt_method;

/* A matrix [rows, cols]; fp32 (w) or bf16 (w16) storage. */
typedef struct {
  int rows, cols;
  float *w;
  uint16_t *w16;
  float *grad; /* NULL when frozen */
  int trained;  /* a method trains it (dt_model_require_grad; also when describe_only) */
  /* --weights-dtype int8|nf4 (src/quant.h): the frozen matrix as codes
   * and scales (qm.type != DT_Q_NONE); w and w16 are NULL (w holds it in
   * fp32 only while it loads) */
  dt_qmat qm;
  int shared;   /* w / w16 lie in the node's shared copy (read-only; see dt_model_unshare) */
} dt_mat;

typedef struct {
  int n;
  float *v;
  float *grad;
  int trained; /* a method trains it (dt_model_require_grad; set in describe_only models too) */
} dt_vec;

/* dt_site (where a frozen linear sits in a block) is in io/arch.h. */

typedef struct {
  dt_vec ln1_w, ln1_b; /* ln_1 / input_layernorm (b: GPT-2 only) */
  dt_mat lin[DT_N_SITES];
  dt_vec bias[DT_N_SITES]; /* GPT-2 only */
  dt_vec ln2_w, ln2_b;     /* ln_2 / post_attention_layernorm (Gemma-2: pre_feedforward_layernorm) */
  dt_vec pn1_w, pn2_w;     /* post_norms (Gemma-2): post_attention_layernorm,
                              post_feedforward_layernorm on the branch outputs */
} dt_layer;

/* The FFN's norm of a block: ln2, or ln1 where one norm feeds attention and
 * FFN (Falcon's shared input_layernorm: its gradient gathers both). */
static inline dt_vec *dt_layer_ffn_norm_w(dt_layer *L, const dt_config *c) {
  return dt_cfg_has_ln2(c) ? &L->ln2_w : &L->ln1_w;
}
static inline dt_vec *dt_layer_ffn_norm_b(dt_layer *L, const dt_config *c) {
  return dt_cfg_has_ln2(c) ? &L->ln2_b : &L->ln1_b;
}

/* Saved activations of one block for backward. */
typedef struct {
  float *x;        /* [N,d] block input (residual stream) */
  float *ln1;      /* [N,d] ln_1 output: one buffer shared by both norms of every block, recomputed in backward */
  float *ln1_stat; /* [N,2] mean, rstd (rmsnorm: rstd only) */
  float *lin_in[DT_N_SITES]; /* input actually multiplied (after pre hooks); NULL = same as the site input */
  float *qkv;      /* [N,qkv_dim] after hooks and RoPE */
  float *att;      /* [N,q_dim] attention output */
  float *lse;      /* [B,H,T] log-sum-exp of each attention row */
  float *x1;       /* [N,d] residual after attention */
  float *ln2;      /* [N,d] ln_2 output: the same shared buffer as ln1 */
  float *ln2_stat; /* [N,2] */
  float *fc;       /* [N,fc_dim] FFN pre-activation (after hooks) */
  float *act;      /* [N,ffn] gelu(fc) / silu(gate)*up */
  float *ao, *ao_stat; /* post_norms: [N,d] attention output before its norm, [N,2] */
  float *fo, *fo_stat; /* post_norms: [N,d] FFN output before its norm, [N,2] */
} dt_layer_acts;

/* The backbone: the config, the rank layout, the shard and the weights.
 * dt_model_load / dt_model_describe create it; after loading it does not
 * change, and several models (workspaces) may point at one backbone: the
 * sweep's groups share the base model's. The exception is a method that
 * trains or rewrites backbone tensors (dt_model_require_grad: dt_mat.grad,
 * .trained; dt_model_unshare): it writes the backbone, so a run with such
 * a method needs a backbone of its own (the sweep loads one per such task,
 * dt_methods_write_backbone; docs/design.md). */
typedef struct dt_backbone {
  dt_config cfg;
  dt_dist *dist;   /* rank layout; NULL = one rank */
  dt_shard sh;     /* this rank's part of the backbone (everything when tp = 1) */
  int weights_bf16; /* frozen matrices kept in bf16 */
  int wquant;       /* dt_qtype: the block matrices kept as int8 / nf4 (src/quant.h) */
  /* describe_only (dt_model_describe): shapes and sizes, no weight storage;
   * methods created on it register their tensors but allocate nothing large
   * (see dt_model_describe). weight_bytes: the frozen storage allocated, or
   * that would be. */
  int describe_only;
  int64_t weight_bytes;
  int64_t mat_bytes; /* of weight_bytes, the matrices (what a node's replicas can share) */
  /* the frozen matrices of this shard in one MPI-3 shared window of the
   * node's replicas (dist->peers), written by peer 0 at load; NULL = private */
  dt_shmwin frozen_win; /* --share-weights: the node's copy */
  char *slab;
  size_t slab_used;
  int slab_writer; /* this rank fills the shared matrices at load */
  /* while loading an int8/nf4 backbone: the staging copy kept for the next
   * matrix and the one lent out, with their sizes in floats (src/model.c) */
  float *stage_spare, *stage_lent;
  size_t stage_spare_n, stage_lent_n;

  /* weights */
  dt_mat wte;     /* [vocab, d] */
  dt_mat wpe;     /* [n_ctx, d] GPT-2 */
  dt_vec embn_w, embn_b; /* [d] the embedding's norm (descriptor's embed_norm) */
  float *alibi;   /* [n_head_l] ALiBi slopes of this rank's heads (DT_POS_ALIBI) */
  dt_vec lnf_w, lnf_b;
  dt_mat lm_head; /* [vocab, d]; tied: aliases wte's storage */
  dt_layer *layers;
  /* bf16 products on an int8/nf4 backbone: a bf16 copy of the (fp32, frozen)
   * head [vocab_l, d], made by dt_model_plan; NULL otherwise */
  uint16_t *head16;
} dt_backbone;

/* A model: a pointer to a backbone and one run's workspace (the methods,
 * the planned sizes, activations and scratch, the per-step inputs). */
typedef struct dt_model {
  dt_backbone *bb; /* the weights this workspace runs */
  int owns_bb;     /* dt_model_load / dt_model_describe made it; dt_model_free frees it */
  /* what methods would have allocated on a describe_only backbone but did
   * not (trained backbone gradients, SAID) */
  int64_t described_bytes;

  /* methods hooked into the blocks */
  struct dt_method **methods;
  int n_methods;

  /* sizes fixed at dt_model_plan */
  int B_max, T_data_max; /* planned rows and data tokens per row */
  int B, T_data;  /* this pass (dt_model_set_shape; the planned sizes by default) */
  int n_virtual;  /* prompt tokens prepended to each row */
  int T;          /* T_data + n_virtual */
  int step_open;  /* inside dt_model_step_begin .. dt_model_step_end */
  int64_t pass_row0, next_row0; /* token rows of the step's earlier passes */
  int n_prefix;   /* prefix key/values per layer (attention only) */
  int recompute;  /* keep only block inputs; recompute in backward */
  int tp_gemm;    /* 0: local GEMM + tensor-group sum (default), 1: ScaLAPACK psgemm */
  int stream_rows; /* fp32 products of at most this many rows stream the matrix once
                      (src/linear_rows.h; the decoder's steps); 0: always sgemm */
  float *px_scratch, *px_tmp; /* PxGEMM scratch and a [N, max in] buffer */

  /* activations (one arena) */
  float *arena;
  size_t arena_floats;
  dt_layer_acts *acts; /* n_layer entries (recompute: all share one set) */
  float **hook_ws;     /* [n_layer][DT_N_SITES][n_methods] method workspaces */
  int prefix_method;   /* index of the method giving prefix key/values, -1 */
  float **x_saved;     /* recompute: [N,d] input of every block */
  /* The residual stream a block saves (x, x1: the same on every rank of a
   * tensor group) in one MPI-3 shared window of the group instead of once
   * per rank: each rank stores its slice of the rows in forward, every
   * rank reads all of them in backward (the sums in between order the
   * two). Asked for by the caller (x_share_req) before dt_model_plan; on
   * when the group shares a node, tp > 1 and without --recompute. The
   * forward then runs the stream through private buffers (d_res, d_ln and
   * xf, idle until the head). */
  int x_share_req, x_shared;
  dt_shmwin x_win;
  float *emb;          /* [N,d] embedding output (== acts[0].x) */
  float *xf;           /* [N,d] final-norm output */
  float *xf_stat;      /* [N,2] */
  float *x_last;       /* [N,d] output of the last block */
  /* gradient scratch */
  float *d_res, *d_tmp, *d_ln, *d_qkv, *d_att, *d_fc, *d_act, *d_xf;
  float *att_scratch; /* dt_attention_scratch floats */
  int *scored_rows;   /* [N] rows whose next label is scored */
  /* loss head scratch: a chunk of logits rows */
  float *logit_chunk; /* [chunk, local vocab] */
  float *logit_tanh;  /* [chunk, local vocab] tanh(z / c) of final soft-capping; NULL without */
  float *head_red;    /* [5, chunk] per-row values of the loss head (head_chunk) */
  float *pk_l, *pv_l, *dpk_l, *dpv_l; /* [P, local kv] prefix of this rank's heads */
  float *prefix_dk, *prefix_dv;       /* the method's full prefix gradients */
  int logit_chunk_rows;
  float *wscratch; /* bf16 -> fp32 conversion of one matrix */
  float *qtile;    /* --weights-dtype int8|nf4: DT_QTILE_ROWS dequantized rows, or with bf16
                    * products the largest block matrix in bf16 (uint16_t, forward.c) */
  int matmul_bf16; /* bf16 products of the bf16 frozen matrices (gemm_bf16.h) */
  uint16_t *a16;   /* in the arena: bf16 copy of a product's activation operand */
  size_t wscratch_floats;
  /* rope tables [T, head_dim/2] */
  float *rope_cos, *rope_sin;
  /* sweeps: per batch row, the loss-gradient scale (1 / the scored tokens
   * of that row's task; NULL = 1 / grad_norm_count) and loss accumulators
   * (NULL = not kept) */
  const float *row_norm;
  double *row_loss;
  int64_t *row_scored;
  /* per-step inputs */
  int32_t *ids;    /* [B, T_data] */
  int32_t *labels; /* [B, T] (virtual positions = -100) */
} dt_model;

/* Load a model: "synthetic:..." spec or a HF folder. weights (dt_wdtype,
 * src/quant.h): the frozen matrices' storage, 0 fp32, 1 bf16 (every
 * matrix), int8 / nf4 (the block matrices, quantized one at a time as they
 * load; embeddings and head stay fp32). seed is used by synthetic weights. With a rank
 * layout (dist, may be NULL for one rank) each rank reads or generates only
 * its own shard. With share and more than one replica of this shard on the
 * node (dist->peers), the matrices are one shared copy: the first replica
 * reads or generates them, the others map them (collective over
 * dist->peers; norm and bias vectors stay private). dist->split_heads picks
 * the split of the attention heads (mpi/shard.h). */
int dt_model_load(dt_model *m, const char *spec, int weights,
                  uint64_t seed, dt_dist *dist, int share);

/* The sizes of a model without its weights (for `deltatune plan`): the
 * config (a synthetic spec or a HF folder's config.json alone), the shard of
 * tensor-parallel rank tp_rank of tp_size (split_heads: as dist->split_heads),
 * and every matrix's shape; no
 * weight storage (w, w16 stay NULL) and m->dist stays NULL. weight_bytes is
 * what dt_model_load's allocation would take on that rank (the same code
 * sizes both). Methods can be created on it: dt_model_require_grad then
 * allocates nothing and adds the gradient's bytes to described_bytes.
 * Release with dt_model_free. */
int dt_model_describe(dt_model *m, const char *spec, int weights, int tp_rank,
                      int tp_size, int split_heads);
/* Give a shared matrix a private copy before it is written (a method that
 * trains or rewrites frozen weights); no-op for a private one. */
int dt_model_unshare(dt_model *m, dt_mat *a);
/* describe_only: count bytes a method would allocate instead of allocating. */
void dt_model_describe_bytes(dt_model *m, size_t bytes);
/* A method's state: dt_alloc_aligned (zeroed, 64-byte aligned) on a real
 * model; on a describe_only one the bytes are only counted (described_bytes)
 * and *pptr is NULL, so one line sizes both. */
int dt_model_alloc(dt_model *m, void *pptr, size_t bytes, const char *what);
/* base + off, or NULL when base is (a describe_only model's state). */
static inline float *dt_at(float *base, size_t off) { return base ? base + off : NULL; }

/* Local widths and sharded segments of a linear site (mpi/shard.h). */
static inline int dt_site_in_l(const dt_model *m, int s) {
  return dt_shard_site_in_l(&m->bb->sh, &m->bb->cfg, s);
}
static inline int dt_site_out_l(const dt_model *m, int s) {
  return dt_shard_site_out_l(&m->bb->sh, &m->bb->cfg, s);
}
static inline const dt_segs *dt_site_segs(const dt_model *m, int s) {
  return dt_shard_site_segs(&m->bb->sh, s);
}
/* Rows per loss-head chunk: the logits of this many rows exist at once
 * ([chunk, local vocab] floats). Each chunk streams the whole head matrix
 * through two GEMMs, so fewer, larger chunks repack it less often. */
#define DT_LOGIT_CHUNK 512

static inline int dt_model_tp(const dt_model *m) { return m->bb->dist ? m->bb->dist->tp_size : 1; }
void dt_model_free(dt_model *m);
/* Backbone and workspace (docs/design.md): the backbone (dt_backbone) is
 * the config, the shard layout and the weights; the workspace is the rest of
 * dt_model: what dt_model_set_methods, dt_model_plan and the steps allocate
 * (methods, activations, scratch, per-step ids). dt_model_workspace makes
 * *ws a second workspace on base's backbone (ws->bb = base->bb), with base's
 * run settings (tp_gemm, matmul_bf16, x_share_req) and nothing else of its
 * workspace. Free one with dt_model_free_workspace, never dt_model_free
 * (which also frees the backbone its model owns);
 * dt_model_free_workspace frees the workspace of any model and keeps the
 * backbone. */
void dt_model_workspace(dt_model *ws, const dt_model *base);
void dt_model_free_workspace(dt_model *m);

/* Attach methods (before dt_model_plan). */
int dt_model_set_methods(dt_model *m, struct dt_method **methods, int n);

/* Size and allocate activations for B rows of T_data tokens. Must be called
 * after methods are attached (they add virtual tokens, prefixes and hook
 * workspace). */
int dt_model_plan(dt_model *m, int B, int T_data, int recompute);

/* The shape of the next passes: B rows of T_data tokens, at most the planned
 * sizes (the activations stay where dt_model_plan put them). A causal model
 * gives the same loss and gradients for a row cut after its last scored
 * token, so callers trim padding this way, and run a step as several
 * micro-batches of fewer rows. */
int dt_model_set_shape(dt_model *m, int B, int T_data);

/* A step of several passes (micro-batches): the methods' once-per-step
 * work (begin_forward: e.g. SAID's projected weights, the prefix MLP;
 * end_backward: mapping accumulated gradients back to the deltas) runs once
 * around all passes, whose gradients accumulate. Without these calls every
 * dt_model_forward / dt_model_backward is a step of its own. */
int dt_model_step_begin(dt_model *m, int want_grad);
int dt_model_step_end(dt_model *m, int want_grad);

/* Bytes the activations of dt_model_plan would take (for planning). */
size_t dt_model_act_bytes(const dt_model *m, int B, int T_data, int recompute);
/* Of those, the bytes in the tensor group's shared window (x_share_req:
 * one copy per group on a node, each rank's RSS still counts them). */
size_t dt_model_act_shared_bytes(const dt_model *m, int B, int T_data, int recompute);
/* Bytes dt_model_plan allocates besides the activation arena: the bf16
 * conversion scratch, rotary tables, batch ids, labels and scored rows. */
size_t dt_model_plan_extra_bytes(const dt_model *m, int B, int T_data);

typedef struct {
  double loss_sum;  /* sum of -log p over scored tokens */
  int64_t n_scored; /* scored tokens */
  int64_t n_correct_tokens;   /* argmax == label */
  int64_t n_rows_exact;       /* rows whose every scored token is argmax */
  int64_t n_rows_scored;      /* rows with at least one scored token */
} dt_loss_stats;

/* Forward over one batch ids/labels [B, T_data] (labels may be NULL =
 * ids). With want_grad, also the gradient of (loss_sum / grad_norm_count)
 * w.r.t. the final hidden state, ready for dt_model_backward; grad_norm_count
 * is the number of scored tokens the loss is averaged over (the whole global
 * batch). logits (optional) receives [B, T, vocab]. */
int dt_model_forward(dt_model *m, const int32_t *ids, const int32_t *labels,
                     int want_grad, double grad_norm_count,
                     dt_loss_stats *stats, float *logits);

/* Backward from the loss through every block into the embedding; method
 * hooks accumulate their parameter gradients; trainable backbone tensors
 * accumulate dW. */
int dt_model_backward(dt_model *m);

/* Whether backward needs the gradient w.r.t. the first block's QKV input:
 * something below it trains (token or position embeddings, virtual tokens,
 * ln_1 of block 0, a pre hook of that site), or the PxGEMM formulation runs
 * (its collectives). Otherwise that GEMM and its tensor-group sum are
 * skipped. Works on describe_only models too (src/plan.c counts the sums). */
int dt_model_first_dx_needed(const dt_model *m);

/* Zero gradients of trainable backbone tensors. */
void dt_model_zero_backbone_grads(dt_model *m);

/* --- HF names <-> storage ------------------------------------------------ */
/* One HF tensor: where its (local part of the) values live. `rows x cols`
 * is its global storage shape ([out, in] for matrices, n x 1 for vectors);
 * `segs` maps global indices of the sharded dimension (rows when shard_dim
 * is 0, columns when 1; relative to this tensor) to local indices of the
 * owner's storage. The local values are contiguous: numel_l elements from
 * `offset` in the owner. */
typedef struct {
  char name[128];   /* HF name */
  const char *alias; /* transformers 5's name where it differs (dt_arch_tensor) */
  int ndim;
  int64_t shape[2]; /* HF shape (global) */
  int layer;        /* block index, -1 outside blocks */
  int is_bias;      /* name ends in .bias */
  int is_matrix;    /* 2-D weight inside a block */
  int transposed;   /* HF shape is the transpose of storage */
  dt_mat *mat;      /* owning matrix (2-D) */
  dt_vec *vec;      /* owning vector (1-D) */
  int64_t rows, cols;
  int shard_dim;
  dt_segs segs;
  int sharded;      /* this rank holds only part of it, or its rows in
                       another order than the file's (segs) */
  int64_t offset;   /* local element offset inside the owner */
  int64_t numel;    /* global elements */
  int64_t numel_l;  /* local elements */
} dt_tensor_ref;

/* All backbone tensors in HF named_parameters order (tied lm_head omitted). */
int dt_model_tensors(dt_model *m, dt_tensor_ref **refs, int *n);
/* Make the tensor trainable (allocates its owner's gradient, zeroed, and
 * requires fp32 storage). Returns pointers to its local data and grad
 * (r->numel_l elements). */
int dt_model_require_grad(dt_model *m, const dt_tensor_ref *r, float **data,
                          float **grad);

/* Bytes of frozen weights held by this rank. */
int64_t dt_model_local_weight_bytes(const dt_model *m);

/* Counts. */
int64_t dt_model_param_count(const dt_model *m);
/* Parameters of the frozen matrix products (block linears + lm_head). */
int64_t dt_model_matmul_params(const dt_model *m);
/* Model FLOPs of one training step over `tokens` tokens of sequences of T
 * positions, `scored` of which reach the loss head: 4 x frozen-matmul
 * parameters per token (forward + input gradient; multiply-add = 2), the
 * head's 4 x vocab x d only for scored tokens, causal attention (forward
 * 4*(T+1)/2*q_dim per layer, backward twice that), and 2 x parameters of
 * every trainable backbone block matrix (weight gradient). */
double dt_model_step_flops(const dt_model *m, int T, double tokens, double scored);

/* Fill a float array with fp32 values of a matrix (converts bf16). */
const float *dt_mat_f32(dt_model *m, const dt_mat *a);

/* The head [vocab_l, d] in bf16 for bf16 products: its stored bf16, or the
 * copy dt_model_plan made of an fp32 head on an int8/nf4 backbone; NULL
 * with fp32 products (forward.c). */
const uint16_t *dt_model_head16(const dt_model *m);

#endif
