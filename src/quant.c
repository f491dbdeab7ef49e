/* Quantized frozen matrices: int8 rows and NF4 blocks (quant.h). */
#include "quant.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "error.h"

/* The NF4 code book: QLoRA (Dettmers et al. 2023), appendix E; the same
 * sixteen values bitsandbytes uses. */
const float dt_nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982608795166f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

int dt_weights_dtype_parse(const char *name, dt_wdtype *w) {
  static const char *const names[] = {"fp32", "bf16", "int8", "nf4"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, names[i])) {
      *w = (dt_wdtype)i;
      return DT_OK;
    }
  DT_CHECK(0, DT_EUSAGE, "--weights-dtype %s: expected fp32, bf16, int8 or nf4", name);
  return DT_EUSAGE;
}

static int blocks_per_row(int cols) { return (cols + DT_NF4_BLOCK - 1) / DT_NF4_BLOCK; }

/* bytes of one nf4 row: two codes per byte, a row starts on a byte */
static size_t nf4_row_bytes(int cols) { return ((size_t)cols + 1) / 2; }

size_t dt_qmat_data_bytes(dt_qtype q, int rows, int cols) {
  if (q == DT_Q_INT8) return (size_t)rows * cols;
  if (q == DT_Q_NF4) return (size_t)rows * nf4_row_bytes(cols);
  return 0;
}

size_t dt_qmat_scale_count(dt_qtype q, int rows, int cols) {
  if (q == DT_Q_INT8) return (size_t)rows;
  if (q == DT_Q_NF4) return (size_t)rows * blocks_per_row(cols);
  return 0;
}

static uint8_t nf4_index(float x) {
  int best = 0;
  float bd = fabsf(x - dt_nf4_code[0]);
  for (int i = 1; i < 16; i++) {
    const float d = fabsf(x - dt_nf4_code[i]);
    if (d < bd) bd = d, best = i;
  }
  return (uint8_t)best;
}

void dt_qmat_quantize(dt_qtype q, uint8_t *data, float *scale, const float *w, int rows,
                      int cols, const float *row_absmax) {
  for (int r = 0; r < rows; r++) {
    const float *wr = w + (size_t)r * cols;
    if (q == DT_Q_INT8) {
      float a = 0;
      if (row_absmax) a = row_absmax[r];
      else
        for (int c = 0; c < cols; c++) a = fmaxf(a, fabsf(wr[c]));
      const float s = a / 127.0f;
      scale[r] = s;
      int8_t *dr = (int8_t *)data + (size_t)r * cols;
      for (int c = 0; c < cols; c++) {
        float v = s > 0 ? rintf(wr[c] / s) : 0.0f;
        dr[c] = (int8_t)fminf(127.0f, fmaxf(-127.0f, v));
      }
    } else {
      uint8_t *dr = data + (size_t)r * nf4_row_bytes(cols);
      memset(dr, 0, nf4_row_bytes(cols));
      const int nb = blocks_per_row(cols);
      for (int k = 0; k < nb; k++) {
        const int c0 = k * DT_NF4_BLOCK, c1 = c0 + DT_NF4_BLOCK < cols ? c0 + DT_NF4_BLOCK : cols;
        float a = 0;
        for (int c = c0; c < c1; c++) a = fmaxf(a, fabsf(wr[c]));
        scale[(size_t)r * nb + k] = a;
        const float inv = a > 0 ? 1.0f / a : 0.0f;
        for (int c = c0; c < c1; c++) {
          const uint8_t i = nf4_index(wr[c] * inv);
          dr[c / 2] |= (c & 1) ? i : (uint8_t)(i << 4);
        }
      }
    }
  }
}

void dt_qmat_dequant_rows(dt_qtype q, const uint8_t *data, const float *scale, int rows,
                          int cols, int r0, int r1, float *tile) {
  (void)rows;
  for (int r = r0; r < r1; r++) {
    float *t = tile + (size_t)(r - r0) * cols;
    if (q == DT_Q_INT8) {
      const int8_t *dr = (const int8_t *)data + (size_t)r * cols;
      const float s = scale[r];
      for (int c = 0; c < cols; c++) t[c] = (float)dr[c] * s;
    } else {
      const uint8_t *dr = data + (size_t)r * nf4_row_bytes(cols);
      const float *sr = scale + (size_t)r * blocks_per_row(cols);
      for (int c = 0; c < cols; c++) {
        const uint8_t b = dr[c / 2];
        t[c] = dt_nf4_code[(c & 1) ? (b & 15) : (b >> 4)] * sr[c / DT_NF4_BLOCK];
      }
    }
  }
}

void dt_qmat_xwt(dt_qtype q, const uint8_t *data, const float *scale, float *y, const float *x,
                 const float *b, int N, int in, int out, float *tile) {
  if (N == 0 || out == 0) return;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < out; j++) y[(size_t)i * out + j] = b ? b[j] : 0.0f;
  if (in == 0) return;
  for (int r0 = 0; r0 < out; r0 += DT_QTILE_ROWS) {
    const int r1 = r0 + DT_QTILE_ROWS < out ? r0 + DT_QTILE_ROWS : out;
    dt_qmat_dequant_rows(q, data, scale, out, in, r0, r1, tile);
    /* y[:, r0:r1] += x tile^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r1 - r0, in, 1.0f, x, in, tile, in,
                1.0f, y + r0, out);
  }
}

void dt_qmat_dyw(dt_qtype q, const uint8_t *data, const float *scale, float *dx, const float *dy,
                 int N, int in, int out, float *tile) {
  if (N == 0 || in == 0 || out == 0) return;
  for (int r0 = 0; r0 < out; r0 += DT_QTILE_ROWS) {
    const int r1 = r0 + DT_QTILE_ROWS < out ? r0 + DT_QTILE_ROWS : out;
    dt_qmat_dequant_rows(q, data, scale, out, in, r0, r1, tile);
    /* dx += dy[:, r0:r1] tile */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r1 - r0, 1.0f, dy + r0, out,
                tile, in, 1.0f, dx, in);
  }
}
