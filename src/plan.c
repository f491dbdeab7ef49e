/* deltatune plan: memory, time, storage and communication of a training job
 * before it is submitted (see plan.h, docs/plan.md). The model of a rank is
 * built from the engine's own sizing code; this file adds what the drivers
 * allocate around it, counts the communication as forward.c calls it, and
 * turns FLOPs and bytes into time with the machine constants. */
#include "plan.h"

#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "dist.h"
#include "error.h"
#include "gemm_bf16.h"
#include "quant.h"
#include "method.h"
#include "model.h"
#include "optgroups.h"
#include "methods/modules.h"
#include "params.h"


static int64_t aligned(int64_t b) { return dt_alloc_bytes(b); }

/* Bytes in use on the heap (mallinfo2: arena + mmap'ed chunks). */
static int64_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return (int64_t)mi.uordblks + (int64_t)mi.hblkhd;
}

/* Backward scratch the hooks allocate on first use: each method's own
 * count (dt_method_ops.scratch_bytes). */
static int hook_scratch(const dt_model *m, dt_method **ms, int n, const dt_options *o,
                        int64_t N, int64_t *bytes) {
  int64_t b = 0;
  for (int k = 0; k < n; k++) {
    int64_t mb = 0;
    if (ms[k]->ops->scratch_bytes) DT_CALL(ms[k]->ops->scratch_bytes(ms[k], o, m, N, &mb));
    b += mb;
  }
  *bytes = b;
  return DT_OK;
}

/* One described tensor-parallel rank with its methods. Ranks with the same
 * local widths (key/value groups, FFN columns, vocabulary rows) hold the
 * same sizes, so a plan, and every layout a search tries, describes each
 * distinct shard once and keeps it. */
typedef struct {
  int sig[3];
  int r, T;             /* the rank it was described as */
  dt_model m;           /* describe_only */
  dt_method **ms;       /* created on m (their own create()) */
  int n;
  int64_t method_bytes; /* what creating them allocated, or would have */
  int64_t numel, numel_l, partial_l, n_tensors;
  int n_virtual, n_prefix;
  /* the hooks' tensor-group sums per forward (dt_method_ops.tp_sums), by
   * width (floats per row) */
  int n_hook_sums;
  struct {
    int width, count;
  } hook_sum[8];
  double matmul_local;            /* frozen-matmul parameters on this rank */
  char describe[1024];
  unsigned seen;                  /* the last compute() that counted it (plan_ctx.pass) */
  int64_t node_share;             /* that compute()'s share of a node (dt_plan_mem) */
} shard_entry;

typedef struct {
  const dt_plan_in *in; /* model, methods, options, dtype (fixed for a context) */
  shard_entry **e;
  int n, cap;
  unsigned pass;        /* compute() calls on this context */
} plan_ctx;

static void ctx_free(plan_ctx *x) {
  for (int i = 0; i < x->n; i++) {
    dt_methods_destroy(x->e[i]->ms, x->e[i]->n);
    dt_model_free(&x->e[i]->m);
    free(x->e[i]);
  }
  free(x->e);
  memset(x, 0, sizeof *x);
}

