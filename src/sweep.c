/* deltatune sweep: many tasks (methods, data, hyper-parameters, seeds)
 * trained concurrently on one loaded backbone.
 *
 * Task file (INI, parsed by inih): one section per task, [task NAME]; keys
 * are `deltatune train` options without the dashes (method, data,
 * batch-size, steps, lr, schedule, warmup-steps, seed, out, metrics,
 * init-from, method options...). Tasks that add no positions (LoRA,
 * adapters, IA3) and share a sequence length train as ONE combined batch:
 * each frozen GEMM runs once over all their rows and each task's delta acts
 * on its own rows. Prefix and prompt tasks (their own extra positions)
 * form their own groups. Each task keeps its optimizer, schedule, metrics
 * and output; a task that ends leaves its group (re-planned), a task that
 * fails (bad data, diverging loss) is reported and dropped. A task whose
 * method trains backbone tensors (full, lastlayer, bitfit, said) gets a
 * private copy of the backbone and a group of its own. */
#include <ini.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "batch.h"
#include "ckpt_run.h"
#include "timer.h"
#include "commands.h"
#include "dataset.h"
#include "agree.h"
#include "error.h"
#include "mpicheck.h"
#include "outpaths.h"
#include "gemm_bf16.h"
#include "hf_config.h"
#include "gradsync.h"
#include "interrupt.h"
#include "median.h"
#include "memstat.h"
#include "method.h"
#include "model.h"
#include "optim.h"
#include "options.h"
#include "params.h"
#include "optgroups.h"
#include "quant.h"
#include "params_dist.h"
#include "taskfile.h"
#include "textdata.h"
#include "trainer.h"

int dt_train_task_groups(dt_optgroup *g, int max);

/* The sweep's own options; the backbone's and the numerical faults' are
 * the shared groups (src/optgroups.h), as for train. */
/* --weights-dtype as dt_model_load takes it (the option's choices are
 * checked when it is parsed) */
static int weights_of(const dt_options *o) {
  dt_wdtype w = DT_W_FP32;
  (void)dt_weights_dtype_parse(dt_opt_str(o, "weights-dtype"), &w);
  return (int)w;
}

