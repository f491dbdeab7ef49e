/* deltatune merge --checkpoint FILE.nc --out DIR2 [--model DIR]
 *
 * A Hugging Face model folder with the checkpoint's deltas folded into the
 * weights, so that the merged model alone gives the logits of backbone +
 * deltas (docs/checkpoint.md, "merge"):
 *   bitfit, lastlayer, full  the trained tensors replace the backbone's;
 *   lora   W += scale B A on each targeted module (scale alpha/r, or
 *          alpha/sqrt(r) with --lora-rslora), in Linear layout [out, in]:
 *          GPT-2's Conv1D weights are [in, out] in the file and get the
 *          transpose; c_attn is the whole fused q|k|v matrix;
 *   ia3    an output-scaled module has its rows (Conv1D: columns) and its
 *          bias scaled by l; an input-scaled (feed-forward) module its
 *          input columns (Conv1D: rows).
 * Composed methods fold in the order the engine applies them: replaced
 * tensors first, then the post hooks in method order (LoRA adds, IA3
 * output scaling multiplies what is there, a LLaMA row-block module's input
 * scaling adds W (l - 1)), then input scaling of whole modules (a pre hook,
 * which every post hook sees). prefix, prompt, adapter and said cannot be
 * folded into the weights and are refused (their merge_refusal). The lora
 * and ia3 rules are in their method files (dt_method_ops.merge_tensor,
 * src/merge_rule.h); this file applies the operations they ask for.
 *
 * Output: the input's weight files under the same names (model.safetensors,
 * or the shards and model.safetensors.index.json), every tensor in the same
 * file as in the input; changed tensors are float32, the others keep their
 * bytes and dtype. config.json and the other small files of the folder
 * (*.json, *.txt, *.model, *.jinja: tokenizer, generation config) are
 * copied. Collective over MPI_COMM_WORLD: every rank reads the checkpoint,
 * rank r writes the weight files i with i % ranks == r. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backbone_id.h"
#include "checkpoint.h"
#include "commands.h"
#include "error.h"
#include "hf_config.h"
#include "merge_rule.h"
#include "method.h"
#include "methods/modules.h"
#include "options.h"
#include "safetensors.h"

static const dt_optdef merge_opts[] = {
    {"checkpoint", DT_OPT_STRING, NULL, 0, 0, NULL,
     "the checkpoint whose deltas are merged (lora, ia3, bitfit, lastlayer, full; required)"},
    {"model", DT_OPT_STRING, NULL, 0, 0, NULL,
     "the backbone's Hugging Face folder (default: the one the checkpoint records); it must "
     "be the checkpoint's backbone"},
    {"out", DT_OPT_STRING, NULL, 0, 0, NULL,
     "the merged model folder (created; must be new or empty; required)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

enum { OP_LORA = 0, OP_IA3_OUT, OP_IA3_IN };

/* One delta acting on a module, in the engine's order of application. */
typedef struct {
  int kind;
  int order;     /* the method's position in the method list */
  int pre;       /* OP_IA3_IN of a whole module: a pre hook (applied last) */
  const float *a, *b; /* LoRA A [r, in], B [out, r]; IA3 l */
  int r;
  float scale;
} mod_op;

/* A linear module of a block and the deltas on it. */
typedef struct {
  char weight[DT_PARAM_NAME_MAX], bias[DT_PARAM_NAME_MAX]; /* HF tensor names */
  int out, in;
  int conv1d; /* the file stores it [in, out] (GPT-2) */
  int whole;  /* the module is a whole engine site */
  int has_bias_op;
  int n;
  mod_op op[4];
} mod_entry;

typedef struct {
  dt_ckpt_file ck;
  dt_config cfg;
  dt_st_set set;
  int set_open;
  int n_vars; /* parameter variables */
  const dt_ckpt_var **v;
  float **data;
  int *used;
  int n_mods;
  mod_entry *mods;
  char methods[8][32];
  int n_methods;
} merge_ctx;

static void ctx_free(merge_ctx *m) {
  for (int k = 0; m->data && k < m->n_vars; k++) free(m->data[k]);
  free(m->data);
  free(m->v);
  free(m->used);
  free(m->mods);
  if (m->set_open) dt_st_set_close(&m->set);
  dt_ckpt_close(&m->ck);
}

