#include "linear_rows.h"

#include <stddef.h>

#include "bf16.h"
#include "vmath.h"

/* The kernels are static: clang (Debian 12's 14) emits no symbol under the
 * plain name for an external function with target_clones, so the fuzz
 * build did not link; the exported names below call them. */
static DT_VEC_CLONES void rows_f32(float *y, const float *x, const float *W, const float *b, int N,
                                   int in, int out) {
  const int in16 = in & ~15;
  for (int j = 0; j < out; j++) {
    const float *w = W + (size_t)j * in;
    for (int i = 0; i < N; i++) {
      const float *xi = x + (size_t)i * in;
      float acc[16] = {0};
      for (int k = 0; k < in16; k += 16)
        for (int l = 0; l < 16; l++) acc[l] += w[k + l] * xi[k + l];
      float s = 0.0f;
      for (int k = in16; k < in; k++) s += w[k] * xi[k];
      for (int l = 0; l < 16; l++) s += acc[l];
      y[(size_t)i * out + j] = s + (b ? b[j] : 0.0f);
    }
  }
}

static DT_VEC_CLONES void rows_bf16(float *y, const float *x, const uint16_t *W, const float *b,
                                    int N, int in, int out) {
  const int in16 = in & ~15;
  for (int j = 0; j < out; j++) {
    const uint16_t *w16 = W + (size_t)j * in;
    float acc[4][16] = {{0}};
    float tail[4] = {0};
    const int n4 = N < 4 ? N : 4;
    for (int i0 = 0; i0 < N; i0 += 4) { /* 4 rows of x per read of the W row */
      const int nr = N - i0 < 4 ? N - i0 : 4;
      for (int r = 0; r < n4; r++) {
        tail[r] = 0.0f;
        for (int l = 0; l < 16; l++) acc[r][l] = 0.0f;
      }
      for (int k = 0; k < in16; k += 16) {
        float w[16];
        for (int l = 0; l < 16; l++) w[l] = dt_bf16_to_f32(w16[k + l]);
        for (int r = 0; r < nr; r++) {
          const float *xi = x + (size_t)(i0 + r) * in + k;
          for (int l = 0; l < 16; l++) acc[r][l] += w[l] * xi[l];
        }
      }
      for (int r = 0; r < nr; r++) {
        const float *xi = x + (size_t)(i0 + r) * in;
        for (int k = in16; k < in; k++) tail[r] += dt_bf16_to_f32(w16[k]) * xi[k];
        float s = tail[r];
        for (int l = 0; l < 16; l++) s += acc[r][l];
        y[(size_t)(i0 + r) * out + j] = s + (b ? b[j] : 0.0f);
      }
    }
  }
}

void dt_linear_rows(float *y, const float *x, const float *W, const float *b, int N, int in,
                    int out) {
  rows_f32(y, x, W, b, N, in, out);
}

void dt_linear_rows_bf16(float *y, const float *x, const uint16_t *W, const float *b, int N,
                         int in, int out) {
  rows_bf16(y, x, W, b, N, in, out);
}
