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

#include <mpi.h>

#include "segs.h"

/* How a gradient is completed across ranks (see docs/parallel.md):
 *   PARTIAL  each rank of a tensor group holds a partial sum (e.g. LoRA's A
 *            on a column-parallel matrix): summed over every rank;
 *   COMPLETE each rank of a tensor group holds the whole gradient (computed
 *            from replicated activations): summed over data-parallel replicas;
 *   SHARD    the rank holds one shard of a sharded backbone tensor: summed
 *            over data-parallel replicas. */
enum { DT_SYNC_PARTIAL = 0, DT_SYNC_COMPLETE = 1, DT_SYNC_SHARD = 2 };

/* The part of a sharded tensor held by this rank: the tensor's storage is
 * [rows, cols] globally; `segs` maps global indices of dimension shard_dim
 * to local indices (local rows when shard_dim is 0, counted from first_l0;
 * local columns of a local_cols-wide row when 1). */
typedef struct {
  int shard_dim;
  int64_t rows, cols;
  int first_l0, local_cols;
  dt_segs segs;
} dt_param_shard;

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
  int64_t numel_l;    /* elements held by this rank (numel unless sharded) */
  int sync;           /* DT_SYNC_* */
  dt_param_shard *shard; /* NULL: every rank holds all of it */
  const char *alias;     /* another name --init-from accepts (a static string:
                            transformers 5's module name, io/arch.h), or NULL */
} dt_param;

typedef struct {
  int n, cap;
  dt_param *p;
  int64_t numel;   /* total elements (global) */
  int64_t numel_l; /* total elements held by this rank */
} dt_params;

/* Register a shard of a sharded backbone tensor (data/grad: this rank's
 * numel_l contiguous local elements). The shard description is copied. */
int dt_params_add_shard(dt_params *t, const char *method, const char *name, int ndim,
                        const int64_t *shape, float *data, float *grad, int transposed,
                        int64_t numel_l, const dt_param_shard *sh);
/* Set the gradient class of the most recently added parameter. */
void dt_params_last_sync(dt_params *t, int sync);
/* Give the most recently added parameter another name that --init-from
 * files may hold it under (alias: a static string, or NULL). */
void dt_params_last_alias(dt_params *t, const char *alias);
/* Storage-order full array <-> this rank's local elements. */
void dt_param_full_to_local(const dt_param *p, const float *full, float *local);
void dt_param_local_to_full(const dt_param *p, const float *local, float *full);
/* Save with a rank layout: each sharded tensor is assembled by tp_sum(ctx,
 * full, numel) (a sum over the ranks holding its shards, given by the
 * caller: mpi/params_dist.h); the rank of rank 0 writes and the ranks of
 * world agree on the outcome. Collective over world. */
typedef struct {
  int (*tp_sum)(void *ctx, float *buf, size_t n);
  void *ctx;
  MPI_Comm world;
  int rank;
} dt_params_reduce;
int dt_params_save_reduced(const dt_params *t, const char *path, int which,
                           const dt_params_reduce *dist);

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