static int method_order(const merge_ctx *m, const char *name) {
  for (int k = 0; k < m->n_methods; k++)
    if (strcmp(m->methods[k], name) == 0) return k;
  return -1;
}

/* The methods of the checkpoint; those that cannot be merged are refused. */
static int check_methods(merge_ctx *m) {
  const char *path = m->ck.path;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", m->ck.info.methods);
  char *save = NULL;
  /* the methods merge can fold: every registered one without a refusal */
  char can[256] = "";
  for (int i = 0, n = 0; i < dt_method_count(); i++)
    if (!dt_method_at(i)->merge_refusal) {
      const size_t used = strlen(can);
      snprintf(can + used, sizeof can - used, "%s%s", n++ ? ", " : "", dt_method_at(i)->name);
    }
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    const dt_method_ops *ops = dt_method_lookup(t);
    DT_CHECK(ops, DT_EUSAGE, "merge: %s: method '%s' is not one merge knows (%s)", path, t, can);
    DT_CHECK(!ops->merge_refusal, DT_EUSAGE,
             "merge: %s was trained with --method %s: %s cannot be merged into the weights "
             "(%s); merge takes %s; use deltatune eval --checkpoint or export instead", path,
             m->ck.info.methods, t, ops->merge_refusal, can);
    DT_CHECK(m->n_methods < 8, DT_EUSAGE, "merge: %s: too many methods", path);
    snprintf(m->methods[m->n_methods++], sizeof m->methods[0], "%s", t);
  }
  return DT_OK;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* "base_model.model.<prefix>.<layer>.<module>.<suffix>" -> the HF module
 * path "<prefix>.<layer>.<module>" and the module's entry of the block. */
static int parse_module(const merge_ctx *m, const char *name, const char *suffix,
                        char *path, size_t cap, dt_module *mod) {
  static const char *const head = "base_model.model.";
  if (strncmp(name, head, strlen(head)) != 0 || !ends_with(name, suffix)) return 0;
  const char *p = name + strlen(head);
  const size_t len = strlen(p) - strlen(suffix);
  if (len < 2 || p[len - 1] != '.') return 0;
  snprintf(path, cap, "%.*s", (int)(len - 1), p);
  const char *prefix = dt_module_prefix(&m->cfg);
  const size_t pl = strlen(prefix);
  if (strncmp(path, prefix, pl) != 0 || path[pl] != '.') return 0;
  char *end = NULL;
  const long layer = strtol(path + pl + 1, &end, 10);
  if (end == path + pl + 1 || *end != '.' || layer < 0 || layer >= m->cfg.n_layer) return 0;
  dt_module md[DT_MAX_BLOCK_MODULES];
  const int nmod = dt_block_modules(&m->cfg, md);
  for (int i = 0; i < nmod; i++)
    if (strcmp(end + 1, md[i].name) == 0) {
      *mod = md[i];
      return 1;
    }
  return 0;
}

/* The entry of HF module `path`, created on first use: the weight must be
 * in the backbone with the module's shape. */
static int module_entry(merge_ctx *m, const char *path, const dt_module *mod, mod_entry **out) {
  for (int k = 0; k < m->n_mods; k++)
    if (strncmp(m->mods[k].weight, path, strlen(path)) == 0 &&
        strcmp(m->mods[k].weight + strlen(path), ".weight") == 0) {
      *out = &m->mods[k];
      return DT_OK;
    }
  mod_entry *e = &m->mods[m->n_mods++];
  memset(e, 0, sizeof *e);
  snprintf(e->weight, sizeof e->weight, "%s.weight", path);
  snprintf(e->bias, sizeof e->bias, "%s.bias", path);
  e->out = mod->out;
  e->in = mod->in;
  e->whole = mod->whole;
  e->conv1d = dt_cfg_arch(&m->cfg)->conv1d;
  const dt_st_file *f = NULL;
  const dt_st_tensor *t = dt_st_set_find(&m->set, e->weight, &f);
  DT_CHECK(t, DT_EINPUT, "merge: %s has no tensor '%s' (the checkpoint's deltas act on it)",
           m->set.dir, e->weight);
  const int64_t s0 = e->conv1d ? e->in : e->out, s1 = e->conv1d ? e->out : e->in;
  DT_CHECK(t->ndim == 2 && t->shape[0] == s0 && t->shape[1] == s1, DT_EINPUT,
           "merge: %s: tensor '%s' is not [%lld, %lld] as config.json implies", f->path,
           e->weight, (long long)s0, (long long)s1);
  *out = e;
  return DT_OK;
}

