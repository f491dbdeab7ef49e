/* deltatune export --checkpoint FILE.nc --format peft|safetensors --out DIR
 *
 * peft: adapter_model.safetensors + adapter_config.json as PEFT's
 *   save_pretrained writes them (adapter name dropped from tensor names,
 *   inference_mode true), for a checkpoint of one method that has an
 *   export_peft hook (lora, ia3, prefix, prompt: each in its own file,
 *   src/methods/; the helpers in src/peft.h).
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
#include "method.h"
#include "options.h"
#include "peft.h"
#include "safetensors.h"

static const dt_optdef export_opts[] = {
    {"checkpoint", DT_OPT_STRING, NULL, 0, 0, NULL, "the checkpoint to export (required)"},
    {"format", DT_OPT_CHOICE, "peft", 0, 0, "peft|safetensors",
     "peft: adapter_model.safetensors + adapter_config.json (lora, ia3, prefix, prompt); "
     "safetensors: deltas.safetensors + deltatune_config.json (any methods)"},
    {"out", DT_OPT_STRING, NULL, 0, 0, NULL, "output folder (created; required)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* The checkpoint's parameters in external layout (src/peft.h). */
typedef dt_peft_tensors params_ext;
typedef dt_peft_out st_list;

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

static int write_json(json_t *j, const char *path) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int e = json_dump_file(j, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
  DT_CHECK(e == 0, DT_EIO, "cannot write %s", tmp);
  DT_CHECK(rename(tmp, path) == 0, DT_EIO, "cannot rename %s to %s: %s", tmp, path,
           strerror(errno));
  return DT_OK;
}

static int export_peft(const dt_ckpt_file *f, const params_ext *p, const char *dir) {
  const dt_ckpt_info *i = &f->info;
  st_list *l = calloc(1, sizeof *l);
  DT_CHECK(l, DT_ENOMEM, "export: the tensor list");
  json_t *cfg = NULL;
  int rc;
  /* the method's own export (its ops); only a single method has a PEFT adapter */
  const dt_method_ops *ops = strchr(i->methods, ',') ? NULL : dt_method_lookup(i->methods);
  dt_peft_export x = {i, p, l, NULL};
  if (ops && ops->export_peft) {
    rc = ops->export_peft(&x);
    cfg = x.cfg;
  } else {
    char names[512] = "";
    for (int k = 0; k < dt_method_count(); k++)
      if (dt_method_at(k)->export_peft) {
        const size_t u = strlen(names);
        snprintf(names + u, sizeof names - u, "%s%s", u ? ", " : "", dt_method_at(k)->name);
      }
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--format peft: %s was trained with --method %s; PEFT adapters exist for "
                      "exactly one of %s (use --format safetensors)",
                      f->path, i->methods, names);
  }
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
    rc = dt_peft_push(l, p->v[k]->name, p->v[k], p->data[k]);
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
