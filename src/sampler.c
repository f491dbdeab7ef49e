#include "sampler.h"

#include <math.h>
#include <stdlib.h>

#include "rng.h"

static const double *g_p; /* qsort context (single-threaded) */
static int by_p_desc(const void *a, const void *b) {
  const int i = *(const int *)a, j = *(const int *)b;
  if (g_p[i] != g_p[j]) return g_p[i] > g_p[j] ? -1 : 1;
  return i - j; /* ties: the lower id first, the same order everywhere */
}

int32_t dt_sample_token(const dt_sampling *s, const float *z, int V, int64_t row, int64_t step,
                        int *idx, double *p) {
  int best = 0;
  for (int j = 1; j < V; j++)
    if (z[j] > z[best]) best = j;
  if (s->temperature <= 0) return best;
  /* p = softmax(z / temperature), in descending order */
  const double mx = z[best];
  for (int j = 0; j < V; j++) {
    p[j] = exp(((double)z[j] - mx) / s->temperature);
    idx[j] = j;
  }
  g_p = p;
  qsort(idx, (size_t)V, sizeof(int), by_p_desc);
  /* top-k: the k most likely (and any tied with the k-th, as transformers) */
  int n = V;
  if (s->top_k > 0 && s->top_k < V) {
    n = s->top_k;
    while (n < V && p[idx[n]] == p[idx[s->top_k - 1]]) n++;
  }
  double tot = 0;
  for (int i = 0; i < n; i++) tot += p[idx[i]];
  /* top-p: the smallest head whose probability reaches top_p (at least one) */
  if (s->top_p < 1.0) {
    double c = 0;
    int keep = 0;
    while (keep < n && c < s->top_p * tot) c += p[idx[keep++]];
    if (keep < 1) keep = 1;
    n = keep;
    tot = c > 0 ? c : p[idx[0]];
  }
  const double u = dt_rng_uniform(dt_rng_key(s->seed, (uint64_t)row), (uint64_t)step) * tot;
  double c = 0;
  for (int i = 0; i < n; i++) {
    c += p[idx[i]];
    if (u < c) return idx[i];
  }
  return idx[n - 1];
}
