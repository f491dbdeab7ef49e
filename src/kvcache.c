#include "kvcache.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "ops.h"
#include "vmath.h"

size_t dt_kvcache_bytes(int n_layer, int B, int Tc, int kv_l) {
  return 2 * (size_t)n_layer * B * Tc * kv_l * sizeof(float) + (size_t)B * sizeof(int);
}

int dt_kvcache_init(dt_kvcache *c, int n_layer, int B, int Tc, int kv_l) {
  c->n_layer = n_layer, c->B = B, c->Tc = Tc, c->kv_l = kv_l;
  const size_t n = (size_t)n_layer * B * Tc * (kv_l > 0 ? kv_l : 1);
  DT_CALL(dt_alloc_aligned(&c->k, n * sizeof(float), "key cache (lower --batch-size or --max-new-tokens)"));
  DT_CALL(dt_alloc_aligned(&c->v, n * sizeof(float), "value cache (lower --batch-size or --max-new-tokens)"));
  DT_CALL(dt_calloc(&c->len, (size_t)B * sizeof(int), "cache lengths"));
  return DT_OK;
}

void dt_kvcache_free(dt_kvcache *c) {
  free(c->k);
  free(c->v);
  free(c->len);
  c->k = c->v = NULL;
  c->len = NULL;
}

float *dt_kvcache_k(const dt_kvcache *c, int l, int b) {
  return c->k + (((size_t)l * c->B + b) * c->Tc) * c->kv_l;
}
float *dt_kvcache_v(const dt_kvcache *c, int l, int b) {
  return c->v + (((size_t)l * c->B + b) * c->Tc) * c->kv_l;
}

void dt_kv_attend(float *att, const float *q, int ld, const float *K, const float *V, int c0,
                  int n, const float *pk, const float *pv, int P, int PH, int W,
                  const float *alibi, int H, int KV, int hd, float scale, float cap, float *s) {
  if (H == 0 || KV == 0) return; /* a rank without heads */
  const int kvd = KV * hd, group = H / KV, qd = H * hd;
  const int pd = PH * hd, pgroup = H / PH; /* the prefix's width; query heads per prefix head */
  for (int i = 0; i < n; i++) {
    /* visible: prefix rows p0..P-1, cached keys j0..c0+i */
    int p0 = 0, j0 = 0;
    if (W > 0) {
      const int lo = P + c0 + i - W + 1; /* the lowest visible position */
      p0 = lo <= 0 ? 0 : lo < P ? lo : P;
      j0 = lo - P > 0 ? lo - P : 0;
    }
    const int np = P - p0, nr = c0 + i + 1 - j0, nv = np + nr;
    for (int h = 0; h < H; h++) {
      const int g = h / group, pq = h / pgroup;
      const float *qh = q + (size_t)i * ld + h * hd;
      float *o = att + (size_t)i * qd + h * hd;
      /* s = scale * [pk[p0:P] ; K[j0:c0+i+1]] q */
      if (np > 0)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, np, hd, scale, pk + (size_t)p0 * pd + pq * hd, pd,
                    qh, 1, 0.0f, s, 1);
      cblas_sgemv(CblasRowMajor, CblasNoTrans, nr, hd, scale, K + (size_t)j0 * kvd + g * hd, kvd, qh,
                  1, 0.0f, s + np, 1);
      /* the first visible key's position: p0, or P + j0 without prefix rows */
      if (alibi) dt_alibi_add(s, nv, alibi[h], (np > 0 ? p0 : P + j0) - (P + c0 + i));
      if (cap > 0)
        for (int j = 0; j < nv; j++) s[j] = cap * tanhf(s[j] / cap);
      const float mx = dt_row_max(s, nv);
      const float inv = (float)(1.0 / dt_exp_shift_sum(s, nv, mx));
      for (int j = 0; j < nv; j++) s[j] *= inv;
      /* o = [pv ; V]^T s over the same rows */
      if (np > 0)
        cblas_sgemv(CblasRowMajor, CblasTrans, np, hd, 1.0f, pv + (size_t)p0 * pd + pq * hd, pd, s,
                    1, 0.0f, o, 1);
      cblas_sgemv(CblasRowMajor, CblasTrans, nr, hd, 1.0f, V + (size_t)j0 * kvd + g * hd, kvd,
                  s + np, 1, np > 0 ? 1.0f : 0.0f, o, 1);
    }
  }
}
