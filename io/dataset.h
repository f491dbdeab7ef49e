/* Tokenized datasets: a safetensors file with input_ids [N,T] (int32/int64)
 * and optional labels [N,T] (default: input_ids). Labels are token ids or -100
 * (not scored). */
#ifndef DT_DATASET_H
#define DT_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *path;
  int64_t n_rows;
  int seq_len;
  int32_t *input_ids; /* [n_rows, seq_len] */
  int32_t *labels;    /* [n_rows, seq_len] */
  /* Files whose two tensors are little-endian I32 (the token cache of JSON
   * lines data, the shipped tasks) are memory-mapped read-only: input_ids
   * and labels point into the mapping, shared with every other process
   * that maps the file, and nothing is copied. */
  void *map;
  size_t map_len;
  /* Scored targets: labels[b][t] != -100 with t >= 1, over the whole file.
   * Column 0 never counts: the causal-LM loss scores logits[b][t] against
   * labels[b][t+1], so labels[b][0] is never a target. */
  int64_t n_scored;
} dt_dataset;

/* Load and validate: tensors present, 2-D, same shape, integer dtype, not
 * empty (at least 1 row and 2 columns), 0 <= id < vocab, labels in
 * [0,vocab) or -100. vocab <= 0 skips the upper bound (ids must still be
 * non-negative and fit int32). Integer dtypes I32/I64/U8/I8 are accepted and
 * stored as int32 (I32 files are mapped, not copied: the arrays are then
 * read-only). A file with no scored label (n_scored == 0) is an error.
 * Errors name the file, tensor, row/column and value. */
int dt_dataset_load(dt_dataset *d, const char *path, int vocab);
/* path "synthetic:rows=N,len=T[,seed=S]" generates uniform random tokens
 * with every position scored (benchmarks, scaling studies). */
void dt_dataset_free(dt_dataset *d);

#endif
