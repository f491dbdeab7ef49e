/* The table of trainable parameters.
 *
 * Each entry names one tensor with its external (HF/PEFT) name and shape and
 * points at its fp32 storage and gradient. Delta methods allocate their own
 * tensors; methods that train backbone tensors (full, lastlayer, bitfit)
 * point into the backbone. `transposed` marks a 2-D tensor stored as the
 * transpose of its external shape (GPT-2 Conv1D weights are [in,out]
 * externally and [out,in] here).
 */
#ifndef DT_PARAMS_H
#define DT_PARAMS_H

#include <stdint.h>
#include <stdio.h>

#define DT_PARAM_NAME_MAX 160

typedef struct {
  char name[DT_PARAM_NAME_MAX];
  int ndim;
  int64_t shape[4]; /* external shape */
  int64_t numel;
  float *data;
  float *grad;
  int transposed;
  const char *method; /* owner, for reporting */
} dt_param;

typedef struct {
  int n, cap;
  dt_param *p;
  int64_t numel; /* total elements */
} dt_params;

int dt_params_add(dt_params *t, const char *method, const char *name, int ndim,
                  const int64_t *shape, float *data, float *grad,
                  int transposed);
void dt_params_free(dt_params *t);
const dt_param *dt_params_find(const dt_params *t, const char *name);

/* Names are compared after canonicalisation: PEFT's ".default" adapter name
 * component is dropped ("lora_A.default.weight" == "lora_A.weight"). */
void dt_param_canonical(char *out, size_t cap, const char *name);

/* Load initial values from safetensors files (comma-separated list). Every
 * parameter must be found in one file with the right shape; unmatched
 * tensors in the files are ignored unless strict. Errors name the file and
 * the tensor. */
int dt_params_load(dt_params *t, const char *files_csv);
/* Write data (which = 0) or gradients (which = 1) under external names. */
int dt_params_save(const dt_params *t, const char *path, int which);

void dt_params_zero_grad(dt_params *t);

/* Copy between the external layout and storage (handles transposed). */
void dt_param_to_external(const dt_param *p, const float *src, float *dst);
void dt_param_from_external(const dt_param *p, const float *src, float *dst);

#endif