/* Does the method train backbone tensors in place (its flags)? Its trained
 * tensors then replace the backbone's. */
static int writes_backbone(const char *method) {
  const dt_method_ops *ops = dt_method_lookup(method);
  return ops && (ops->flags & (DT_METHOD_WRITES_MATRICES | DT_METHOD_WRITES_BIASES));
}

static int add_op(mod_entry *e, mod_op op, const char *what) {
  DT_CHECK(e->n < 4, DT_EINPUT, "merge: too many deltas on %s (%s)", e->weight, what);
  e->op[e->n++] = op;
  return DT_OK;
}

/* The merge rules' view of the checkpoint (src/merge_rule.h). */
static int rule_module_of(const dt_merge_rule *x, const char *name, const char *suffix,
                          char *path, size_t cap, dt_module *mod) {
  return parse_module(x->merge, name, suffix, path, cap, mod);
}

static int rule_find(const dt_merge_rule *x, const char *name) {
  for (int j = 0; j < x->n; j++)
    if (!strcmp(x->v[j]->name, name)) return j;
  return -1;
}

static int rule_add_lowrank(dt_merge_rule *x, const char *path, const dt_module *mod,
                            const float *A, const float *B, int r, float scale) {
  merge_ctx *m = x->merge;
  mod_entry *e;
  DT_CALL(module_entry(m, path, mod, &e));
  const mod_op op = {OP_LORA, method_order(m, x->method), 0, A, B, r, scale};
  return add_op(e, op, x->method);
}

static int rule_add_scale(dt_merge_rule *x, const char *path, const dt_module *mod,
                          const float *l, int input) {
  merge_ctx *m = x->merge;
  mod_entry *e;
  DT_CALL(module_entry(m, path, mod, &e));
  const mod_op op = {input ? OP_IA3_IN : OP_IA3_OUT, method_order(m, x->method),
                     input && mod->whole, l, NULL, 0, 1.0f};
  DT_CALL(add_op(e, op, x->method));
  if (!input && dt_st_set_find(&m->set, e->bias, NULL)) e->has_bias_op = 1;
  return DT_OK;
}

/* Every parameter of the checkpoint becomes a replacement or, through its
 * method's merge rule, an operation on a module; anything else is an error
 * (checked before writing). */
static int plan(merge_ctx *m) {
  const dt_ckpt_info *i = &m->ck.info;
  DT_CALL(dt_calloc(&m->mods, sizeof *m->mods * (size_t)(m->n_vars + 1), "merge modules"));
  dt_merge_rule x = {&m->cfg, i, m->ck.path, m->n_vars, m->v, m->data, m->used,
                     rule_module_of, rule_find, rule_add_lowrank, rule_add_scale, m, NULL};
  for (int k = 0; k < m->n_vars; k++) {
    const dt_ckpt_var *v = m->v[k];
    const dt_method_ops *ops = dt_method_lookup(v->method);
    if (ops && ops->merge_tensor) {
      x.method = ops->name;
      DT_CALL(ops->merge_tensor(&x, k));
    } else {
      /* a method that writes backbone tensors (bitfit, lastlayer, full: its
       * flags): the tensor itself, in its HF layout */
      DT_CHECK(writes_backbone(v->method), DT_EINPUT,
               "merge: %s: tensor '%s' of method %s: merge has no rule for it", m->ck.path,
               v->name, v->method);
      const dt_st_file *f = NULL;
      const dt_st_tensor *t = dt_st_set_find(&m->set, v->name, &f);
      DT_CHECK(t, DT_EINPUT, "merge: %s: the checkpoint's %s tensor '%s' is not in %s",
               m->ck.path, v->method, v->name, m->set.dir);
      int same = t->ndim == v->ndim;
      for (int d = 0; same && d < v->ndim; d++) same = t->shape[d] == v->shape[d];
      DT_CHECK(same, DT_EINPUT, "merge: %s: tensor '%s' has another shape than the checkpoint's",
               f->path, v->name);
      m->used[k] = 1;
    }
  }
  for (int k = 0; k < m->n_vars; k++)
    DT_CHECK(m->used[k], DT_EINPUT, "merge: %s: LoRA B '%s' has no A", m->ck.path, m->v[k]->name);
  /* the engine's order: post hooks in method order, then pre hooks */
  for (int e = 0; e < m->n_mods; e++) {
    mod_entry *x = &m->mods[e];
    for (int a = 1; a < x->n; a++)
      for (int b = a; b > 0; b--) {
        const mod_op *p = &x->op[b - 1], *q = &x->op[b];
        if (p->pre > q->pre || (p->pre == q->pre && p->order > q->order)) {
          mod_op t = x->op[b];
          x->op[b] = x->op[b - 1];
          x->op[b - 1] = t;
        }
      }
  }
  return DT_OK;
}

