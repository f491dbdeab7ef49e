/* The Fastfood transform: see fastfood.h. */
#include "fastfood.h"

#include <string.h>

int64_t dt_pow2_ceil(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

/* Butterflies of stage h and 2h together (radix 4) over x [n]. */
static inline void stage4(float *x, int64_t n, int64_t h) {
  for (int64_t i = 0; i < n; i += 4 * h)
    for (int64_t j = i; j < i + h; j++) {
      const float a0 = x[j], a1 = x[j + h], a2 = x[j + 2 * h], a3 = x[j + 3 * h];
      const float b0 = a0 + a1, b1 = a0 - a1, b2 = a2 + a3, b3 = a2 - a3;
      x[j] = b0 + b2;
      x[j + h] = b1 + b3;
      x[j + 2 * h] = b0 - b2;
      x[j + 3 * h] = b1 - b3;
    }
}

static inline void stage2(float *x, int64_t n, int64_t h) {
  for (int64_t i = 0; i < n; i += 2 * h)
    for (int64_t j = i; j < i + h; j++) {
      const float a = x[j], c = x[j + h];
      x[j] = a + c;
      x[j + h] = a - c;
    }
}

/* Stages h = 1, 2, 4, ... two at a time (radix 4), plus one radix-2 stage
 * when the count is odd. */
static void stages(float *x, int64_t n, int64_t h) {
  for (; 4 * h <= n; h <<= 2) stage4(x, n, h);
  if (h < n) stage2(x, n, h);
}

/* Stages h < S inside blocks of S floats (cache resident), then the rest
 * over the whole array. Every output goes through the same butterflies as
 * the textbook radix-2 loop, so the rounding is identical to it. */
void dt_fwht(float *x, int64_t n) {
  const int64_t S = n < 2048 ? n : 2048;
  for (int64_t b = 0; b < n; b += S) stages(x + b, S, 1);
  if (S < n) stages(x, n, S);
}

/* The inner transform (size m, small) in double. */
static void fwht_d(double *x, int64_t n) {
  for (int64_t h = 1; h < n; h <<= 1)
    for (int64_t i = 0; i < n; i += 2 * h)
      for (int64_t j = i; j < i + h; j++) {
        const double a = x[j], c = x[j + h];
        x[j] = a + c;
        x[j + h] = a - c;
      }
}

/* h [m] = H_m(B * pad(theta)): one tile of H_LL(B * pad(theta, LL)). */
static void inner(const dt_fastfood *f, const float *theta, int d, int64_t m,
                  double *h) {
  const int64_t dd = d < f->LL ? d : f->LL;
  for (int64_t j = 0; j < dd; j++) h[j] = (double)f->B[j] * theta[j];
  for (int64_t j = dd; j < m; j++) h[j] = 0.0;
  fwht_d(h, m);
}

void dt_fastfood_forward(const dt_fastfood *f, const float *theta, int d,
                         float *y, double *h) {
  const int64_t LL = f->LL, m = dt_fastfood_inner(LL, d), mask = m - 1;
  inner(f, theta, d, m, h);
  for (int64_t k = 0; k < LL; k++) y[k] = f->G[k] * (float)h[f->Pi[k] & mask];
  dt_fwht(y, LL);
}

double dt_fastfood_backward(const dt_fastfood *f, const float *theta, int d,
                            float *g, float scale, float *dtheta, double *h) {
  const int64_t LL = f->LL, m = dt_fastfood_inner(LL, d), mask = m - 1;
  const int64_t dd = d < LL ? d : LL;
  double *acc = h + m;
  inner(f, theta, d, m, h);
  dt_fwht(g, LL); /* v = H g */
  memset(acc, 0, sizeof(double) * (size_t)m);
  double dot = 0.0;
  for (int64_t k = 0; k < LL; k++) {
    /* <g, y> = <H g, G z> with z = tiled h gathered by Pi; the transpose of
     * the gather is a scatter, and of the tiling a sum over tiles. */
    const double gv = (double)f->G[k] * g[k];
    const int64_t r = f->Pi[k] & mask;
    dot += gv * (double)(float)h[r];
    acc[r] += gv;
  }
  fwht_d(acc, m);
  for (int64_t j = 0; j < dd; j++) dtheta[j] += scale * (float)(f->B[j] * acc[j]);
  return dot;
}
