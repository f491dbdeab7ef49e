/* Quantized frozen matrices (--weights-dtype int8 | nf4).
 *
 * A frozen block matrix W [rows = out, cols = in] (the Linear layout) is
 * stored quantized and is never held whole in fp32: products dequantize
 * DT_QTILE_ROWS rows at a time into a small tile and multiply that
 * (dt_qmat_xwt, dt_qmat_dyw).
 *
 *   int8: per output row r, s_r = absmax(W[r,:]) / 127 and
 *         q = round(W / s_r) in [-127, 127]; W ~ q * s_r.
 *   nf4:  the 4-bit NormalFloat code book of QLoRA (Dettmers et al. 2023);
 *         blocks of 64 consecutive elements of a row of the whole (global)
 *         matrix (a row whose length is not a multiple of 64 ends with a
 *         shorter block), a = absmax of the block, each element the index of
 *         the code nearest to w * (1/a) (the lower one on a tie), two per
 *         byte, the first element of a pair in the high nibble;
 *         W ~ code[q] * a. For rows whose length is a multiple of 64 these
 *         are bitsandbytes' blocks of a flattened [out, in] weight.
 *         The block scales are double quantized, always (QLoRA's double
 *         quantization; bitsandbytes' compress_statistics=True, the default
 *         of its Linear4bit), per HF tensor (one bitsandbytes Linear: a
 *         fused q|k|v or gate|up matrix holds several): over the tensor's
 *         block absmax values a[] in flattened (row-major [out, blocks])
 *         order, offset = mean(a) (summed in double, rounded once to fp32;
 *         bitsandbytes takes torch's fp32 mean, which may differ by an ulp),
 *         and a - offset (fp32) is quantized with bitsandbytes' blockwise
 *         8-bit dynamic quantization: blocks of 256 consecutive values, n =
 *         the block's absmax (fp32, the "nested absmax"), each value's code
 *         the index of the entry of the signed dynamic map
 *         (create_dynamic_map(signed=True, 7, 8): 256 ascending values,
 *         dt_dynamic_map) nearest to (a - offset) * (1/n) clamped to [-1, 1]
 *         (the lower one on a tie, as bitsandbytes' CPU kernel's
 *         lookup_code_index; since 2026-03 that kernel rounds through a
 *         65536-entry table instead, which may take the other neighbour
 *         within about 1.5e-5 of a midpoint); a block with n = 0 gets code 0.
 *         The dequantized
 *         scale is map[code] * n + offset (fp32, in that order, as
 *         bitsandbytes' dequantize_4bit), and W ~ code[q] * that. The 4-bit
 *         codes are those of the fp32 absmax (quantized first, as
 *         quantize_4bit does). Storage per 64 weights: 1 byte of scale
 *         code instead of 4 (0.127 bits a weight instead of 0.5), plus per
 *         local row its place in its tensor's scale vector (12 bytes) and
 *         per tensor its offset and nested absmax (ceil(n/256) floats).
 *         dt_qmat_init without double quantization (dq_scales 0) keeps
 *         fp32 block scales (the single-level NF4 that test_nf4_reference
 *         compares with PEFT's quantizer).
 *
 * Under tensor parallelism a row-parallel matrix holds some columns of
 * every row. The scales are those of the whole matrix: the caller agrees
 * the absmax of every row (int8) or block (nf4) over the tensor group
 * (dt_qmat_local_absmax, then a maximum over the group), so every layout
 * stores the same numbers as one rank. Double quantization needs the whole
 * tensor's block absmax vector: every rank fills its own entries of it
 * (zeros elsewhere), a maximum over the tensor group gives each rank the
 * whole vector, and each computes the offset and the nested quantization
 * from it identically (dt_nf4_double_quant), keeping the codes of its own
 * blocks (dt_qmat_dq_set). */
#ifndef DT_QUANT_H
#define DT_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "segs.h"

typedef enum { DT_Q_NONE = 0, DT_Q_INT8 = 1, DT_Q_NF4 = 2 } dt_qtype;

