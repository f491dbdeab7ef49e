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

/* fp32 point j of n evenly spaced over [0.1, 1], correctly rounded */
static float linspace_point(int j, int n) {
  return (float)(0.1 + (1.0 - 0.1) * (double)j / (double)(n - 1));
}

static int cmp_float(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

void dt_dynamic_map(float map[256]) {
  int k = 0;
  for (int i = 0; i < 7; i++) {
    const int n = (1 << i) + 1;
    /* the scale as an fp32 operand (10^(i-6); 1 for i = 6) */
    const float mul = (float)pow(10.0, (double)(i - 6));
    for (int j = 0; j + 1 < n; j++) {
      const float mid = (linspace_point(j, n) + linspace_point(j + 1, n)) / 2.0f;
      const float v = mul * mid;
      map[k++] = v;
      map[k++] = -v;
    }
  }
  map[k++] = 0.0f;
  map[k++] = 1.0f;
  qsort(map, 256, sizeof(float), cmp_float);
}

/* The map every quantized matrix uses (computed once, at the first
 * dt_qmat_init or dt_nf4_double_quant: on the loading thread). */
static const float *dyn_map(void) {
  static float map[256];
  static int ready;
  if (!ready) {
    dt_dynamic_map(map);
    ready = 1;
  }
  return map;
}

/* The index of the map value nearest to x clamped to [-1, 1], the lower on
 * a tie (a binary search for the first value >= x, then its neighbour). */
static uint8_t dyn_index(const float *map, float x) {
  x = fminf(1.0f, fmaxf(-1.0f, x));
  int lo = 0, hi = 256; /* first i with map[i] >= x */
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (map[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return 0;
  if (lo == 256) return 255;
  const float dl = fabsf(x - map[lo - 1]), dr = fabsf(map[lo] - x);
  return (uint8_t)(dr < dl ? lo : lo - 1);
}

void dt_nf4_double_quant(const float *amax, size_t n, float *offset, uint8_t *codes,
                         float *nabs) {
  const float *map = dyn_map();
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += amax[i];
  const float off = n ? (float)(sum / (double)n) : 0.0f;
  *offset = off;
  for (size_t b0 = 0, nb = 0; b0 < n; b0 += DT_NF4_DQ_BLOCK, nb++) {
    const size_t b1 = b0 + DT_NF4_DQ_BLOCK < n ? b0 + DT_NF4_DQ_BLOCK : n;
    float a = 0.0f;
    for (size_t i = b0; i < b1; i++) a = fmaxf(a, fabsf(amax[i] - off));
    nabs[nb] = a;
    const float inv = a > 0 ? 1.0f / a : 0.0f;
    for (size_t i = b0; i < b1; i++) codes[i] = a > 0 ? dyn_index(map, (amax[i] - off) * inv) : 0;
  }
}

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

int dt_qmat_init_at(dt_qmat *q, dt_qtype t, int rows, int cols, const dt_segs *cols_global,
                    int64_t dq_scales, int describe_only, void *storage, int64_t *bytes,
                    int64_t *storage_bytes) {
  memset(q, 0, sizeof *q);
  q->type = t;
  q->rows = rows;
  q->cols = cols;
  q->dq = t == DT_Q_NF4 && dq_scales > 0;
  q->map = dyn_map();
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
  /* double quantization: room for the nested absmax of up to
   * DT_NF4_DQ_GROUPS tensors of dq_scales scales in all */
  const int64_t ncap = q->dq ? (int64_t)dt_nf4_dq_nested((size_t)dq_scales) + DT_NF4_DQ_GROUPS : 0;
  /* the numbers, in this order: codes, then the scales (fp32), or the scale
   * codes, row offsets, row groups, nested absmax and the per-tensor numbers */
  size_t part[6] = {nd ? nd : 1, 0, 0, 0, 0, 0};
  if (q->dq) {
    part[1] = ns ? ns : 1;
    part[2] = sizeof(int64_t) * (rows ? rows : 1);
    part[3] = sizeof(int) * (rows ? rows : 1);
    part[4] = sizeof(float) * (size_t)ncap;
    part[5] = sizeof(dt_qdq_meta);
  } else {
    part[1] = (ns ? ns : 1) * sizeof(float);
  }
  int64_t numbers = 0;
  for (int i = 0; i < 6; i++)
    if (part[i]) numbers += line_bytes(part[i]);
  *storage_bytes = numbers;
  *bytes = numbers;
  if (t == DT_Q_NF4) *bytes += 2 * line_bytes(sizeof(int) * (size_t)cols);
  if (describe_only) {
    free(blk);
    free(gblk);
    return DT_OK;
  }
  q->blk = blk;
  q->gblk = gblk;
  q->nnest_cap = ncap;
  void *p[6] = {NULL};
  if (storage) {
    q->external = 1;
    uint8_t *at = storage;
    for (int i = 0; i < 6; i++)
      if (part[i]) {
        p[i] = at;
        at += line_bytes(part[i]);
      }
  } else {
    for (int i = 0; i < 6; i++)
      if (part[i]) DT_CALL(dt_alloc_aligned(&p[i], part[i], "quantized block matrix"));
    for (int i = 1; i < 6; i++)
      if (part[i]) memset(p[i], 0, part[i]);
  }
  q->data = p[0];
  if (q->dq) {
    q->qscale = p[1];
    q->sflat = p[2];
    q->sgrp = p[3];
    q->nabs = p[4];
    q->meta = p[5];
  } else {
    q->scale = p[1];
  }
  return DT_OK;
}

int dt_qmat_init(dt_qmat *q, dt_qtype t, int rows, int cols, const dt_segs *cols_global,
                 int64_t dq_scales, int describe_only, int64_t *bytes) {
  int64_t storage_bytes;
  return dt_qmat_init_at(q, t, rows, cols, cols_global, dq_scales, describe_only, NULL, bytes,
                         &storage_bytes);
}

void dt_qmat_free(dt_qmat *q) {
  free(q->blk);
  free(q->gblk);
  if (!q->external) {
    free(q->data);
    free(q->scale);
    free(q->qscale);
    free(q->sflat);
    free(q->sgrp);
    free(q->nabs);
    free(q->meta);
  }
  memset(q, 0, sizeof *q);
}

int dt_qmat_dq_set(dt_qmat *q, int g, const int *lrows, const int64_t *grows, int nrows,
                   int gblocks, const uint8_t *codes, const float *nabs, int64_t nnest,
                   float offset) {
  DT_CHECK(q->dq, DT_EINTERNAL, "dt_qmat_dq_set on a matrix without double quantization");
  dt_qdq_meta *mt = q->meta;
  DT_CHECK(g == mt->ngrp && g < DT_NF4_DQ_GROUPS, DT_EINTERNAL,
           "double quantization: tensor %d of a matrix (expected %d, at most %d)", g, mt->ngrp,
           DT_NF4_DQ_GROUPS);
  DT_CHECK(mt->nnest + nnest <= q->nnest_cap, DT_EINTERNAL,
           "double quantization: %lld nested scales past the room for %lld", (long long)(mt->nnest + nnest),
           (long long)q->nnest_cap);
  mt->gnest[g] = (int)mt->nnest;
  mt->goff[g] = offset;
  memcpy(q->nabs + mt->nnest, nabs, sizeof(float) * (size_t)nnest);
  mt->nnest += nnest;
  mt->ngrp++;
  for (int i = 0; i < nrows; i++) {
    const int r = lrows[i];
    DT_CHECK(r >= 0 && r < q->rows, DT_EINTERNAL, "double quantization: local row %d of %d", r, q->rows);
    q->sflat[r] = grows[i] * gblocks;
    q->sgrp[r] = g;
    for (int k = 0; k < q->nb; k++) {
      DT_CHECK(q->gblk[k] < gblocks, DT_EINTERNAL, "double quantization: block %d of %d", q->gblk[k], gblocks);
      q->qscale[(size_t)r * q->nb + k] = codes[q->sflat[r] + q->gblk[k]];
    }
  }
  return DT_OK;
}

float dt_qmat_block_scale(const dt_qmat *q, int r, int k) {
  if (!q->dq) return q->scale[(size_t)r * q->nb + k];
  const int g = q->sgrp[r];
  const float n = q->nabs[q->meta->gnest[g] + (q->sflat[r] + q->gblk[k]) / DT_NF4_DQ_BLOCK];
  float s = q->map[q->qscale[(size_t)r * q->nb + k]] * n;
  s += q->meta->goff[g];
  return s;
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
    if (!q->scale) return; /* double quantized: the caller agrees the absmax */
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
      float *sr = q->dq ? NULL : q->scale + (size_t)r * q->nb;
      if (sr && sr != ar) memcpy(sr, ar, sizeof(float) * q->nb);
      uint8_t *dr = q->data + (size_t)r * nf4_row_bytes(cols);
      memset(dr, 0, nf4_row_bytes(cols));
      for (int c = 0; c < cols; c++) {
        const float s = ar[q->blk[c]], inv = s > 0 ? 1.0f / s : 0.0f;
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
    for (int c0 = 0, c1; c0 < cols; c0 = c1) {
      const float s = dt_qmat_block_scale(q, r, nf4_run(q, c0, &c1));
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
    for (int c0 = 0, c1; c0 < cols; c0 = c1) {
      const float s = dt_qmat_block_scale(q, r, nf4_run(q, c0, &c1));
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