/* Describe tp rank r of T and create the methods on it. */
static int describe_rank(const dt_plan_in *in, int r, int T, shard_entry *z) {
  dt_params p;
  memset(&p, 0, sizeof p);
  DT_CALL(dt_model_describe(&z->m, in->model, in->weights, r, T, in->split_heads));
  z->m.matmul_bf16 = in->matmul_bf16;
  const int64_t h0 = heap_in_use();
  int rc = dt_methods_create(in->methods, in->opt, &z->m, &p, in->seed, &z->ms, &z->n);
  const int64_t h1 = heap_in_use();
  if (rc == DT_OK) rc = dt_model_set_methods(&z->m, z->ms, z->n);
  if (rc == DT_OK) {
    const dt_config *c = &z->m.bb->cfg;
    z->method_bytes = (h1 - h0) + z->m.described_bytes;
    z->numel = p.numel;
    z->numel_l = p.numel_l;
    z->n_tensors = p.n;
    for (int i = 0; i < p.n; i++)
      if (p.p[i].sync == DT_SYNC_PARTIAL) z->partial_l += p.p[i].numel_l;
    for (int k = 0; k < z->n; k++) {
      const dt_method *me = z->ms[k];
      if (me->ops->virtual_tokens) z->n_virtual += me->ops->virtual_tokens(me);
      if (me->ops->prefix_tokens) z->n_prefix += me->ops->prefix_tokens(me);
      char d[256] = "";
      if (me->ops->describe) me->ops->describe(me, d, sizeof d);
      const size_t used = strlen(z->describe);
      snprintf(z->describe + used, sizeof z->describe - used, "%s%s", k ? "; " : "", d);
      /* the communication a hook adds (its own count: tp_sums) */
      for (int l = 0; l < c->n_layer && me->ops->tp_sums; l++)
        for (int s = 0; s < DT_N_SITES; s++) {
          int w = 0;
          const int cnt = me->ops->tp_sums(me, l, (dt_site)s, &w);
          if (cnt <= 0 || w <= 0) continue;
          int e = 0;
          while (e < z->n_hook_sums && z->hook_sum[e].width != w) e++;
          if (e == z->n_hook_sums && e < 8) z->hook_sum[z->n_hook_sums++].width = w;
          if (e < 8) z->hook_sum[e].count += cnt;
        }
    }
    for (int s = 0; s < DT_N_SITES; s++)
      z->matmul_local += (double)dt_site_in_l(&z->m, s) * dt_site_out_l(&z->m, s) * c->n_layer;
    z->matmul_local += (double)z->m.bb->sh.vocab_l * c->d_model;
  }
  dt_params_free(&p); /* the methods keep no pointer into the table */
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* The first tensor-parallel rank of T from which every rank holds no
 * key/value group, FFN column or vocabulary row (dt_shard_init's
 * distributions): all ranks from there on are the same shard. */
static int first_empty_rank(const dt_config *c, int T, int split_heads) {
  const int64_t ffn_nb = (c->d_ffn + T - 1) / T, vocab_nb = ((int64_t)c->vocab + T - 1) / T;
  int64_t r = split_heads && dt_shard_can_share(c, T) ? T : c->n_kv_head;
  const int64_t rf = ffn_nb > 0 ? (c->d_ffn + ffn_nb - 1) / ffn_nb : 0;
  const int64_t rv = vocab_nb > 0 ? (c->vocab + vocab_nb - 1) / vocab_nb : 0;
  if (rf > r) r = rf;
  if (rv > r) r = rv;
  return r < T ? (int)r : T;
}

static int ctx_get(plan_ctx *x, const dt_config *cfg, int r, int T, shard_entry **out);

/* Tensor rank r's share of a node, as this compute() counted it: ranks from
 * r_end - 1 on hold the same shard (first_empty_rank). */
static int share_of(plan_ctx *x, const dt_config *cfg, int r, int T, int r_end, int64_t *v) {
  shard_entry *z;
  DT_CALL(ctx_get(x, cfg, r < r_end ? r : r_end - 1, T, &z));
  *v = z->node_share;
  return DT_OK;
}

/* The node that needs the most: the sum of its own ranks' shares (world
 * rank w is tensor rank w mod T on node w / rpn) where the groups tile the
 * nodes, rpn / T whole groups a node or a group over T / rpn nodes; else
 * rpn times the largest share. */
static int node_sum(plan_ctx *x, const dt_config *cfg, int T, int rpn, int r_end,
                    int64_t largest, int64_t *bytes) {
  int64_t v = 0, sum = 0, best = 0;
  if (rpn % T == 0) {
    for (int r = 0; r < T && r < r_end; r++) {
      DT_CALL(share_of(x, cfg, r, T, r_end, &v));
      sum += v;
    }
    DT_CALL(share_of(x, cfg, r_end - 1, T, r_end, &v));
    if (T > r_end) sum += (int64_t)(T - r_end) * v;
    *bytes = (int64_t)(rpn / T) * sum;
  } else if (T % rpn == 0) {
    /* the nodes that start before r_end, then one of the last shard alone */
    for (int j = 0; j < T / rpn && (int64_t)j * rpn < r_end; j++) {
      sum = 0;
      for (int r = j * rpn; r < (j + 1) * rpn; r++) {
        DT_CALL(share_of(x, cfg, r, T, r_end, &v));
        sum += v;
      }
      if (sum > best) best = sum;
    }
    DT_CALL(share_of(x, cfg, r_end - 1, T, r_end, &v));
    if ((int64_t)T > (int64_t)((r_end + rpn - 1) / rpn) * rpn && (int64_t)rpn * v > best)
      best = (int64_t)rpn * v;
    *bytes = best;
  } else {
    *bytes = (int64_t)rpn * largest;
  }
  return DT_OK;
}

static int ctx_get(plan_ctx *x, const dt_config *cfg, int r, int T, shard_entry **out) {
  dt_shard sh;
  DT_CALL(dt_shard_init(&sh, cfg, r, T, x->in->split_heads));
  const int sig[3] = {sh.n_kv_l, sh.ffn_l, sh.vocab_l};
  for (int i = 0; i < x->n; i++)
    if (!memcmp(x->e[i]->sig, sig, sizeof sig)) {
      *out = x->e[i];
      return DT_OK;
    }
  if (x->n == x->cap) {
    const int cap = x->cap ? 2 * x->cap : 16;
    shard_entry **g = realloc(x->e, sizeof *g * (size_t)cap);
    DT_CHECK(g, DT_ENOMEM, "plan: shard table");
    x->e = g;
    x->cap = cap;
  }
  shard_entry *z = calloc(1, sizeof *z);
  DT_CHECK(z, DT_ENOMEM, "plan: shard entry");
  memcpy(z->sig, sig, sizeof sig);
  z->r = r;
  z->T = T;
  const int rc = describe_rank(x->in, r, T, z);
  if (rc) {
    dt_methods_destroy(z->ms, z->n);
    dt_model_free(&z->m);
    free(z);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  x->e[x->n++] = z;
  *out = z;
  return DT_OK;
}

/* OpenBLAS packs a panel of every output row of a GEMM (row-major C) into
 * its buffer; the baseline holds 1024 rows' worth. The GEMM with the most
 * rows: the linears over N tokens, the weight gradient of a trained matrix
 * (its local output rows), the head's weight gradient (local vocabulary). */
static int64_t blas_packing(const dt_model *m, int64_t N, const dt_machine *mc) {
  int64_t rows = N;
  for (int l = 0; l < m->bb->cfg.n_layer; l++)
    for (int s = 0; s < DT_N_SITES; s++)
      if (m->bb->layers[l].lin[s].trained && m->bb->layers[l].lin[s].rows > rows)
        rows = m->bb->layers[l].lin[s].rows;
  const dt_mat *head = m->bb->cfg.tied_head ? &m->bb->wte : &m->bb->lm_head;
  if (head->trained && head->rows > rows) rows = head->rows;
  const double b = mc->blas_bytes_per_row * (double)(rows > 1024 ? rows - 1024 : 0);
  return (int64_t)(b < mc->blas_buffer_bytes ? b : mc->blas_buffer_bytes);
}

/* Pages of the shared sum window a rank touches for sums of up to n floats
 * (mpi/dist.c shm_sum): its own slot, its slice of every other slot and the
 * whole result slot. */
static int64_t shm_touched(int64_t n, int T) {
  const int64_t slice = (n + T - 1) / T;
  return 4 * (n + (int64_t)(T - 1) * slice + n);
}

/* Time of one dt_tp_sum of n floats (the machine's measured curves). */
static double sum_time(const dt_machine *mc, int64_t n, int shm) {
  if (shm && n >= DT_SHM_SUM_MIN) return dt_machine_shm_sum_time(mc, (double)n);
  return dt_machine_allreduce_time(mc, (double)n);
}

static int ctx_init(plan_ctx *x, const dt_plan_in *in, dt_config *cfg) {
  memset(x, 0, sizeof *x);
  x->in = in;
  dt_model m;
  DT_CALL(dt_model_describe(&m, in->model, in->weights, 0, 1, 0));
  *cfg = m.bb->cfg;
  dt_model_free(&m);
  return DT_OK;
}

static int compute(plan_ctx *x, const dt_config *cfg, const dt_plan_in *in,
                   const dt_machine *mc, dt_plan_out *o) {
  memset(o, 0, sizeof *o);
  const int R = in->nodes * in->ranks_per_node, T = in->tp, K = in->tasks;
  DT_CHECK(in->nodes >= 1 && in->ranks_per_node >= 1 && T >= 1 && K >= 1, DT_EUSAGE,
           "--nodes, --ranks-per-node, --tp and --tasks must be at least 1");
  DT_CHECK(R % T == 0, DT_EUSAGE,
           "--tp %d does not divide the %d ranks (%d nodes x %d ranks per node)", T, R,
           in->nodes, in->ranks_per_node);
  const int dp = R / T;
  DT_CHECK(in->batch % dp == 0, DT_EUSAGE,
           "--batch-size %d is not divisible by the %d data-parallel replicas (%d ranks / "
           "--tp %d)", in->batch, dp, R, T);
  DT_CHECK(in->seq >= 2, DT_EUSAGE, "--seq-len %d: need at least 2 tokens", in->seq);
  o->ranks = R;
  o->dp = dp;
  o->tp = T;
  o->B_local = in->batch / dp;
  /* a tensor group shares a node when it fits in one: groups are
   * consecutive ranks and nodes are filled in rank order */
  o->shm = T > 1 && in->ranks_per_node % T == 0;
  const int Bc = o->B_local * K; /* rows of a replica's (combined) batch */
  DT_CHECK(in->micro == 0 || K == 1, DT_EUSAGE,
           "--micro-batch %d: a sweep (--tasks %d) runs its combined batch in one pass",
           in->micro, K);
  /* train's passes (src/train.c run_passes): activations are sized for one */
  o->B_pass = in->micro > 0 && in->micro < Bc ? in->micro : Bc;
  o->passes = (Bc + o->B_pass - 1) / o->B_pass;
  const int Bp = o->B_pass;

  /* the whole model: counts and FLOPs */
  shard_entry *w;
  DT_CALL(ctx_get(x, cfg, 0, 1, &w));
  o->n_virtual = w->n_virtual;
  o->n_prefix = w->n_prefix;
  o->T = in->seq + w->n_virtual;
  DT_CHECK(dt_cfg_arch(cfg)->pos != DT_POS_LEARNED || w->n_prefix + o->T <= cfg->n_ctx, DT_EUSAGE,
           "sequence of %d positions (%d data + %d virtual + %d prefix) exceeds the model's "
           "n_positions = %d (%s)", w->n_prefix + o->T, in->seq, w->n_virtual, w->n_prefix,
           cfg->n_ctx, cfg->source);
  o->frozen_params = dt_model_param_count(&w->m);
  o->trainable = w->numel;
  o->n_tensors = w->n_tensors;
  o->weight_bytes_total = w->m.bb->weight_bytes;
  o->matmul_global = (double)dt_model_matmul_params(&w->m);
  /* every data position but the first is scored; with prompt tokens the
   * last virtual position predicts the first data token too */
  const int spr = in->scored_per_row >= 0 ? in->scored_per_row : in->seq - 1 + (w->n_virtual > 0);
  const double tokens = (double)in->batch * in->seq * K, scored = (double)in->batch * spr * K;
  o->flops_step = dt_model_step_flops(&w->m, o->T, tokens, scored);
  o->flops_token = o->flops_step / tokens;

  /* every distinct shard once; keep the rank that holds the most. Ranks
   * past the last key/value group, FFN block and vocabulary block hold the
   * same empty shard, so the walk stops at the first of them (a search
   * tries groups of millions of ranks). */
  const int64_t N = (int64_t)Bp * o->T;
  double matmul_max = 0;
  shard_entry *best = NULL;
  const unsigned pass = ++x->pass;
  const int e = first_empty_rank(cfg, T, x->in->split_heads), r_end = e < T ? e + 1 : T;
  for (int r = 0; r < r_end; r++) {
    shard_entry *z;
    DT_CALL(ctx_get(x, cfg, r, T, &z));
    if (z->seen == pass) continue; /* the same sizes as an earlier rank */
    z->seen = pass;
    if (z->matmul_local > matmul_max) matmul_max = z->matmul_local;
    dt_plan_mem pm;
    memset(&pm, 0, sizeof pm);
    pm.tp_rank = r;
    pm.weights = z->m.bb->weight_bytes;
    pm.method = z->method_bytes * K;
    pm.adamw = 2 * aligned(4 * (z->numel_l + 1)) * K;
    pm.buckets = R > 1 ? 4 * (z->numel_l + 1) * K : 0;
    pm.acts_plain = (int64_t)dt_model_act_bytes(&z->m, Bp, in->seq, 0);
    pm.acts_recompute = (int64_t)dt_model_act_bytes(&z->m, Bp, in->seq, 1);
    DT_CHECK(pm.acts_plain > 0 && pm.acts_recompute > 0, DT_EUSAGE,
             "--method %s: these methods cannot be planned together (both add prefix "
             "key/values?)", in->methods);
    pm.acts = in->recompute ? pm.acts_recompute : pm.acts_plain;
    z->m.x_share_req = o->shm; /* as train: the residual stream once per group on a node */
    pm.acts_shared = (int64_t)dt_model_act_shared_bytes(&z->m, Bp, in->seq, in->recompute);
    z->m.x_share_req = 0;
    pm.engine = (int64_t)dt_model_plan_extra_bytes(&z->m, Bp, in->seq);
    DT_CALL(hook_scratch(&z->m, z->ms, z->n, in->opt, N, &pm.hook_scratch));
    pm.blas = blas_packing(&z->m, N, mc);
    /* the batch's ids and labels; train also packs one pass's (and keeps
     * two ints per row for the pass order) */
    pm.batch_bufs = 2 * 4 * (int64_t)o->B_local * in->seq * K +
                    (K == 1 ? 2 * 4 * (int64_t)Bp * in->seq + 2 * 4 * (int64_t)o->B_local : 0);
    pm.dataset = 2 * 4 * in->data_rows * in->seq * K;
    if (o->shm) {
      /* the largest sum of a step is [N, d] (embedding, row-parallel
       * outputs, column-parallel input gradients, the head's input gradient) */
      const int64_t mx = N * cfg->d_model, cap = mx > DT_SHM_SLOT_MIN ? mx : DT_SHM_SLOT_MIN;
      pm.shm_touched = shm_touched(mx, T);
      pm.shm_share = 4 * cap * (T + 1) / T;
    }
    /* MPI_Allreduce's transient memory on the largest message it carries:
     * a gradient bucket, or the [N, d] sums of a group spanning nodes */
    int64_t msg = 0;
    if (R > 1) {
      const int64_t na = T > 1 ? z->partial_l : 0, nb = z->numel_l - na;
      if (na > msg) msg = na;
      if (dp > 1 && nb > msg) msg = nb;
    }
    if (T > 1 && !o->shm && N * cfg->d_model > msg) msg = N * cfg->d_model;
    pm.mpi_scratch = (int64_t)(mc->allreduce_scratch * 4.0 * (double)msg);
    pm.baseline = (int64_t)mc->baseline_rss_bytes;
    pm.rss = pm.weights + pm.method + pm.adamw + pm.buckets + pm.acts + pm.engine +
             pm.hook_scratch + pm.blas + pm.batch_bufs + pm.dataset + pm.mpi_scratch +
             pm.shm_touched + pm.baseline;
    pm.node_share = pm.rss - pm.shm_touched + pm.shm_share - (pm.acts_shared - pm.acts_shared / T);
    /* --share-weights: the node's replicas of this shard (same tensor rank,
     * groups within a node) map one copy of its matrices; each rank's RSS
     * still counts the whole shard */
    pm.share_replicas = 1;
    if (dt_share_weights(in->share_weights ? in->share_weights : "auto", in->methods) &&
        in->ranks_per_node % T == 0 && in->ranks_per_node / T > 1) {
      pm.share_replicas = in->ranks_per_node / T;
      pm.node_share -= z->m.bb->mat_bytes - z->m.bb->mat_bytes / pm.share_replicas;
    }
    pm.numel_l = z->numel_l;
    z->node_share = pm.node_share;
    if (!best || pm.rss > o->mem.rss) {
      o->mem = pm;
      best = z;
    }
  }
  snprintf(o->describe, sizeof o->describe, "%s", w->describe);
  DT_CALL(node_sum(x, cfg, T, in->ranks_per_node, r_end, o->mem.node_share, &o->node_bytes));
  /* a rank does its replica's share of the FLOPs, split as the frozen
   * matmuls are (the busiest rank) */
  o->flops_rank = o->flops_step / dp * (o->matmul_global > 0 ? matmul_max / o->matmul_global : 1.0);

  /* communication of one training step on a rank, as forward.c and the
   * hooks call dt_tp_sum (the local formulation; nothing when tp = 1) */
  const int L = cfg->n_layer;
  double t_tp = 0;
#define SUMS(count, n)                                        \
  do {                                                        \
    const long long c_ = (count);                             \
    const int64_t n_ = (n);                                   \
    if (c_ > 0 && n_ > 0) {                                   \
      o->tp_sums += c_;                                       \
      o->tp_sum_floats += c_ * n_;                            \
      if (o->shm && n_ >= DT_SHM_SUM_MIN) o->tp_sums_shm += c_; \
      t_tp += c_ * sum_time(mc, n_, o->shm);                  \
    }                                                         \
  } while (0)
  for (int p = 0; T > 1 && p < o->passes; p++) { /* each forward/backward pass */
    const int Bq = Bc - p * Bp < Bp ? Bc - p * Bp : Bp;
    const int64_t Nd = (int64_t)Bq * o->T * cfg->d_model, Ntask = (int64_t)(Bq / K) * o->T;
    const int64_t chunk = (int64_t)Bq * o->T < DT_LOGIT_CHUNK ? (int64_t)Bq * o->T : DT_LOGIT_CHUNK;
    const int fwd = in->recompute ? 2 : 1; /* --recompute runs each block forward again */
    SUMS(1, Nd);                           /* embedding: vocabulary-split lookup */
    SUMS((long long)fwd * 2 * L, Nd);      /* attention and FFN output projections */
    for (int e = 0; e < best->n_hook_sums; e++) /* the methods' own (LoRA's h) */
      SUMS((long long)fwd * K * best->hook_sum[e].count, Ntask * best->hook_sum[e].width);
    const int64_t rows = (int64_t)Bq * spr, chunks = (rows + chunk - 1) / chunk;
    for (int64_t i = 0; i < chunks; i++) { /* head: sum of exponentials and label logit */
      const int64_t nr = rows - i * chunk < chunk ? rows - i * chunk : chunk;
      SUMS(1, 2 * nr);
    }
    o->small_allreduces += chunks; /* the head's row maxima (dt_tp_max) */
    SUMS(1, Nd);                   /* the head's input gradient */
    /* column-parallel input gradients (backward); block 0's QKV one only
     * when something below it trains (dt_model_first_dx_needed) */
    SUMS(2LL * L - (dt_model_first_dx_needed(&best->m) ? 0 : 1), Nd);
    /* the embedding's norm (BLOOM): the backward looks the embedding up again */
    if (dt_cfg_arch(cfg)->embed_norm && dt_model_first_dx_needed(&best->m)) SUMS(1, Nd);
  }
  if (T > 1) o->small_allreduces += 1; /* the gradient norm of shards (optim.c) */
#undef SUMS
  if (dp > 1) o->small_allreduces += 2; /* scored-token count, loss statistics */
  double t_red = o->small_allreduces * dt_machine_allreduce_time(mc, 0.0); /* latency */
  const int64_t na = T > 1 ? best->partial_l : 0, nb = best->numel_l - na;
  if (R > 1)
    for (int k = 0; k < K; k++) { /* each task completes its own two buckets */
      if (na > 0) {
        o->bucket_world_floats += na;
        o->bucket_reductions++;
        t_red += dt_machine_allreduce_time(mc, (double)na);
      }
      if (nb > 0 && dp > 1) {
        o->bucket_dp_floats += nb;
        o->bucket_reductions++;
        t_red += dt_machine_allreduce_time(mc, (double)nb);
      }
    }
  /* with bf16 products, the bf16 rate and the engine's fraction of it
   * measured by --calibrate (the sgemm ones where the file has none) */
  o->bf16_rate = in->matmul_bf16 && mc->bf16_gflops > 0 && mc->engine_fraction_bf16 > 0;
  o->t_compute = o->flops_rank / (o->bf16_rate ? mc->bf16_gflops * 1e9 * mc->engine_fraction_bf16
                                               : mc->sgemm_gflops * 1e9 * mc->engine_fraction);
  o->t_tp = t_tp;
  o->t_reduce = t_red;
  /* memory-bound per trainable element: AdamW 28 bytes, zeroing and the
   * norm 8, the bucket copies 16 (more than one rank) */
  o->t_update = (double)best->numel_l * K * (36.0 + (R > 1 ? 16.0 : 0.0)) / mc->stream_bytes_per_s;
  o->t_step = o->t_compute + o->t_tp + o->t_reduce + o->t_update;
  o->tokens_per_s = tokens / o->t_step;
  /* checkpoint variables of one task (io/checkpoint.c): every tensor whole,
   * float32; with the optimizer also exp_avg and exp_avg_sq */
  o->ckpt_deltas = 4 * o->trainable;
  o->ckpt_with_opt = 3 * o->ckpt_deltas;
  return DT_OK;
}

int dt_plan_compute(const dt_plan_in *in, const dt_machine *mc, dt_plan_out *out) {
  plan_ctx x;
  dt_config cfg;
  DT_CALL(ctx_init(&x, in, &cfg));
  const int rc = compute(&x, &cfg, in, mc, out);
  ctx_free(&x);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* in planned as `--tp t` of its nodes x ranks into r: refused (why) where
 * the rows of a step do not split over the replicas or the shards refuse
 * the split (a usage error of the layout only rules it out); other errors
 * are returned. */
static int plan_tp(plan_ctx *x, const dt_config *cfg, const dt_plan_in *in, const dt_machine *mc,
                   int t, dt_plan_layout *r) {
  memset(r, 0, sizeof *r);
  r->tp = t;
  r->dp = in->nodes * in->ranks_per_node / t;
  if (in->batch % r->dp) {
    r->refused = 1;
    snprintf(r->why, sizeof r->why, "the %d rows of a step do not split over %d replicas",
             in->batch, r->dp);
    return DT_OK;
  }
  dt_plan_in q = *in;
  q.tp = t;
  const int rc = compute(x, cfg, &q, mc, &r->out);
  if (rc == DT_EUSAGE) {
    r->refused = 1;
    snprintf(r->why, sizeof r->why, "%s", dt_error_message());
    dt_error_clear();
    return DT_OK;
  }
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* The layout of n nodes with the least memory per node among the tensor
 * group sizes that divide the ranks and leave whole rows per replica
 * (smallest tp among equals): *fits, its tp. Usage errors of a layout (a
 * split the shards refuse) only rule it out. */
static int best_layout(plan_ctx *x, const dt_config *cfg, const dt_plan_in *in,
                       const dt_machine *mc, double mem, int n, int *fits, int *tp) {
  dt_plan_in q = *in;
  q.nodes = n;
  const int ranks = n * in->ranks_per_node;
  *fits = 0;
  *tp = 0;
  dt_plan_layout r;
  for (int t = 1; t <= ranks; t++) {
    if (ranks % t) continue;
    DT_CALL(plan_tp(x, cfg, &q, mc, t, &r));
    if (!r.refused && (double)r.out.node_bytes <= mem) {
      *fits = 1;
      *tp = t;
      return DT_OK;
    }
  }
  return DT_OK;
}

int dt_plan_layouts(const dt_plan_in *in, const dt_machine *mc, double mem_per_node,
                    dt_plan_layout *rows, int max, int *n, int *best) {
  *n = 0;
  *best = -1;
  plan_ctx x;
  dt_config cfg;
  DT_CALL(ctx_init(&x, in, &cfg));
  const int ranks = in->nodes * in->ranks_per_node;
  int rc = DT_OK;
  for (int t = 1; t <= ranks && *n < max; t++) {
    if (ranks % t) continue;
    dt_plan_layout *r = &rows[(*n)++];
    rc = plan_tp(&x, &cfg, in, mc, t, r);
    if (rc) break;
    if (r->refused) continue;
    r->fits = mem_per_node <= 0 || (double)r->out.node_bytes <= mem_per_node;
    if (r->fits && (*best < 0 || r->out.tokens_per_s > rows[*best].out.tokens_per_s))
      *best = *n - 1;
  }
  ctx_free(&x);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

int dt_plan_min_nodes(const dt_plan_in *in, const dt_machine *mc, double mem_per_node,
                      int max_nodes, int *nodes, int *tp) {
  *nodes = 0;
  *tp = 0;
  plan_ctx x;
  dt_config cfg;
  DT_CALL(ctx_init(&x, in, &cfg));
  /* double the nodes until a layout fits, then bisect */
  int lo = 0, hi = 0, hi_tp = 0, rc = DT_OK;
  for (int n = 1; rc == DT_OK;) {
    int fits, t;
    rc = best_layout(&x, &cfg, in, mc, mem_per_node, n, &fits, &t);
    if (rc == DT_OK && fits) {
      hi = n;
      hi_tp = t;
      break;
    }
    lo = n;
    if (n >= max_nodes) break;
    n = n > max_nodes / 2 ? max_nodes : 2 * n;
  }
  while (rc == DT_OK && hi && hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    int fits, t;
    rc = best_layout(&x, &cfg, in, mc, mem_per_node, mid, &fits, &t);
    if (fits) hi = mid, hi_tp = t;
    else lo = mid;
  }
  ctx_free(&x);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  *nodes = hi;
  *tp = hi_tp;
  return DT_OK;
}

/* --- the command --------------------------------------------------------- */

static const dt_optdef plan_opts[] = {
    {"model", DT_OPT_STRING, NULL, 0, 0, NULL,
     "backbone: synthetic:<preset> (gpt3-175b, llama2-70b, ...), synthetic:<family>:k=v,... "
     "or a Hugging Face folder (only config.json is read)"},
    {"method", DT_OPT_STRING, "lora", 0, 0, NULL,
     "delta method(s), comma-separated, with their options as for train"},
    DT_OPTDEF_WEIGHTS_DTYPE,
    DT_OPTDEF_MATMUL_DTYPE,
    DT_OPTDEF_SHARE_WEIGHTS,
    {"nodes", DT_OPT_INT, "1", 1, 1048576, NULL, "nodes of the job"},
    {"ranks-per-node", DT_OPT_INT, "1", 1, 4096, NULL, "MPI ranks per node"},
    DT_OPTDEF_TP,
    DT_OPTDEF_TP_HEADS,
    {"batch-size", DT_OPT_INT, "8", 1, 1048576, NULL, "rows per step (global, per task)"},
    {"seq-len", DT_OPT_INT, "1024", 2, 1048576, NULL, "data tokens per row"},
    {"scored-per-row", DT_OPT_INT, NULL, 0, 1048576, NULL,
     "tokens per row that reach the loss (default: seq-len - 1, every position)"},
    {"tasks", DT_OPT_INT, "1", 1, 65536, NULL,
     "K tasks trained concurrently on one backbone (a combined batch of K x batch-size rows; "
     "deltas, optimizer and checkpoints per task)"},
    {"recompute", DT_OPT_BOOL, "no", 0, 0, NULL, "the run uses --recompute (both are shown)"},
    {"micro-batch", DT_OPT_INT, "0", 0, 1048576, NULL,
     "the run's --micro-batch: rows per forward/backward pass (activations are sized for one "
     "pass); 0 = all of a replica's rows"},
    {"data-rows", DT_OPT_INT, "0", 0, 2147483647, NULL,
     "rows of the data file (every rank loads it: 8 bytes per token); 0 = not counted"},
    {"mem-per-node", DT_OPT_STRING, NULL, 0, 0, NULL,
     "memory of a node: bytes or a number with K, M, G or T (KiB .. TiB), e.g. 512G; "
     "also finds the smallest node count that fits"},
    {"max-nodes", DT_OPT_INT, "65536", 1, 1048576, NULL,
     "largest node count the search for the smallest one tries"},
    {"compare-full", DT_OPT_BOOL, "yes", 0, 0, NULL,
     "also plan full fine-tuning (fp32 weights) on the same layout"},
    {"layouts", DT_OPT_BOOL, "no", 0, 0, NULL,
     "also plan every --tp that divides the ranks (with its replicas) and name the one of the "
     "most tokens/s whose node memory fits --mem-per-node (any without it), which the plan "
     "shows when --tp is not given: a layout advisor (its times are the plan's model: compute, "
     "sums and updates, not the waiting for a slow rank)"},
    {"json", DT_OPT_BOOL, "no", 0, 0, NULL, "print one JSON object instead of text"},
    {"machine", DT_OPT_STRING, NULL, 0, 0, NULL,
     "machine constants (JSON; default ~/.cache/deltatune/machine.json, built-in defaults "
     "when it does not exist)"},
    {"calibrate", DT_OPT_BOOL, "no", 0, 0, NULL,
     "measure the machine constants on the ranks of this run (GEMM rate, memory streaming, "
     "a training step, tensor-group sums and all-reduces at 1 to 2^20 floats, resident "
     "baseline) and write them to --machine; then plan if --model is given"},
    {"calibrate-seconds", DT_OPT_FLOAT, "1", 0.1, 600, NULL,
     "--calibrate: the sums are timed for about 4 x this many seconds (all sizes in turn; "
     "at least 30 calls each); more averages out more of a busy machine's slow calls"},
    {"init-from", DT_OPT_STRING, NULL, 0, 0, NULL,
     "accepted and ignored (initial values change no size)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

#define MAX_GROUPS 32

/* "512G", "96000M", "1.5T", "123456789" -> bytes (binary units). */
static int parse_mem(const char *s, double *bytes) {
  char *end = NULL;
  double v = strtod(s, &end);
  double mul = 1.0;
  if (end && *end) {
    switch (*end) {
      case 'k': case 'K': mul = 1024.0; break;
      case 'm': case 'M': mul = 1024.0 * 1024; break;
      case 'g': case 'G': mul = 1024.0 * 1024 * 1024; break;
      case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
      default: mul = 0;
    }
    if (mul > 0) {
      end++;
      if (*end == 'i' || *end == 'I') end++;
      if (*end == 'b' || *end == 'B') end++;
    }
  }
  DT_CHECK(end != s && mul > 0 && *end == 0 && v > 0 && isfinite(v), DT_EUSAGE,
           "--mem-per-node '%s': expected a size such as 512G, 96000M or 2T", s);
  *bytes = v * mul;
  return DT_OK;
}

static const char *fmt_bytes(char *b, size_t cap, double x) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int i = 0;
  while (fabs(x) >= 1024.0 && i < 5) x /= 1024.0, i++;
  snprintf(b, cap, i ? "%.2f %s" : "%.0f %s", x, u[i]);
  return b;
}

static const char *fmt_mb(char *b, size_t cap, double x) {
  if (x >= 1e12) snprintf(b, cap, "%.2f TB", x / 1e12);
  else if (x >= 1e9) snprintf(b, cap, "%.2f GB", x / 1e9);
  else snprintf(b, cap, "%.2f MB", x / 1e6);
  return b;
}

static const char *fmt_flops(char *b, size_t cap, double x) {
  const char *u[] = {"", "K", "M", "G", "T", "P", "E"};
  int i = 0;
  while (x >= 1000.0 && i < 6) x /= 1000.0, i++;
  snprintf(b, cap, "%.2f %sFLOP", x, u[i]);
  return b;
}

static json_t *mem_json(const dt_plan_mem *m) {
  json_t *j = json_object();
  json_object_set_new(j, "tp_rank", json_integer(m->tp_rank));
  json_object_set_new(j, "frozen_weights", json_integer(m->weights));
  json_object_set_new(j, "methods", json_integer(m->method));
  json_object_set_new(j, "adamw", json_integer(m->adamw));
  json_object_set_new(j, "gradient_buckets", json_integer(m->buckets));
  json_object_set_new(j, "activations", json_integer(m->acts));
  json_object_set_new(j, "activations_no_recompute", json_integer(m->acts_plain));
  json_object_set_new(j, "activations_recompute", json_integer(m->acts_recompute));
  json_object_set_new(j, "engine_buffers", json_integer(m->engine));
  json_object_set_new(j, "hook_scratch", json_integer(m->hook_scratch));
  json_object_set_new(j, "blas_packing", json_integer(m->blas));
  json_object_set_new(j, "batch_buffers", json_integer(m->batch_bufs));
  json_object_set_new(j, "dataset", json_integer(m->dataset));
  json_object_set_new(j, "mpi_allreduce_scratch", json_integer(m->mpi_scratch));
  json_object_set_new(j, "shm_window_touched", json_integer(m->shm_touched));
  json_object_set_new(j, "activations_shared", json_integer(m->acts_shared));
  json_object_set_new(j, "shm_window_share", json_integer(m->shm_share));
  json_object_set_new(j, "baseline", json_integer(m->baseline));
  json_object_set_new(j, "peak_rss", json_integer(m->rss));
  json_object_set_new(j, "node_share", json_integer(m->node_share));
  return j;
}

static json_t *plan_json(const dt_plan_in *in, const dt_plan_out *o, double mem_per_node) {
  json_t *j = json_object();
  json_object_set_new(j, "method", json_string(in->methods));
  json_object_set_new(j, "describe", json_string(o->describe));
  json_object_set_new(j, "weights_dtype", json_string(dt_wdtype_name(in->weights)));
  json_t *l = json_object();
  json_object_set_new(l, "nodes", json_integer(in->nodes));
  json_object_set_new(l, "ranks_per_node", json_integer(in->ranks_per_node));
  json_object_set_new(l, "ranks", json_integer(o->ranks));
  json_object_set_new(l, "dp", json_integer(o->dp));
  json_object_set_new(l, "tp", json_integer(o->tp));
  json_object_set_new(l, "shm_sums", json_boolean(o->shm));
  json_object_set_new(j, "layout", l);
  json_t *b = json_object();
  json_object_set_new(b, "rows", json_integer(in->batch));
  json_object_set_new(b, "rows_per_replica", json_integer(o->B_local));
  json_object_set_new(b, "rows_per_pass", json_integer(o->B_pass));
  json_object_set_new(b, "passes", json_integer(o->passes));
  json_object_set_new(b, "seq_len", json_integer(in->seq));
  json_object_set_new(b, "positions", json_integer(o->T));
  json_object_set_new(b, "virtual_tokens", json_integer(o->n_virtual));
  json_object_set_new(b, "prefix_tokens", json_integer(o->n_prefix));
  json_object_set_new(b, "tasks", json_integer(in->tasks));
  json_object_set_new(j, "batch", b);
  json_object_set_new(j, "frozen_parameters", json_integer(o->frozen_params));
  json_object_set_new(j, "frozen_weight_bytes", json_integer(o->weight_bytes_total));
  json_object_set_new(j, "trainable_parameters", json_integer(o->trainable));
  json_object_set_new(j, "trainable_tensors", json_integer(o->n_tensors));
  json_object_set_new(j, "trainable_per_rank", json_integer(o->mem.numel_l));
  json_object_set_new(j, "memory_per_rank", mem_json(&o->mem));
  json_t *n = json_object();
  json_object_set_new(n, "bytes", json_integer(o->node_bytes));
  json_object_set_new(n, "shared_weight_replicas", json_integer(o->mem.share_replicas));
  json_object_set_new(n, "mem_per_node", mem_per_node > 0 ? json_real(mem_per_node) : json_null());
  json_object_set_new(n, "fits", mem_per_node > 0 ? json_boolean(o->node_bytes <= mem_per_node)
                                                   : json_null());
  json_object_set_new(j, "node", n);
  json_t *f = json_object();
  json_object_set_new(f, "per_step", json_real(o->flops_step));
  json_object_set_new(f, "per_token", json_real(o->flops_token));
  json_object_set_new(f, "per_rank", json_real(o->flops_rank));
  json_object_set_new(j, "flops", f);
  json_t *c = json_object();
  json_object_set_new(c, "tp_sums", json_integer(o->tp_sums));
  json_object_set_new(c, "tp_sums_shm", json_integer(o->tp_sums_shm));
  json_object_set_new(c, "tp_sum_bytes", json_integer(4 * o->tp_sum_floats));
  json_object_set_new(c, "small_allreduces", json_integer(o->small_allreduces));
  json_object_set_new(c, "bucket_world_bytes", json_integer(4 * o->bucket_world_floats));
  json_object_set_new(c, "bucket_dp_bytes", json_integer(4 * o->bucket_dp_floats));
  json_object_set_new(c, "bucket_reductions", json_integer(o->bucket_reductions));
  json_object_set_new(j, "communication_per_step", c);
  json_t *t = json_object();
  json_object_set_new(t, "compute_s", json_real(o->t_compute));
  json_object_set_new(t, "compute_rate", json_string(o->bf16_rate ? "bf16" : "sgemm"));
  json_object_set_new(t, "tp_sums_s", json_real(o->t_tp));
  json_object_set_new(t, "reductions_s", json_real(o->t_reduce));
  json_object_set_new(t, "update_s", json_real(o->t_update));
  json_object_set_new(t, "step_s", json_real(o->t_step));
  json_object_set_new(t, "tokens_per_s", json_real(o->tokens_per_s));
  json_object_set_new(j, "time", t);
  json_t *k = json_object();
  json_object_set_new(k, "deltas_bytes", json_integer(o->ckpt_deltas));
  json_object_set_new(k, "with_optimizer_bytes", json_integer(o->ckpt_with_opt));
  json_object_set_new(k, "header", json_string("not included: attributes and checksums, "
                                               "read it from the file (docs/plan.md)"));
  json_object_set_new(j, "checkpoint_per_task", k);
  return j;
}

static void print_plan(const dt_plan_in *in, const dt_plan_out *o, double mem_per_node,
                       const char *title) {
  char a[64], b2[64], c2[64];
  const dt_plan_mem *m = &o->mem;
  printf("%s: --method %s (%s), weights %s\n", title, in->methods, o->describe,
         dt_wdtype_name(in->weights));
  printf("  trainable: %lld parameters (%.4f%% of the backbone) in %lld tensors; %lld on a rank\n",
         (long long)o->trainable, 100.0 * (double)o->trainable / (double)o->frozen_params,
         (long long)o->n_tensors, (long long)m->numel_l);
  printf("  memory per rank (tp rank %d, the largest):\n", m->tp_rank);
#define ROW(label, v) printf("    %-44s %14s\n", label, fmt_bytes(a, sizeof a, (double)(v)))
  ROW("frozen weights (this rank's shard)", m->weights);
  ROW("methods: deltas, gradients, state", m->method);
  ROW("AdamW moments", m->adamw);
  ROW("gradient buckets", m->buckets);
  printf("    %-44s %14s   (without --recompute %s, with %s)\n",
         in->recompute ? "activations (--recompute)" : "activations",
         fmt_bytes(a, sizeof a, (double)m->acts), fmt_bytes(b2, sizeof b2, (double)m->acts_plain),
         fmt_bytes(c2, sizeof c2, (double)m->acts_recompute));
  ROW("engine buffers (bf16 scratch, rope, batch ids)", m->engine);
  ROW("hook scratch (first backward)", m->hook_scratch);
  ROW("OpenBLAS packing (largest GEMM)", m->blas);
  ROW("batch buffers", m->batch_bufs);
  ROW("data file (--data-rows)", m->dataset);
  ROW("MPI_Allreduce scratch (largest message)", m->mpi_scratch);
  ROW("shared-memory sum window (pages touched)", m->shm_touched);
  ROW("process, MPI and BLAS (machine baseline)", m->baseline);
  ROW("total: predicted peak RSS", m->rss);
#undef ROW
  printf("  node: %d ranks, the largest %s: %s (each rank's own share; the sum window counted once "
         "per node", in->ranks_per_node, fmt_bytes(a, sizeof a, (double)m->node_share),
         fmt_bytes(b2, sizeof b2, (double)o->node_bytes));
  if (m->acts_shared > 0)
    printf("; the saved residual stream, %s a rank, once per tensor group",
           fmt_bytes(c2, sizeof c2, (double)m->acts_shared));
  if (m->share_replicas > 1)
    printf("; the frozen matrices once per %d replicas: --share-weights", m->share_replicas);
  printf(")");
  if (mem_per_node > 0)
    printf(": %s --mem-per-node %s\n", o->node_bytes <= mem_per_node ? "fits in" : "does NOT fit in",
           fmt_bytes(c2, sizeof c2, mem_per_node));
  else
    printf("\n");
  printf("  compute: %s per step, %s per token; %s per rank\n",
         fmt_flops(a, sizeof a, o->flops_step), fmt_flops(b2, sizeof b2, o->flops_token),
         fmt_flops(c2, sizeof c2, o->flops_rank));
  printf("  communication per step and rank: %lld tensor-group sums (%lld through shared memory) "
         "of %s, %lld small all-reduces; gradient buckets %s over all ranks + %s over the "
         "replicas (%d all-reduces)\n",
         o->tp_sums, o->tp_sums_shm, fmt_bytes(a, sizeof a, 4.0 * o->tp_sum_floats),
         o->small_allreduces, fmt_bytes(b2, sizeof b2, 4.0 * o->bucket_world_floats),
         fmt_bytes(c2, sizeof c2, 4.0 * o->bucket_dp_floats), o->bucket_reductions);
  printf("  time per step: %.4g s compute%s + %.4g s tensor-group sums + %.4g s reductions + "
         "%.4g s update = %.4g s; %.4g tokens/s\n",
         o->t_compute, o->bf16_rate ? " (at the bf16 products' rate)" : "", o->t_tp, o->t_reduce,
         o->t_update, o->t_step, o->tokens_per_s);
  printf("  checkpoint per task: deltas %s (%lld bytes); with optimizer state %s (%lld bytes); "
         "plus the header\n",
         fmt_mb(a, sizeof a, (double)o->ckpt_deltas), (long long)o->ckpt_deltas,
         fmt_mb(b2, sizeof b2, (double)o->ckpt_with_opt), (long long)o->ckpt_with_opt);
}

static void print_machine(const dt_machine *mc) {
  printf("machine constants (%s%s%s): sgemm %.1f GFLOP/s per rank x engine fraction %.2f; "
         "memory %.2f GB/s per rank; shared-memory sums %.1f us + %.2f GB/s; all-reduce "
         "%.1f us + %.2f GB/s; baseline RSS %.0f MB",
         mc->source, mc->ranks ? ", calibrated at " : "", mc->ranks ? mc->when : "",
         mc->sgemm_gflops, mc->engine_fraction, mc->stream_bytes_per_s / 1e9,
         mc->shm_sum_latency_s * 1e6, mc->shm_sum_bytes_per_s / 1e9,
         mc->allreduce_latency_s * 1e6, mc->allreduce_bytes_per_s / 1e9,
         mc->baseline_rss_bytes / 1e6);
  if (mc->bf16_gflops > 0)
    printf("; bf16 products %.1f GFLOP/s per rank x engine fraction %.2f", mc->bf16_gflops,
           mc->engine_fraction_bf16);
  if (mc->ranks) printf(" (%d ranks, OpenBLAS %s)", mc->ranks, mc->blas_core);
  if (mc->allreduce_curve.n >= 2 || mc->shm_sum_curve.n >= 2)
    printf("; sums timed at %d (shared memory) and %d (all-reduce) sizes, used between them",
           mc->shm_sum_curve.n, mc->allreduce_curve.n);
  printf("\n");
}

static json_t *machine_json(const dt_machine *mc) {
  json_t *j = json_object();
  json_object_set_new(j, "source", json_string(mc->source));
  json_object_set_new(j, "sgemm_gflops", json_real(mc->sgemm_gflops));
  json_object_set_new(j, "engine_fraction", json_real(mc->engine_fraction));
  json_object_set_new(j, "bf16_gflops", json_real(mc->bf16_gflops));
  json_object_set_new(j, "engine_fraction_bf16", json_real(mc->engine_fraction_bf16));
  json_object_set_new(j, "stream_bytes_per_s", json_real(mc->stream_bytes_per_s));
  json_object_set_new(j, "shm_sum_latency_s", json_real(mc->shm_sum_latency_s));
  json_object_set_new(j, "shm_sum_bytes_per_s", json_real(mc->shm_sum_bytes_per_s));
  json_object_set_new(j, "allreduce_latency_s", json_real(mc->allreduce_latency_s));
  json_object_set_new(j, "allreduce_bytes_per_s", json_real(mc->allreduce_bytes_per_s));
  json_object_set_new(j, "allreduce_scratch", json_real(mc->allreduce_scratch));
  json_object_set_new(j, "shm_sum_curve_points", json_integer(mc->shm_sum_curve.n));
  json_object_set_new(j, "allreduce_curve_points", json_integer(mc->allreduce_curve.n));
  json_object_set_new(j, "baseline_rss_bytes", json_real(mc->baseline_rss_bytes));
  json_object_set_new(j, "blas_bytes_per_row", json_real(mc->blas_bytes_per_row));
  json_object_set_new(j, "blas_buffer_bytes", json_real(mc->blas_buffer_bytes));
  json_object_set_new(j, "ranks", json_integer(mc->ranks));
  return j;
}

#define DT_PLAN_LAYOUTS_MAX 256

static json_t *layouts_json(const dt_plan_layout *rows, int n, int best) {
  json_t *j = json_object(), *a = json_array();
  for (int i = 0; i < n; i++) {
    const dt_plan_layout *r = &rows[i];
    json_t *e = json_object();
    json_object_set_new(e, "tp", json_integer(r->tp));
    json_object_set_new(e, "dp", json_integer(r->dp));
    json_object_set_new(e, "refused", r->refused ? json_string(r->why) : json_null());
    if (!r->refused) {
      json_object_set_new(e, "peak_rss_per_rank", json_integer(r->out.mem.rss));
      json_object_set_new(e, "node_bytes", json_integer(r->out.node_bytes));
      json_object_set_new(e, "fits", json_boolean(r->fits));
      json_object_set_new(e, "step_s", json_real(r->out.t_step));
      json_object_set_new(e, "tokens_per_s", json_real(r->out.tokens_per_s));
    }
    json_array_append_new(a, e);
  }
  json_object_set_new(j, "rows", a);
  json_object_set_new(j, "fastest_tp", best >= 0 ? json_integer(rows[best].tp) : json_null());
  return j;
}

static void print_layouts(const dt_plan_in *in, const dt_plan_layout *rows, int n, int best,
                          double mem) {
  char a[64], b[64];
  printf("layouts (--layouts): %d ranks, %d rows x %d tokens a step; %s\n",
         in->nodes * in->ranks_per_node, in->batch, in->seq,
         mem > 0 ? "fits: node memory within --mem-per-node" : "no --mem-per-node: every one fits");
  printf("  %6s %9s %14s %12s %5s %10s %10s\n", "--tp", "replicas", "peak per rank", "node", "fits",
         "step (s)", "tokens/s");
  for (int i = 0; i < n; i++) {
    const dt_plan_layout *r = &rows[i];
    if (r->refused) {
      printf("  %6d %9d refused: %s\n", r->tp, r->dp, r->why);
      continue;
    }
    printf("  %6d %9d %14s %12s %5s %10.4g %10.4g%s\n", r->tp, r->dp,
           fmt_bytes(a, sizeof a, (double)r->out.mem.rss),
           fmt_bytes(b, sizeof b, (double)r->out.node_bytes), r->fits ? "yes" : "no",
           r->out.t_step, r->out.tokens_per_s, i == best ? "  <- fastest that fits" : "");
  }
  if (best >= 0)
    printf("  fastest that fits: --tp %d (%d replicas), %.4g tokens/s predicted (the plan's times: "
           "compute, sums and updates, not the waiting for a slow rank)\n", rows[best].tp,
           rows[best].dp, rows[best].out.tokens_per_s);
  else
    printf("  no layout of these ranks fits\n");
}

/* The plan of in (and of full fine-tuning beside it), the smallest node
 * counts and the advisor's rows (rows NULL without --layouts): printed as
 * text or JSON. */
static int plan_report(const dt_options *o, const dt_machine *mc, const dt_plan_in *in,
                       double mem, const dt_plan_layout *rows, int n_rows, int best) {
  dt_plan_out out, full;
  DT_CALL(dt_plan_compute(in, mc, &out));
  DT_CHECK(out.trainable > 0, DT_EUSAGE, "--method %s trains no parameter on this model (%s)",
           in->methods, in->model);
  const int max_nodes = dt_opt_int(o, "max-nodes");
  int mn = 0, mtp = 0, fmn = 0, fmtp = 0;
  if (mem > 0) DT_CALL(dt_plan_min_nodes(in, mc, mem, max_nodes, &mn, &mtp));
  dt_plan_in fin = *in;
  fin.methods = "full";
  fin.weights = 0;
  fin.matmul_bf16 = 0;
  const int cmp = dt_opt_bool(o, "compare-full") && strcmp(in->methods, "full") != 0;
  if (cmp) {
    DT_CALL(dt_plan_compute(&fin, mc, &full));
    if (mem > 0) DT_CALL(dt_plan_min_nodes(&fin, mc, mem, max_nodes, &fmn, &fmtp));
  }
  if (dt_opt_bool(o, "json")) {
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(in->model));
    json_object_set_new(j, "plan", plan_json(in, &out, mem));
    json_object_set_new(j, "full_finetuning", cmp ? plan_json(&fin, &full, mem) : json_null());
    json_t *s = json_object();
    const int R = dt_opt_int(o, "ranks-per-node");
    json_object_set_new(s, "mem_per_node", mem > 0 ? json_real(mem) : json_null());
    json_object_set_new(s, "nodes", mn ? json_integer(mn) : json_null());
    json_object_set_new(s, "tp", mn ? json_integer(mtp) : json_null());
    json_object_set_new(s, "dp", mn ? json_integer(mn * R / mtp) : json_null());
    json_object_set_new(s, "full_nodes", fmn ? json_integer(fmn) : json_null());
    json_object_set_new(s, "full_tp", fmn ? json_integer(fmtp) : json_null());
    json_object_set_new(j, "smallest_fit", s);
    json_object_set_new(j, "layouts", rows ? layouts_json(rows, n_rows, best) : json_null());
    json_object_set_new(j, "machine", machine_json(mc));
    char *txt = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    DT_CHECK(txt, DT_ENOMEM, "the JSON plan");
    printf("%s\n", txt);
    free(txt);
    fflush(stdout);
    return DT_OK;
  }
  char a[64], b2[64];
  dt_model m;
  DT_CALL(dt_model_describe(&m, in->model, in->weights, 0, 1, 0));
  const dt_config *c = &m.bb->cfg;
  printf("deltatune plan: %s\n", in->model);
  printf("backbone: %s, %d layers, d=%d, %d heads / %d kv (head dim %d), ffn %d, vocab %d: "
         "%lld parameters (%s at %s)\n",
         dt_cfg_arch(c)->name, c->n_layer, c->d_model, c->n_head,
         c->n_kv_head, c->head_dim, c->d_ffn, c->vocab, (long long)out.frozen_params,
         fmt_bytes(a, sizeof a, (double)out.weight_bytes_total), dt_wdtype_name(in->weights));
  dt_model_free(&m);
  printf("layout: %d nodes x %d ranks = %d ranks: %d data-parallel x %d tensor-parallel; %s\n",
         in->nodes, in->ranks_per_node, out.ranks, out.dp, out.tp,
         out.tp == 1 ? "no tensor-group sums"
         : out.shm ? "tensor-group sums through shared memory (a group shares a node)"
                   : "tensor-group sums by MPI_Allreduce (a group spans nodes)");
  printf("batch: %d rows (%d per replica) x %d tokens", in->batch, out.B_local, in->seq);
  if (out.n_virtual) printf(" + %d virtual", out.n_virtual);
  if (out.n_prefix) printf(", %d prefix key/values", out.n_prefix);
  printf(", %d task(s)%s", in->tasks, in->tasks > 1 ? " (combined batch)" : "");
  if (out.passes > 1) printf(", %d passes of %d rows (--micro-batch)", out.passes, out.B_pass);
  printf("\n");
  print_plan(in, &out, mem, "plan");
  if (cmp) print_plan(&fin, &full, mem, "full fine-tuning, same layout");
  if (mem > 0) {
    const int R = in->ranks_per_node;
    if (mn)
      printf("smallest node count for --mem-per-node %s: %d nodes of %d ranks (tp %d, dp %d)",
             fmt_bytes(b2, sizeof b2, mem), mn, R, mtp, mn * R / mtp);
    else
      printf("no node count up to %d fits --mem-per-node %s", max_nodes,
             fmt_bytes(b2, sizeof b2, mem));
    if (cmp && fmn) printf("; full fine-tuning: %d nodes (tp %d)", fmn, fmtp);
    else if (cmp) printf("; full fine-tuning: none up to %d nodes", max_nodes);
    printf("\n");
  }
  if (rows) print_layouts(in, rows, n_rows, best, mem);
  print_machine(mc);
  fflush(stdout);
  return DT_OK;
}

/* Everything after the options, on rank 0. */
static int plan_main(const dt_options *o, const dt_machine *mc) {
  dt_plan_in in;
  memset(&in, 0, sizeof in);
  in.model = dt_opt_str(o, "model");
  in.methods = dt_opt_str(o, "method");
  DT_CALL(dt_split_heads(dt_opt_str(o, "tp-heads"), in.methods, 0, &in.split_heads));
  /* the layout search tries every --tp: rows there where they can be shared */
  if (in.split_heads == DT_SPLIT_HEADS_ASKED && !dt_opt_given(o, "tp")) in.split_heads = 1;
  in.opt = o;
  in.nodes = dt_opt_int(o, "nodes");
  in.ranks_per_node = dt_opt_int(o, "ranks-per-node");
  in.tp = dt_opt_int(o, "tp");
  in.batch = dt_opt_int(o, "batch-size");
  in.seq = dt_opt_int(o, "seq-len");
  dt_wdtype wd;
  DT_CALL(dt_weights_dtype_parse(dt_opt_str(o, "weights-dtype"), &wd));
  in.weights = (int)wd;
  in.matmul_bf16 = strcmp(dt_opt_str(o, "matmul-dtype"), "bf16") == 0;
  in.share_weights = dt_opt_str(o, "share-weights");
  DT_CALL(dt_matmul_dtype_check(dt_opt_str(o, "matmul-dtype"), dt_opt_str(o, "weights-dtype")));
  in.tasks = dt_opt_int(o, "tasks");
  in.recompute = dt_opt_bool(o, "recompute");
  in.micro = dt_opt_int(o, "micro-batch");
  in.scored_per_row = dt_opt_is_set(o, "scored-per-row") ? dt_opt_int(o, "scored-per-row") : -1;
  in.data_rows = dt_opt_int(o, "data-rows");
  in.seed = 1;
  double mem = 0;
  if (dt_opt_is_set(o, "mem-per-node")) DT_CALL(parse_mem(dt_opt_str(o, "mem-per-node"), &mem));
  DT_CHECK(strcmp(in.methods, "none") != 0 && *in.methods, DT_EUSAGE,
           "--method none trains nothing; name the method(s) to plan");
  dt_plan_layout *rows = NULL;
  int n_rows = 0, best = -1;
  if (dt_opt_bool(o, "layouts")) {
    DT_CALL(dt_calloc(&rows, DT_PLAN_LAYOUTS_MAX * sizeof *rows, "layout advisor rows"));
    const int rc = dt_plan_layouts(&in, mc, mem, rows, DT_PLAN_LAYOUTS_MAX, &n_rows, &best);
    if (rc) {
      free(rows);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
    /* without --tp the plan below is the advisor's pick */
    if (!dt_opt_given(o, "tp") && best >= 0) in.tp = rows[best].tp;
  }
  const int rc = plan_report(o, mc, &in, mem, rows, n_rows, best);
  free(rows);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

int dt_cmd_plan(int argc, char **argv) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  dt_optgroup g[MAX_GROUPS];
  int ng = 0;
  g[ng++] = (dt_optgroup){"plan", "Plan", plan_opts};
  for (int i = 0; i < dt_method_count() && ng < MAX_GROUPS; i++)
    if (dt_method_at(i)->options) g[ng++] = *dt_method_at(i)->options;
  dt_options *o = calloc(1, sizeof *o);
  DT_CHECK(o, DT_ENOMEM, "options");
  int rc = dt_options_parse(o, "plan", g, ng, argc, argv);
  if (rc == DT_OK && o->help) {
    if (rank == 0)
      dt_options_print_help(stdout, "plan",
                            "Memory, time, storage and communication of a training job before "
                            "it is submitted (docs/plan.md).",
                            g, ng);
    free(o);
    return DT_OK;
  }
  const int calibrate = rc == DT_OK && dt_opt_bool(o, "calibrate");
  if (rc == DT_OK && !calibrate && !dt_opt_is_set(o, "model"))
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--model is required (synthetic:<preset> or a HF folder; see deltatune "
                      "plan --help)");
  if (rc == DT_OK) rc = dt_methods_check_options(o, dt_opt_str(o, "method"));
  char path[1024] = "";
  if (rc == DT_OK) {
    if (dt_opt_is_set(o, "machine")) snprintf(path, sizeof path, "%s", dt_opt_str(o, "machine"));
    else rc = dt_machine_default_path(path, sizeof path);
  }
  dt_machine mc;
  dt_machine_defaults(&mc);
  if (rc == DT_OK && calibrate) {
    rc = dt_machine_calibrate(&mc, dt_opt_float(o, "calibrate-seconds")); /* collective */
    if (rc == DT_OK && rank == 0) {
      rc = dt_machine_save(&mc, path);
      snprintf(mc.source, sizeof mc.source, "%s", path);
      if (rc == DT_OK && !dt_opt_bool(o, "json")) {
        printf("calibrated: written to %s\n", path);
        print_machine(&mc);
      }
    }
  } else if (rc == DT_OK && rank == 0) {
    int found;
    rc = dt_machine_load(&mc, path, &found);
  }
  /* the plan itself: one process computes, every rank returns its verdict */
  if (rc == DT_OK && rank == 0 && dt_opt_is_set(o, "model")) rc = plan_main(o, &mc);
  free(o);
  int all = rc;
  MPI_Bcast(&all, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rc == DT_OK && all != DT_OK)
    rc = dt_error_set(all, __FILE__, __LINE__, __func__, "deltatune plan failed on rank 0");
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
