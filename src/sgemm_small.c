/* fp32 products of attention's blocks without packing (sgemm_small.h).
 *
 * The tile: RB rows of C by up to 4 vectors of 16 columns, in 24 zmm
 * accumulators. Each step k loads B's row k (up to 4 vectors, the last one
 * masked at N's end), broadcasts A[i, k] of the tile's rows, and adds their
 * products: 24 fused multiply-adds for 4 loads and 6 broadcasts. A tile of
 * B [K, 64] (64 KB at K = 256) stays in L1/L2 while the row tiles pass
 * over it. Tiles are instantiated for constant row and vector counts so the
 * accumulators stay in registers.
 */
#include "sgemm_small.h"

#include <cblas.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX512_KERNEL 1
#include <immintrin.h>
#endif

#define RB 6 /* rows of a tile */

#ifdef HAVE_AVX512_KERNEL
/* C[R, 16 nv] (last vector masked by `last`) = alpha A B + beta C over K */
__attribute__((target("avx512f"), always_inline)) static inline void
tile(const int R, const int nv, int K, __mmask16 last, float *C, long ldc, const float *A, long ai,
     long ak, const float *B, long ldb, float alpha, float beta) {
  __m512 acc[RB][4];
  _Pragma("GCC unroll 8") for (int r = 0; r < RB; r++)
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
  for (int k = 0; k < K; k++) {
    __m512 b[4];
    const float *bk = B + k * ldb, *a = A + k * ak;
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) if (v < nv) b[v] =
        v == nv - 1 ? _mm512_maskz_loadu_ps(last, bk + 16 * v) : _mm512_loadu_ps(bk + 16 * v);
    _Pragma("GCC unroll 8") for (int r = 0; r < RB; r++) if (r < R) {
      const __m512 x = _mm512_set1_ps(a[r * ai]);
      _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) if (v < nv) acc[r][v] =
          _mm512_fmadd_ps(x, b[v], acc[r][v]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha);
  _Pragma("GCC unroll 8") for (int r = 0; r < RB; r++) if (r < R)
    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) if (v < nv) {
      const __mmask16 m = v == nv - 1 ? last : (__mmask16)0xffff;
      float *c = C + r * ldc + 16 * v;
      __m512 y = _mm512_mul_ps(acc[r][v], al);
      if (beta != 0.0f) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, c));
      _mm512_mask_storeu_ps(c, m, y);
    }
}

__attribute__((target("avx512f"))) static void kernel(int M, int N, int K, float alpha,
                                                      const float *A, long ai, long ak,
                                                      const float *B, long ldb, float beta,
                                                      float *C, long ldc) {
  for (int n0 = 0; n0 < N; n0 += 64) {
    const int nn = N - n0 < 64 ? N - n0 : 64, nv = (nn + 15) / 16, tail = nn - 16 * (nv - 1);
    const __mmask16 last = (__mmask16)(tail == 16 ? 0xffffu : (1u << tail) - 1u);
    const float *Bn = B + n0;
    int i0 = 0;
    for (; i0 + RB <= M; i0 += RB) {
      float *c = C + i0 * ldc + n0;
      const float *a = A + i0 * ai;
      switch (nv) {
#define FULL(x) \
  case x: tile(RB, x, K, last, c, ldc, a, ai, ak, Bn, ldb, alpha, beta); break;
        FULL(1) FULL(2) FULL(3) FULL(4)
#undef FULL
      }
    }
    if (i0 == M) continue;
    float *c = C + i0 * ldc + n0;
    const float *a = A + i0 * ai;
    switch ((M - i0) * 8 + nv) { /* the last rows: fewer than RB */
#define EDGE(r, x) \
  case r * 8 + x: tile(r, x, K, last, c, ldc, a, ai, ak, Bn, ldb, alpha, beta); break;
#define EDGES(r) EDGE(r, 1) EDGE(r, 2) EDGE(r, 3) EDGE(r, 4)
      EDGES(1) EDGES(2) EDGES(3) EDGES(4) EDGES(5)
#undef EDGES
#undef EDGE
    }
  }
}

/* dst [16, 16] (stride ldd) = the transpose of src [16, 16] (stride lds):
 * interleave pairs of rows (32-bit), then pairs of pairs (64-bit), then
 * 128-bit lanes twice; w[c] ends as column c. */
__attribute__((target("avx512f"))) static void block16(float *dst, long ldd, const float *src,
                                                       long lds) {
  __m512 r[16], t[16], v[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) { /* rows i..i+3: columns 4q + {0,1,2,3} in lane q */
    const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
    const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int h = 0; h < 16; h += 8) /* rows h..h+7: lanes {0,2} and {1,3} of two groups */
    for (int j = 0; j < 4; j++) {
      v[h + j] = _mm512_shuffle_f32x4(r[h + j], r[h + 4 + j], 0x88);
      v[h + 4 + j] = _mm512_shuffle_f32x4(r[h + j], r[h + 4 + j], 0xdd);
    }
  for (int c = 0; c < 8; c++) { /* v[c] and v[8 + c] hold columns c and c + 8 */
    _mm512_storeu_ps(dst + c * ldd, _mm512_shuffle_f32x4(v[c], v[8 + c], 0x88));
    _mm512_storeu_ps(dst + (c + 8) * ldd, _mm512_shuffle_f32x4(v[c], v[8 + c], 0xdd));
  }
}
#endif

void dt_sgemm_small_transpose(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
  int r16 = 0, c16 = 0;
#ifdef HAVE_AVX512_KERNEL
  if (dt_sgemm_small_native()) {
    r16 = rows / 16 * 16;
    c16 = cols / 16 * 16;
    for (int i = 0; i < r16; i += 16)
      for (int c = 0; c < c16; c += 16)
        block16(dst + (long)c * ldd + i, ldd, src + (long)i * lds + c, lds);
  }
#endif
  /* the rest: the columns past c16 of every row, and every column of the
   * rows past r16 */
  for (int i = 0; i < rows; i++)
    for (int c = i < r16 ? c16 : 0; c < cols; c++) dst[(long)c * ldd + i] = src[(long)i * lds + c];
}

int dt_sgemm_small_native(void) {
#ifdef HAVE_AVX512_KERNEL
  static int have = -1;
  if (have < 0) have = __builtin_cpu_supports("avx512f") ? 1 : 0;
  return have;
#else
  return 0;
#endif
}

void dt_sgemm_small(int trans_a, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
#ifdef HAVE_AVX512_KERNEL
  if (K > 0 && dt_sgemm_small_native()) {
    kernel(M, N, K, alpha, A, trans_a ? 1 : lda, trans_a ? lda : 1, B, ldb, beta, C, ldc);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, M, N, K, alpha, A,
              lda, B, ldb, beta, C, ldc);
}
