#define _GNU_SOURCE /* sched_getcpu */
/* The train and eval drivers: options -> model -> methods -> data ->
 * steps. Collective over MPI_COMM_WORLD. Ranks form dp x tp: the backbone
 * is sharded inside each tensor-parallel group, data-parallel replicas take
 * contiguous slices of the global batch; gradients and loss statistics are
 * summed as described in docs/parallel.md. */
#include <math.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "batch.h"
#include "agree.h"
#include "blas_info.h"
#include "ckpt_run.h"
#include "comm_options.h"
#include "commands.h"
#include "dataset.h"
#include "error.h"
#include "mpicheck.h"
#include "outpaths.h"
#include "gemm_bf16.h"
#include "genmatch.h"
#include "gradsync.h"
#include "interrupt.h"
#include "median.h"
#include "memstat.h"
#include "method.h"
#include "model.h"
#include "optgroups.h"
#include "optim.h"
#include "options.h"
#include "params.h"
#include "params_dist.h"
#include "quant.h"
#include "rng.h"
#include "safetensors.h"
#include "textdata.h"
#include "timer.h"
#include "tokenizer.h"
#include "trainer.h"

/* --- option tables ------------------------------------------------------- */

/* The shared groups (backbone, method, optimizer, faults) are in
 * src/optgroups.c; these are train's, eval's and gradcheck's own. */
