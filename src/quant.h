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
 *         are bitsandbytes' blocks of a flattened [out, in] weight. Block
 *         scales are fp32 (no double quantization yet).
 *
 * Under tensor parallelism a row-parallel matrix holds some columns of
 * every row. The scales are those of the whole matrix: the caller agrees
 * the absmax of every row (int8) or block (nf4) over the tensor group
 * (dt_qmat_local_absmax, then a maximum over the group), so every layout
 * stores the same numbers as one rank. */
#ifndef DT_QUANT_H
#define DT_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "segs.h"

typedef enum { DT_Q_NONE = 0, DT_Q_INT8 = 1, DT_Q_NF4 = 2 } dt_qtype;

enum { DT_NF4_BLOCK = 64, DT_QTILE_ROWS = 64 };

extern const float dt_nf4_code[16];

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

/* One quantized matrix: this rank's rows x cols. */
typedef struct {
  dt_qtype type; /* DT_Q_NONE: not quantized (the other fields are unused) */
  int rows, cols;
  /* nf4: the global blocks this rank's columns touch, nb per row; blk[c] the
   * one (0..nb-1) of local column c, gblk[k] the global index of block k */
  int nb;
  int *blk, *gblk;
  uint8_t *data; /* int8: [rows, cols]; nf4: [rows, ceil(cols/2)] */
  float *scale;  /* int8: [rows]; nf4: [rows, nb] */
} dt_qmat;

/* Lay out a rows x cols matrix whose local column j is global column
 * cols_global(j) (segments global -> local; NULL: the same index), and
 * allocate it unless describe_only. *bytes: what it takes (as plan counts). */
int dt_qmat_init(dt_qmat *q, dt_qtype t, int rows, int cols, const dt_segs *cols_global,
                 int describe_only, int64_t *bytes);
void dt_qmat_free(dt_qmat *q);

/* Scales to agree over a tensor group: how many (int8: rows; nf4: rows x nb),
 * this rank's absmax of each from w [rows, cols], and where each lies in the
 * global array [rows, gcols_blocks] (int8: its row; nf4: row x global blocks
 * + global block). */
size_t dt_qmat_absmax_count(const dt_qmat *q);
void dt_qmat_local_absmax(const dt_qmat *q, const float *w, float *amax);
size_t dt_qmat_absmax_global_index(const dt_qmat *q, size_t i, int global_blocks);

/* Quantize w [rows, cols] with the given absmax (dt_qmat_absmax_count
 * values; NULL: this rank's own). */
void dt_qmat_quantize(dt_qmat *q, const float *w, const float *amax);

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
