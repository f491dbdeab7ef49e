/* What a method's PEFT export works with (dt_method_ops.export_peft, used
 * by `deltatune export --format peft`, src/export.c): the checkpoint's
 * trained tensors in external layout, the adapter's tensor list it fills
 * and its adapter_config.json, plus the small helpers every such export
 * uses (module names from tensor names, PEFT's common config keys). */
#ifndef DT_PEFT_H
#define DT_PEFT_H

#include <jansson.h>
#include <stddef.h>

#include "checkpoint.h"
#include "method.h"
#include "safetensors.h"

/* The checkpoint's parameters in external layout. */
typedef struct {
  int n;
  const dt_ckpt_var **v;
  float **data;
} dt_peft_tensors;

/* The tensors of a PEFT adapter: name, shape and data of each. */
typedef struct {
  int n;
  dt_st_out t[4096];
  float *owned; /* computed tensors (prefix: prompt_embeddings), freed by export */
} dt_peft_out;

struct dt_peft_export {
  const dt_ckpt_info *info;  /* the checkpoint: options, architecture, shape */
  const dt_peft_tensors *in; /* its trained tensors */
  dt_peft_out *out;          /* the adapter's tensors (dt_peft_push) */
  json_t *cfg;               /* adapter_config.json, set by the hook */
};

/* Append a tensor (v's shape, data) to the adapter under name. */
int dt_peft_push(dt_peft_out *l, const char *name, const dt_ckpt_var *v, const float *data);
/* The index of the trained tensor called name, -1 when absent. */
int dt_peft_find(const dt_peft_tensors *p, const char *name);
/* "base_model.model.<prefix>.<layer>.<module>.<suffix>" -> module (1), or 0. */
int dt_peft_module_of(const char *name, const char *suffix, char *out, size_t cap);
/* Append s to a JSON array of strings unless it is there. */
void dt_peft_add_unique(json_t *arr, const char *s);
/* The array sorted (PEFT writes sets as lists; order is free); takes arr. */
json_t *dt_peft_sorted(json_t *arr);
/* The checkpoint's value of option name, dflt when unset or empty. */
const char *dt_peft_opt(const dt_ckpt_info *i, const char *name, const char *dflt);
/* A number as JSON: an integer when it is one (PEFT's lora_alpha is int). */
json_t *dt_peft_num(double x);
/* The keys every PEFT config has, for peft_type ("LORA"). */
json_t *dt_peft_config_common(const dt_ckpt_info *i, const char *peft_type);

#endif
