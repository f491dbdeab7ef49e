/* The next token from a row of logits: greedy (the first largest logit, as
 * torch.argmax), or sampled after temperature, top-k and top-p (the order
 * of transformers' logits warpers) with one uniform number from a
 * counter-based stream keyed by (seed, input row, step): the same choice
 * at any rank count and any grouping of rows into batches. */
#ifndef DT_SAMPLER_H
#define DT_SAMPLER_H

#include <stdint.h>

typedef struct {
  double temperature; /* 0: greedy */
  int top_k;          /* 0: all */
  double top_p;       /* 1: all */
  uint64_t seed;
} dt_sampling;

/* Scratch for a vocabulary of V: idx int[V], p double[V]. */
int32_t dt_sample_token(const dt_sampling *s, const float *logits, int V, int64_t row,
                        int64_t step, int *idx, double *p);

#endif
