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
 *         blocks of 64 consecutive elements of a row (a row whose length is
 *         not a multiple of 64 ends with a shorter block), a = absmax of the
 *         block, each element the index of the code nearest to w * (1/a)
 *         (the lower one on a tie), two per byte, the first element of a
 *         pair in the high nibble; W ~ code[q] * a. For rows whose length
 *         is a multiple of 64 these are bitsandbytes' blocks of a flattened
 *         [out, in] weight. Block scales are fp32 (no double quantization
 *         yet).
 * Scales are over this rank's shard; when a row-parallel shard splits rows,
 * the int8 row scale is the maximum over the tensor group's parts
 * (dt_qmat_quantize's caller agrees it), so every layout stores the same
 * numbers; nf4 needs the column split at a multiple of 64 (checked). */
#ifndef DT_QUANT_H
#define DT_QUANT_H

#include <stddef.h>
#include <stdint.h>

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

/* Bytes of the quantized data and of the scales of a rows x cols matrix. */
size_t dt_qmat_data_bytes(dt_qtype q, int rows, int cols);
size_t dt_qmat_scale_count(dt_qtype q, int rows, int cols);

/* Quantize w [rows, cols] into data/scale. row_absmax: NULL, or the absmax
 * of each row to use for int8 (the tensor group's, see above). */
void dt_qmat_quantize(dt_qtype q, uint8_t *data, float *scale, const float *w, int rows,
                      int cols, const float *row_absmax);

/* tile [r1 - r0, cols] = rows r0..r1-1 of the dequantized matrix. */
void dt_qmat_dequant_rows(dt_qtype q, const uint8_t *data, const float *scale, int rows,
                          int cols, int r0, int r1, float *tile);

/* y[N,out] = b + x[N,in] W^T, W [out,in] quantized; tile: DT_QTILE_ROWS * in
 * floats of scratch. */
void dt_qmat_xwt(dt_qtype q, const uint8_t *data, const float *scale, float *y, const float *x,
                 const float *b, int N, int in, int out, float *tile);
/* dx[N,in] += dy[N,out] W. */
void dt_qmat_dyw(dt_qtype q, const uint8_t *data, const float *scale, float *dx, const float *dy,
                 int N, int in, int out, float *tile);

#endif