static const dt_optdef engine_opts[] = {
    {"tp-gemm", DT_OPT_CHOICE, "local", 0, 0, "local|pxgemm",
     "tensor-parallel products: local GEMM on the shard + one sum per attention and FFN "
     "(Megatron), or ScaLAPACK psgemm on the block-cyclic descriptors"},
    {"verbose", DT_OPT_BOOL, "no", 0, 0, NULL,
     "print the effective configuration, BLAS kernel and its measured GFLOP/s"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const dt_optdef data_opts[] = {
    {"data", DT_OPT_STRING, NULL, 0, 0, NULL,
     "tokenized data: safetensors with input_ids [N,T] and optional labels [N,T]; or FILE.jsonl: "
     "rows {\"text\"} or {\"prompt\", \"completion\"}, tokenized once into a cache (required)"},
    {"tokenizer", DT_OPT_STRING, NULL, 0, 0, NULL,
     "--data FILE.jsonl: a tokenizer.json or a folder holding one (default: the --model folder)"},
    {"seq-len", DT_OPT_INT, "0", 0, 1 << 20, NULL,
     "--data FILE.jsonl: tokens per row T, right-padded with EOS (required there)"},
    {"too-long", DT_OPT_CHOICE, "drop", 0, 0, "drop|error",
     "--data FILE.jsonl: a row longer than --seq-len is dropped (and counted) or an error"},
    {"pack", DT_OPT_BOOL, "no", 0, 0, NULL,
     "--data FILE.jsonl: lay rows (text rows + a scored EOS) one after another into full rows"},
    {"skip-bad-rows", DT_OPT_BOOL, "no", 0, 0, NULL,
     "--data FILE.jsonl: skip (and count) rows that are not UTF-8, not JSON or lack a field, "
     "instead of stopping at the first"},
    {"data-split", DT_OPT_STRING, NULL, 0, 0, NULL,
     "--data FILE.jsonl: keep only the rows whose \"split\" field is this (train, test, ...)"},
    {"max-rows", DT_OPT_INT, "0", 0, 2147483647, NULL,
     "--data FILE.jsonl: keep only the first N rows that fit (0 = all)"},
    {"data-cache", DT_OPT_STRING, NULL, 0, 0, NULL,
     "--data FILE.jsonl: folder of the token cache, seen by every rank (default "
     "$XDG_CACHE_HOME/deltatune/data or ~/.cache/deltatune/data)"},
    {"eos", DT_OPT_STRING, NULL, 0, 0, NULL,
     "--data FILE.jsonl: the EOS token (default: eos_token of the tokenizer_config.json)"},
    {"batch-size", DT_OPT_INT, "8", 1, 1048576, NULL,
     "rows per step (global, split across ranks)"},
    {"shuffle", DT_OPT_INT, NULL, 0, 2147483647, NULL,
     "visit rows in a random order (reshuffled every epoch) from this seed"},
    {"sample-rows", DT_OPT_INT, NULL, 0, 2147483647, NULL,
     "draw every batch's rows at random with replacement from this seed"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const dt_optdef train_opts[] = {
    {"metrics", DT_OPT_STRING, NULL, 0, 0, NULL,
     "JSON-lines file: one object per step {step, loss, lr, grad_norm, ...} (src/trainer.h)"},
    {"dump-grads", DT_OPT_STRING, NULL, 0, 0, NULL,
     "write the gradients of step 0 to this safetensors file"},
    {"dump-logits", DT_OPT_STRING, NULL, 0, 0, NULL,
     "write the logits [B,T,V] of the first forward pass to this safetensors file"},
    {"out", DT_OPT_STRING, NULL, 0, 0, NULL,
     "output folder: checkpoints OUT/ckpt-<step>.nc (final, and see --save-every) and the "
     "final deltas OUT/deltas.safetensors"},
    {"log-every", DT_OPT_INT, "10", 1, 1000000000, NULL, "progress line every N steps"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const dt_optdef check_opts[] = {
    {"eps", DT_OPT_FLOAT, "1e-2", 1e-8, 1, NULL,
     "step along each tensor's unit gradient direction"},
    {"tol", DT_OPT_FLOAT, "5e-3", 1e-8, 1, NULL,
     "largest accepted relative difference |fd - |g|| / |g|"},
    {"min-norm", DT_OPT_FLOAT, "1e-4", 0, 1, NULL,
     "tensors whose gradient norm is below this are reported, not checked"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const dt_optdef eval_opts[] = {
    {"rows", DT_OPT_INT, "0", 0, 2147483647, NULL, "evaluate the first N rows (0 = all)"},
    {"dump-logits", DT_OPT_STRING, NULL, 0, 0, NULL,
     "write the logits [B,T,V] of the first batch to this safetensors file"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* How a batch runs through the model (train, eval, gradcheck). */
static const dt_optdef pass_opts[] = {
    {"micro-batch", DT_OPT_INT, "0", 0, 1048576, NULL,
     "rows per forward/backward pass: a step's rows run in passes whose gradients add up, "
     "for less activation memory (0 = all of a rank's rows in one pass)"},
    {"trim-padding", DT_OPT_BOOL, "yes", 0, 0, NULL,
     "run each pass only up to its rows' last scored token (the model is causal: the same "
     "loss and gradients); with --micro-batch the rows are grouped by that length"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

#define MAX_GROUPS 32

/* The option groups a sweep task accepts: model, data, training and every
 * method's (src/sweep.c). */
int dt_train_task_groups(dt_optgroup *g, int max) {
  int n = 0;
  g[n++] = dt_backbone_group;
  g[n++] = dt_method_group;
  g[n++] = (dt_optgroup){"engine", "Engine", engine_opts};
  g[n++] = (dt_optgroup){"data", "Data", data_opts};
  g[n++] = dt_optim_group;
  g[n++] = (dt_optgroup){"train", "Training", train_opts};
  g[n++] = dt_fault_group;
  for (int i = 0; i < dt_method_count() && n < max; i++)
    if (dt_method_at(i)->options) g[n++] = *dt_method_at(i)->options;
  return n;
}

/* mode: 1 train, 0 eval, 2 gradcheck */
static int build_groups(dt_optgroup *g, int train) {
  int n = 0;
  g[n++] = dt_backbone_group;
  g[n++] = dt_method_group;
  g[n++] = (dt_optgroup){"engine", "Engine", engine_opts};
  g[n++] = (dt_optgroup){"data", "Data", data_opts};
  g[n++] = (dt_optgroup){"passes", "Passes", pass_opts};
  if (train == 1) g[n++] = dt_optim_group;
  g[n++] = train == 1   ? (dt_optgroup){"train", "Training", train_opts}
           : train == 2 ? (dt_optgroup){"check", "Gradient check", check_opts}
                        : (dt_optgroup){"eval", "Evaluation", eval_opts};
  if (train == 1) g[n++] = dt_ckpt_train_group;
  if (train == 1) g[n++] = dt_fault_group;
  if (train == 0) g[n++] = dt_ckpt_eval_group;
  g[n++] = dt_comm_group;
  for (int i = 0; i < dt_method_count() && n < MAX_GROUPS; i++)
    if (dt_method_at(i)->options) g[n++] = *dt_method_at(i)->options;
  return n;
}

/* --- shared setup -------------------------------------------------------- */

typedef struct {
  int rank, nranks;
  dt_dist dist;
  dt_options opt;
  dt_model model;
  dt_params params;
  dt_method **methods;
  int n_methods;
  dt_dataset data;
  int B_global, B_local;
  int32_t *bids, *blabels; /* [B_local, T] */
  int micro;               /* rows per pass (<= B_local) */
  int trim;                /* cut each pass after its last scored token */
  int32_t *pids, *plabels; /* [micro, T] one pass, packed */
  int *need;               /* [B_local] tokens each row needs (0: nothing scored) */
  int *order;              /* [B_local] rows in pass order */
  int64_t pass_tokens;     /* tokens the passes computed, so far (rows x trimmed length) */
  int64_t pass_len_sum, n_passes; /* for the mean pass length */
  double t_fwd, t_bwd;     /* seconds in the training passes' forward and backward, so far */
  dt_row_order rows;       /* shuffle permutation */
  float *gbuf;             /* gradient buckets */
  size_t gbuf_n;
  dt_config cfg;           /* the model's configuration, as checked before the build */
  dt_backbone_id bb;       /* its identity, when the checkpoint pre-check computed it */
  int have_bb;
} run_ctx;

static void ctx_free(run_ctx *c) {
  if (c->dist.world) dt_dist_free(&c->dist);
  dt_methods_destroy(c->methods, c->n_methods);
  dt_params_free(&c->params);
  dt_model_free(&c->model);
  dt_dataset_free(&c->data);
  free(c->bids);
  free(c->blabels);
  free(c->pids);
  free(c->plabels);
  free(c->need);
  free(c->order);
  dt_row_order_free(&c->rows);
  free(c->gbuf);
}

static int parse(run_ctx *c, const char *cmd, int train, int argc, char **argv,
                 int *help_only) {
  dt_optgroup g[MAX_GROUPS];
  int ng = build_groups(g, train);
  DT_CALL(dt_options_parse(&c->opt, cmd, g, ng, argc, argv));
  *help_only = c->opt.help;
  if (c->opt.help) {
    if (c->rank == 0)
      dt_options_print_help(stdout, cmd,
                            train == 1 ? "Train delta parameters on a frozen backbone."
                            : train == 2
                                ? "Check every trainable tensor's gradient against a central "
                                  "finite difference of the loss along that gradient."
                                : "Evaluate loss and accuracy of a backbone (+ deltas).",
                            g, ng);
    return DT_OK;
  }
  DT_CHECK(dt_opt_is_set(&c->opt, "model"), DT_EUSAGE,
           "--model is required (a HF folder or synthetic:...; see deltatune %s --help)", cmd);
  DT_CHECK(dt_opt_is_set(&c->opt, "data"), DT_EUSAGE,
           "--data is required (see deltatune %s --help)", cmd);
  DT_CHECK(!(dt_opt_is_set(&c->opt, "shuffle") && dt_opt_is_set(&c->opt, "sample-rows")),
           DT_EUSAGE, "--shuffle and --sample-rows exclude each other");
  if (train == 1) {
    /* combinations, before anything is loaded */
    static const char *const need_out[] = {"save-every", "save-optimizer", "keep", "resume"};
    for (size_t k = 0; k < sizeof need_out / sizeof *need_out; k++)
      DT_CHECK(dt_opt_is_set(&c->opt, "out") || !dt_opt_given(&c->opt, need_out[k]), DT_EUSAGE,
               "--%s needs --out (the folder of the checkpoints)", need_out[k]);
    DT_CALL(dt_fault_options_check(&c->opt));
    DT_CHECK(!(dt_opt_bool(&c->opt, "comm-lockstep") && dt_opt_is_set(&c->opt, "out")), DT_EUSAGE,
             "--comm-lockstep moves no data between the ranks, so the deltas it trains are wrong: "
             "it takes no --out (it measures the step time; leave --out '%s' off)",
             dt_opt_str(&c->opt, "out"));
  }
  DT_CALL(dt_methods_check_options(&c->opt, dt_opt_str(&c->opt, "method")));
  return DT_OK;
}

/* Every input is checked before the backbone is built (reading or
 * generating its weights is the expensive part): the model's configuration
 * and safetensors headers, the data against its vocabulary (kept in
 * c->data), the headers of the --init-from files, the module targets of the
 * methods and the split of the batch. Nothing collective: the caller agrees
 * on the result (dt_agree), so that an input only some ranks cannot read
 * stops every rank with one message. */
static int check_inputs(run_ctx *c, int train, const char *data) {
  const dt_options *o = &c->opt;
  const char *spec = dt_opt_str(o, "model");
  dt_config cfg;
  memset(&cfg, 0, sizeof cfg);
  if (strncmp(spec, "synthetic:", 10) == 0) {
    DT_CALL(dt_synthetic_config_parse(&cfg, spec));
  } else {
    DT_CALL(dt_hf_config_load(&cfg, spec));
    dt_st_set set; /* every header of the weights (the tensors: dt_model_load) */
    DT_CALL(dt_st_set_open(&set, spec));
    dt_st_set_close(&set);
  }
  DT_CALL(dt_dataset_load(&c->data, data, cfg.vocab));
  DT_CALL(dt_init_from_check(o));
  int wd;
  DT_CALL(dt_backbone_options_check(o, &wd));
  (void)wd;
  DT_CALL(dt_methods_check_config(o, dt_opt_str(o, "method"), &cfg));
  c->B_global = dt_opt_int(o, "batch-size");
  if (!train) {
    int64_t rows = dt_opt_int(o, "rows");
    if (rows <= 0 || rows > c->data.n_rows) rows = c->data.n_rows;
    if (c->B_global > rows) c->B_global = (int)rows;
  }
  DT_CHECK(c->B_global % c->dist.dp_size == 0, DT_EUSAGE,
           "--batch-size %d is not divisible by the %d data-parallel replicas (%d ranks / "
           "--tp %d; each replica takes an equal slice)",
           c->B_global, c->dist.dp_size, c->nranks, c->dist.tp_size);
  c->cfg = cfg;
  return DT_OK;
}

static int setup(run_ctx *c, int train) {
  const dt_options *o = &c->opt;
  const uint64_t seed = (uint64_t)dt_opt_int(o, "seed");
  int wd;
  DT_CALL(dt_backbone_options_check(o, &wd));
  DT_CALL(dt_dist_init(&c->dist, dt_opt_int(o, "tp")));
  dt_comm_options_apply(o, &c->dist, NULL);
  char data[4096]; /* --data, or the token cache of FILE.jsonl (collective) */
  DT_CALL(dt_data_prepare(o, dt_opt_str(o, "model"), MPI_COMM_WORLD, data, sizeof data));
  DT_CALL(dt_agree(check_inputs(c, train, data), MPI_COMM_WORLD));
  /* --out: created and locked against another run before anything is read
   * from it or written into it */
  if (train && dt_opt_exists(o, "out") && dt_opt_is_set(o, "out"))
    DT_CALL(dt_outputs_lock_train(dt_opt_str(o, "out"), MPI_COMM_WORLD));
  /* the checkpoint of --resume / eval --checkpoint, whole (collective,
   * agreed): a truncated, corrupted or mismatched file stops here */
  DT_CALL(dt_ckpt_precheck(o, &c->cfg, train == 1, &c->bb, &c->have_bb, MPI_COMM_WORLD));
  /* then build; a failure of some ranks only is agreed on before the
   * collectives of the plan */
  DT_CALL(dt_split_heads(dt_opt_str(o, "tp-heads"), dt_opt_str(o, "method"),
                         !strcmp(dt_opt_str(o, "tp-gemm"), "pxgemm"), &c->dist.split_heads));
  int rc = dt_model_load(&c->model, dt_opt_str(o, "model"), wd, seed, &c->dist,
                         dt_share_weights(dt_opt_str(o, "share-weights"), dt_opt_str(o, "method")));
  const char *ml = dt_opt_str(o, "method");
  if (rc == DT_OK)
    rc = dt_methods_create(ml, o, &c->model, &c->params, seed, &c->methods, &c->n_methods);
  if (rc == DT_OK && train && c->params.numel <= 0)
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--method %s trains no parameter on this model (%s)", ml,
                      c->model.bb->cfg.source);
  if (rc == DT_OK && dt_opt_is_set(o, "init-from"))
    rc = dt_params_load(&c->params, dt_opt_str(o, "init-from"));
  if (rc == DT_OK) rc = dt_model_set_methods(&c->model, c->methods, c->n_methods);
  DT_CALL(dt_agree(rc, MPI_COMM_WORLD));
  c->B_local = c->B_global / c->dist.dp_size;
  c->model.tp_gemm = strcmp(dt_opt_str(o, "tp-gemm"), "pxgemm") == 0;
  c->model.matmul_bf16 = strcmp(dt_opt_str(o, "matmul-dtype"), "bf16") == 0;
  if (c->model.matmul_bf16) { /* a CPU oneDNN has no bf16 matmul for stops every rank here */
    const char *impl;
    DT_CALL(dt_agree(dt_gemm_bf16_probe(&impl), MPI_COMM_WORLD));
  }
  /* the saved residual stream once per tensor group on a node
   * (--shared-stream no: once per rank, for A/B comparisons) */
  dt_comm_options_apply(o, NULL, &c->model);
  c->micro = dt_opt_int(o, "micro-batch");
  if (c->micro <= 0 || c->micro > c->B_local) c->micro = c->B_local;
  c->trim = dt_opt_bool(o, "trim-padding");
  DT_CALL(dt_model_plan(&c->model, c->micro, c->data.seq_len, dt_opt_bool(o, "recompute")));
  const size_t n = (size_t)c->B_local * c->data.seq_len;
  const size_t np = (size_t)c->micro * c->data.seq_len;
  DT_CALL(dt_malloc(&c->bids, n * sizeof(int32_t), "batch"));
  DT_CALL(dt_malloc(&c->blabels, n * sizeof(int32_t), "batch"));
  DT_CALL(dt_malloc(&c->pids, np * sizeof(int32_t), "pass"));
  DT_CALL(dt_malloc(&c->plabels, np * sizeof(int32_t), "pass"));
  DT_CALL(dt_malloc(&c->need, (size_t)c->B_local * sizeof(int), "pass lengths"));
  DT_CALL(dt_malloc(&c->order, (size_t)c->B_local * sizeof(int), "pass order"));
  return DT_OK;
}

/* Global row index i of step s: in order, shuffled per epoch, or sampled. */
/* Global row index i of step s (src/batch.c). */
static int64_t row_at(run_ctx *c, int64_t step, int64_t i) {
  return dt_batch_row(&c->opt, &c->rows, c->data.n_rows, c->B_global, step, i);
}

static void fill_batch(run_ctx *c, int64_t step) {
  const int T = c->data.seq_len;
  for (int i = 0; i < c->B_local; i++) {
    int64_t r = row_at(c, step, (int64_t)c->dist.dp_rank * c->B_local + i);
    memcpy(c->bids + (size_t)i * T, c->data.input_ids + r * T, sizeof(int32_t) * T);
    memcpy(c->blabels + (size_t)i * T, c->data.labels + r * T, sizeof(int32_t) * T);
  }
}

/* Scored tokens of the local batch (labels[t] != -100 for t >= 1). */
static int64_t count_scored(const run_ctx *c) {
  int64_t n = 0;
  const int T = c->data.seq_len;
  for (int i = 0; i < c->B_local; i++)
    for (int t = 1; t < T; t++) n += c->blabels[(size_t)i * T + t] != -100;
  return n;
}

static const int *cmp_need; /* qsort context (single-threaded) */
static int by_need_desc(const void *a, const void *b) {
  const int i = *(const int *)a, j = *(const int *)b;
  if (cmp_need[i] != cmp_need[j]) return cmp_need[i] > cmp_need[j] ? -1 : 1;
  return (i > j) - (i < j);
}

static void add_stats(dt_loss_stats *t, const dt_loss_stats *s) {
  t->loss_sum += s->loss_sum;
  t->n_scored += s->n_scored;
  t->n_correct_tokens += s->n_correct_tokens;
  t->n_rows_exact += s->n_rows_exact;
  t->n_rows_scored += s->n_rows_scored;
}

/* The local batch (c->bids, c->blabels [B_local, T]) through the model in
 * passes of at most c->micro rows, each cut after its rows' last scored
 * token (--trim-padding; rows with nothing scored are left out); with
 * want_grad, each pass also runs backward and the gradients of all passes
 * add up (scaled by 1/norm, the scored tokens of the global batch). Rows are
 * grouped longest first, so a pass's rows have similar lengths. logits, when
 * given, receives the whole batch [B_local, T, V]: then the passes are
 * untrimmed and in row order.
 * Statistics (this rank's) are summed over the passes. */
static int run_passes(run_ctx *c, int want_grad, double norm, dt_loss_stats *out,
                      float *logits) {
  const int T = c->data.seq_len, B = c->B_local;
  const int trim = c->trim && !logits;
  int n = 0;
  for (int i = 0; i < B; i++) {
    int need = trim ? 0 : T;
    for (int t = T - 1; t >= 1 && trim && !need; t--)
      if (c->blabels[(size_t)i * T + t] != -100) need = t + 1;
    c->need[i] = need;
    if (need > 0) c->order[n++] = i;
  }
  if (trim && c->micro < B) {
    cmp_need = c->need;
    qsort(c->order, (size_t)n, sizeof(int), by_need_desc);
  }
  dt_model *m = &c->model;
  memset(out, 0, sizeof *out);
  DT_CALL(dt_model_step_begin(m, want_grad));
  int rc = DT_OK;
  for (int p = 0; rc == DT_OK && p < n; p += c->micro) {
    const int nb = n - p < c->micro ? n - p : c->micro;
    int Te = 2;
    for (int k = 0; k < nb; k++) Te = c->need[c->order[p + k]] > Te ? c->need[c->order[p + k]] : Te;
    for (int k = 0; k < nb; k++) {
      const size_t src = (size_t)c->order[p + k] * T, dst = (size_t)k * Te;
      memcpy(c->pids + dst, c->bids + src, sizeof(int32_t) * Te);
      memcpy(c->plabels + dst, c->blabels + src, sizeof(int32_t) * Te);
    }
    c->pass_tokens += (int64_t)nb * Te;
    c->pass_len_sum += Te;
    c->n_passes++;
    dt_loss_stats st;
    rc = dt_model_set_shape(m, nb, Te);
    float *lg = logits ? logits + (size_t)p * m->T * m->bb->cfg.vocab : NULL; /* rows in order */
    const double t0 = dt_now();
    if (rc == DT_OK) rc = dt_model_forward(m, c->pids, c->plabels, want_grad, norm, &st, lg);
    const double t1 = dt_now();
    if (rc == DT_OK && want_grad) rc = dt_model_backward(m);
    if (want_grad) c->t_fwd += t1 - t0, c->t_bwd += dt_now() - t1;
    if (rc == DT_OK) add_stats(out, &st);
  }
  const int rc2 = dt_model_step_end(m, want_grad && rc == DT_OK);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return rc2 ? dt_error_trace(rc2, __FILE__, __LINE__, __func__) : DT_OK;
}

/* Logits [B_local, T, V] are complete on every rank of a tensor group:
 * gather the replicas' rows to rank 0, which writes [B, T, V]. */
static int write_logits(run_ctx *c, const char *path, const float *logits) {
  const size_t n = (size_t)c->B_local * c->model.T * c->model.bb->cfg.vocab;
  float *all = NULL;
  int rc = DT_OK;
  if (c->dist.dp_rank == 0) rc = dt_malloc(&all, n * c->dist.dp_size * sizeof(float), "logits");
  DT_CHECK(n * c->dist.dp_size < (1u << 31), DT_EUSAGE, "--dump-logits: too many logits to gather");
  const int g = DT_MPI_RC(MPI_Gather(logits, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, 0,
                                    c->dist.dp), "MPI_Gather of the logits (--dump-logits)");
  if (g) {
    free(all);
    return dt_error_trace(g, __FILE__, __LINE__, __func__);
  }
  if (rc == DT_OK && c->rank == 0) {
    dt_st_out t = {"logits", DT_DTYPE_F32, 3,
                   {c->B_global, c->model.T, c->model.bb->cfg.vocab}, all};
    rc = dt_st_write(path, &t, 1, NULL, NULL, 0);
  }
  free(all);
  DT_MPI(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast of the --dump-logits result");
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* The effective configuration: every option of the command and of the
 * selected methods, with its value (defaults included). */
static void print_config(const run_ctx *c) {
  const dt_options *o = &c->opt;
  const char *ml = dt_opt_str(o, "method");
  printf("configuration:");
  int col = 14;
  for (int i = 0; i < o->n; i++) {
    const dt_optval *v = &o->v[i];
    if (dt_method_lookup(v->group) && !dt_list_has(ml, v->group)) continue;
    char item[DT_OPTVAL_MAX + 80];
    int n = snprintf(item, sizeof item, " --%s=%s", v->def->name, v->is_set ? v->value : "(unset)");
    if (col + n > 100) {
      printf("\n  ");
      col = 2;
    }
    fputs(item, stdout);
    col += n;
  }
  printf("\n");
}

static void print_header(run_ctx *c) {
  if (c->rank != 0) return;
  const dt_config *cf = &c->model.bb->cfg;
  int64_t frozen = dt_model_param_count(&c->model);
  printf("deltatune %s: %s, %d ranks (%d data-parallel x %d tensor-parallel)\n", DT_VERSION,
         c->opt.command, c->nranks, c->dist.dp_size, c->dist.tp_size);
  printf("backbone: %s (%s, %d layers, d=%d, %d heads / %d kv, ffn %d, vocab %d), "
         "%lld parameters, weights %s\n",
         cf->source, dt_cfg_arch(cf)->name, cf->n_layer,
         cf->d_model, cf->n_head, cf->n_kv_head, cf->d_ffn, cf->vocab,
         (long long)frozen, c->model.bb->weights_bf16 ? (c->model.matmul_bf16 ? "bf16 (bf16 products)" : "bf16") : c->model.bb->wquant ? dt_qtype_name(c->model.bb->wquant) : "fp32");
  const dt_shard *sh = &c->model.bb->sh;
  if (sh->kv_share > 1) /* --tp-heads rows in effect (mpi/shard.h) */
    printf("heads: %d key/value groups over --tp %d: %d whole a rank, %d shared by %d ranks each "
           "by query rows\n",
           cf->n_kv_head, sh->tp_size, sh->n_kv_l - 1, cf->n_kv_head % sh->tp_size, sh->kv_share);
  printf("data: %s, %lld rows x %d tokens; batch %d (%d per rank)\n", c->data.path,
         (long long)c->data.n_rows, c->data.seq_len, c->B_global, c->B_local);
  for (int i = 0; i < c->n_methods; i++) {
    char d[256] = "";
    if (c->methods[i]->ops->describe) c->methods[i]->ops->describe(c->methods[i], d, sizeof d);
    int64_t n = 0;
    for (int k = 0; k < c->params.n; k++)
      if (strcmp(c->params.p[k].method, c->methods[i]->ops->name) == 0) n += c->params.p[k].numel;
    printf("method %s: %lld trainable parameters (%.2f MB fp32, %.4f%% of the backbone); %s\n",
           c->methods[i]->ops->name, (long long)n, n * 4.0 / 1e6,
           100.0 * (double)n / (double)frozen, d);
  }
  print_config(c);
  if (dt_opt_bool(&c->opt, "verbose")) {
    printf("BLAS: OpenBLAS core %s, sgemm 1024^3 %.1f GFLOP/s\n", dt_blas_core(),
           dt_blas_sgemm_gflops(1024));
    const char *impl = NULL;
    if (c->model.matmul_bf16 && dt_gemm_bf16_probe(&impl) == DT_OK)
      printf("bf16 products: %s, %s\n", dt_gemm_bf16_library(), impl);
  }
  if (c->dist.tp_nodes > 1)
    printf("warning: a tensor group of --tp %d spans %d nodes: its sums (two per block and pass, "
           "forward and backward) cross the network through MPI_Allreduce instead of the node's "
           "shared memory, on every step (the summary gives their count, volume and time); place "
           "whole groups on a node (ranks per node a multiple of --tp, block placement: srun -m "
           "block, Slurm's default)\n", c->dist.tp_size, c->dist.tp_nodes);
  if (dt_blas_misdetected())
    printf("warning: OpenBLAS runs the %s kernel on an AVX-512 CPU; export "
           "OPENBLAS_CORETYPE=SkylakeX for 4-6x faster GEMMs\n", dt_blas_core());
  fflush(stdout);
}

/* Forward without gradient on the batch of step `step`; returns mean loss. */
static int probe_loss(run_ctx *c, int64_t step, double *loss) {
  fill_batch(c, step);
  dt_loss_stats st;
  DT_CALL(run_passes(c, 0, 1.0, &st, NULL));
  DT_CALL(dt_loss_stats_sum(&st, c->dist.dp));
  *loss = st.n_scored ? st.loss_sum / st.n_scored : 0.0;
  return DT_OK;
}

/* Complete the gradients in two flat buckets: partial sums over every rank,
 * complete and sharded gradients over the data-parallel replicas. Every
 * rank ends with identical replicated gradients. */
static int allreduce_grads(run_ctx *c) {
  return dt_grad_sync(&c->dist, &c->params, &c->gbuf, &c->gbuf_n);
}

/* Replicated deltas must stay bitwise identical on every rank (and shards
 * on every replica of their tensor group): compare a hash of the values
 * across the job. A difference is a bug, reported instead of saved. */
static int check_replicas(run_ctx *c) {
  if (c->nranks == 1 || c->dist.lockstep) return DT_OK; /* lockstep: knowingly not the same */
  XXH64_state_t *h = XXH64_createState(), *hs = XXH64_createState();
  DT_CHECK(h && hs, DT_ENOMEM, "hash state");
  XXH64_reset(h, 0);
  XXH64_reset(hs, 0);
  for (int i = 0; i < c->params.n; i++) {
    const dt_param *p = &c->params.p[i];
    XXH64_update(p->shard ? hs : h, p->data, sizeof(float) * (size_t)p->numel_l);
  }
  unsigned long long v[2] = {XXH64_digest(h), XXH64_digest(hs)}, lo[2], hi[2];
  XXH64_freeState(h);
  XXH64_freeState(hs);
  DT_MPI(MPI_Allreduce(v, lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD),
         "MPI_Allreduce of the deltas' hashes");
  DT_MPI(MPI_Allreduce(v, hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD),
         "MPI_Allreduce of the deltas' hashes");
  DT_MPI(MPI_Allreduce(v + 1, lo + 1, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, c->dist.dp),
         "MPI_Allreduce of the sharded deltas' hashes");
  DT_MPI(MPI_Allreduce(v + 1, hi + 1, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, c->dist.dp),
         "MPI_Allreduce of the sharded deltas' hashes");
  DT_CHECK(lo[0] == hi[0], DT_EINTERNAL,
           "the replicated deltas differ between ranks after training (hash %016llx vs %016llx)",
           lo[0], hi[0]);
  DT_CHECK(lo[1] == hi[1], DT_EINTERNAL,
           "the sharded trainable tensors differ between data-parallel replicas after training");
  if (c->rank == 0 && dt_opt_bool(&c->opt, "verbose"))
    printf("replicas: deltas bitwise identical on all %d ranks (xxh64 %016llx)\n", c->nranks,
           lo[0]);
  return DT_OK;
}

/* The proportional set size of each node's ranks together (ranks that can
 * share memory: MPI_COMM_TYPE_SHARED), nodes in the order of their first
 * rank, the first DT_NODES_SHOWN on rank 0; *n_nodes: how many nodes.
 * Collective. */
enum { DT_NODES_SHOWN = 16 };
static int node_memory(double pss, double *node_pss, int *n_nodes) {
  MPI_Comm node, leaders;
  int nrank = 0, rank = 0;
  DT_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  DT_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node),
         "MPI_Comm_split_type by node");
  DT_MPI(MPI_Comm_rank(node, &nrank), "MPI_Comm_rank of the node");
  double sum = pss;
  DT_MPI(MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, node), "MPI_Allreduce of the node's memory");
  MPI_Comm_free(&node);
  int lead = nrank == 0;
  DT_MPI(MPI_Allreduce(&lead, n_nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce of the node count");
  DT_MPI(MPI_Comm_split(MPI_COMM_WORLD, lead ? 0 : MPI_UNDEFINED, rank, &leaders),
         "MPI_Comm_split of the nodes' first ranks");
  if (leaders != MPI_COMM_NULL) {
    double *all = rank == 0 ? malloc(sizeof(double) * (size_t)*n_nodes) : NULL;
    int rc = rank == 0 && !all ? MPI_ERR_NO_MEM
                               : MPI_Gather(&sum, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, 0, leaders);
    for (int k = 0; all && k < *n_nodes && k < DT_NODES_SHOWN; k++) node_pss[k] = all[k];
    free(all);
    MPI_Comm_free(&leaders);
    DT_MPI(rc, "MPI_Gather of the nodes' memory");
  }
  return DT_OK;
}

/* Stopped by a signal before step `step`: checkpoint the steps done (with
 * --out), say so, and end with DT_EINTERRUPT on every rank (agreed). */
static int stop_interrupted(run_ctx *c, dt_train_ckpt *ck, const dt_train_state *ts, int step,
                            int steps, int sig, double loss0, double last_loss) {
  const int have_out = ck->dir != NULL;
  if (have_out) DT_CALL(dt_train_ckpt_save(ck, ts, step, 1, loss0, last_loss));
  char what[4400];
  if (have_out)
    snprintf(what, sizeof what, "checkpoint %s holds step %lld; rerun with --resume to "
             "continue", ck->saved_path, (long long)ck->saved_step);
  else
    snprintf(what, sizeof what, "no checkpoint (no --out): the steps done are lost");
  if (c->rank == 0) {
    printf("interrupted: %s at step %d of %d: stopping at this step boundary; %s (exit code "
           "%d)\n", dt_signal_name(sig), step, steps, what, DT_EINTERRUPT);
    fflush(stdout);
  }
  dt_error_set(DT_EINTERRUPT, __FILE__, __LINE__, __func__,
               "interrupted by %s after %d of %d steps; %s", dt_signal_name(sig), step, steps,
               what);
  dt_error_mark_agreed();
  return DT_EINTERRUPT;
}

static int do_train(run_ctx *c) {
  const dt_options *o = &c->opt;
  dt_trainer tr;
  const int rci = dt_trainer_init(&tr, o, &c->params, &c->dist);
  if (rci) {
    dt_trainer_free(&tr);
    return dt_error_trace(rci, __FILE__, __LINE__, __func__);
  }
  const int steps = tr.steps;
  /* checkpoints in --out; --resume continues from the newest one */
  const dt_train_state ts = {o, &c->model.bb->cfg, &c->params, &tr.optim, c->methods, c->n_methods,
                             steps, c->B_global, &c->data, c->dist.tp_size, c->dist.tp,
                             c->have_bb ? &c->bb : NULL};
  dt_train_ckpt ck;
  int64_t start = 0;
  int rc = dt_train_ckpt_begin(&ck, &ts, &c->params, &tr.optim, &start, &tr.loss0,
                               c->dist.world);
  if (rc == DT_OK) rc = dt_trainer_open_metrics(&tr, o, start);
  if (rc) {
    dt_trainer_free(&tr);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  const char *out_dir = dt_opt_is_set(o, "out") ? dt_opt_str(o, "out") : NULL;
  if (out_dir && c->rank == 0) mkdir(out_dir, 0755);

  float *logits = NULL;
  if (dt_opt_is_set(o, "dump-logits"))
    rc = dt_malloc(&logits, sizeof(float) * (size_t)c->B_local * c->model.T * c->model.bb->cfg.vocab,
                   "logits");
  const int T = c->data.seq_len;
  const double tok_per_step = (double)c->B_global * T;
  int64_t total_scored = 0;
  const double t_start = dt_now();
  const int64_t pass_tok0 = c->pass_tokens, pass_len0 = c->pass_len_sum, passes0 = c->n_passes;
  static double step_times[4096];
  const double fwd0 = c->t_fwd, bwd0 = c->t_bwd;
  for (int step = (int)start; rc == DT_OK && step < steps; step++) {
    /* a step boundary: SIGTERM / SIGUSR1 on any rank stops every rank here */
    int sig = 0;
    rc = dt_interrupt_agree(c->dist.world, &sig);
    if (rc) break;
    if (sig) {
      rc = stop_interrupted(c, &ck, &ts, step, steps, sig, tr.loss0, tr.last);
      break;
    }
    const double t0 = dt_now();
    fill_batch(c, step);
    int64_t nloc = count_scored(c), nglob = 0;
    rc = DT_MPI_RC(MPI_Allreduce(&nloc, &nglob, 1, MPI_INT64_T, MPI_SUM, c->dist.dp),
                   "MPI_Allreduce of the step's scored tokens");
    if (rc) break;
    dt_params_zero_grad(&c->params);
    dt_model_zero_backbone_grads(&c->model);
    dt_loss_stats st;
    rc = run_passes(c, 1, nglob > 0 ? (double)nglob : 1.0, &st, step == 0 ? logits : NULL);
    if (rc == DT_OK && step == 0 && logits)
      rc = write_logits(c, dt_opt_str(o, "dump-logits"), logits);
    dt_step_out so;
    if (rc == DT_OK) rc = dt_trainer_step(&tr, step, &st, tok_per_step, t0, &ck, &so);
    if (rc) break;
    const double dt = dt_now() - t0, el = dt_now() - t_start;
    if (step - start < 4096) step_times[step - start] = dt;
    if (!so.skipped) {
      total_scored += st.n_scored;
      if (c->rank == 0 && ((step + 1) % dt_opt_int(o, "log-every") == 0 || step == 0 ||
                           step + 1 == steps)) {
        double eta = el / (step + 1) * (steps - step - 1);
        printf("step %6d/%d  loss %.4f  lr %.3g  %.0f tok/s  elapsed %.1fs  eta %.1fs\n",
               step + 1, steps, so.loss, so.lr, so.tokens_per_s, el, eta);
        fflush(stdout);
      }
    }
    rc = dt_trainer_checkpoint(&tr, &ck, &ts, step + 1);
  }
  if (rc == DT_OK)
    rc = dt_train_ckpt_save(&ck, &ts, steps > start ? steps : start, 1, tr.loss0, tr.last);
  free(logits);
  const double loss0 = tr.loss0, last_loss = tr.last, sync_s = tr.sync_s, opt_s = tr.opt_s;
  const int nan_skip = tr.nan_skip;
  const long long skipped = (long long)tr.skipped;
  dt_trainer_free(&tr);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);

  DT_CALL(check_replicas(c));
  /* median step time (step 0 excluded when there are others: warm-up) */
  const int ran = steps > start ? steps - (int)start : 0;
  const double median_dt = dt_median_after_first(step_times, ran < 4096 ? ran : 4096);
  const double comm_s = c->dist.comm_s, train_s = dt_now() - t_start;
  double peak_mb = dt_peak_rss_mb(), pss_sum = dt_pss_mb();
  double node_pss[DT_NODES_SHOWN];
  int n_nodes = 0;
  DT_CALL(node_memory(pss_sum, node_pss, &n_nodes));
  DT_MPI(MPI_Allreduce(MPI_IN_PLACE, &peak_mb, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD),
         "MPI_Allreduce of the peak memory");
  DT_MPI(MPI_Allreduce(MPI_IN_PLACE, &pss_sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
         "MPI_Allreduce of the memory");
  /* communication and barrier waiting over the ranks: a rank that waits
   * long at the sums is not the slow one; the spread tells load imbalance
   * (the step is as slow as the slowest rank between two sums) from the
   * cost of moving the data */
  double cw_lo[2] = {comm_s, c->dist.wait_s}, cw_hi[2] = {comm_s, c->dist.wait_s};
  DT_MPI(MPI_Allreduce(MPI_IN_PLACE, cw_lo, 2, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD),
         "MPI_Allreduce of the communication times");
  DT_MPI(MPI_Allreduce(MPI_IN_PLACE, cw_hi, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD),
         "MPI_Allreduce of the communication times");
  if (dt_opt_bool(o, "verbose") && c->dist.size > 1) {
    /* per rank, for finding the slow one: its waiting and its core */
    double mine[2] = {c->dist.wait_s, (double)sched_getcpu()}, *all = NULL;
    int have = c->rank != 0 ||
               dt_malloc(&all, sizeof(double) * 2 * (size_t)c->dist.size, "rank table") == DT_OK;
    /* rank 0 gathers only into a table */
    int e = DT_MPI_RC(MPI_Bcast(&have, 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Bcast of a flag");
    if (e == DT_OK && have)
      e = DT_MPI_RC(MPI_Gather(mine, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD),
                    "MPI_Gather of the ranks' waiting times");
    if (e) {
      free(all);
      return dt_error_trace(e, __FILE__, __LINE__, __func__);
    }
    if (c->rank == 0 && all) {
      printf("summary: waiting at the sums per rank (rank:core seconds):");
      for (int r = 0; r < c->dist.size; r++) printf(" %d:%d %.2f", r, (int)all[2 * r + 1], all[2 * r]);
      printf("\n");
    }
    free(all);
  }
  /* summary: loss on the first batch before (step-0 loss) and after */
  /* tokens the passes computed (trimmed), over the data-parallel replicas */
  double pass_stat[3] = {(double)(c->pass_tokens - pass_tok0), (double)(c->pass_len_sum - pass_len0),
                         (double)(c->n_passes - passes0)};
  DT_MPI(MPI_Allreduce(MPI_IN_PLACE, pass_stat, 3, MPI_DOUBLE, MPI_SUM, c->dist.dp),
         "MPI_Allreduce of the pass statistics");
  double after = NAN;
  if (steps > 0) DT_CALL(probe_loss(c, 0, &after));
  long long ckpt_bytes = -1;
  char ckpt[4096] = "";
  if (out_dir) {
    snprintf(ckpt, sizeof ckpt, "%s/deltas.safetensors", out_dir);
    rc = dt_params_save_dist(&c->params, ckpt, 0, &c->dist);
    if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    struct stat sb;
    if (c->rank == 0 && stat(ckpt, &sb) == 0) ckpt_bytes = (long long)sb.st_size;
  }
  if (c->rank == 0) {
    printf("summary: %d steps in %.1fs%s; loss %.4f -> %.4f (last step %.4f)\n", ran,
           dt_now() - t_start, start > 0 ? " (resumed)" : "", loss0, after, last_loss);
    if (nan_skip)
      printf("summary: %lld of %d steps skipped with a non-finite loss or gradient "
             "(--nan-policy skip)\n", skipped, ran);
    const double scored = ran > 0 ? (double)total_scored / ran : 0.0;
    /* FLOPs of the tokens computed (padding after the last scored token is
     * not computed: --trim-padding); tokens/s counts every row's T tokens */
    const double computed = ran > 0 ? pass_stat[0] / ran : tok_per_step;
    const double mean_len = pass_stat[2] > 0 ? pass_stat[1] / pass_stat[2] : T;
    const double fl = dt_model_step_flops(&c->model, (int)(mean_len + 0.5) + c->model.n_virtual,
                                          computed, scored);
    printf("summary: median step %.3fs: %.0f tokens/s, %.2f GFLOP/s model FLOPs "
           "(%.1f MFLOP per token, %.0f of %.0f tokens scored per step)\n", median_dt,
           tok_per_step / median_dt, fl / median_dt * 1e-9, fl / computed * 1e-6, scored,
           tok_per_step);
    if (computed < tok_per_step)
      printf("summary: %.0f of the %.0f tokens of a step computed (--trim-padding: %.1f passes "
             "of mean length %.1f per step and replica)\n", computed, tok_per_step,
             pass_stat[2] / ran / c->dist.dp_size, mean_len);
    printf("summary: communication %.2fs of %.2fs in the steps (%.1f%%; tensor-group sums "
             "and gradient buckets, rank 0); peak RSS per rank %.0f MB (largest)\n",
             comm_s, train_s, 100.0 * comm_s / (train_s > 0 ? train_s : 1), peak_mb);
    printf("summary: memory of the %d rank(s) together at the end %.0f MB (proportional set size: "
           "a shared page counts once)", c->dist.size, pss_sum);
    if (c->model.bb->slab)
      printf("; frozen matrices %.0f MB per shard, one copy per node for %d replicas "
             "(--share-weights)", (double)c->model.bb->mat_bytes / 1048576.0, c->dist.peers_size);
    printf("\n");
    if (n_nodes > 1) {
      printf("summary: memory per node at the end (proportional set size of its ranks):");
      for (int k = 0; k < n_nodes && k < DT_NODES_SHOWN; k++) printf("%s %.0f MB", k ? "," : "", node_pss[k]);
      printf(n_nodes > DT_NODES_SHOWN ? ", ... (%d nodes)\n" : " (%d nodes)\n", n_nodes);
    }
    if (c->dist.tp_nodes > 1 && ran > 0)
      printf("summary: tensor-group sums across %d nodes: %.0f per step, %.2f MB per step and rank, "
             "%.3fs of communication in all (rank 0; %lld sums of %lld floats in all, the final "
             "loss probe's included)\n", c->dist.tp_nodes, (double)c->dist.n_tp_sum / ran,
             4e-6 * (double)c->dist.tp_sum_floats / ran, comm_s, c->dist.n_tp_sum,
             c->dist.tp_sum_floats);
    if (c->dist.lockstep)
      printf("summary: --comm-lockstep: every sum was a barrier and no data moved between the "
             "ranks, so the losses are not the model's; the step time is the lockstep limit\n");
    if (c->dist.size > 1)
      printf("summary: communication over the ranks %.3f-%.3fs, of which waiting at the %s "
             "for the group's last rank %.3f-%.3fs (rank 0: %.3fs)\n",
             cw_lo[0], cw_hi[0],
             c->dist.lockstep ? "barriers that replace the sums (--comm-lockstep)"
             : c->dist.comm_barrier ? "sums and all-reduces" : "shared-memory sums", cw_lo[1],
             cw_hi[1], c->dist.wait_s);
    {
      const double f = c->t_fwd - fwd0, b = c->t_bwd - bwd0, steps_s = f + b + sync_s + opt_s;
      printf("summary: step time split (rank 0, all steps): forward (with the loss head's gradient) %.2fs, "
             "backward %.2fs, gradient "
             "all-reduce and norm %.2fs, optimizer %.2fs, rest %.2fs (batches, metrics, checkpoints); "
             "the communication above is inside the first three\n",
             f, b, sync_s, opt_s, train_s > steps_s ? train_s - steps_s : 0.0);
    }
    printf("summary: trainable %lld of %lld parameters (%.4f%%)\n",
           (long long)c->params.numel, (long long)dt_model_param_count(&c->model),
           100.0 * (double)c->params.numel / (double)dt_model_param_count(&c->model));
    if (out_dir) printf("summary: deltas %s (%lld bytes)\n", ckpt, ckpt_bytes);
    dt_train_ckpt_summary(&ck);
    fflush(stdout);
  }
  return DT_OK;
}

static int do_eval(run_ctx *c) {
  const dt_options *o = &c->opt;
  int64_t rows = dt_opt_int(o, "rows");
  if (rows <= 0 || rows > c->data.n_rows) rows = c->data.n_rows;
  const int T = c->data.seq_len;
  dt_loss_stats tot = {0};
  float *logits = NULL;
  if (dt_opt_is_set(o, "dump-logits"))
    DT_CALL(dt_malloc(&logits, sizeof(float) * (size_t)c->B_local * c->model.T *
                                   c->model.bb->cfg.vocab, "logits"));
  const double t0 = dt_now();
  int rc = DT_OK;
  for (int64_t start = 0; rc == DT_OK && start < rows; start += c->B_global) {
    int valid = 0; /* rows of this rank's slice inside [0, rows) */
    for (int i = 0; i < c->B_local; i++) {
      int64_t r = start + (int64_t)c->dist.dp_rank * c->B_local + i;
      int ok = r < rows;
      if (!ok) r = 0;
      memcpy(c->bids + (size_t)i * T, c->data.input_ids + r * T, sizeof(int32_t) * T);
      memcpy(c->blabels + (size_t)i * T, c->data.labels + r * T, sizeof(int32_t) * T);
      if (!ok) /* padding row: nothing scored */
        for (int t = 0; t < T; t++) c->blabels[(size_t)i * T + t] = -100;
      valid += ok;
    }
    dt_loss_stats st;
    rc = run_passes(c, 0, 1.0, &st, start == 0 ? logits : NULL);
    if (rc == DT_OK && start == 0 && logits)
      rc = write_logits(c, dt_opt_str(o, "dump-logits"), logits);
    if (rc == DT_OK) add_stats(&tot, &st);
    (void)valid;
  }
  free(logits);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  DT_CALL(dt_loss_stats_sum(&tot, c->dist.dp));
  if (c->rank == 0) {
    printf("eval: %lld rows, %lld scored tokens in %.2fs\n", (long long)rows,
           (long long)tot.n_scored, dt_now() - t0);
    printf("loss %.9f\n", tot.n_scored ? tot.loss_sum / tot.n_scored : 0.0);
    printf("perplexity %.6g\n", tot.n_scored ? exp(tot.loss_sum / tot.n_scored) : 1.0);
    printf("token_accuracy %.6f\n",
           tot.n_scored ? (double)tot.n_correct_tokens / tot.n_scored : 0.0);
    printf("exact_match %.6f (%lld of %lld rows)\n",
           tot.n_rows_scored ? (double)tot.n_rows_exact / tot.n_rows_scored : 0.0,
           (long long)tot.n_rows_exact, (long long)tot.n_rows_scored);
    fflush(stdout);
  }
  /* JSON lines of prompt/completion rows: also greedy generation (src/genmatch.h) */
  const char *data = dt_opt_str(o, "data");
  const size_t dl = strlen(data);
  if (dl > 6 && !strcmp(data + dl - 6, ".jsonl") && !dt_opt_bool(o, "pack")) {
    dt_tokenizer *tok = NULL;
    DT_CALL(dt_agree(dt_tokenizer_load(&tok, dt_opt_is_set(o, "tokenizer") ? dt_opt_str(o, "tokenizer")
                                                                          : dt_opt_str(o, "model")),
                     MPI_COMM_WORLD));
    int64_t gm = 0, gs = 0;
    const double t1 = dt_now();
    rc = dt_agree(dt_generated_match(&c->model, &c->dist, &c->data, rows, tok, &gm, &gs), MPI_COMM_WORLD);
    dt_tokenizer_free(&tok);
    DT_CALL(rc);
    if (c->rank == 0) {
      printf("generated_exact_match %.6f (%lld of %lld rows, greedy, in %.2fs)\n",
             gs ? (double)gm / gs : 0.0, (long long)gm, (long long)gs, dt_now() - t1);
      fflush(stdout);
    }
  }
  return DT_OK;
}

/* For each trainable tensor i with gradient g_i: the central difference of
 * the loss along u = g_i/|g_i| must equal |g_i| (the directional
 * derivative). Collective; every rank computes the same numbers. */
static int do_gradcheck(run_ctx *c) {
  const dt_options *o = &c->opt;
  const double eps = dt_opt_float(o, "eps"), tol = dt_opt_float(o, "tol");
  const double min_norm = dt_opt_float(o, "min-norm");
  fill_batch(c, 0);
  int64_t nloc = count_scored(c), nglob = 0;
  DT_MPI(MPI_Allreduce(&nloc, &nglob, 1, MPI_INT64_T, MPI_SUM, c->dist.dp),
         "MPI_Allreduce of the batch's scored tokens");
  DT_CHECK(nglob > 0, DT_EINPUT, "%s: the first batch has no scored token", c->data.path);
  dt_params_zero_grad(&c->params);
  dt_model_zero_backbone_grads(&c->model);
  dt_loss_stats st;
  DT_CALL(run_passes(c, 1, (double)nglob, &st, NULL));
  DT_CALL(allreduce_grads(c));
  float *g;
  DT_CALL(dt_malloc(&g, sizeof(float) * (size_t)(c->params.numel_l + 1), "gradient copy"));
  int64_t off = 0;
  for (int i = 0; i < c->params.n; i++) {
    memcpy(g + off, c->params.p[i].grad, sizeof(float) * c->params.p[i].numel_l);
    off += c->params.p[i].numel_l;
  }
  int bad = 0, checked = 0, rc = DT_OK;
  off = 0;
  for (int i = 0; i < c->params.n && rc == DT_OK; i++) {
    dt_param *p = &c->params.p[i];
    const float *gi = g + off;
    off += p->numel_l;
    double nrm = 0.0;
    for (int64_t j = 0; j < p->numel_l; j++) nrm += (double)gi[j] * gi[j];
    if (p->shard && c->dist.tp_size > 1) /* a shard: the norm is over the tensor group */
      rc = DT_MPI_RC(MPI_Allreduce(MPI_IN_PLACE, &nrm, 1, MPI_DOUBLE, MPI_SUM, c->dist.tp),
                     "MPI_Allreduce of a gradient norm over the tensor group");
    if (rc) break;
    nrm = sqrt(nrm);
    if (nrm < min_norm) {
      if (c->rank == 0) printf("  %-70s |g| %.3e  (too small to check)\n", p->name, nrm);
      continue;
    }
    /* central differences at h and h/2, Richardson-extrapolated (O(h^4)) */
    double L[4];
    const double hs[4] = {eps, -eps, eps / 2, -eps / 2};
    for (int k = 0; k < 4 && rc == DT_OK; k++) {
      for (int64_t j = 0; j < p->numel_l; j++) p->data[j] += (float)(hs[k] * gi[j] / nrm);
      dt_loss_stats s2;
      rc = run_passes(c, 0, 1.0, &s2, NULL);
      if (rc == DT_OK) rc = dt_loss_stats_sum(&s2, c->dist.dp);
      L[k] = s2.loss_sum / (double)nglob;
      for (int64_t j = 0; j < p->numel_l; j++) p->data[j] -= (float)(hs[k] * gi[j] / nrm);
    }
    const double fd1 = (L[0] - L[1]) / (2.0 * eps), fd2 = (L[2] - L[3]) / eps;
    const double fd = (4.0 * fd2 - fd1) / 3.0;
    const double rel = fabs(fd - nrm) / nrm;
    checked++;
    bad += !(rel <= tol);
    if (c->rank == 0)
      printf("  %-70s |g| %.6e  fd %.6e  rel %.2e%s\n", p->name, nrm, fd, rel,
             rel <= tol ? "" : "  MISMATCH");
  }
  free(g);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  if (c->rank == 0) printf("gradcheck: %d tensors checked, %d mismatches\n", checked, bad);
  DT_CHECK(bad == 0, DT_ENUMERIC, "gradcheck: %d of %d tensors differ from finite differences by more than %g",
           bad, checked, tol);
  DT_CHECK(checked > 0, DT_ENUMERIC, "gradcheck: no tensor had a gradient large enough to check");
  return DT_OK;
}

static int run(const char *cmd, int train, int argc, char **argv) {
  run_ctx *c = calloc(1, sizeof *c);
  DT_CHECK(c, DT_ENOMEM, "run context");
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c->nranks);
  int help = 0, ac = argc;
  char **av = argv;
  /* eval --checkpoint: the file's method and options where none are given */
  int rc = train == 0 ? dt_ckpt_eval_argv(argc, argv, &ac, &av, MPI_COMM_WORLD) : DT_OK;
  if (rc == DT_OK) rc = parse(c, cmd, train, ac, av, &help);
  dt_ckpt_eval_argv_free(argc, argv, ac, av);
  if (rc == DT_OK && !help) rc = setup(c, train != 0);
  if (rc == DT_OK && !help && train == 0)
    rc = dt_ckpt_eval_load(&c->opt, &c->model.bb->cfg, &c->params, c->have_bb ? &c->bb : NULL,
                           c->dist.world);
  if (rc == DT_OK && !help) {
    print_header(c);
    rc = train == 1 ? do_train(c) : train == 2 ? do_gradcheck(c) : do_eval(c);
  }
  ctx_free(c);
  free(c);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

int dt_cmd_train(int argc, char **argv) {
  dt_interrupt_install(); /* from the start: a signal during setup stops at step 0's boundary */
  const int rc = run("train", 1, argc, argv);
  dt_interrupt_uninstall();
  return rc;
}
int dt_cmd_eval(int argc, char **argv) { return run("eval", 0, argc, argv); }
int dt_cmd_gradcheck(int argc, char **argv) { return run("gradcheck", 2, argc, argv); }

int dt_cmd_methods(int argc, char **argv) {
  (void)argc;
  (void)argv;
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0)
    for (int i = 0; i < dt_method_count(); i++)
      printf("  %-10s %s\n", dt_method_at(i)->name, dt_method_at(i)->summary);
  return DT_OK;
}
