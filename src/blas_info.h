/* Which OpenBLAS kernel runs, and how fast sgemm goes on it. */
#ifndef DT_BLAS_INFO_H
#define DT_BLAS_INFO_H

/* Core name OpenBLAS picked (e.g. "SkylakeX", "Prescott"). */
const char *dt_blas_core(void);
/* 1 when the CPU has AVX-512 but OpenBLAS runs a pre-AVX-512 kernel:
 * setting OPENBLAS_CORETYPE=SkylakeX would be 4-6x faster. */
int dt_blas_misdetected(void);
/* Measured sgemm rate (GFLOP/s) for n x n x n, with the current threads. */
double dt_blas_sgemm_gflops(int n);

#endif