/* The parameter variable of HF name `name` (a replacement), or -1. */
static int replacement(const merge_ctx *m, const char *name) {
  for (int k = 0; k < m->n_vars; k++)
    if (writes_backbone(m->v[k]->method) && !strcmp(m->v[k]->name, name)) return k;
  return -1;
}

/* The value of HF tensor t (float32, its HF layout): the replacement when
 * there is one, else the backbone's. */
static int base_value(const merge_ctx *m, const dt_st_file *f, const dt_st_tensor *t, float *dst) {
  const int k = replacement(m, t->name);
  if (k >= 0) {
    memcpy(dst, m->data[k], sizeof(float) * (size_t)t->numel);
    return DT_OK;
  }
  DT_CALL(dt_st_read_f32(f, t, 0, t->numel, dst));
  return DT_OK;
}

/* Fold the module's deltas into its weight (HF layout in and out). */
static int merge_weight(const merge_ctx *m, const mod_entry *e, const dt_st_file *f,
                        const dt_st_tensor *t, float *w) {
  const int O = e->out, I = e->in;
  float *base = NULL, *acc = NULL;
  DT_CALL(dt_malloc(&base, sizeof(float) * (size_t)O * I, "a merged weight"));
  int rc = dt_malloc(&acc, sizeof(float) * (size_t)O * I, "a merged weight");
  if (rc == DT_OK) rc = base_value(m, f, t, w);
  if (rc) {
    free(base);
    free(acc);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  /* Linear layout [out, in] */
  for (int o = 0; o < O; o++)
    for (int j = 0; j < I; j++) base[(size_t)o * I + j] = e->conv1d ? w[(size_t)j * O + o] : w[(size_t)o * I + j];
  memcpy(acc, base, sizeof(float) * (size_t)O * I);
  for (int k = 0; k < e->n; k++) {
    const mod_op *op = &e->op[k];
    if (op->kind == OP_LORA) {
      /* acc += scale B A, summed in double */
      for (int o = 0; o < O; o++)
        for (int j = 0; j < I; j++) {
          double s = 0;
          for (int q = 0; q < op->r; q++)
            s += (double)op->b[(size_t)o * op->r + q] * op->a[(size_t)q * I + j];
          acc[(size_t)o * I + j] += (float)(op->scale * s);
        }
    } else if (op->kind == OP_IA3_OUT) {
      for (int o = 0; o < O; o++)
        for (int j = 0; j < I; j++) acc[(size_t)o * I + j] *= op->a[o];
    } else if (op->pre) { /* input scaling of a whole module: every product sees x l */
      for (int o = 0; o < O; o++)
        for (int j = 0; j < I; j++) acc[(size_t)o * I + j] *= op->a[j];
    } else { /* a row block's input scaling: y += (x (l - 1)) W_base^T */
      for (int o = 0; o < O; o++)
        for (int j = 0; j < I; j++)
          acc[(size_t)o * I + j] += base[(size_t)o * I + j] * (op->a[j] - 1.0f);
    }
  }
  for (int o = 0; o < O; o++)
    for (int j = 0; j < I; j++) {
      const float x = acc[(size_t)o * I + j];
      if (e->conv1d) w[(size_t)j * O + o] = x; else w[(size_t)o * I + j] = x;
    }
  free(base);
  free(acc);
  return DT_OK;
}

/* Bias of a module with output-scaling IA3: b (replaced or not) times l,
 * at the IA3's place among the post hooks (only IA3 touches a bias). */
static int merge_bias(const merge_ctx *m, const mod_entry *e, const dt_st_file *f,
                      const dt_st_tensor *t, float *b) {
  DT_CHECK(t->numel == e->out, DT_EINPUT, "merge: %s: bias '%s' has %lld values, not %d",
           f->path, t->name, (long long)t->numel, e->out);
  DT_CALL(base_value(m, f, t, b));
  for (int k = 0; k < e->n; k++)
    if (e->op[k].kind == OP_IA3_OUT)
      for (int o = 0; o < e->out; o++) b[o] *= e->op[k].a[o];
  return DT_OK;
}

/* What happens to tensor t: 0 copied as is, 1 weight of a module with
 * deltas, 2 bias scaled by IA3, 3 replaced. *e: the module. */
static int fate(const merge_ctx *m, const char *name, const mod_entry **e) {
  *e = NULL;
  for (int k = 0; k < m->n_mods; k++) {
    if (!strcmp(m->mods[k].weight, name)) {
      *e = &m->mods[k];
      return 1;
    }
    if (m->mods[k].has_bias_op && !strcmp(m->mods[k].bias, name)) {
      *e = &m->mods[k];
      return 2;
    }
  }
  return replacement(m, name) >= 0 ? 3 : 0;
}

static int write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* One weight file: the input's tensors (largest element size first, so that
 * every tensor stays aligned), the changed ones as float32, streamed into
 * DIR2/<same name>.tmp and renamed. *changed counts changed tensors,
 * *data_bytes the tensor bytes. */
