/* The Fastfood transform (Le et al. 2013) as used by intrinsic-dimension
 * tuning (Li et al. 2018, Aghajanyan et al. 2021):
 *
 *   y = H (G * (H (B * pad(theta, LL)))[Pi])        y in R^LL, theta in R^d
 *
 * H is the unnormalised Walsh-Hadamard transform of size LL (a power of
 * two, natural/Sylvester order: H[i][j] = (-1)^popcount(i & j)), B a +-1
 * diagonal, G a Gaussian diagonal, [Pi] a gather by a permutation of
 * 0..LL-1. Nothing is ever formed densely: a transform costs O(LL log LL).
 *
 * Only the first m = min(2^ceil(log2 d), LL) entries of B * pad(theta) can
 * be non-zero (theta entries at or beyond LL are cut off, as F.pad with a
 * negative width does), and H_LL = H_{LL/m} (x) H_m, so the inner transform
 * is H_m of those m entries tiled LL/m times: the inner step costs O(m log m)
 * and needs m floats, and only B[0..m) is ever read.
 */
#ifndef DT_FASTFOOD_H
#define DT_FASTFOOD_H

#include <stdint.h>

typedef struct {
  int64_t LL;        /* transform size, a power of two */
  const float *B;    /* [m] the +-1 diagonal (first m entries suffice) */
  const float *G;    /* [LL] the Gaussian diagonal */
  const int32_t *Pi; /* [LL] a permutation of 0..LL-1 */
} dt_fastfood;

/* 2^ceil(log2 n) (1 for n <= 1). */
int64_t dt_pow2_ceil(int64_t n);

/* m: the inner width for theta of length d (sizes the scratch below). */
static inline int64_t dt_fastfood_inner(int64_t LL, int d) {
  int64_t m = dt_pow2_ceil(d);
  return m < LL ? m : LL;
}

/* In-place unnormalised Walsh-Hadamard transform of x [n], n a power of
 * two. H is symmetric, so this is also its transpose. */
void dt_fwht(float *x, int64_t n);

/* y [LL] = H(G * (H(B * pad(theta)))[Pi]). h: scratch of
 * dt_fastfood_inner(LL, d) doubles (the inner transform runs in double). */
void dt_fastfood_forward(const dt_fastfood *f, const float *theta, int d,
                         float *y, double *h);

/* Backward of y = J theta (J the LL x d matrix above): g [LL] holds dL/dy on
 * entry and is overwritten. Adds scale * (J^T g)[j] to dtheta[j] for
 * j < min(d, LL) and returns <g, y> (y for this theta, computed without
 * forming it). h: scratch of 2 * dt_fastfood_inner(LL, d) doubles.
 *   J^T g = B * H_m(sum over tiles of (G * H g) scattered by Pi) */
double dt_fastfood_backward(const dt_fastfood *f, const float *theta, int d,
                            float *g, float scale, float *dtheta, double *h);

#endif
