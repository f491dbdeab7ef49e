/* deltatune export --checkpoint FILE.nc --format peft|safetensors --out DIR
 *
 * peft: adapter_model.safetensors + adapter_config.json as PEFT's
 *   save_pretrained writes them (adapter name dropped from tensor names,
 *   inference_mode true), for lora, ia3, prefix and prompt tuning:
 *     lora    base_model.model.<module>.lora_A.weight [r,in], lora_B [out,r]
 *     ia3     base_model.model.<module>.ia3_l [out,1] / [1,in]
 *     prefix  prompt_embeddings [P, 2*layers*kv_dim] (with the MLP
 *             reparameterisation: its output, as PEFT saves it)
 *     prompt  prompt_embeddings [P, d]
 * safetensors: any methods; deltas.safetensors holds every trained tensor
 *   under the names --init-from reads, and deltatune_config.json the
 *   methods, their options, the backbone and the tensor list
 *   (docs/checkpoint.md).
 * Collective over MPI_COMM_WORLD: every rank reads, rank 0 writes. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "commands.h"
#include "error.h"
#include "options.h"
#include "safetensors.h"

static const dt_optdef export_opts[] = {
    {"checkpoint", DT_OPT_STRING, NULL, 0, 0, NULL, "the checkpoint to export (required)"},
    {"format", DT_OPT_CHOICE, "peft", 0, 0, "peft|safetensors",
     "peft: adapter_model.safetensors + adapter_config.json (lora, ia3, prefix, prompt); "
     "safetensors: deltas.safetensors + deltatune_config.json (any methods)"},
    {"out", DT_OPT_STRING, NULL, 0, 0, NULL, "output folder (created; required)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* The checkpoint's parameters in external layout. */
typedef struct {
  int n;
  const dt_ckpt_var **v;
  float **data;
} params_ext;

static void params_free(params_ext *p) {
  for (int i = 0; p->data && i < p->n; i++) free(p->data[i]);
  free(p->data);
  free(p->v);
}