enum { DT_NF4_BLOCK = 64, DT_QTILE_ROWS = 64 };
/* double quantization: block scales a nested block; HF tensors a matrix at
 * most (q|k|v: 3) */
enum { DT_NF4_DQ_BLOCK = 256, DT_NF4_DQ_GROUPS = 4 };

extern const float dt_nf4_code[16];

/* bitsandbytes' signed 8-bit dynamic map (create_dynamic_map(signed=True,
 * max_exponent_bits=7, total_bits=8)), ascending: for i = 0..6 the
 * midpoints of 2^i + 1 points evenly spaced over [0.1, 1] (fp32), times
 * 10^(i-6), and their negatives; then 0 and 1. Each value as bitsandbytes
 * computes it in fp32 from correctly rounded fp32 points (torch.linspace's
 * own fp32 points differ from those by an ulp in some builds, which moves
 * a value of the map by about an ulp). */
void dt_dynamic_map(float map[256]);

/* Double quantization of one tensor's n block absmax values amax (flat
 * order): *offset, codes[n] and nabs[dt_nf4_dq_nested(n)] as quant.h's top
 * comment says. */
static inline size_t dt_nf4_dq_nested(size_t n) {
  return (n + DT_NF4_DQ_BLOCK - 1) / DT_NF4_DQ_BLOCK;
}
void dt_nf4_double_quant(const float *amax, size_t n, float *offset, uint8_t *codes,
                         float *nabs);

/* Storage of the frozen weights (--weights-dtype; dt_model_load's weights
 * argument): 0 fp32 and 1 bf16 as before, then the quantized kinds. */
typedef enum { DT_W_FP32 = 0, DT_W_BF16 = 1, DT_W_INT8 = 2, DT_W_NF4 = 3 } dt_wdtype;

/* --weights-dtype NAME -> *w. DT_EUSAGE for an unknown name. */
int dt_weights_dtype_parse(const char *name, dt_wdtype *w);
static inline const char *dt_wdtype_name(int w) {
  return w == DT_W_BF16 ? "bf16" : w == DT_W_INT8 ? "int8" : w == DT_W_NF4 ? "nf4" : "fp32";
}
static inline const char *dt_qtype_name(int q) {
  return q == DT_Q_INT8 ? "int8" : q == DT_Q_NF4 ? "nf4" : "none";
}
static inline dt_qtype dt_wdtype_quant(int w) {
  return w == DT_W_INT8 ? DT_Q_INT8 : w == DT_W_NF4 ? DT_Q_NF4 : DT_Q_NONE;
}

/* Double quantization's per-tensor numbers of a matrix (stored with the
 * codes and scales, so that replicas sharing those share these too). */
typedef struct {
  int64_t nnest; /* nested absmax stored so far */
  int ngrp;      /* tensors (groups) set so far */
  int gnest[DT_NF4_DQ_GROUPS];
  float goff[DT_NF4_DQ_GROUPS];
} dt_qdq_meta;

/* One quantized matrix: this rank's rows x cols. */
typedef struct {
  dt_qtype type; /* DT_Q_NONE: not quantized (the other fields are unused) */
  int rows, cols;
  /* nf4: the global blocks this rank's columns touch, nb per row; blk[c] the
   * one (0..nb-1) of local column c, gblk[k] the global index of block k */
  int nb;
  int *blk, *gblk;
  uint8_t *data; /* int8: [rows, cols]; nf4: [rows, ceil(cols/2)] */
  float *scale;  /* int8: [rows]; nf4 without double quantization: [rows, nb] */
  /* nf4 with double quantization (dq): the scale of local block k of local
   * row r is map[qscale[r, k]] * nabs[gnest[g] + (sflat[r] + gblk[k]) / 256]
   * + goff[g], g = sgrp[r] */
  int dq;
  uint8_t *qscale;  /* [rows, nb] */
  int64_t *sflat;   /* [rows] flat index of the row's global block 0 in its
                       tensor's block-scale vector (global row x blocks) */
  int *sgrp;        /* [rows] its tensor (group) */
  float *nabs;      /* nested absmax of the groups, one after another */
  int64_t nnest_cap;
  dt_qdq_meta *meta; /* where each group's nested absmax start, its offset */
  const float *map; /* the dynamic map (dt_dynamic_map) */
  int external;     /* the numbers live in storage given to dt_qmat_init_at */
} dt_qmat;