static int merge_file(const merge_ctx *m, const dt_st_file *f, const char *out_dir,
                      int *changed, int64_t *data_bytes) {
  int rc = DT_OK, fd = -1;
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/%s", out_dir, base_name(f->path));
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int *order = NULL, *kind = NULL;
  float *buf = NULL;
  char *hdr = NULL;
  json_t *root = json_object(), *meta = json_object();
  DT_CHECK(root && meta, DT_ENOMEM, "merge: the header of %s", path);
  rc = dt_calloc(&order, sizeof *order * (size_t)(f->n + 1), "merge: tensor order");
  if (!rc) rc = dt_calloc(&kind, sizeof *kind * (size_t)(f->n + 1), "merge: tensor order");
  if (rc) goto out;
  /* element sizes after the merge; order by size, stable */
  int64_t max_numel = 1;
  for (int i = 0; i < f->n; i++) {
    const mod_entry *e;
    kind[i] = fate(m, f->t[i].name, &e);
    if (kind[i] && f->t[i].numel > max_numel) max_numel = f->t[i].numel;
  }
  int n = 0;
  for (int es = 8; es >= 1; es /= 2)
    for (int i = 0; i < f->n; i++) {
      const int size = kind[i] ? 4 : dt_dtype_size(f->t[i].dtype);
      if (size == es || (es == 1 && size < 1)) order[n++] = i;
    }
  if (n != f->n) {
    rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                      "merge: %s: unexpected element sizes", f->path);
    goto out;
  }
  uint64_t off = 0;
  for (int q = 0; q < n; q++) {
    const dt_st_tensor *t = &f->t[order[q]];
    const int changed_t = kind[order[q]] != 0;
    const uint64_t bytes = changed_t ? (uint64_t)t->numel * 4 : t->nbytes;
    json_t *shape = json_array();
    for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
    json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype",
                          changed_t ? "F32" : dt_dtype_name(t->dtype), "shape", shape,
                          "data_offsets", (json_int_t)off, (json_int_t)(off + bytes));
    if (!e || json_object_set_new(root, t->name, e) != 0) {
      rc = dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "merge: the header of %s", path);
      goto out;
    }
    off += bytes;
    *changed += changed_t;
  }
  *data_bytes += (int64_t)off;
  char step[32];
  snprintf(step, sizeof step, "%lld", (long long)m->ck.info.step);
  json_object_set_new(meta, "format", json_string("pt"));
  json_object_set_new(meta, "deltatune_merged_checkpoint", json_string(m->ck.path));
  json_object_set_new(meta, "deltatune_methods", json_string(m->ck.info.methods));
  json_object_set_new(meta, "deltatune_step", json_string(step));
  json_object_set_new(root, "__metadata__", meta);
  meta = NULL;
  hdr = json_dumps(root, JSON_COMPACT);
  if (!hdr) {
    rc = dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "merge: the header of %s", path);
    goto out;
  }
  size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
  char *h2 = realloc(hdr, padded + 1);
  if (!h2) {
    rc = dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "merge: the header of %s", path);
    goto out;
  }
  hdr = h2;
  memset(hdr + hl, ' ', padded - hl);
  rc = dt_malloc(&buf, sizeof(float) * (size_t)(max_numel > (1 << 22) ? max_numel : (1 << 22)),
                 "merge: a tensor");
  if (rc) goto out;
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "merge: cannot create %s: %s", tmp,
                      strerror(errno));
    goto out;
  }
  unsigned char lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  if (write_all(fd, lenb, 8) || write_all(fd, hdr, padded)) goto io_error;
  for (int q = 0; q < n && rc == DT_OK; q++) {
    const dt_st_tensor *t = &f->t[order[q]];
    const mod_entry *e;
    const int k = fate(m, t->name, &e);
    if (k == 0) { /* the bytes as they are */
      const size_t cap = sizeof(float) * (size_t)(max_numel > (1 << 22) ? max_numel : (1 << 22));
      for (uint64_t o = 0; o < t->nbytes;) {
        const size_t want = t->nbytes - o < cap ? (size_t)(t->nbytes - o) : cap;
        const ssize_t r = pread(f->fd, buf, want, (off_t)(t->offset + o));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "merge: reading '%s' of %s: %s",
                            t->name, f->path, r < 0 ? strerror(errno) : "unexpected end of file");
          break;
        }
        if (write_all(fd, buf, (size_t)r)) goto io_error;
        o += (uint64_t)r;
      }
      continue;
    }
    if (k == 1)
      rc = merge_weight(m, e, f, t, buf);
    else if (k == 2)
      rc = merge_bias(m, e, f, t, buf);
    else
      rc = base_value(m, f, t, buf);
    if (rc == DT_OK && write_all(fd, buf, sizeof(float) * (size_t)t->numel)) goto io_error;
  }
  if (rc) goto out;
  if (fsync(fd) != 0) goto io_error;
  {
    const int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) goto io_error;
  }
  if (rename(tmp, path) != 0) goto io_error;
  goto out;