static int read_params(dt_ckpt_file *f, params_ext *p) {
  memset(p, 0, sizeof *p);
  const dt_ckpt_info *i = &f->info;
  int rc = dt_calloc(&p->v, sizeof *p->v * (size_t)(i->n_vars + 1), "export tensors");
  if (!rc) rc = dt_calloc(&p->data, sizeof *p->data * (size_t)(i->n_vars + 1), "export tensors");
  for (int k = 0; rc == DT_OK && k < i->n_vars; k++) {
    if (i->vars[k].role != DT_CKPT_PARAM) continue;
    p->v[p->n] = &i->vars[k];
    rc = dt_malloc(&p->data[p->n], sizeof(float) * (size_t)i->vars[k].numel, "an exported tensor");
    p->n++;
  }
  rc = dt_ckpt_agree(rc, f->comm);
  for (int k = 0; rc == DT_OK && k < p->n; k++) rc = dt_ckpt_read_var(f, p->v[k], p->data[k]);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* "base_model.model.<prefix>.<layer>.<module>.<suffix>" -> module. */
static int module_of(const char *name, const char *suffix, char *out, size_t cap) {
  const char *p = strstr(name, "base_model.model.");
  if (!p || !ends_with(name, suffix)) return 0;
  p += strlen("base_model.model.");
  /* the first ".<digits>." is the layer index */
  for (const char *q = p; (q = strchr(q, '.')); q++) {
    const char *d = q + 1;
    while (*d >= '0' && *d <= '9') d++;
    if (d > q + 1 && *d == '.') {
      const char *mod = d + 1;
      const size_t len = strlen(mod) - strlen(suffix);
      if (len < 2) return 0;
      snprintf(out, cap, "%.*s", (int)(len - 1), mod); /* drop the '.' before the suffix */
      return 1;
    }
  }
  return 0;
}

static void add_unique(json_t *arr, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return;
  json_array_append_new(arr, json_string(s));
}

/* Sort a JSON array of strings (PEFT writes sets as lists; order is free). */
static int cmp_json_str(const void *a, const void *b) {
  return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}
static json_t *sorted(json_t *arr) {
  size_t n = json_array_size(arr);
  json_t **items = malloc(sizeof *items * (n ? n : 1));
  json_t *out = json_array();
  if (!items || !out) {
    free(items);
    return arr;
  }
  for (size_t i = 0; i < n; i++) items[i] = json_array_get(arr, i);
  qsort(items, n, sizeof *items, cmp_json_str);
  for (size_t i = 0; i < n; i++) json_array_append(out, items[i]);
  free(items);
  json_decref(arr);
  return out;
}

static const char *opt_or(const dt_ckpt_info *i, const char *name, const char *dflt) {
  const char *v = dt_ckpt_info_opt(i, name);
  return v && *v ? v : dflt;
}

/* A number as JSON: an integer when it is one (PEFT's lora_alpha is int). */
static json_t *json_num(double x) {
  if (x == floor(x) && fabs(x) < 1e15) return json_integer((json_int_t)x);
  return json_real(x);
}

static json_t *config_common(const dt_ckpt_info *i, const char *peft_type) {
  json_t *c = json_object();
  json_object_set_new(c, "peft_type", json_string(peft_type));
  json_object_set_new(c, "task_type", json_string("CAUSAL_LM"));
  json_object_set_new(c, "inference_mode", json_true());
  json_object_set_new(c, "base_model_name_or_path", strcmp(i->backbone.kind, "hf") == 0
                                                        ? json_string(i->backbone.source)
                                                        : json_null());
  json_object_set_new(c, "revision", json_null());
  json_object_set_new(c, "auto_mapping", json_null());
  return c;
}

static int write_json(json_t *j, const char *path) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int e = json_dump_file(j, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
  DT_CHECK(e == 0, DT_EIO, "cannot write %s", tmp);
  DT_CHECK(rename(tmp, path) == 0, DT_EIO, "cannot rename %s to %s: %s", tmp, path,
           strerror(errno));
  return DT_OK;
}

/* The tensors of a PEFT adapter: name, shape and data of each. */
typedef struct {
  int n;
  dt_st_out t[4096];
  float *owned; /* computed prompt_embeddings */
} st_list;

static int push_var(st_list *l, const char *name, const dt_ckpt_var *v, const float *data) {
  DT_CHECK(l->n < 4096, DT_EUSAGE, "export: more than 4096 tensors");
  dt_st_out *o = &l->t[l->n++];
  o->name = name;
  o->dtype = DT_DTYPE_F32;
  o->ndim = v->ndim;
  for (int d = 0; d < v->ndim; d++) o->shape[d] = v->shape[d];
  o->data = data;
  return DT_OK;
}

static int lora_config(const dt_ckpt_info *i, const params_ext *p, st_list *l, json_t **cfg) {
  json_t *targets = json_array();
  for (int k = 0; k < p->n; k++) {
    char mod[256];
    const char *nm = p->v[k]->name;
    DT_CHECK(module_of(nm, "lora_A.weight", mod, sizeof mod) ||
                 module_of(nm, "lora_B.weight", mod, sizeof mod),
             DT_EINPUT, "export: '%s' is not a LoRA tensor name (base_model.model.<module>."
             "lora_A|lora_B.weight)", nm);
    add_unique(targets, mod);
    DT_CALL(push_var(l, nm, p->v[k], p->data[k]));
  }
  json_t *c = config_common(i, "LORA");
  json_object_set_new(c, "r", json_integer(atoi(opt_or(i, "lora-rank", "8"))));
  json_object_set_new(c, "lora_alpha", json_num(atof(opt_or(i, "lora-alpha", "16"))));
  json_object_set_new(c, "lora_dropout", json_real(atof(opt_or(i, "lora-dropout", "0"))));
  json_object_set_new(c, "use_rslora",
                      json_boolean(strcmp(opt_or(i, "lora-rslora", "false"), "true") == 0));
  json_object_set_new(c, "init_lora_weights",
                      json_boolean(strcmp(opt_or(i, "lora-init", "peft"), "random") != 0));
  json_object_set_new(c, "target_modules", sorted(targets));
  json_object_set_new(c, "fan_in_fan_out", json_boolean(strcmp(i->arch, "gpt2") == 0));
  json_object_set_new(c, "bias", json_string("none"));
  json_object_set_new(c, "use_dora", json_false());
  json_object_set_new(c, "modules_to_save", json_null());
  json_object_set_new(c, "layers_to_transform", json_null());
  json_object_set_new(c, "layers_pattern", json_null());
  json_object_set_new(c, "rank_pattern", json_object());
  json_object_set_new(c, "alpha_pattern", json_object());
  *cfg = c;
  return DT_OK;
}

static int ia3_config(const dt_ckpt_info *i, const params_ext *p, st_list *l, json_t **cfg) {
  json_t *targets = json_array(), *ff = json_array();
  for (int k = 0; k < p->n; k++) {
    char mod[256];
    const dt_ckpt_var *v = p->v[k];
    DT_CHECK(module_of(v->name, "ia3_l", mod, sizeof mod) && v->ndim == 2, DT_EINPUT,
             "export: '%s' is not an IA3 tensor (base_model.model.<module>.ia3_l, 2-D)",
             v->name);
    add_unique(targets, mod);
    if (v->shape[0] == 1 && v->shape[1] > 1) add_unique(ff, mod); /* [1,in]: input scaled */
    DT_CALL(push_var(l, v->name, v, p->data[k]));
  }
  json_t *c = config_common(i, "IA3");
  json_object_set_new(c, "target_modules", sorted(targets));
  json_object_set_new(c, "feedforward_modules", sorted(ff));
  json_object_set_new(c, "fan_in_fan_out", json_boolean(strcmp(i->arch, "gpt2") == 0));
  json_object_set_new(c, "init_ia3_weights", json_true());
  json_object_set_new(c, "modules_to_save", json_null());
  *cfg = c;
  return DT_OK;
}

static int find_ext(const params_ext *p, const char *name) {
  for (int k = 0; k < p->n; k++)
    if (strcmp(p->v[k]->name, name) == 0) return k;
  return -1;
}

/* Prefix tuning: PEFT saves the key/value table; with the MLP it is the
 * MLP's output  table = tanh(emb w0^T + b0) w2^T + b2. */
static int prefix_config(const dt_ckpt_info *i, const params_ext *p, st_list *l, json_t **cfg) {
  const int e = find_ext(p, "prompt_encoder.embedding.weight");
  DT_CHECK(e >= 0 && p->v[e]->ndim == 2, DT_EINPUT,
           "export: no prompt_encoder.embedding.weight [P, width] in the checkpoint");
  const int64_t P = p->v[e]->shape[0];
  const int kvd = i->kv_heads * i->head_dim, W = 2 * i->layers * kvd;
  const int w0 = find_ext(p, "prompt_encoder.transform.0.weight");
  const int hidden = w0 >= 0 ? (int)p->v[w0]->shape[0] : 0;
  static dt_ckpt_var table_var;
  memset(&table_var, 0, sizeof table_var);
  table_var.ndim = 2;
  table_var.shape[0] = P;
  table_var.shape[1] = W;
  if (!hidden) {
    DT_CHECK(p->v[e]->shape[1] == W, DT_EINPUT,
             "export: prompt_encoder.embedding.weight is [%lld, %lld]; 2 x %d layers x kv width "
             "%d = %d columns expected", (long long)P, (long long)p->v[e]->shape[1], i->layers,
             kvd, W);
    DT_CALL(push_var(l, "prompt_embeddings", &table_var, p->data[e]));
  } else {
    const int b0 = find_ext(p, "prompt_encoder.transform.0.bias");
    const int w2 = find_ext(p, "prompt_encoder.transform.2.weight");
    const int b2 = find_ext(p, "prompt_encoder.transform.2.bias");
    DT_CHECK(b0 >= 0 && w2 >= 0 && b2 >= 0 && p->v[e]->shape[1] == kvd &&
                 p->v[w0]->shape[1] == kvd && p->v[w2]->shape[0] == W &&
                 p->v[w2]->shape[1] == hidden,
             DT_EINPUT, "export: the prefix MLP tensors prompt_encoder.transform.{0,2}.{weight,"
             "bias} are missing or do not fit embedding [%lld, %d] -> %d -> %d", (long long)P,
             kvd, hidden, W);
    float *a = NULL;
    DT_CALL(dt_malloc(&l->owned, sizeof(float) * (size_t)(P * W), "prompt_embeddings"));
    DT_CALL(dt_malloc(&a, sizeof(float) * (size_t)hidden, "the prefix MLP"));
    const float *emb = p->data[e], *W0 = p->data[w0], *B0 = p->data[b0], *W2 = p->data[w2],
                *B2 = p->data[b2];
    for (int64_t r = 0; r < P; r++) {
      for (int h = 0; h < hidden; h++) {
        float s = B0[h];
        for (int j = 0; j < kvd; j++) s += emb[r * kvd + j] * W0[(size_t)h * kvd + j];
        a[h] = tanhf(s);
      }
      for (int o = 0; o < W; o++) {
        float s = B2[o];
        for (int h = 0; h < hidden; h++) s += a[h] * W2[(size_t)o * hidden + h];
        l->owned[r * W + o] = s;
      }
    }
    free(a);
    DT_CALL(push_var(l, "prompt_embeddings", &table_var, l->owned));
  }
  json_t *c = config_common(i, "PREFIX_TUNING");
  json_object_set_new(c, "num_virtual_tokens", json_integer(P));
  json_object_set_new(c, "token_dim", json_integer(kvd));
  json_object_set_new(c, "num_transformer_submodules", json_integer(1));
  json_object_set_new(c, "num_attention_heads", json_integer(i->kv_heads));
  json_object_set_new(c, "num_layers", json_integer(i->layers));
  json_object_set_new(c, "encoder_hidden_size", hidden ? json_integer(hidden) : json_null());
  json_object_set_new(c, "prefix_projection", json_boolean(hidden > 0));
  json_object_set_new(c, "modules_to_save", json_null());
  *cfg = c;
  return DT_OK;
}

static int prompt_config(const dt_ckpt_info *i, const params_ext *p, st_list *l, json_t **cfg) {
  const int e = find_ext(p, "prompt_encoder.embedding.weight");
  DT_CHECK(e >= 0 && p->v[e]->ndim == 2 && p->v[e]->shape[1] == i->d_model, DT_EINPUT,
           "export: no prompt_encoder.embedding.weight [P, %d] in the checkpoint", i->d_model);
  DT_CALL(push_var(l, "prompt_embeddings", p->v[e], p->data[e]));
  json_t *c = config_common(i, "PROMPT_TUNING");
  json_object_set_new(c, "num_virtual_tokens", json_integer(p->v[e]->shape[0]));
  json_object_set_new(c, "token_dim", json_integer(i->d_model));
  json_object_set_new(c, "num_transformer_submodules", json_integer(1));
  json_object_set_new(c, "num_attention_heads", json_integer(i->heads));
  json_object_set_new(c, "num_layers", json_integer(i->layers));
  json_object_set_new(c, "prompt_tuning_init", json_string("RANDOM"));
  json_object_set_new(c, "prompt_tuning_init_text", json_null());
  json_object_set_new(c, "tokenizer_name_or_path", json_null());
  json_object_set_new(c, "modules_to_save", json_null());
  *cfg = c;
  return DT_OK;
}

static int export_peft(const dt_ckpt_file *f, const params_ext *p, const char *dir) {
  const dt_ckpt_info *i = &f->info;
  st_list *l = calloc(1, sizeof *l);
  DT_CHECK(l, DT_ENOMEM, "export: the tensor list");
  json_t *cfg = NULL;
  int rc;
  if (strcmp(i->methods, "lora") == 0)
    rc = lora_config(i, p, l, &cfg);
  else if (strcmp(i->methods, "ia3") == 0)
    rc = ia3_config(i, p, l, &cfg);
  else if (strcmp(i->methods, "prefix") == 0)
    rc = prefix_config(i, p, l, &cfg);
  else if (strcmp(i->methods, "prompt") == 0)
    rc = prompt_config(i, p, l, &cfg);
  else
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--format peft: %s was trained with --method %s; PEFT adapters exist for "
                      "exactly one of lora, ia3, prefix, prompt (use --format safetensors)",
                      f->path, i->methods);
  char path[4200], step[32];
  snprintf(step, sizeof step, "%lld", (long long)i->step);
  const char *keys[] = {"format", "deltatune_checkpoint", "deltatune_step"};
  const char *vals[] = {"pt", f->path, step};
  if (rc == DT_OK) {
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rc = dt_st_write(path, l->t, l->n, keys, vals, 3);
  }
  if (rc == DT_OK) {
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    rc = write_json(cfg, path);
  }
  json_decref(cfg);
  free(l->owned);
  free(l);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

static int export_safetensors(const dt_ckpt_file *f, const params_ext *p, const char *dir) {
  const dt_ckpt_info *i = &f->info;
  st_list *l = calloc(1, sizeof *l);
  DT_CHECK(l, DT_ENOMEM, "export: the tensor list");
  json_t *tensors = json_array(), *opts = json_object(), *bb = json_object();
  int rc = DT_OK;
  for (int k = 0; rc == DT_OK && k < p->n; k++) {
    rc = push_var(l, p->v[k]->name, p->v[k], p->data[k]);
    json_t *t = json_object(), *sh = json_array();
    for (int d = 0; d < p->v[k]->ndim; d++) json_array_append_new(sh, json_integer(p->v[k]->shape[d]));
    json_object_set_new(t, "name", json_string(p->v[k]->name));
    json_object_set_new(t, "method", json_string(p->v[k]->method));
    json_object_set_new(t, "shape", sh);
    json_array_append_new(tensors, t);
  }
  for (int k = 0; k < i->n_opts; k++)
    json_object_set_new(opts, i->opts[k].name, json_string(i->opts[k].value));
  json_object_set_new(bb, "kind", json_string(i->backbone.kind));
  json_object_set_new(bb, "source", json_string(i->backbone.source));
  json_object_set_new(bb, "id", json_string(i->backbone.id));
  json_object_set_new(bb, "files", json_string(i->backbone.desc));
  json_object_set_new(bb, "arch", json_string(i->arch));
  json_object_set_new(bb, "layers", json_integer(i->layers));
  json_object_set_new(bb, "d_model", json_integer(i->d_model));
  json_object_set_new(bb, "heads", json_integer(i->heads));
  json_object_set_new(bb, "kv_heads", json_integer(i->kv_heads));
  json_object_set_new(bb, "head_dim", json_integer(i->head_dim));
  json_object_set_new(bb, "ffn", json_integer(i->ffn));
  json_object_set_new(bb, "vocab", json_integer(i->vocab));
  json_t *cfg = json_object();
  json_object_set_new(cfg, "format", json_string("deltatune-deltas"));
  json_object_set_new(cfg, "format_version", json_integer(1));
  json_object_set_new(cfg, "deltatune_version", json_string(DT_VERSION));
  json_object_set_new(cfg, "checkpoint", json_string(f->path));
  json_object_set_new(cfg, "step", json_integer(i->step));
  json_object_set_new(cfg, "methods", json_string(i->methods));
  json_object_set_new(cfg, "options", opts);
  json_object_set_new(cfg, "backbone", bb);
  json_object_set_new(cfg, "tensors", tensors);
  json_object_set_new(cfg, "weights_file", json_string("deltas.safetensors"));
  char path[4200], step[32];
  snprintf(step, sizeof step, "%lld", (long long)i->step);
  const char *keys[] = {"format", "deltatune_methods", "deltatune_checkpoint", "deltatune_step"};
  const char *vals[] = {"pt", i->methods, f->path, step};
  if (rc == DT_OK) {
    snprintf(path, sizeof path, "%s/deltas.safetensors", dir);
    rc = dt_st_write(path, l->t, l->n, keys, vals, 4);
  }
  if (rc == DT_OK) {
    snprintf(path, sizeof path, "%s/deltatune_config.json", dir);
    rc = write_json(cfg, path);
  }
  json_decref(cfg);
  free(l);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

int dt_cmd_export(int argc, char **argv) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const dt_optgroup g = {"export", "Export", export_opts};
  dt_options o;
  DT_CALL(dt_options_parse(&o, "export", &g, 1, argc, argv));
  if (o.help) {
    if (rank == 0)
      dt_options_print_help(stdout, "export",
                            "Write a checkpoint's deltas as a PEFT adapter folder or as a "
                            "documented safetensors file (docs/checkpoint.md).", &g, 1);
    return DT_OK;
  }
  DT_CHECK(dt_opt_is_set(&o, "checkpoint"), DT_EUSAGE,
           "--checkpoint is required (see deltatune export --help)");
  DT_CHECK(dt_opt_is_set(&o, "out"), DT_EUSAGE, "--out is required (see deltatune export --help)");
  const char *dir = dt_opt_str(&o, "out");
  dt_ckpt_file f;
  DT_CALL(dt_ckpt_open(&f, dt_opt_str(&o, "checkpoint"), MPI_COMM_WORLD));
  int rc = DT_OK;
  if (!f.info.complete)
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s is not complete (its complete attribute is 0)", f.path);
  params_ext p = {0};
  if (rc == DT_OK) rc = read_params(&f, &p);
  if (rc == DT_OK && rank == 0) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
      rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "--out %s: cannot create: %s", dir,
                        strerror(errno));
    if (rc == DT_OK)
      rc = strcmp(dt_opt_str(&o, "format"), "peft") == 0 ? export_peft(&f, &p, dir)
                                                         : export_safetensors(&f, &p, dir);
    if (rc == DT_OK)
      printf("export: %s (%s, step %lld) -> %s (%s)\n", f.path, f.info.methods,
             (long long)f.info.step, dir, dt_opt_str(&o, "format"));
    fflush(stdout);
  }
  rc = dt_ckpt_agree(rc, MPI_COMM_WORLD);
  params_free(&p);
  dt_ckpt_close(&f);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
