/* y [N,out] = x [N,in] W^T (+ b) for a few rows: the product of a decoding
 * step. sgemm packs the whole of W for every call, which for a handful of
 * rows costs more than the product; here each row of W is read once and
 * dotted with every row of x (kept in cache), so W streams from memory once
 * per call. Sums in 16 interleaved partial sums (not sgemm's order: results
 * agree to rounding). */
#ifndef DT_LINEAR_ROWS_H
#define DT_LINEAR_ROWS_H

#include <stdint.h>

/* Rows up to which the decoder streams (dt_model.stream_rows): one row ran
 * 2.6x faster than sgemm on gpt2-small (1 thread, 2-core machine), eight
 * rows about 15% slower (the packing is then shared by enough rows). */
#define DT_STREAM_ROWS 4

void dt_linear_rows(float *y, const float *x, const float *W, const float *b, int N, int in,
                    int out);
/* The same with W stored in bf16 [out, in], widened as it is read (no
 * fp32 copy of the whole matrix). */
void dt_linear_rows_bf16(float *y, const float *x, const uint16_t *W, const float *b, int N, int in,
                         int out);

#endif