io_error:
  rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "merge: writing %s: %s", tmp,
                    strerror(errno));
out:
  if (fd >= 0) close(fd);
  if (rc) unlink(tmp);
  free(hdr);
  free(buf);
  free(order);
  free(kind);
  json_decref(meta);
  json_decref(root);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb");
  DT_CHECK(a, DT_EIO, "merge: cannot read %s: %s", from, strerror(errno));
  FILE *b = fopen(to, "wb");
  if (!b) {
    fclose(a);
    DT_ERR(DT_EIO, "merge: cannot create %s: %s", to, strerror(errno));
  }
  char buf[65536];
  size_t n;
  int bad = 0;
  while ((n = fread(buf, 1, sizeof buf, a)) > 0)
    if (fwrite(buf, 1, n, b) != n) bad = 1;
  bad |= ferror(a);
  fclose(a);
  bad |= fclose(b) != 0;
  DT_CHECK(!bad, DT_EIO, "merge: copying %s to %s failed", from, to);
  return DT_OK;
}

/* Rank 0: config.json and the other small files of the model folder. */
static int copy_small_files(const char *from, const char *to, int *copied) {
  DIR *d = opendir(from);
  DT_CHECK(d, DT_EIO, "merge: cannot list %s: %s", from, strerror(errno));
  struct dirent *e;
  int rc = DT_OK;
  while (rc == DT_OK && (e = readdir(d))) {
    const char *n = e->d_name;
    if (n[0] == '.' || !strcmp(n, "model.safetensors.index.json")) continue;
    if (!ends_with(n, ".json") && !ends_with(n, ".txt") && !ends_with(n, ".model") &&
        !ends_with(n, ".jinja"))
      continue;
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s", from, n);
    snprintf(b, sizeof b, "%s/%s", to, n);
    struct stat sb;
    if (stat(a, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
    rc = copy_file(a, b);
    *copied += rc == DT_OK;
  }
  closedir(d);
  return rc;
}

/* Rank 0: model.safetensors.index.json of a sharded output. */
static int write_index(const merge_ctx *m, const char *out_dir, int64_t total) {
  json_t *root = json_object(), *md = json_object(), *wm = json_object();
  DT_CHECK(root && md && wm, DT_ENOMEM, "merge: the index");
  json_object_set_new(md, "total_size", json_integer(total));
  for (int i = 0; i < m->set.n_files; i++)
    for (int k = 0; k < m->set.files[i].n; k++)
      json_object_set_new(wm, m->set.files[i].t[k].name,
                          json_string(base_name(m->set.files[i].path)));
  json_object_set_new(root, "metadata", md);
  json_object_set_new(root, "weight_map", wm);
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  const int e = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(root);
  DT_CHECK(e == 0, DT_EIO, "merge: cannot write %s", tmp);
  DT_CHECK(rename(tmp, path) == 0, DT_EIO, "merge: cannot rename %s: %s", tmp, strerror(errno));
  return DT_OK;
}

/* Rank 0: DIR2 is created, or is an empty folder, and is not the model. */
static int prepare_out(const char *out, const char *model) {
  struct stat sb;
  if (stat(out, &sb) == 0) {
    DT_CHECK(S_ISDIR(sb.st_mode), DT_EUSAGE, "merge: --out %s is not a folder", out);
    char a[PATH_MAX], b[PATH_MAX];
    DT_CHECK(!(realpath(out, a) && realpath(model, b) && !strcmp(a, b)), DT_EUSAGE,
             "merge: --out %s is the backbone's folder; the merged model needs a folder of "
             "its own", out);
    DIR *d = opendir(out);
    DT_CHECK(d, DT_EIO, "merge: cannot list --out %s: %s", out, strerror(errno));
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
      files += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    DT_CHECK(files == 0, DT_EUSAGE,
             "merge: --out %s is not empty; give a new or empty folder (its weight files "
             "would mix with the merged ones)", out);
    return DT_OK;
  }
  DT_CHECK(mkdir(out, 0755) == 0, DT_EIO, "merge: --out %s: cannot create: %s", out,
           strerror(errno));
  return DT_OK;
}

static int merge_run(merge_ctx *m, const dt_options *o, int rank, int nranks) {
  const char *ckpt = dt_opt_str(o, "checkpoint"), *out = dt_opt_str(o, "out");
  DT_CALL(dt_ckpt_open(&m->ck, ckpt, MPI_COMM_WORLD));
  const dt_ckpt_info *i = &m->ck.info;
  DT_CHECK(i->complete, DT_EINPUT, "merge: %s is not complete (its complete attribute is 0)",
           m->ck.path);
  DT_CALL(check_methods(m));
  DT_CHECK(!strcmp(i->backbone.kind, "hf"), DT_EUSAGE,
           "merge: %s was trained on a synthetic backbone (%s); merge writes a Hugging Face "
           "folder and needs the backbone's folder", m->ck.path, i->backbone.source);
  const char *model = dt_opt_is_set(o, "model") ? dt_opt_str(o, "model") : i->backbone.source;
  DT_CALL(dt_hf_config_load(&m->cfg, model));
  dt_backbone_id now;
  DT_CALL(dt_backbone_identify(&now, &m->cfg, 0, MPI_COMM_WORLD));
  char diff[1024];
  dt_backbone_diff(&i->backbone, &now, diff, sizeof diff);
  DT_CHECK(!diff[0], DT_EUSAGE, "merge: %s was trained on another backbone than %s: %s",
           m->ck.path, model, diff);
  DT_CALL(dt_st_set_open(&m->set, model));
  m->set_open = 1;
  /* the deltas, whole, on every rank */
  DT_CALL(dt_calloc(&m->v, sizeof *m->v * (size_t)(i->n_vars + 1), "merge tensors"));
  DT_CALL(dt_calloc(&m->data, sizeof *m->data * (size_t)(i->n_vars + 1), "merge tensors"));
  DT_CALL(dt_calloc(&m->used, sizeof *m->used * (size_t)(i->n_vars + 1), "merge tensors"));
  int rc = DT_OK;
  for (int k = 0; rc == DT_OK && k < i->n_vars; k++) {
    if (i->vars[k].role != DT_CKPT_PARAM) continue;
    m->v[m->n_vars] = &i->vars[k];
    rc = dt_malloc(&m->data[m->n_vars], sizeof(float) * (size_t)i->vars[k].numel,
                   "a checkpoint tensor");
    m->n_vars++;
  }
  rc = dt_ckpt_agree(rc, MPI_COMM_WORLD);
  for (int k = 0; rc == DT_OK && k < m->n_vars; k++)
    rc = dt_ckpt_read_var(&m->ck, m->v[k], m->data[k]);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  DT_CALL(plan(m));
  /* the folder, then the weight files split over the ranks */
  rc = rank == 0 ? prepare_out(out, model) : DT_OK;
  DT_CALL(dt_ckpt_agree(rc, MPI_COMM_WORLD));
  int changed = 0;
  int64_t bytes = 0;
  for (int f = rank; rc == DT_OK && f < m->set.n_files; f += nranks)
    rc = merge_file(m, &m->set.files[f], out, &changed, &bytes);
  DT_CALL(dt_ckpt_agree(rc, MPI_COMM_WORLD));
  int64_t tot[2] = {changed, bytes};
  MPI_Allreduce(MPI_IN_PLACE, tot, 2, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  int copied = 0;
  char idx[4200];
  snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", model);
  struct stat sb;
  const int sharded = stat(idx, &sb) == 0;
  if (rank == 0) {
    if (sharded) rc = write_index(m, out, tot[1]);
    if (rc == DT_OK) rc = copy_small_files(model, out, &copied);
    if (rc == DT_OK) {
      int n_lora = 0, n_ia3 = 0, n_repl = 0, n_tensors = 0;
      for (int f = 0; f < m->set.n_files; f++) n_tensors += m->set.files[f].n;
      for (int e = 0; e < m->n_mods; e++)
        for (int k = 0; k < m->mods[e].n; k++)
          m->mods[e].op[k].kind == OP_LORA ? n_lora++ : n_ia3++;
      for (int k = 0; k < m->n_vars; k++)
        n_repl += writes_backbone(m->v[k]->method);
      printf("merge: %s (%s, step %lld) + %s -> %s\n", m->ck.path, i->methods,
             (long long)i->step, model, out);
      printf("merge: %lld of %d tensors changed (LoRA on %d modules, IA3 on %d, %d replaced), "
             "written as float32; %d weight file(s)%s, %lld bytes of tensors; %d other "
             "file(s) copied\n", (long long)tot[0], n_tensors, n_lora, n_ia3, n_repl,
             m->set.n_files,
             sharded ? " + model.safetensors.index.json" : "", (long long)tot[1], copied);
      fflush(stdout);
    }
  }
  DT_CALL(dt_ckpt_agree(rc, MPI_COMM_WORLD));
  return DT_OK;
}

int dt_cmd_merge(int argc, char **argv) {
  int rank, nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  const dt_optgroup g = {"merge", "Merge", merge_opts};
  dt_options o;
  DT_CALL(dt_options_parse(&o, "merge", &g, 1, argc, argv));
  if (o.help) {
    if (rank == 0)
      dt_options_print_help(stdout, "merge",
                            "Fold a checkpoint's deltas (LoRA, IA3, BitFit, last layers, full) "
                            "into the backbone's weights: a Hugging Face model folder that "
                            "gives the logits of backbone + deltas (docs/checkpoint.md).",
                            &g, 1);
    return DT_OK;
  }
  DT_CHECK(dt_opt_is_set(&o, "checkpoint"), DT_EUSAGE,
           "--checkpoint is required (see deltatune merge --help)");
  DT_CHECK(dt_opt_is_set(&o, "out"), DT_EUSAGE, "--out is required (see deltatune merge --help)");
  merge_ctx *m = calloc(1, sizeof *m);
  DT_CHECK(m, DT_ENOMEM, "merge: context");
  m->ck.ncid = -1;
  int rc = merge_run(m, &o, rank, nranks);
  ctx_free(m);
  free(m);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
