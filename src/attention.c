#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>

long dt_attention_scratch(const dt_attn_dims *d) {
  return 2L * d->T * (d->P + d->T);
}

void dt_attention_forward(float *att, float *lse, const float *qkv,
                          const float *pk, const float *pv,
                          const dt_attn_dims *d, float *scratch) {
  const int T = d->T, P = d->P, H = d->H, KV = d->KV, hd = d->hd;
  const int Tk = P + T, qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
  const int group = H / KV;
  const float scale = 1.0f / sqrtf((float)hd);
  float *S = scratch; /* [T, Tk] */
  for (int b = 0; b < d->B; b++) {
    const float *rows = qkv + (int64_t)b * T * ld;
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      const float *Q = rows + h * hd;
      const float *K = rows + qd + g * hd;
      const float *V = rows + qd + kvd + g * hd;
      /* S = scale * Q [pk | K]^T */
      if (P > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, P, hd, scale, Q,
                    ld, pk + g * hd, kvd, 0.0f, S, Tk);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, Q,
                  ld, K, ld, 0.0f, S + P, Tk);
      float *L = lse + ((int64_t)b * H + h) * T;
      for (int i = 0; i < T; i++) {
        float *s = S + (int64_t)i * Tk;
        const int nv = P + i + 1; /* visible keys */
        float mx = -INFINITY;
        for (int j = 0; j < nv; j++) mx = s[j] > mx ? s[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < nv; j++) {
          s[j] = expf(s[j] - mx);
          sum += s[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < nv; j++) s[j] *= inv;
        for (int j = nv; j < Tk; j++) s[j] = 0.0f;
        L[i] = mx + (float)log(sum);
      }
      /* O = S [pv ; V] */
      float *O = att + (int64_t)b * T * qd + h * hd;
      if (P > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, P, 1.0f,
                    S, Tk, pv + g * hd, kvd, 0.0f, O, qd);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f,
                  S + P, Tk, V, ld, P > 0 ? 1.0f : 0.0f, O, qd);
    }
  }
}

void dt_attention_backward(float *dqkv, float *dpk, float *dpv,
                           const float *datt, const float *att,
                           const float *lse, const float *qkv,
                           const float *pk, const float *pv,
                           const dt_attn_dims *d, float *scratch) {
  const int T = d->T, P = d->P, H = d->H, KV = d->KV, hd = d->hd;
  const int Tk = P + T, qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
  const int group = H / KV;
  const float scale = 1.0f / sqrtf((float)hd);
  float *S = scratch;                   /* [T, Tk] probabilities */
  float *dS = scratch + (int64_t)T * Tk; /* [T, Tk] */
  for (int b = 0; b < d->B; b++) {
    const float *rows = qkv + (int64_t)b * T * ld;
    float *drows = dqkv + (int64_t)b * T * ld;
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      const float *Q = rows + h * hd;
      const float *K = rows + qd + g * hd;
      const float *V = rows + qd + kvd + g * hd;
      const float *O = att + (int64_t)b * T * qd + h * hd;
      const float *dO = datt + (int64_t)b * T * qd + h * hd;
      const float *L = lse + ((int64_t)b * H + h) * T;
      /* recompute probabilities */
      if (P > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, P, hd, scale, Q,
                    ld, pk + g * hd, kvd, 0.0f, S, Tk);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, Q,
                  ld, K, ld, 0.0f, S + P, Tk);
      /* dP = dO [pv ; V]^T */
      if (P > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, P, hd, 1.0f, dO,
                    qd, pv + g * hd, kvd, 0.0f, dS, Tk);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO,
                  qd, V, ld, 0.0f, dS + P, Tk);
      for (int i = 0; i < T; i++) {
        float *s = S + (int64_t)i * Tk;
        float *ds = dS + (int64_t)i * Tk;
        const int nv = P + i + 1;
        const float *oi = O + (int64_t)i * qd;
        const float *doi = dO + (int64_t)i * qd;
        float Di = 0.0f;
        for (int c = 0; c < hd; c++) Di += oi[c] * doi[c];
        for (int j = 0; j < nv; j++) {
          s[j] = expf(s[j] - L[i]);
          ds[j] = s[j] * (ds[j] - Di) * scale;
        }
        for (int j = nv; j < Tk; j++) {
          s[j] = 0.0f;
          ds[j] = 0.0f;
        }
      }
      /* dQ += dS [pk ; K] */
      float *dQ = drows + h * hd;
      if (P > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, P, 1.0f,
                    dS, Tk, pk + g * hd, kvd, 1.0f, dQ, ld);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f,
                  dS + P, Tk, K, ld, 1.0f, dQ, ld);
      /* dK += dS^T Q ; dV += S^T dO */
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f,
                  dS + P, Tk, Q, ld, 1.0f, drows + qd + g * hd, ld);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f,
                  S + P, Tk, dO, qd, 1.0f, drows + qd + kvd + g * hd, ld);
      if (P > 0 && dpk)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, hd, T, 1.0f, dS,
                    Tk, Q, ld, 1.0f, dpk + g * hd, kvd);
      if (P > 0 && dpv)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, hd, T, 1.0f, S,
                    Tk, dO, qd, 1.0f, dpv + g * hd, kvd);
    }
  }
}
