#include "linear_rows.h"

#include <stddef.h>

#include "vmath.h"

DT_VEC_CLONES void dt_linear_rows(float *y, const float *x, const float *W, const float *b, int N,
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
