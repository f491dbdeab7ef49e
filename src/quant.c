/* Quantized frozen matrices: int8 rows and NF4 blocks (quant.h). */
#include "quant.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
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

/* bytes of one nf4 row: two codes per byte, a row starts on a byte */
static size_t nf4_row_bytes(int cols) { return ((size_t)cols + 1) / 2; }

static int64_t line_bytes(size_t b) { return dt_alloc_bytes((int64_t)b); }

/* global column of local column j */
static int global_col(const dt_segs *s, int j) {
  if (!s) return j;
  for (int i = 0; i < s->n; i++) {
    const dt_seg *g = dt_segs_at(s, i);
    if (j >= g->l0 && j < g->l0 + g->len) return g->g0 + (j - g->l0);
  }
  return -1;
}

int dt_qmat_init(dt_qmat *q, dt_qtype t, int rows, int cols, const dt_segs *cols_global,
                 int describe_only, int64_t *bytes) {
  memset(q, 0, sizeof *q);
  q->type = t;
  q->rows = rows;
  q->cols = cols;
  int *blk = NULL, *gblk = NULL;
  if (t == DT_Q_NF4) { /* the global blocks the local columns touch, in order */
    DT_CALL(dt_malloc(&blk, sizeof(int) * (cols ? cols : 1), "nf4 block map"));
    const int rc = dt_malloc(&gblk, sizeof(int) * (cols ? cols : 1), "nf4 block map");
    if (rc) {
      free(blk);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
    int nb = 0;
    for (int j = 0; j < cols; j++) {
      const int gc = global_col(cols_global, j);
      if (gc < 0) {
        free(blk);
        free(gblk);
        DT_ERR(DT_EINTERNAL, "quantized matrix: local column %d has no global column", j);
      }
      const int gb = gc / DT_NF4_BLOCK;
      int k = nb - 1;
      while (k >= 0 && gblk[k] != gb) k--;
      if (k < 0) gblk[k = nb++] = gb;
      blk[j] = k;
    }
    q->nb = nb;
  }
  const size_t nd = t == DT_Q_INT8 ? (size_t)rows * cols : (size_t)rows * nf4_row_bytes(cols);
  const size_t ns = t == DT_Q_INT8 ? (size_t)rows : (size_t)rows * q->nb;
  *bytes = line_bytes(nd) + line_bytes(ns * sizeof(float));
  if (t == DT_Q_NF4) *bytes += 2 * line_bytes(sizeof(int) * (size_t)cols);
  if (describe_only) {
    free(blk);
    free(gblk);
    return DT_OK;
  }
  q->blk = blk;
  q->gblk = gblk;
  DT_CALL(dt_alloc_aligned(&q->data, nd ? nd : 1, "quantized block matrix"));
  DT_CALL(dt_alloc_aligned(&q->scale, (ns ? ns : 1) * sizeof(float), "quantized block matrix"));
  return DT_OK;
}

void dt_qmat_free(dt_qmat *q) {
  free(q->blk);
  free(q->gblk);
  free(q->data);
  free(q->scale);
  memset(q, 0, sizeof *q);
}

size_t dt_qmat_absmax_count(const dt_qmat *q) {
  return q->type == DT_Q_INT8 ? (size_t)q->rows : (size_t)q->rows * q->nb;
}

void dt_qmat_local_absmax(const dt_qmat *q, const float *w, float *amax) {
  memset(amax, 0, sizeof(float) * dt_qmat_absmax_count(q));
  for (int r = 0; r < q->rows; r++) {
    const float *wr = w + (size_t)r * q->cols;
    for (int c = 0; c < q->cols; c++) {
      float *a = q->type == DT_Q_INT8 ? &amax[r] : &amax[(size_t)r * q->nb + q->blk[c]];
      *a = fmaxf(*a, fabsf(wr[c]));
    }
  }
}

size_t dt_qmat_absmax_global_index(const dt_qmat *q, size_t i, int global_blocks) {
  if (q->type == DT_Q_INT8) return i;
  const size_t r = i / q->nb, k = i % q->nb;
  return r * (size_t)global_blocks + (size_t)q->gblk[k];
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

void dt_qmat_quantize(dt_qmat *q, const float *w, const float *amax) {
  float *own = NULL;
  if (!amax) { /* this rank's own absmax, in the scale array itself */
    dt_qmat_local_absmax(q, w, q->scale);
    own = q->scale;
  }
  const float *a = amax ? amax : own;
  const int rows = q->rows, cols = q->cols;
  for (int r = 0; r < rows; r++) {
    const float *wr = w + (size_t)r * cols;
    if (q->type == DT_Q_INT8) {
      const float s = a[r] / 127.0f;
      q->scale[r] = s;
      int8_t *dr = (int8_t *)q->data + (size_t)r * cols;
      for (int c = 0; c < cols; c++) {
        const float v = s > 0 ? rintf(wr[c] / s) : 0.0f;
        dr[c] = (int8_t)fminf(127.0f, fmaxf(-127.0f, v));
      }
    } else {
      const float *ar = a + (size_t)r * q->nb;
      float *sr = q->scale + (size_t)r * q->nb;
      if (sr != ar) memcpy(sr, ar, sizeof(float) * q->nb);
      uint8_t *dr = q->data + (size_t)r * nf4_row_bytes(cols);
      memset(dr, 0, nf4_row_bytes(cols));
      for (int c = 0; c < cols; c++) {
        const float s = sr[q->blk[c]], inv = s > 0 ? 1.0f / s : 0.0f;
        const uint8_t i = nf4_index(wr[c] * inv);
        dr[c / 2] |= (c & 1) ? i : (uint8_t)(i << 4);
      }
    }
  }
}

/* The next run of local columns c0..*c1-1 of one nf4 block (blk[] is
 * nondecreasing: a rank's columns meet the global blocks in order). */
static int nf4_run(const dt_qmat *q, int c0, int *c1) {
  const int k = q->blk[c0];
  int c = c0 + 1;
  while (c < q->cols && q->blk[c] == k) c++;
  *c1 = c;
  return k;
}

/* The code of local column c of an nf4 row: two a byte, the first high. */
static inline int nf4_code_at(const uint8_t *dr, int c) {
  const uint8_t b = dr[c >> 1];
  return (c & 1) ? (b & 15) : (b >> 4);
}

void dt_qmat_dequant_rows(const dt_qmat *q, int r0, int r1, float *tile) {
  const int cols = q->cols;
  for (int r = r0; r < r1; r++) {
    float *t = tile + (size_t)(r - r0) * cols;
    if (q->type == DT_Q_INT8) {
      const int8_t *dr = (const int8_t *)q->data + (size_t)r * cols;
      const float s = q->scale[r];
      for (int c = 0; c < cols; c++) t[c] = (float)dr[c] * s;
      continue;
    }
    const uint8_t *dr = q->data + (size_t)r * nf4_row_bytes(cols);
    const float *sr = q->scale + (size_t)r * q->nb;
    for (int c0 = 0, c1; c0 < cols; c0 = c1) {
      const float s = sr[nf4_run(q, c0, &c1)];
      float lut[16];
      for (int i = 0; i < 16; i++) lut[i] = dt_nf4_code[i] * s;
      for (int c = c0; c < c1; c++) t[c] = lut[nf4_code_at(dr, c)];
    }
  }
}

void dt_qmat_dequant_bf16(const dt_qmat *q, int r0, int r1, uint16_t *tile) {
  const int cols = q->cols;
  for (int r = r0; r < r1; r++) {
    uint16_t *t = tile + (size_t)(r - r0) * cols;
    if (q->type == DT_Q_INT8) {
      const int8_t *dr = (const int8_t *)q->data + (size_t)r * cols;
      const float s = q->scale[r];
      for (int c = 0; c < cols; c++) t[c] = dt_f32_to_bf16((float)dr[c] * s);
      continue;
    }
    const uint8_t *dr = q->data + (size_t)r * nf4_row_bytes(cols);
    const float *sr = q->scale + (size_t)r * q->nb;
    for (int c0 = 0, c1; c0 < cols; c0 = c1) {
      const float s = sr[nf4_run(q, c0, &c1)];
      uint16_t lut[16];
      for (int i = 0; i < 16; i++) lut[i] = dt_f32_to_bf16(dt_nf4_code[i] * s);
      int c = c0;
      if (c & 1) t[c] = lut[nf4_code_at(dr, c)], c++;
      for (; c + 1 < c1; c += 2) { /* a whole byte: two codes */
        const uint8_t b = dr[c >> 1];
        t[c] = lut[b >> 4];
        t[c + 1] = lut[b & 15];
      }
      if (c < c1) t[c] = lut[nf4_code_at(dr, c)];
    }
  }
}

void dt_qmat_xwt(const dt_qmat *q, float *y, const float *x, const float *b, int N, float *tile) {
  const int in = q->cols, out = q->rows;
  if (N == 0 || out == 0) return;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < out; j++) y[(size_t)i * out + j] = b ? b[j] : 0.0f;
  if (in == 0) return;
  for (int r0 = 0; r0 < out; r0 += DT_QTILE_ROWS) {
    const int r1 = r0 + DT_QTILE_ROWS < out ? r0 + DT_QTILE_ROWS : out;
    dt_qmat_dequant_rows(q, r0, r1, tile);
    /* y[:, r0:r1] += x tile^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r1 - r0, in, 1.0f, x, in, tile, in,
                1.0f, y + r0, out);
  }
}

void dt_qmat_dyw(const dt_qmat *q, float *dx, const float *dy, int N, float *tile) {
  const int in = q->cols, out = q->rows;
  if (N == 0 || in == 0 || out == 0) return;
  for (int r0 = 0; r0 < out; r0 += DT_QTILE_ROWS) {
    const int r1 = r0 + DT_QTILE_ROWS < out ? r0 + DT_QTILE_ROWS : out;
    dt_qmat_dequant_rows(q, r0, r1, tile);
    /* dx += dy[:, r0:r1] tile */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r1 - r0, 1.0f, dy + r0, out,
                tile, in, 1.0f, dx, in);
  }
}
