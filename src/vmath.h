#ifndef DT_VMATH_H
#define DT_VMATH_H
/* Branch-free elementwise math that the compiler vectorizes at the baseline
 * ISA (no libm call in the loop). The files whose hot loops use these are
 * built with -O3 -fno-trapping-math (CMakeLists.txt), which lets GCC
 * if-convert the clamps and vectorize the loops.
 *
 * dt_expf: Cephes-style expf (range reduction by ln 2 in two parts, degree-6
 * polynomial, exponent added to the bits): relative error below 2 ulp on
 * [-87, 88]; 0 below -87 (where expf is < 1.7e-38), +inf above 88 (callers
 * pass x - max or bounded arguments), NaN for NaN. */

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE__
#include <xmmintrin.h>
#endif

/* The loops that use dt_expf are also compiled for AVX2 and AVX-512 and
 * picked at load time (ifunc). They are elementwise or reduce in a written
 * order and the files are built with -ffp-contract=off, so every version
 * gives the same bits: the same binary agrees with itself on every x86-64
 * machine. The AVX-512 clones took the GPT-2-small step from 2.13 to
 * 2.04-2.10 s on an AVX-512 Xeon (docs/performance.md, 2026-12-06). */
#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(DT_NO_CLONES)
#define DT_VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DT_VEC_CLONES
#endif

static inline float dt_expf(float x) {
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  /* n = round(x / ln 2) through the 1.5 * 2^23 shifter */
  const float t = xc * 1.44269504088896341f + 12582912.0f;
  const float fn = t - 12582912.0f;
  int32_t ti;
  memcpy(&ti, &t, sizeof ti);
  const int32_t n = ti - 0x4B400000;
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  const float z = r * r;
  float y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
              4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  int32_t yi;
  memcpy(&yi, &y, sizeof yi);
  yi += (int32_t)((uint32_t)n << 23);
  memcpy(&y, &yi, sizeof y);
  y = x > 88.0f ? HUGE_VALF : y;
  y = x == x ? y : x; /* NaN stays NaN */
  return x < -87.0f ? 0.0f : y;
}

/* The largest of z[0..n) (NaNs ignored; -inf when n = 0). maxps(a, b) is
 * a > b ? a : b, the scalar loop's own comparison; the compiler does not
 * vectorize that reduction by itself (it would need -ffinite-math-only). */
static inline float dt_row_max(const float *z, int n) {
  float v = -INFINITY;
  int j = 0;
#ifdef __SSE__
  __m128 a = _mm_set1_ps(-INFINITY), b = a;
  for (; j + 8 <= n; j += 8) {
    a = _mm_max_ps(_mm_loadu_ps(z + j), a);
    b = _mm_max_ps(_mm_loadu_ps(z + j + 4), b);
  }
  float l[4];
  _mm_storeu_ps(l, _mm_max_ps(a, b));
  for (int k = 0; k < 4; k++) v = l[k] > v ? l[k] : v;
#endif
  for (; j < n; j++) v = z[j] > v ? z[j] : v;
  return v;
}

/* 8 double lanes added in pairs: the written order of every lane sum here
 * and in src/ops.c (l[k] holds the values j with j mod 8 = k; the tail
 * comes after) */
#define DT_LANES_SUM(l) ((((l)[0] + (l)[1]) + ((l)[2] + (l)[3])) + (((l)[4] + (l)[5]) + ((l)[6] + (l)[7])))

/* The sum of z[0..n) in double, in 8 lanes: vectorizes, and the order of
 * the additions is the same on every machine. */
static inline double dt_row_sum_d(const float *z, int n) {
  double l[8] = {0};
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) l[k] += (double)z[j + k];
  double s = DT_LANES_SUM(l);
  for (; j < n; j++) s += (double)z[j];
  return s;
}

#endif