static const dt_optdef sweep_opts[] = {
    {"tasks", DT_OPT_STRING, NULL, 0, 0, NULL,
     "task file (INI): one [task NAME] section per task with train options as keys (required)"},
    {"trim-padding", DT_OPT_BOOL, "yes", 0, 0, NULL,
     "run each group's combined batch only up to its rows' last scored token (the same loss "
     "and gradients: the model is causal)"},
    {"log-every", DT_OPT_INT, "10", 1, 1000000000, NULL, "progress lines every N steps"},
    {"backbone-seed", DT_OPT_INT, "1", 0, 2147483647, NULL, "seed of a synthetic backbone"},
    {"resume", DT_OPT_BOOL, "no", 0, 0, NULL,
     "every task continues from the newest complete checkpoint in its 'out' folder (every "
     "task needs one); tasks that finished stay finished"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* the task file: src/taskfile.h (parsed and checked before anything loads) */
#define MAX_TASKS DT_TASK_MAX
#define MAX_KV DT_TASK_MAX_KV
typedef dt_task_src task_src;

typedef struct {
  task_src src;
  dt_options opt;
  dt_dataset data;
  dt_params params;
  dt_method **methods;
  int n_methods;
  dt_trainer tr; /* optimizer, fault policy, metrics (src/trainer.h) */
  dt_row_order rows;
  int B_global, B_local, steps, nv, np;
  int64_t step;
  int group;   /* index of its group, -1 once done or failed */
  int state;   /* 0 running, 1 done, 2 failed */
  char why[512];
  dt_model *own; /* private backbone (methods that train backbone tensors) */
  int data_shared; /* data is an earlier task's (same file): not freed here */
  int64_t start;   /* the step it started at (a checkpoint's with --resume) */
  dt_train_state ck_state; /* what its checkpoints hold (with 'out') */
  dt_train_ckpt ck;        /* its checkpoints in 'out' (ck.dir NULL: none) */
} task;

static int task_has_key(const task *t, const char *key) {
  for (int i = 0; i < t->src.nkv; i++)
    if (!strcmp(t->src.key[i], key)) return 1;
  return 0;
}

/* Parse a task's options through the same tables as `deltatune train`
 * (model, data, training, checkpoints, every method's); the properties of
 * the shared backbone (sw: --model, --weights-dtype, --matmul-dtype, --tp, --tp-heads, --recompute) are
 * the sweep's, so that the task's checkpoints record them; sweep --resume
 * is every task's resume. */
static int task_options(task *t, const char *file, const dt_options *sw) {
  /* the backbone's properties first, then the numerical-fault options:
   * defaults a task may set itself */
  static const char *const shared[] = {"model", "weights-dtype", "matmul-dtype", "tp", "tp-heads",
                                       "recompute", "nan-policy", "nan-max-skips"};
  enum { NSHARED = sizeof shared / sizeof *shared, NBACKBONE = 6 };
  char *argv[MAX_KV + NSHARED + 1];
  static char bufs[MAX_KV + NSHARED + 1][DT_OPTVAL_MAX + 72];
  int argc = 0;
  for (int i = 0; i < NSHARED; i++) {
    if (i >= NBACKBONE && (task_has_key(t, shared[i]) || !dt_opt_given(sw, shared[i]))) continue;
    snprintf(bufs[argc], sizeof bufs[0], "--%s=%s", shared[i], dt_opt_str(sw, shared[i]));
    argv[argc] = bufs[argc];
    argc++;
  }
  const int has_out = task_has_key(t, "out");
  if (dt_opt_bool(sw, "resume")) {
    DT_CHECK(has_out, DT_EUSAGE,
             "--resume: %s [task %s] has no 'out' folder (where its checkpoints are): it cannot "
             "continue", file, t->src.name);
    if (!task_has_key(t, "resume")) {
      snprintf(bufs[argc], sizeof bufs[0], "--resume=yes");
      argv[argc] = bufs[argc];
      argc++;
    }
  }
  for (int i = 0; i < t->src.nkv; i++) {
    snprintf(bufs[argc], sizeof bufs[0], "--%s=%s", t->src.key[i], t->src.val[i]);
    argv[argc] = bufs[argc];
    argc++;
  }
  dt_optgroup g[40];
  int ng = dt_train_task_groups(g, 39);
  g[ng++] = dt_ckpt_train_group;
  int rc = dt_options_parse(&t->opt, "sweep task", g, ng, argc, argv);
  if (rc) { /* the message is copied first: dt_error_set writes where it lies */
    char msg[1500];
    snprintf(msg, sizeof msg, "%s", dt_error_message());
    DT_ERR(rc, "%s [task %s]: %s", file, t->src.name, msg);
  }
  DT_CHECK(dt_opt_is_set(&t->opt, "data"), DT_EUSAGE, "%s [task %s]: 'data' is required", file,
           t->src.name);
  static const char *const need_out[] = {"save-every", "save-optimizer", "keep", "resume"};
  for (size_t k = 0; !has_out && k < sizeof need_out / sizeof *need_out; k++)
    DT_CHECK(!dt_opt_given(&t->opt, need_out[k]), DT_EUSAGE,
             "%s [task %s]: '%s' needs 'out' (the folder of the task's checkpoints)", file,
             t->src.name, need_out[k]);
  DT_CALL(dt_task_check(&t->opt, &t->src, file)); /* methods and their options */
  if (dt_fault_options_check(&t->opt)) {
    char msg[1500];
    snprintf(msg, sizeof msg, "%s", dt_error_message());
    DT_ERR(DT_EUSAGE, "%s [task %s]: %s", file, t->src.name, msg);
  }
  return DT_OK;
}

/* Does the comma-separated method list train backbone tensors? */
static int trains_backbone(const char *list) {
  return dt_methods_write_backbone(list);
}

typedef struct {
  const dt_model *base; /* owns the backbone the group's tasks use (base->bb) */
  dt_model ws; /* the group's workspace on that backbone */
  int T, nv, np, planned;
  int32_t *ids, *labels;
  float *row_norm;
  double *row_loss;
  int64_t *row_scored;
  dt_method **ms;
} group;

static void group_free(group *g) {
  dt_model *v = &g->ws;
  dt_model_free_workspace(v);
  free(g->ids);
  free(g->labels);
  free(g->row_norm);
  free(g->row_loss);
  free(g->row_scored);
  free(g->ms);
  g->ids = g->labels = NULL;
  g->row_norm = NULL;
  g->row_loss = NULL;
  g->row_scored = NULL;
  g->ms = NULL;
  memset(v, 0, sizeof *v);
  g->planned = 0;
}

/* (Re)plan a group: its running tasks' rows, in task order. */
static int plan_group(group *g, const dt_model *base, task *ts, int nt, int gi, int recompute) {
  group_free(g);
  dt_model_workspace(&g->ws, base);
  dt_model *v = &g->ws;
  int B = 0, nm = 0;
  for (int k = 0; k < nt; k++)
    if (ts[k].group == gi) {
      B += ts[k].B_local;
      nm += ts[k].n_methods;
    }
  if (B == 0) return DT_OK;
  DT_CALL(dt_malloc(&g->ms, sizeof(dt_method *) * (size_t)nm, "sweep methods"));
  int row = 0, j = 0;
  for (int k = 0; k < nt; k++)
    if (ts[k].group == gi) {
      for (int i = 0; i < ts[k].n_methods; i++) {
        dt_method *me = ts[k].methods[i];
        me->row0 = row;
        me->nrows = ts[k].B_local;
        me->model = v;
        g->ms[j++] = me;
      }
      row += ts[k].B_local;
    }
  DT_CALL(dt_model_set_methods(v, g->ms, nm));
  /* the prefix/prompt of a group's only task applies to all its rows */
  if (g->nv || g->np)
    for (int i = 0; i < nm; i++) g->ms[i]->nrows = 0;
  DT_CALL(dt_model_plan(v, B, g->T, recompute));
  DT_CALL(dt_malloc(&g->ids, sizeof(int32_t) * (size_t)B * g->T, "sweep batch"));
  DT_CALL(dt_malloc(&g->labels, sizeof(int32_t) * (size_t)B * g->T, "sweep batch"));
  DT_CALL(dt_malloc(&g->row_norm, sizeof(float) * (size_t)B, "sweep batch"));
  DT_CALL(dt_calloc(&g->row_loss, sizeof(double) * (size_t)B, "sweep batch"));
  DT_CALL(dt_calloc(&g->row_scored, sizeof(int64_t) * (size_t)B, "sweep batch"));
  v->row_norm = g->row_norm;
  v->row_loss = g->row_loss;
  v->row_scored = g->row_scored;
  g->planned = 1;
  return DT_OK;
}

static void task_fail(task *t, int rank, const char *fmt, const char *msg) {
  t->state = 2;
  t->group = -1;
  snprintf(t->why, sizeof t->why, fmt, msg);
  if (rank == 0) {
    printf("task %s: FAILED: %s (dropped; the other tasks go on)\n", t->src.name, t->why);
    fflush(stdout);
  }
}

/* Stopped by a signal at a step boundary: every running task writes the
 * checkpoint of the steps it has done (tasks with 'out'), rank 0 says so,
 * and the sweep ends with DT_EINTERRUPT on every rank (agreed). */
static int stop_interrupted(task *ts, int nt, int sig, int64_t step, int rank) {
  int saved = 0, lost = 0;
  for (int k = 0; k < nt; k++) {
    task *t = &ts[k];
    if (t->state != 0 || t->group < 0) continue;
    if (!t->ck.dir) {
      lost++;
      if (rank == 0)
        printf("interrupted: task %s: no 'out' folder: its %lld steps done are lost\n",
               t->src.name, (long long)t->step);
      continue;
    }
    DT_CALL(dt_train_ckpt_save(&t->ck, &t->ck_state, t->step, 1, t->tr.loss0, t->tr.last));
    saved++;
    if (rank == 0)
      printf("interrupted: task %s: checkpoint %s holds step %lld of %d\n", t->src.name,
             t->ck.saved_path, (long long)t->ck.saved_step, t->steps);
  }
  if (rank == 0) {
    printf("interrupted: %s at sweep step %lld: every task stopped at this step boundary; %d "
           "checkpoint(s) written%s; rerun with --resume to continue (exit code %d)\n",
           dt_signal_name(sig), (long long)step, saved,
           lost ? ", the steps of the tasks without 'out' are lost" : "", DT_EINTERRUPT);
    fflush(stdout);
  }
  dt_error_set(DT_EINTERRUPT, __FILE__, __LINE__, __func__,
               "sweep interrupted by %s at step %lld; %d task checkpoint(s) written; rerun "
               "with --resume to continue", dt_signal_name(sig), (long long)step, saved);
  dt_error_mark_agreed();
  return DT_EINTERRUPT;
}

/* A task reached its last step: the final checkpoint and deltas into 'out'. */
static int finish_task(task *t, dt_dist *dist, int rank) {
  t->state = 1;
  t->group = -1;
  if (dt_opt_is_set(&t->opt, "out")) {
    DT_CALL(dt_train_ckpt_save(&t->ck, &t->ck_state, t->step, 1, t->tr.loss0, t->tr.last));
    char path[4200];
    snprintf(path, sizeof path, "%s/deltas.safetensors", dt_opt_str(&t->opt, "out"));
    DT_CALL(dt_params_save_dist(&t->params, path, 0, dist));
  }
  if (rank == 0) {
    if (t->start >= t->steps)
      printf("task %s: finished already (checkpoint %s, step %lld)\n", t->src.name,
             t->ck.saved_path, (long long)t->ck.saved_step);
    else
      printf("task %s: done after %d steps, loss %.4f -> %.4f%s%s\n", t->src.name, t->steps,
             t->tr.loss0, t->tr.last, t->ck.dir ? "; checkpoint " : "",
             t->ck.dir ? t->ck.saved_path : "");
    fflush(stdout);
  }
  return DT_OK;
}

static int sweep_run(int argc, char **argv) {
  int rank, nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  dt_options o;
  const dt_optgroup sg[] = {{"sweep", "Sweep", sweep_opts}, dt_backbone_group, dt_fault_group};
  enum { NSG = sizeof sg / sizeof *sg };
  DT_CALL(dt_options_parse(&o, "sweep", sg, NSG, argc, argv));
  if (o.help) {
    if (rank == 0)
      dt_options_print_help(stdout, "sweep",
                            "Train many tasks concurrently on one loaded backbone. Each [task NAME] "
                            "section of the task file takes `deltatune train` options as keys.",
                            sg, NSG);
    return DT_OK;
  }
  DT_CHECK(dt_opt_is_set(&o, "model") && dt_opt_is_set(&o, "tasks"), DT_EUSAGE,
           "--model and --tasks are required (see deltatune sweep --help)");
  DT_CALL(dt_fault_options_check(&o));
  const char *file = dt_opt_str(&o, "tasks");
  /* the task file and every task's options, before the backbone is loaded */
  dt_taskfile *tf;
  DT_CALL(dt_calloc(&tf, sizeof *tf, "task file"));
  int prc = dt_taskfile_parse(tf, file);
  const int nt = tf->n;
  task *ts = NULL;
  if (prc == DT_OK) prc = dt_calloc(&ts, sizeof(task) * (size_t)nt, "tasks");
  for (int k = 0; prc == DT_OK && k < nt; k++) ts[k].src = tf->t[k];
  free(tf);
  if (prc) return dt_error_trace(prc, __FILE__, __LINE__, __func__);

  /* options errors are the user's to fix before anything runs; until the
   * task loop below, a failure frees what was set up so far */
  for (int k = 0; prc == DT_OK && k < nt; k++) prc = task_options(&ts[k], file, &o);
  /* no two tasks write to the same place, and no other run writes into
   * their folders: resolved, compared and locked before anything loads */
  dt_output_spec *outs = NULL;
  if (prc == DT_OK) prc = dt_calloc(&outs, sizeof *outs * (size_t)(nt + 1), "task outputs");
  for (int k = 0; prc == DT_OK && k < nt; k++) {
    const dt_options *to = &ts[k].opt;
    outs[k].task = ts[k].src.name;
    outs[k].out = dt_opt_is_set(to, "out") ? dt_opt_str(to, "out") : NULL;
    outs[k].metrics = dt_opt_is_set(to, "metrics") ? dt_opt_str(to, "metrics") : NULL;
  }
  if (prc == DT_OK) prc = dt_outputs_lock_sweep(file, outs, nt, MPI_COMM_WORLD);
  free(outs);
  if (prc) {
    free(ts);
    return dt_error_trace(prc, __FILE__, __LINE__, __func__);
  }

  const int matmul_bf16 = !strcmp(dt_opt_str(&o, "matmul-dtype"), "bf16");
  prc = dt_matmul_dtype_check(dt_opt_str(&o, "matmul-dtype"), dt_opt_str(&o, "weights-dtype"));
  if (prc) {
    free(ts);
    return dt_error_trace(prc, __FILE__, __LINE__, __func__);
  }
  /* every task's data file, checked against the vocabulary before the
   * backbone is built (tasks on one file share one copy), and its methods'
   * options against the configuration; a task whose data or options cannot
   * be used is dropped here, the others go on; the ranks agree */
  {
    const char *spec = dt_opt_str(&o, "model");
    dt_config pc;
    memset(&pc, 0, sizeof pc);
    prc = strncmp(spec, "synthetic:", 10) == 0 ? dt_synthetic_config_parse(&pc, spec)
                                               : dt_hf_config_load(&pc, spec);
    prc = dt_agree(prc, MPI_COMM_WORLD);
    for (int k = 0; prc == DT_OK && k < nt; k++) {
      task *t = &ts[k];
      for (int j = 0; j < k && !t->data_shared; j++)
        if (ts[j].data.input_ids && !ts[j].data_shared && dt_data_same(&ts[j].opt, &t->opt)) {
          t->data = ts[j].data;
          t->data_shared = 1;
        }
      char dp[4096]; /* --data, or the token cache of FILE.jsonl (collective) */
      int rc = t->data_shared ? DT_OK : dt_data_prepare(&t->opt, spec, MPI_COMM_WORLD, dp, sizeof dp);
      if (rc == DT_OK && !t->data_shared) rc = dt_dataset_load(&t->data, dp, pc.vocab);
      /* and its methods' options against the configuration (their targets) */
      if (rc == DT_OK) rc = dt_methods_check_config(&t->opt, dt_opt_str(&t->opt, "method"), &pc);
      rc = dt_agree(rc, MPI_COMM_WORLD);
      if (rc) {
        if (!t->data_shared) dt_dataset_free(&t->data);
        memset(&t->data, 0, sizeof t->data);
        task_fail(t, rank, "%s", dt_error_message());
      }
    }
    if (prc) {
      for (int k = 0; k < nt; k++)
        if (!ts[k].data_shared) dt_dataset_free(&ts[k].data);
      free(ts);
      return dt_error_trace(prc, __FILE__, __LINE__, __func__);
    }
  }
  dt_dist dist;
  prc = dt_dist_init(&dist, dt_opt_int(&o, "tp"));
  if (prc) {
    free(ts);
    return dt_error_trace(prc, __FILE__, __LINE__, __func__);
  }
  /* the shared backbone is never written: its heads split as a reader's */
  prc = dt_split_heads(dt_opt_str(&o, "tp-heads"), "none", 0, &dist.split_heads);
  dt_model base;
  if (prc == DT_OK)
    prc = dt_model_load(&base, dt_opt_str(&o, "model"), weights_of(&o),
                      (uint64_t)dt_opt_int(&o, "backbone-seed"), &dist,
                      /* the shared backbone is never written: a task that writes
                       * backbone tensors gets a private one */
                      dt_share_weights(dt_opt_str(&o, "share-weights"), "none"));
  if (prc == DT_OK && matmul_bf16) {
    const char *impl;
    base.matmul_bf16 = 1;
    prc = dt_agree(dt_gemm_bf16_probe(&impl), MPI_COMM_WORLD);
  }
  if (prc) {
    dt_dist_free(&dist);
    free(ts);
    return dt_error_trace(prc, __FILE__, __LINE__, __func__);
  }
  /* the shared backbone's identity, once, for the tasks' checkpoints */
  int any_out = 0;
  for (int k = 0; k < nt; k++) any_out |= dt_opt_is_set(&ts[k].opt, "out");
  dt_backbone_id bb_id;
  memset(&bb_id, 0, sizeof bb_id);
  if (any_out)
    prc = dt_backbone_identify(&bb_id, &base.bb->cfg, (uint64_t)dt_opt_int(&o, "backbone-seed"), dist.world);
  if (prc) {
    dt_model_free(&base);
    dt_dist_free(&dist);
    free(ts);
    return dt_error_trace(prc, __FILE__, __LINE__, __func__);
  }

  /* per task: data, methods, optimizer; a task that cannot start is dropped */
  for (int k = 0; k < nt; k++) {
    task *t = &ts[k];
    const dt_options *to = &t->opt;
    t->group = -1;
    /* its data was loaded (or the task dropped) before the backbone */
    int rc = DT_OK;
    if (t->state == 2) continue;
    dt_model *mb = &base;
    if (trains_backbone(dt_opt_str(to, "method"))) {
      /* the task changes backbone tensors: it gets its own copy */
      rc = dt_calloc(&t->own, sizeof *t->own, "private backbone");
      /* rewritten by the task: one copy per rank, not shared, its heads
       * whole (dt_split_heads) */
      const int split = dist.split_heads;
      dist.split_heads = 0;
      if (rc == DT_OK)
        rc = dt_model_load(t->own, dt_opt_str(&o, "model"),
                           weights_of(&o),
                           (uint64_t)dt_opt_int(&o, "backbone-seed"), &dist, 0);
      dist.split_heads = split;
      if (rc == DT_OK) t->own->matmul_bf16 = matmul_bf16;
      mb = t->own;
    }
    if (rc == DT_OK)
      rc = dt_methods_create(dt_opt_str(to, "method"), to, mb, &t->params,
                             (uint64_t)dt_opt_int(to, "seed"), &t->methods, &t->n_methods);
    if (rc == DT_OK && t->params.numel == 0)
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__, "the method trains nothing");
    if (rc == DT_OK && dt_opt_is_set(to, "init-from"))
      rc = dt_params_load(&t->params, dt_opt_str(to, "init-from"));
    t->B_global = dt_opt_int(to, "batch-size");
    if (rc == DT_OK && t->B_global % dist.dp_size)
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                        "batch-size %d is not divisible by the %d data-parallel replicas",
                        t->B_global, dist.dp_size);
    if (rc == DT_OK) rc = dt_trainer_init(&t->tr, to, &t->params, &dist);
    t->tr.task = t->src.name;
    t->steps = t->tr.steps;
    if (rc) {
      task_fail(t, rank, "%s", dt_error_message());
      continue;
    }
    t->B_local = t->B_global / dist.dp_size;
    for (int i = 0; i < t->n_methods; i++) {
      const dt_method *me = t->methods[i];
      if (me->ops->virtual_tokens) t->nv += me->ops->virtual_tokens(me);
      if (me->ops->prefix_tokens) t->np += me->ops->prefix_tokens(me);
    }
    /* checkpoints in 'out', as train's: resume restores the deltas, AdamW
     * and the methods' counters, and gives the step to continue at */
    t->ck_state = (dt_train_state){to,         &mb->bb->cfg, &t->params,   &t->tr.optim,
                                   t->methods, t->n_methods, t->steps,     t->B_global,
                                   &t->data,   dist.tp_size, dist.tp,      &bb_id};
    if (dt_opt_is_set(to, "out")) {
      double loss_first = NAN;
      rc = dt_train_ckpt_begin(&t->ck, &t->ck_state, &t->params, &t->tr.optim, &t->start,
                               &loss_first, dist.world);
      if (rc) {
        task_fail(t, rank, "%s", dt_error_message());
        continue;
      }
      t->step = t->start;
      t->tr.loss0 = loss_first;
      if (t->start >= t->steps) { /* it finished in an earlier run */
        rc = finish_task(t, &dist, rank);
        if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
        continue;
      }
    }
    if (dt_trainer_open_metrics(&t->tr, to, t->start)) {
      task_fail(t, rank, "cannot write its metrics file %s", dt_opt_str(to, "metrics"));
      continue;
    }
  }

  /* groups: tasks without extra positions sharing a sequence length train
   * as one combined batch; each prefix/prompt task is a group of its own */
  group groups[MAX_TASKS];
  memset(groups, 0, sizeof groups);
  int ngroups = 0;
  for (int k = 0; k < nt; k++) {
    task *t = &ts[k];
    if (t->state) continue;
    int gi = -1;
    if (!t->nv && !t->np && !t->own)
      for (int g = 0; g < ngroups; g++)
        if (!groups[g].nv && !groups[g].np && groups[g].base == &base &&
            groups[g].T == t->data.seq_len)
          gi = g;
    if (gi < 0) {
      gi = ngroups++;
      groups[gi].T = t->data.seq_len;
      groups[gi].nv = t->nv;
      groups[gi].np = t->np;
      groups[gi].base = t->own ? t->own : &base;
    }
    t->group = gi;
  }
  const int recompute = dt_opt_bool(&o, "recompute");
  const int trim = dt_opt_bool(&o, "trim-padding");
  int64_t tok_computed = 0, tok_rows = 0; /* this rank's, over the steps */
  for (int g = 0; g < ngroups; g++)
    DT_CALL(plan_group(&groups[g], groups[g].base, ts, nt, g, recompute));
  if (rank == 0) {
    printf("deltatune %s: sweep of %d tasks on %s, %d ranks (%d x %d), %d group(s)\n", DT_VERSION,
           nt, base.bb->cfg.source, nranks, dist.dp_size, dist.tp_size, ngroups);
    for (int k = 0; k < nt; k++)
      if (!ts[k].state)
        printf("task %-20s group %d: %s, %lld trainable, %d rows x %d tokens per step, %d steps"
               "%s\n", ts[k].src.name, ts[k].group, dt_opt_str(&ts[k].opt, "method"),
               (long long)ts[k].params.numel, ts[k].B_global, ts[k].data.seq_len, ts[k].steps,
               ts[k].start > 0 ? " (resumed)" : "");
    fflush(stdout);
  }

  const double t0 = dt_now();
  const int log_every = dt_opt_int(&o, "log-every");
  int rc = DT_OK;
  /* the sweep's step: that of its least advanced task (after --resume) */
  int64_t step0 = -1;
  for (int k = 0; k < nt; k++)
    if (ts[k].state == 0 && (step0 < 0 || ts[k].step < step0)) step0 = ts[k].step;
  /* each step's wall time and data tokens (the running tasks' rows x their
   * length), for the summary's median step and tokens/s */
  int max_steps = 1;
  for (int k = 0; k < nt; k++)
    if (ts[k].steps - (ts[k].step > 0 ? ts[k].step : 0) > max_steps)
      max_steps = (int)(ts[k].steps - (ts[k].step > 0 ? ts[k].step : 0));
  double *step_s = NULL, *step_tok = NULL;
  int n_timed = 0;
  DT_CALL(dt_malloc(&step_s, sizeof(double) * 2 * (size_t)max_steps, "the sweep's step times"));
  step_tok = step_s + max_steps;
  for (int64_t step = step0 > 0 ? step0 : 0; rc == DT_OK; step++) {
    const double t_step = dt_now();
    double tok_step = 0.0;
    /* a step boundary: SIGTERM / SIGUSR1 on any rank stops every task here
     * (a signal after the last step is ignored: the sweep finishes) */
    int running = 0;
    for (int k = 0; k < nt; k++) running += ts[k].state == 0 && ts[k].group >= 0;
    if (!running) break;
    int sig = 0;
    rc = dt_interrupt_agree(dist.world, &sig);
    if (rc) break;
    if (sig) {
      rc = stop_interrupted(ts, nt, sig, step, rank);
      break;
    }
    dt_interrupt_test_hook(step, rank);
    int any = 0;
    for (int g = 0; rc == DT_OK && g < ngroups; g++) {
      group *G = &groups[g];
      if (!G->planned) continue;
      any = 1;
      dt_model *v = &G->ws;
      const int T = G->T;
      /* the combined batch, each task's rows and loss scale */
      const double t_group = dt_now();
      int row = 0;
      for (int k = 0; k < nt; k++) {
        task *t = &ts[k];
        if (t->group != g) continue;
        int64_t nloc = 0, nglob = 0;
        for (int i = 0; i < t->B_local; i++, row++) {
          int64_t r = dt_batch_row(&t->opt, &t->rows, t->data.n_rows, t->B_global, t->step,
                                   (int64_t)dist.dp_rank * t->B_local + i);
          memcpy(G->ids + (size_t)row * T, t->data.input_ids + r * T, sizeof(int32_t) * T);
          memcpy(G->labels + (size_t)row * T, t->data.labels + r * T, sizeof(int32_t) * T);
          for (int c = 1; c < T; c++) nloc += G->labels[(size_t)row * T + c] != -100;
        }
        MPI_Allreduce(&nloc, &nglob, 1, MPI_INT64_T, MPI_SUM, dist.dp);
        for (int i = row - t->B_local; i < row; i++)
          G->row_norm[i] = nglob > 0 ? (float)(1.0 / (double)nglob) : 0.0f;
        dt_params_zero_grad(&t->params);
      }
      memset(G->row_loss, 0, sizeof(double) * (size_t)v->B);
      memset(G->row_scored, 0, sizeof(int64_t) * (size_t)v->B);
      dt_loss_stats st;
      if (G->base != &base) dt_model_zero_backbone_grads((dt_model *)G->base);
      /* cut the combined batch after its rows' last scored token (rows keep
       * their places: the tasks' row ranges and scales stay valid) */
      int Te = trim ? 2 : T;
      for (int i = 0; trim && i < v->B_max; i++)
        for (int c = T - 1; c >= Te; c--)
          if (G->labels[(size_t)i * T + c] != -100) {
            Te = c + 1;
            break;
          }
      for (int i = 1; Te < T && i < v->B_max; i++) {
        memmove(G->ids + (size_t)i * Te, G->ids + (size_t)i * T, sizeof(int32_t) * Te);
        memmove(G->labels + (size_t)i * Te, G->labels + (size_t)i * T, sizeof(int32_t) * Te);
      }
      tok_computed += (int64_t)v->B_max * Te;
      tok_rows += (int64_t)v->B_max * T;
      rc = dt_model_set_shape(v, v->B_max, Te);
      if (rc == DT_OK) rc = dt_model_forward(v, G->ids, G->labels, 1, 1.0, &st, NULL);
      if (rc == DT_OK) rc = dt_model_backward(v);
      if (rc) break;
      /* per task: its loss, gradient sync, update, log */
      int replan = 0;
      row = 0;
      for (int k = 0; k < nt; k++) {
        task *t = &ts[k];
        if (t->group != g) continue;
        dt_loss_stats tst; /* this rank's rows of the task; summed by the trainer */
        memset(&tst, 0, sizeof tst);
        for (int i = row; i < row + t->B_local; i++) {
          tst.loss_sum += G->row_loss[i];
          tst.n_scored += G->row_scored[i];
        }
        row += t->B_local;
        tok_step += (double)t->B_global * T;
        dt_step_out so;
        rc = dt_trainer_step(&t->tr, t->step, &tst, (double)t->B_global * T, t_group, &t->ck, &so);
        if (rc == DT_OK) {
          t->step++;
          if (t->step >= t->steps) {
            replan = 1;
            rc = finish_task(t, &dist, rank);
          } else {
            rc = dt_trainer_checkpoint(&t->tr, &t->ck, &t->ck_state, t->step);
          }
        }
        if (rc == DT_ENUMERIC) { /* this task's numbers (agreed): it fails, the others go on */
          char why[440];
          if (!isfinite(so.loss) || !isfinite(so.grad_norm)) /* the step's, not the update's */
            snprintf(why, sizeof why, "the %s is not finite at step %lld/%d (%.360s)",
                     isfinite(so.loss) ? "gradient norm" : "loss", (long long)t->step + 1,
                     t->steps, dt_error_message());
          else
            snprintf(why, sizeof why, "%.430s", dt_error_message());
          task_fail(t, rank, "%s", why);
          replan = 1;
          rc = DT_OK;
          continue;
        }
        if (rc) break;
      }
      if (rc == DT_OK && replan) rc = plan_group(G, G->base, ts, nt, g, recompute);
    }
    if (!any || rc) break;
    if (n_timed < max_steps) {
      step_s[n_timed] = dt_now() - t_step;
      step_tok[n_timed++] = tok_step;
    }
    if (rank == 0 && ((step + 1) % log_every == 0 || step == 0)) {
      printf("step %6lld  %.1fs ", (long long)step + 1, dt_now() - t0);
      for (int k = 0; k < nt; k++)
        if (ts[k].state == 0)
          printf("  %s %lld/%d %.4f", ts[k].src.name, (long long)ts[k].step, ts[k].steps, ts[k].tr.last);
      printf("\n");
      fflush(stdout);
    }
  }
  int failed = 0;
  /* memory at the end, the ranks together (collective: a rank with an error
   * here is one that did not agree it, and main's abort ends the job) */
  double mem[3] = {dt_pss_mb(), dt_peak_rss_mb(), 0.0};
  if (rc == DT_OK) {
    mem[2] = mem[1];
    MPI_Allreduce(MPI_IN_PLACE, mem, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, mem + 2, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  }
  if (rank == 0 && rc == DT_OK) {
    printf("sweep summary (%.1fs):\n", dt_now() - t0);
    if (n_timed > 0) {
      const double med_s = dt_median_after_first(step_s, n_timed),
                   med_tok = dt_median_after_first(step_tok, n_timed);
      printf("  median step %.3fs: %.0f tokens/s (the tasks' rows together, a median of %.0f tokens a "
             "step; %d steps timed)\n", med_s, med_tok / med_s, med_tok, n_timed);
    }
    printf("  memory of the %d rank(s) together at the end %.0f MB (proportional set size: a shared "
           "page counts once); peak RSS per rank %.0f MB (largest)\n", nranks, mem[0], mem[2]);
    if (tok_computed < tok_rows)
      printf("  %lld of the %lld tokens of rank 0's combined batches computed (--trim-padding)\n",
             (long long)tok_computed, (long long)tok_rows);
    for (int k = 0; k < nt; k++) {
      const task *t = &ts[k];
      if (t->state == 2) failed++;
      printf("  %-20s %-8s %s\n", t->src.name, t->state == 1 ? "done" : "FAILED",
             t->state == 1 ? "" : t->why);
    }
  }
  free(step_s);
  for (int g = 0; g < ngroups; g++) group_free(&groups[g]);
  for (int k = 0; k < nt; k++) {
    task *t = &ts[k];
    dt_methods_destroy(t->methods, t->n_methods);
    dt_params_free(&t->params);
    dt_trainer_free(&t->tr);
    if (!t->data_shared) dt_dataset_free(&t->data);
    dt_row_order_free(&t->rows);
    if (t->own) dt_model_free(t->own);
    free(t->own);
  }
  free(ts);
  dt_model_free(&base);
  dt_dist_free(&dist);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
  DT_CHECK(failed == 0, DT_EINPUT, "%d task(s) of the sweep failed (see above)", failed);
  return DT_OK;
}

int dt_cmd_sweep(int argc, char **argv) {
  dt_interrupt_install(); /* from the start: a signal during setup stops at the first step */
  const int rc = sweep_run(argc, argv);
  dt_interrupt_uninstall();
  return rc;
}