/* Lay out a rows x cols matrix whose local column j is global column
 * cols_global(j) (segments global -> local; NULL: the same index), and
 * allocate it unless describe_only. dq_scales (nf4 only): 0 keeps fp32 block
 * scales; > 0 double quantizes them, with dq_scales the number of block
 * scales of the whole (global) matrix, all its tensors (room for their
 * nested absmax). *bytes: what it takes (as plan counts). */
int dt_qmat_init(dt_qmat *q, dt_qtype t, int rows, int cols, const dt_segs *cols_global,
                 int64_t dq_scales, int describe_only, int64_t *bytes);
/* The same with the numbers (codes, scales, double quantization's arrays and
 * numbers: everything that loading writes) carved from storage, 64-byte
 * aligned parts, *storage_bytes of it (counted in *bytes too), and only the
 * small block maps allocated: the replicas of a node map one copy of the
 * storage (--share-weights), written by one of them. storage NULL: allocated
 * as dt_qmat_init does. Nothing in storage is written here. */
int dt_qmat_init_at(dt_qmat *q, dt_qtype t, int rows, int cols, const dt_segs *cols_global,
                    int64_t dq_scales, int describe_only, void *storage, int64_t *bytes,
                    int64_t *storage_bytes);
void dt_qmat_free(dt_qmat *q);

/* Scales to agree over a tensor group: how many (int8: rows; nf4: rows x nb),
 * this rank's absmax of each from w [rows, cols], and where each lies in the
 * global array [rows, gcols_blocks] (int8: its row; nf4: row x global blocks
 * + global block). */
size_t dt_qmat_absmax_count(const dt_qmat *q);
void dt_qmat_local_absmax(const dt_qmat *q, const float *w, float *amax);
size_t dt_qmat_absmax_global_index(const dt_qmat *q, size_t i, int global_blocks);

/* Quantize w [rows, cols] with the given absmax (dt_qmat_absmax_count
 * values; NULL: this rank's own). With double quantization only the 4-bit
 * codes, from the given absmax (NULL: nothing is done): the scales come
 * from dt_qmat_dq_set. */
void dt_qmat_quantize(dt_qmat *q, const float *w, const float *amax);

/* Double quantization: the statistics of one HF tensor (group g, 0..) whose
 * local rows lrows[i] are its global rows grows[i] (i < nrows), gblocks
 * blocks a global row; codes, nabs (nnest values) and offset: from
 * dt_nf4_double_quant of its whole block-absmax vector. Each group once, in
 * order. DT_EINTERNAL past the room dt_qmat_init made. */
int dt_qmat_dq_set(dt_qmat *q, int g, const int *lrows, const int64_t *grows, int nrows,
                   int gblocks, const uint8_t *codes, const float *nabs, int64_t nnest,
                   float offset);

/* The (dequantized) scale of local block k of local row r of an nf4 matrix. */
float dt_qmat_block_scale(const dt_qmat *q, int r, int k);

/* tile [r1 - r0, cols] = rows r0..r1-1 of the dequantized matrix. */
void dt_qmat_dequant_rows(const dt_qmat *q, int r0, int r1, float *tile);
/* The same rows rounded to bf16 (nearest even), for bf16 products
 * (--matmul-dtype bf16): each value is code x scale in fp32, then rounded,
 * as a bf16 compute dtype dequantizes it. */
void dt_qmat_dequant_bf16(const dt_qmat *q, int r0, int r1, uint16_t *tile);

/* y[N,out] = b + x[N,in] W^T (out = rows, in = cols); tile: DT_QTILE_ROWS *
 * in floats of scratch. */
void dt_qmat_xwt(const dt_qmat *q, float *y, const float *x, const float *b, int N, float *tile);
/* dx[N,in] += dy[N,out] W. */
void dt_qmat_dyw(const dt_qmat *q, float *dx, const float *dy, int N, float *tile);

#endif
