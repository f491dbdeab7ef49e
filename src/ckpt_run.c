/* Checkpoints in the drivers: saves into --out, --resume, eval --checkpoint.
 * See ckpt_run.h and docs/checkpoint.md. */
#include "ckpt_run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"

/* a stored option holds any value the options accept */
_Static_assert(DT_CKPT_VALUE_MAX == DT_OPTVAL_MAX, "checkpoint option values: DT_CKPT_VALUE_MAX");

static const dt_optdef train_ckpt_opts[] = {
    {"save-every", DT_OPT_INT, "0", 0, 1000000000, NULL,
     "also write OUT/ckpt-<step>.nc every N steps (0: only the final one)"},
    {"save-optimizer", DT_OPT_BOOL, "yes", 0, 0, NULL,
     "store AdamW's moments in checkpoints (needed to resume exactly; no: deltas only, a "
     "third of the size)"},
    {"keep", DT_OPT_INT, "3", 0, 1000000000, NULL,
     "keep the N newest checkpoints in --out (0: keep all)"},
    {"resume", DT_OPT_BOOL, "no", 0, 0, NULL,
     "continue from the newest complete checkpoint in --out (start at step 0 when there is "
     "none); backbone, methods and their options must match; --steps counts from the start"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
const dt_optgroup dt_ckpt_train_group = {"checkpoint", "Checkpoints (in --out)",
                                         train_ckpt_opts};

static const dt_optdef eval_ckpt_opts[] = {
    {"checkpoint", DT_OPT_STRING, NULL, 0, 0, NULL,
     "evaluate the backbone + the deltas of this checkpoint (OUT/ckpt-<step>.nc); the "
     "methods, their options, --seed, --model and --weights-dtype default to the file's"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
const dt_optgroup dt_ckpt_eval_group = {"checkpoint", "Checkpoint", eval_ckpt_opts};

/* --- options in and out of a file --------------------------------------- */

int dt_ckpt_info_set_options(dt_ckpt_info *i, const dt_options *o, const char *methods) {
  free(i->opts);
  i->opts = NULL;
  i->n_opts = 0;
  i->options_given[0] = 0;
  DT_CALL(dt_calloc(&i->opts, sizeof *i->opts * (size_t)(o->n + 1), "the stored options"));
  size_t used = 0;
  for (int k = 0; k < o->n; k++) {
    const dt_optval *v = &o->v[k];
    if (v->group && dt_method_lookup(v->group) && !dt_list_has(methods, v->group)) continue;
    dt_ckpt_opt *s = &i->opts[i->n_opts++];
    snprintf(s->name, sizeof s->name, "%s", v->def->name);
    snprintf(s->value, sizeof s->value, "%s", v->is_set ? v->value : "");
    if (v->given && used + strlen(v->def->name) + 2 < sizeof i->options_given)
      used += (size_t)snprintf(i->options_given + used, sizeof i->options_given - used, "%s%s",
                               used ? "," : "", v->def->name);
  }
  return DT_OK;
}

/* Do two values of option d mean the same? Numbers compare as numbers. */
static int same_value(const dt_optdef *d, const char *a, const char *b) {
  if (!a) a = "";
  if (!b) b = "";
  if ((d->type == DT_OPT_INT || d->type == DT_OPT_FLOAT) && *a && *b)
    return strtod(a, NULL) == strtod(b, NULL);
  return strcmp(a, b) == 0;
}

static const dt_optval *optval(const dt_options *o, const char *name) {
  for (int k = 0; k < o->n; k++)
    if (strcmp(o->v[k].def->name, name) == 0) return &o->v[k];
  return NULL;
}

/* The options that must match between a checkpoint and the run that uses
 * it: the method list, --seed (method init, SAID's projection, synthetic
 * weights), with_dtype: --weights-dtype, and every option of the methods.
 * The first difference is an error naming the option and both values. */
static int check_identity(const dt_options *o, const dt_ckpt_info *i, const char *path,
                          const char *what, int with_dtype) {
  const char *ml = dt_opt_str(o, "method");
  DT_CHECK(strcmp(ml, i->methods) == 0, DT_EUSAGE,
           "%s: %s was written with --method %s, this run has --method %s (the methods and "
           "their options must match)", what, path, i->methods, ml);
  for (int k = 0; k < o->n; k++) {
    const dt_optval *v = &o->v[k];
    const int method_opt = v->group && dt_method_lookup(v->group) && dt_list_has(ml, v->group);
    const int common = strcmp(v->def->name, "seed") == 0 ||
                       (with_dtype && strcmp(v->def->name, "weights-dtype") == 0);
    if (!method_opt && !common) continue;
    const char *theirs = dt_ckpt_info_opt(i, v->def->name);
    const char *mine = v->is_set ? v->value : "";
    if (!theirs) theirs = "";
    DT_CHECK(same_value(v->def, theirs, mine), DT_EUSAGE,
             "%s: %s was written with --%s %s, this run has --%s %s (the methods and their "
             "options must match)", what, path, v->def->name, *theirs ? theirs : "(unset)",
             v->def->name, *mine ? mine : "(unset)");
  }
  return DT_OK;
}

/* The two header checks every use of a checkpoint makes besides
 * check_identity, with the wording of its option: TRAIN for --resume, else
 * --checkpoint (eval). */
static const char *use_prefix(int train) { return train ? "--resume: " : "--checkpoint "; }

static int check_complete(const dt_ckpt_info *i, const char *path, int train) {
  DT_CHECK(i->complete, DT_EINPUT, "%s%s is not complete (its complete attribute is 0)",
           use_prefix(train), path);
  return DT_OK;
}

static int check_backbone(const dt_ckpt_info *i, const dt_backbone_id *now, const char *path,
                          int train) {
  char diff[1024];
  dt_backbone_diff(&i->backbone, now, diff, sizeof diff);
  DT_CHECK(!diff[0], DT_EUSAGE, "%s%s was trained on another backbone: %s", use_prefix(train),
           path, diff);
  return DT_OK;
}

/* Rank 0: notes on options that make a resumed run depart from an
 * uninterrupted one. */
static void note_trajectory(const dt_options *o, const dt_ckpt_info *i) {
  static const char *const names[] = {"data", "batch-size", "shuffle", "sample-rows", "lr",
                                      "betas", "eps", "weight-decay", "clip-norm", "schedule",
                                      "warmup-steps", "steps"};
  for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
    const dt_optval *v = optval(o, names[k]);
    const char *theirs = dt_ckpt_info_opt(i, names[k]);
    if (!v || !theirs) continue;
    if (strcmp(names[k], "steps") == 0 && strcmp(dt_opt_str(o, "schedule"), "constant") == 0)
      continue; /* only the schedule depends on --steps */
    const char *mine = v->is_set ? v->value : "";
    if (same_value(v->def, theirs, mine)) continue;
    printf("resume: note: --%s is %s, the checkpoint's run had %s: this run departs from an "
           "uninterrupted one\n", names[k], *mine ? mine : "(unset)",
           *theirs ? theirs : "(unset)");
  }
}

/* --- which checkpoint --resume takes --------------------------------------- */

/* Rank 0: move a checkpoint that does not read back out of the way, to
 * <file>.unreadable (or .unreadable.<n> when taken): it is kept for the
 * user, no later save, --keep or --resume takes it for a checkpoint. */
static int set_aside(const char *p, const char *why) {
  char aside[4300];
  snprintf(aside, sizeof aside, "%s.unreadable", p);
  struct stat sb;
  for (int k = 2; stat(aside, &sb) == 0 && k < 1000; k++)
    snprintf(aside, sizeof aside, "%s.unreadable.%d", p, k);
  DT_CHECK(rename(p, aside) == 0, DT_EIO, "--resume: cannot set aside %s (%s): %s", p, why,
           strerror(errno));
  printf("resume: skipped %s: %s; kept as %s\n", p, why, aside);
  fflush(stdout);
  return DT_OK;
}

/* --resume: the newest checkpoint of dir that reads back whole (its header,
 * complete = 1, every variable's checksum). Newer ones that do not are
 * named with the reason and set aside (set_aside: never deleted). When none
 * does, the newest one's error, and nothing is moved. path "" and step -1
 * when dir holds no checkpoint. Collective over comm, agreed. */
static int pick_resume(const char *dir, char *path, size_t cap, int64_t *step, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  *step = -1;
  if (cap) path[0] = 0;
  int64_t *steps = NULL;
  int n = 0;
  DT_CALL(dt_ckpt_list(dir, &steps, &n, comm));
  char(*why)[1024] = NULL;
  int rc = dt_calloc(&why, sizeof *why * (size_t)(n + 1), "checkpoint verdicts");
  rc = dt_ckpt_agree(rc, comm);
  int chosen = -1, first_code = DT_OK;
  for (int k = 0; rc == DT_OK && k < n; k++) {
    char p[4200];
    dt_ckpt_path(p, sizeof p, dir, steps[k]);
    dt_ckpt_file f;
    int r = dt_ckpt_open(&f, p, comm);
    if (r == DT_OK) {
      r = dt_ckpt_agree(check_complete(&f.info, p, 1), comm);
      if (r == DT_OK) r = dt_ckpt_verify(&f);
      dt_ckpt_close(&f);
    }
    if (r == DT_OK) {
      chosen = k;
      break;
    }
    if (r != DT_EINPUT) { /* I/O or memory: no verdict on the file */
      rc = r;
      break;
    }
    snprintf(why[k], sizeof why[k], "%s", dt_error_message());
    if (!first_code) first_code = r;
  }
  if (rc == DT_OK && chosen < 0 && n > 0) {
    rc = dt_error_set(first_code, __FILE__, __LINE__, __func__,
                      "%s (no checkpoint of %s reads back whole: %d tried, all kept)", why[0],
                      dir, n);
    rc = dt_ckpt_agree(rc, comm);
  }
  if (rc == DT_OK && chosen >= 0) {
    int r0 = DT_OK;
    for (int k = 0; rank == 0 && r0 == DT_OK && k < chosen; k++) {
      char p[4200];
      dt_ckpt_path(p, sizeof p, dir, steps[k]);
      r0 = set_aside(p, why[k]);
    }
    rc = dt_ckpt_agree(r0, comm);
    if (rc == DT_OK) {
      *step = steps[chosen];
      dt_ckpt_path(path, cap, dir, *step);
    }
  }
  free(why);
  free(steps);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* --- train --------------------------------------------------------------- */

static int make_dir(const char *dir, MPI_Comm comm) {
  int rank, rc = DT_OK;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    struct stat sb;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
      rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "--out %s: cannot create: %s", dir,
                        strerror(errno));
    else if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__, "--out %s is not a folder", dir);
  }
  DT_CALL(dt_ckpt_agree(rc, comm));
  return DT_OK;
}

static int restore_counters(const dt_ckpt_info *i, dt_method **ms, int n, const char *path) {
  for (int k = 0; k < n; k++) {
    const dt_method_ops *ops = ms[k]->ops;
    if (!ops->load_counters) continue;
    const dt_ckpt_counters *c = dt_ckpt_info_counters(i, ops->name);
    DT_CHECK(c, DT_EINPUT, "%s: no counters.%s attribute (method %s keeps counters)", path,
             ops->name, ops->name);
    int rc = ops->load_counters(ms[k], c->v, c->n);
    if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  return DT_OK;
}

int dt_train_ckpt_begin(dt_train_ckpt *t, const dt_train_state *s, dt_params *params,
                        dt_adamw *adamw, int64_t *start, double *loss_first, MPI_Comm comm) {
  const dt_options *o = s->opt;
  memset(t, 0, sizeof *t);
  t->comm = comm;
  MPI_Comm_rank(comm, &t->rank);
  MPI_Comm_size(comm, &t->nranks);
  t->saved_step = -1;
  *start = 0;
  *loss_first = NAN;
  t->dir = dt_opt_is_set(o, "out") ? dt_opt_str(o, "out") : NULL;
  t->save_every = dt_opt_int(o, "save-every");
  t->keep = dt_opt_int(o, "keep");
  t->save_optimizer = dt_opt_bool(o, "save-optimizer");
  const int resume = dt_opt_bool(o, "resume");
  if (!t->dir) {
    static const char *const need_out[] = {"save-every", "save-optimizer", "keep", "resume"};
    for (size_t k = 0; k < sizeof need_out / sizeof *need_out; k++)
      DT_CHECK(!dt_opt_given(o, need_out[k]), DT_EUSAGE,
               "--%s needs --out (the folder of the checkpoints)", need_out[k]);
    return DT_OK;
  }
  DT_CALL(make_dir(t->dir, comm));
  if (s->backbone)
    t->backbone = *s->backbone;
  else
    DT_CALL(dt_backbone_identify(&t->backbone, s->cfg, (uint64_t)dt_opt_int(o, "seed"), comm));
  char path[4200];
  int64_t step = -1;
  if (resume)
    DT_CALL(pick_resume(t->dir, path, sizeof path, &step, comm));
  else
    DT_CALL(dt_ckpt_find_newest(t->dir, path, sizeof path, &step, comm));
  if (!resume) {
    if (step >= 0 && t->rank == 0) {
      printf("checkpoint: note: %s holds checkpoints of an earlier run (newest %s); this run "
             "starts at step 0 (--resume would continue it) and replaces them as it saves\n",
             t->dir, path);
      fflush(stdout);
    }
    return DT_OK;
  }
  if (step < 0) {
    if (t->rank == 0) {
      printf("resume: no checkpoint in %s yet; starting at step 0\n", t->dir);
      fflush(stdout);
    }
    return DT_OK;
  }
  dt_ckpt_file f;
  DT_CALL(dt_ckpt_open(&f, path, comm));
  const dt_ckpt_info *i = &f.info;
  int rc = check_complete(i, path, 1);
  if (rc == DT_OK) rc = check_identity(o, i, path, "--resume", 1);
  if (rc == DT_OK) rc = check_backbone(i, &t->backbone, path, 1);
  if (rc == DT_OK && i->step > s->steps_total)
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--resume: %s is at step %lld, past --steps %lld (--steps counts from the "
                      "start of training)", path, (long long)i->step, (long long)s->steps_total);
  const int with_opt = i->has_optimizer;
  if (rc == DT_OK)
    rc = dt_ckpt_read_params(&f, params, with_opt ? adamw->m : NULL, with_opt ? adamw->v : NULL);
  if (rc == DT_OK) rc = restore_counters(i, s->methods, s->n_methods, path);
  if (rc == DT_OK) {
    adamw->step = i->step;
    *start = i->step;
    *loss_first = i->loss_first;
    t->saved_step = i->step;
    snprintf(t->saved_path, sizeof t->saved_path, "%s", path);
    t->saved_bytes = i->file_bytes;
    if (t->rank == 0) {
      printf("resume: %s: step %lld of %lld, written %s by %d rank(s)%s\n", path,
             (long long)i->step, (long long)s->steps_total, i->created, i->nranks,
             with_opt ? "" : "; it holds no optimizer state (--save-optimizer no): AdamW "
                             "restarts from zero moments");
      note_trajectory(o, i);
      fflush(stdout);
    }
  }
  dt_ckpt_close(&f);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

int dt_train_ckpt_save(dt_train_ckpt *t, const dt_train_state *s, int64_t done, int final,
                       double loss_first, double loss_last) {
  if (!t->dir) return DT_OK;
  if (!final && (t->save_every <= 0 || done % t->save_every != 0)) return DT_OK;
  if (done == t->saved_step) return DT_OK;
  const dt_config *c = s->cfg;
  dt_ckpt_info m;
  memset(&m, 0, sizeof m);
  snprintf(m.command, sizeof m.command, "%s", s->opt->command ? s->opt->command : "train");
  snprintf(m.methods, sizeof m.methods, "%s", dt_opt_str(s->opt, "method"));
  DT_CALL(dt_ckpt_info_set_options(&m, s->opt, m.methods));
  m.backbone = t->backbone;
  snprintf(m.arch, sizeof m.arch, "%s", dt_cfg_arch(c)->name);
  m.layers = c->n_layer;
  m.d_model = c->d_model;
  m.heads = c->n_head;
  m.kv_heads = c->n_kv_head;
  m.head_dim = c->head_dim;
  m.ffn = c->d_ffn;
  m.vocab = c->vocab;
  m.ctx = c->n_ctx;
  m.nranks = t->nranks;
  const int tp = s->tp_size > 0 ? s->tp_size : 1;
  int n_sharded = 0;
  for (int k = 0; k < s->params->n; k++) n_sharded += s->params->p[k].shard != NULL;
  if (n_sharded)
    snprintf(m.rank_layout, sizeof m.rank_layout,
             "%d rank(s): %d data-parallel x %d tensor-parallel; %d trained tensors sharded "
             "over each tensor group, the others replicated on every rank", t->nranks,
             t->nranks / tp, tp, n_sharded);
  else
    snprintf(m.rank_layout, sizeof m.rank_layout,
             "%d rank(s): %d data-parallel x %d tensor-parallel; the delta tensors are "
             "replicated on every rank", t->nranks, t->nranks / tp, tp);
  m.step = done;
  m.steps_total = s->steps_total;
  m.lr_last = done > 0 ? dt_adamw_lr(s->adamw, done - 1) : NAN;
  m.lr_next = dt_adamw_lr(s->adamw, done);
  m.loss_first = loss_first;
  m.loss_last = loss_last;
  m.batch_size = s->batch_size;
  m.data_next_row = done * s->batch_size;
  m.data_rows = s->data->n_rows;
  m.data_seq_len = s->data->seq_len;
  snprintf(m.data_source, sizeof m.data_source, "%s", s->data->path ? s->data->path : "");
  for (int k = 0; k < s->n_methods && m.n_counters < DT_CKPT_MAX_METHODS; k++) {
    const dt_method_ops *ops = s->methods[k]->ops;
    if (!ops->save_counters) continue;
    dt_ckpt_counters *cn = &m.counters[m.n_counters++];
    snprintf(cn->method, sizeof cn->method, "%s", ops->name);
    cn->n = ops->save_counters(s->methods[k], cn->v, DT_CKPT_MAX_COUNTERS);
  }
  char path[4200];
  dt_ckpt_path(path, sizeof path, t->dir, done);
  int64_t bytes = 0;
  const int with_opt = t->save_optimizer;
  /* a tensor held in another row order than the file's is a shard too
   * (GPT-NeoX's per-head query_key_value), also on one rank */
  int any_shard = 0;
  for (int i = 0; i < s->params->n; i++) any_shard |= s->params->p[i].shard != NULL;
  int rc = dt_ckpt_write_tp(path, &m, s->params, with_opt ? s->adamw->m : NULL,
                            with_opt ? s->adamw->v : NULL, t->comm,
                            tp > 1 || any_shard ? s->tp_comm : MPI_COMM_NULL, &bytes);
  dt_ckpt_info_free(&m);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  const int64_t data = s->params->numel * (int64_t)sizeof(float);
  const int64_t total = data * (with_opt ? 3 : 1);
  DT_CHECK(bytes >= total, DT_EIO,
           "%s: the file has %lld bytes, less than the %lld bytes of its variables", path,
           (long long)bytes, (long long)total);
  t->saved_step = done;
  snprintf(t->saved_path, sizeof t->saved_path, "%s", path);
  t->saved_bytes = bytes;
  t->saved_data_bytes = data;
  t->saved_opt_bytes = total - data;
  DT_CALL(dt_ckpt_prune(t->dir, t->keep, done, t->comm));
  if (t->rank == 0 && !final) {
    printf("checkpoint: %s (step %lld, %lld bytes)\n", path, (long long)done, (long long)bytes);
    fflush(stdout);
  }
  return DT_OK;
}

void dt_train_ckpt_summary(const dt_train_ckpt *t) {
  if (t->rank != 0 || !t->dir || t->saved_step < 0) return;
  if (t->saved_data_bytes == 0) { /* resumed from it, nothing new written */
    printf("summary: checkpoint %s (step %lld, %lld bytes)\n", t->saved_path,
           (long long)t->saved_step, (long long)t->saved_bytes);
    return;
  }
  printf("summary: checkpoint %s (step %lld, %lld bytes: deltas %lld + optimizer %lld + "
         "header %lld)\n", t->saved_path, (long long)t->saved_step, (long long)t->saved_bytes,
         (long long)t->saved_data_bytes, (long long)t->saved_opt_bytes,
         (long long)(t->saved_bytes - t->saved_data_bytes - t->saved_opt_bytes));
}

/* --- eval ---------------------------------------------------------------- */

/* Is --name given in argv (as "--name" or "--name=...")? */
static int argv_has(int argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int k = 0; k < argc; k++)
    if (strncmp(argv[k], "--", 2) == 0 && strncmp(argv[k] + 2, name, n) == 0 &&
        (argv[k][2 + n] == 0 || argv[k][2 + n] == '='))
      return 1;
  return 0;
}

/* The value of --name in argv, or NULL. */
static const char *argv_value(int argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int k = 0; k < argc; k++) {
    if (strncmp(argv[k], "--", 2) != 0 || strncmp(argv[k] + 2, name, n) != 0) continue;
    if (argv[k][2 + n] == '=') return argv[k] + 3 + n;
    if (argv[k][2 + n] == 0 && k + 1 < argc) return argv[k + 1];
  }
  return NULL;
}

static int push(char **av, int *ac, const char *name, const char *value) {
  size_t len = strlen(name) + strlen(value) + 4;
  char *s = malloc(len);
  DT_CHECK(s, DT_ENOMEM, "eval --checkpoint: an option of %zu bytes", len);
  snprintf(s, len, "--%s=%s", name, value);
  av[(*ac)++] = s;
  return DT_OK;
}

int dt_ckpt_eval_argv(int argc, char **argv, int *ac, char ***av, MPI_Comm comm) {
  *ac = argc;
  *av = argv;
  const char *path = argv_value(argc, argv, "checkpoint");
  if (!path || argv_has(argc, argv, "help") || argv_has(argc, argv, "h")) return DT_OK;
  dt_ckpt_file f;
  DT_CALL(dt_ckpt_open(&f, path, comm));
  const dt_ckpt_info *i = &f.info;
  int cap = argc + i->n_opts + 8, n = argc, rc = DT_OK;
  char **out = calloc((size_t)cap, sizeof *out);
  if (!out) {
    dt_ckpt_close(&f);
    DT_ERR(DT_ENOMEM, "eval --checkpoint: the option list");
  }
  for (int k = 0; k < argc; k++) out[k] = argv[k];
  const char *methods = argv_value(argc, argv, "method");
  if (!methods) {
    methods = i->methods;
    rc = push(out, &n, "method", i->methods);
  }
  if (rc == DT_OK && !argv_has(argc, argv, "model"))
    rc = push(out, &n, "model", i->backbone.source);
  static const char *const common[] = {"seed", "weights-dtype"};
  for (size_t k = 0; rc == DT_OK && k < sizeof common / sizeof *common; k++) {
    const char *v = dt_ckpt_info_opt(i, common[k]);
    if (v && *v && !argv_has(argc, argv, common[k])) rc = push(out, &n, common[k], v);
  }
  for (int m = 0; rc == DT_OK && m < dt_method_count(); m++) {
    const dt_method_ops *ops = dt_method_at(m);
    if (!ops->options || !dt_list_has(methods, ops->name)) continue;
    for (const dt_optdef *d = ops->options->defs; rc == DT_OK && d->name; d++) {
      const char *v = dt_ckpt_info_opt(i, d->name);
      if (v && *v && !argv_has(argc, argv, d->name) && n < cap) rc = push(out, &n, d->name, v);
    }
  }
  dt_ckpt_close(&f);
  if (rc) {
    dt_ckpt_eval_argv_free(argc, argv, n, out);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  *ac = n;
  *av = out;
  return DT_OK;
}

void dt_ckpt_eval_argv_free(int argc, char **argv, int ac, char **av) {
  if (av == argv || !av) return;
  for (int k = argc; k < ac; k++) free(av[k]);
  free(av);
}

int dt_ckpt_eval_load(const dt_options *o, const dt_config *cfg, dt_params *params,
                      const dt_backbone_id *bb, MPI_Comm comm) {
  if (!dt_opt_is_set(o, "checkpoint")) return DT_OK;
  const char *path = dt_opt_str(o, "checkpoint");
  dt_ckpt_file f;
  DT_CALL(dt_ckpt_open(&f, path, comm));
  const dt_ckpt_info *i = &f.info;
  int rc = check_complete(i, path, 0);
  if (rc == DT_OK) rc = check_identity(o, i, path, "--checkpoint", 0);
  dt_backbone_id now;
  if (rc == DT_OK && bb) now = *bb;
  else if (rc == DT_OK) rc = dt_backbone_identify(&now, cfg, (uint64_t)dt_opt_int(o, "seed"), comm);
  if (rc == DT_OK) rc = check_backbone(i, &now, path, 0);
  if (rc == DT_OK) rc = dt_ckpt_read_params(&f, params, NULL, NULL);
  int rank;
  MPI_Comm_rank(comm, &rank);
  if (rc == DT_OK && rank == 0) {
    printf("eval: deltas of %s (methods %s, step %lld)\n", path, i->methods, (long long)i->step);
    fflush(stdout);
  }
  dt_ckpt_close(&f);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* --- before the backbone is built ----------------------------------------- */

int dt_ckpt_precheck(const dt_options *o, const dt_config *cfg, int train, dt_backbone_id *bb,
                     int *have_bb, MPI_Comm comm) {
  *have_bb = 0;
  char path[4200];
  const char *what;
  if (train) {
    if (!dt_opt_exists(o, "resume") || !dt_opt_bool(o, "resume") || !dt_opt_is_set(o, "out"))
      return DT_OK;
    int64_t step = -1;
    DT_CALL(pick_resume(dt_opt_str(o, "out"), path, sizeof path, &step, comm));
    if (step < 0) return DT_OK; /* nothing to resume from: step 0 */
    what = "--resume";
  } else {
    if (!dt_opt_exists(o, "checkpoint") || !dt_opt_is_set(o, "checkpoint")) return DT_OK;
    snprintf(path, sizeof path, "%s", dt_opt_str(o, "checkpoint"));
    what = "--checkpoint";
  }
  /* the file itself first: truncated (dt_ckpt_open), complete, checksums */
  dt_ckpt_file f;
  DT_CALL(dt_ckpt_open(&f, path, comm));
  const dt_ckpt_info *i = &f.info;
  int rc = dt_ckpt_agree(check_complete(i, path, train), comm);
  if (rc == DT_OK) rc = dt_ckpt_verify(&f); /* collective, agreed */
  /* then what it must match */
  if (rc == DT_OK) rc = check_identity(o, i, path, what, train);
  if (rc == DT_OK) {
    rc = dt_backbone_identify(bb, cfg, (uint64_t)dt_opt_int(o, "seed"), comm);
    *have_bb = rc == DT_OK;
  }
  if (rc == DT_OK) rc = check_backbone(i, bb, path, train);
  if (rc == DT_OK && train && i->step > dt_opt_int(o, "steps"))
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--resume: %s is at step %lld, past --steps %d (--steps counts from the "
                      "start of training)", path, (long long)i->step, dt_opt_int(o, "steps"));
  dt_ckpt_close(&f);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
