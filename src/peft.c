/* Helpers of the methods' PEFT exports (src/peft.h). */
#include "peft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int dt_peft_push(dt_peft_out *l, const char *name, const dt_ckpt_var *v, const float *data) {
  DT_CHECK(l->n < 4096, DT_EUSAGE, "export: more than 4096 tensors");
  dt_st_out *o = &l->t[l->n++];
  o->name = name;
  o->dtype = DT_DTYPE_F32;
  o->ndim = v->ndim;
  for (int d = 0; d < v->ndim; d++) o->shape[d] = v->shape[d];
  o->data = data;
  return DT_OK;
}


static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* "base_model.model.<prefix>.<layer>.<module>.<suffix>" -> module. */
int dt_peft_module_of(const char *name, const char *suffix, char *out, size_t cap) {
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

void dt_peft_add_unique(json_t *arr, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return;
  json_array_append_new(arr, json_string(s));
}

/* Sort a JSON array of strings (PEFT writes sets as lists; order is free). */
static int cmp_json_str(const void *a, const void *b) {
  return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}
json_t *dt_peft_sorted(json_t *arr) {
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

const char *dt_peft_opt(const dt_ckpt_info *i, const char *name, const char *dflt) {
  const char *v = dt_ckpt_info_opt(i, name);
  return v && *v ? v : dflt;
}

/* A number as JSON: an integer when it is one (PEFT's lora_alpha is int). */
json_t *dt_peft_num(double x) {
  if (x == floor(x) && fabs(x) < 1e15) return json_integer((json_int_t)x);
  return json_real(x);
}

json_t *dt_peft_config_common(const dt_ckpt_info *i, const char *peft_type) {
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


int dt_peft_find(const dt_peft_tensors *p, const char *name) {
  for (int k = 0; k < p->n; k++)
    if (strcmp(p->v[k]->name, name) == 0) return k;
  return -1;
}
