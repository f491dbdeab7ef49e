#include "blas_info.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
char *openblas_get_corename(void);

const char *dt_blas_core(void) { return openblas_get_corename(); }

int dt_blas_misdetected(void) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) return 0;
  const char *core = dt_blas_core();
  static const char *avx512_cores[] = {"skylakex", "cooperlake", "sapphirerapids"};
  for (size_t i = 0; i < sizeof avx512_cores / sizeof *avx512_cores; i++)
    if (strcasecmp(core, avx512_cores[i]) == 0) return 0;
  return 1;
}

double dt_blas_sgemm_gflops(int n) {
  size_t nn = (size_t)n * n;
  float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)),
        *c = malloc(nn * sizeof(float));
  if (!a || !b || !c) {
    free(a), free(b), free(c);
    return 0.0;
  }
  for (size_t i = 0; i < nn; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b,
              n, 0.0f, c, n); /* warm-up */
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    double t0 = dt_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n,
                b, n, 0.0f, c, n);
    double t = dt_now() - t0;
    if (t < best) best = t;
  }
  free(a), free(b), free(c);
  return 2.0 * n * (double)n * n / best * 1e-9;
}
