/* bf16 products of the frozen matrices, fp32 accumulation (oneDNN matmul).
 *
 * With --weights-dtype bf16 --matmul-dtype bf16 the frozen linears and the
 * head multiply in bf16: the fp32 activation operand is rounded to bf16
 * (nearest even, as torch's autocast does), the bf16 weights are used as
 * stored, and the products accumulate in fp32 into an fp32 result. On a CPU
 * with AMX (Sapphire Rapids and later) oneDNN runs them on the tile unit; with
 * AVX512-BF16 on its dot-product instructions. Attention's products
 * (src/attention.c) go through dt_gemm_bf16_ld on operands it rounds itself.
 *
 * One process-wide oneDNN engine and a small cache of matmul primitives keyed
 * by shape; the caller owns the bf16 copy of the activation operand (sized by
 * the memory plan, dt_gemm_bf16_scratch_elems).
 */
#ifndef DT_GEMM_BF16_H
#define DT_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

/* C[M,N] = beta * C + bf16(A)[M,K] . op(B), all row-major and contiguous.
 * trans_b = 1: B is stored [N,K] (a weight [out,in] in y = x W^T);
 * trans_b = 0: B is stored [K,N] (the same weight in dx = dy W).
 * beta is 0 or 1. a16 holds at least M*K elements (overwritten). */
int dt_gemm_bf16(float *C, const float *A, const uint16_t *B, int M, int N, int K,
                 int trans_b, float beta, uint16_t *a16);

/* Primitives kept (one per shape and layout, evicted round-robin): the
 * frozen products' shapes (a few per site, micro-batch and head chunk) and
 * attention's (6 products a block of queries, one shape per block length). */
#define DT_GEMM_BF16_CACHE 192

/* The same on operands already in bf16, with leading dimensions:
 * C[M,N] (row stride ldc) = beta * C + op(A16) . op(B), where
 * trans_a = 0: A16 is [M,K] with row stride lda; 1: A16 is [K,M] (stride lda);
 * trans_b = 1: B is [N,K] with row stride ldb; 0: B is [K,N] (stride ldb).
 * Attention's products (src/attention.c) multiply activations this way. */
int dt_gemm_bf16_ld(float *C, int ldc, const uint16_t *A16, int lda, int trans_a,
                    const uint16_t *B, int ldb, int trans_b, int M, int N, int K, float beta);

/* --matmul-dtype against --weights-dtype (the options' values): bf16
 * products multiply bf16 weights, stored so or dequantized from int8/nf4;
 * fp32 weights are refused. */
int dt_matmul_dtype_check(const char *matmul_dtype, const char *weights_dtype);

/* Round n fp32 values to bf16 (nearest even: base/bf16.h's dt_f32_to_bf16). */
void dt_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);

/* The implementation oneDNN picked for a representative product (e.g.
 * "brg:avx512_core_amx"), or an error naming why it has none on this CPU. */
int dt_gemm_bf16_probe(const char **impl);

/* The library version, "oneDNN 2.6.3". */
const char *dt_gemm_bf16_library(void);

/* Release the engine and the cached primitives (at exit; optional). */
void dt_gemm_bf16_shutdown(void);

#endif
