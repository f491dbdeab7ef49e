/* fp32 products of attention's blocks without packing.
 *
 * OpenBLAS copies both operands into its panel layout on every call. For
 * the products of a block of 64 queries (a depth or a width of one head,
 * 64-128) that copy is about a quarter of their time, and it repeats the
 * keys once per block (docs/performance.md). Here, on a CPU with AVX-512,
 * a register tile of 6 rows x 64 columns reads B's rows and broadcasts A's
 * elements where they lie; elsewhere the call goes to cblas_sgemm. The
 * caller lays B out as rows of N contiguous floats (attention copies a
 * head's keys and values once, transposed where the product needs it).
 */
#ifndef DT_SGEMM_SMALL_H
#define DT_SGEMM_SMALL_H

/* C[M,N] (row stride ldc) = alpha op(A) B + beta C, beta 0 or 1, where
 * op(A) is A [M,K] with row stride lda (trans_a 0) or the transpose of
 * A [K,M] with row stride lda (trans_a 1), and B is [K,N] with row stride
 * ldb. Each element of C sums its K products in order (one fused
 * multiply-add each), then scales by alpha and adds C. */
void dt_sgemm_small(int trans_a, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);

/* dst [cols, rows] (row stride ldd) = the transpose of src [rows, cols]
 * (row stride lds): how a caller lays out the B of a product that needs
 * an operand's transpose (16 x 16 blocks in registers on AVX-512). */
void dt_sgemm_small_transpose(float *dst, int ldd, const float *src, int lds, int rows, int cols);

/* 1 when dt_sgemm_small runs its own kernel on this CPU, 0 when it calls
 * cblas_sgemm. */
int dt_sgemm_small_native(void);

#endif
