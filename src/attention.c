#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>

#include "ops.h"
#include "vmath.h"

/* Queries are processed in blocks of QB rows: block [i0, i1) sees the prefix
 * and real keys [0, i1), so the masked upper triangle is (mostly) never
 * computed. */
#define QB 64

/* The first key position a query at position qa sees (0 without a window). */
static inline int first_key(const dt_attn_dims *d, int qa) {
  return d->W > 0 && qa - d->W + 1 > 0 ? qa - d->W + 1 : 0;
}

/* probabilities s = exp(scores - lse) and dS = s (dP - D) scale, one row */
static DT_VEC_CLONES void softmax_bwd_row(float *restrict s, float *restrict ds, int nv,
                                          float li, float Di, float scale) {
  for (int j = 0; j < nv; j++) {
    s[j] = dt_expf(s[j] - li);
    ds[j] = s[j] * (ds[j] - Di) * scale;
  }
}

long dt_attention_scratch(const dt_attn_dims *d) {
  return 2L * (d->T < QB ? d->T : QB) * (d->P + d->T);
}

void dt_attention_forward(float *att, float *lse, const float *qkv,
                          const float *pk, const float *pv,
                          const dt_attn_dims *d, float *scratch) {
  if (d->H == 0 || d->KV == 0) return; /* a rank without heads */
  const int T = d->T, P = d->P, H = d->H, KV = d->KV, hd = d->hd;
  const int Tk = P + T, qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
  const int group = H / KV;
  const float scale = 1.0f / sqrtf((float)hd);
  float *S = scratch; /* [QB, Tk] */
  for (int b = 0; b < d->B; b++) {
    const float *rows = qkv + (int64_t)b * T * ld;
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      const float *K = rows + qd + g * hd;
      const float *V = rows + qd + kvd + g * hd;
      float *L = lse + ((int64_t)b * H + h) * T;
      for (int i0 = 0; i0 < T; i0 += QB) {
        const int i1 = i0 + QB < T ? i0 + QB : T, nq = i1 - i0, nk = i1;
        const float *Q = rows + (int64_t)i0 * ld + h * hd;
        /* S = scale * Q [pk | K[0:nk]]^T */
        if (P > 0)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, P, hd, scale,
                      Q, ld, pk + g * hd, kvd, 0.0f, S, Tk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, Q,
                    ld, K, ld, 0.0f, S + P, Tk);
        for (int r = 0; r < nq; r++) {
          float *s = S + (int64_t)r * Tk;
          const int nv = P + i0 + r + 1; /* keys up to the query's own */
          const int k0 = first_key(d, nv - 1); /* the window's first */
          const float mx = dt_row_max(s + k0, nv - k0);
          dt_exp_shift(s + k0, nv - k0, mx);
          const double sum = dt_row_sum_d(s + k0, nv - k0);
          const float inv = (float)(1.0 / sum);
          for (int j = 0; j < k0; j++) s[j] = 0.0f;
          for (int j = k0; j < nv; j++) s[j] *= inv;
          for (int j = nv; j < P + nk; j++) s[j] = 0.0f;
          L[i0 + r] = mx + (float)log(sum);
        }
        /* O = S [pv ; V[0:nk]] */
        float *O = att + ((int64_t)b * T + i0) * qd + h * hd;
        if (P > 0)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, P, 1.0f,
                      S, Tk, pv + g * hd, kvd, 0.0f, O, qd);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1.0f,
                    S + P, Tk, V, ld, P > 0 ? 1.0f : 0.0f, O, qd);
      }
    }
  }
}

void dt_attention_backward(float *dqkv, float *dpk, float *dpv,
                           const float *datt, const float *att,
                           const float *lse, const float *qkv,
                           const float *pk, const float *pv,
                           const dt_attn_dims *d, float *scratch) {
  if (d->H == 0 || d->KV == 0) return;
  const int T = d->T, P = d->P, H = d->H, KV = d->KV, hd = d->hd;
  const int Tk = P + T, qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
  const int group = H / KV, qb = T < QB ? T : QB;
  const float scale = 1.0f / sqrtf((float)hd);
  float *S = scratch;                      /* [QB, Tk] probabilities */
  float *dS = scratch + (int64_t)qb * Tk;  /* [QB, Tk] */
  for (int b = 0; b < d->B; b++) {
    const float *rows = qkv + (int64_t)b * T * ld;
    float *drows = dqkv + (int64_t)b * T * ld;
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      const float *K = rows + qd + g * hd;
      const float *V = rows + qd + kvd + g * hd;
      const float *L = lse + ((int64_t)b * H + h) * T;
      for (int i0 = 0; i0 < T; i0 += QB) {
        const int i1 = i0 + QB < T ? i0 + QB : T, nq = i1 - i0, nk = i1;
        const float *Q = rows + (int64_t)i0 * ld + h * hd;
        const float *O = att + ((int64_t)b * T + i0) * qd + h * hd;
        const float *dO = datt + ((int64_t)b * T + i0) * qd + h * hd;
        /* recompute scores; dP = dO [pv ; V]^T */
        if (P > 0) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, P, hd, scale,
                      Q, ld, pk + g * hd, kvd, 0.0f, S, Tk);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, P, hd, 1.0f,
                      dO, qd, pv + g * hd, kvd, 0.0f, dS, Tk);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, Q,
                    ld, K, ld, 0.0f, S + P, Tk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, 1.0f, dO,
                    qd, V, ld, 0.0f, dS + P, Tk);
        for (int r = 0; r < nq; r++) {
          float *s = S + (int64_t)r * Tk;
          float *ds = dS + (int64_t)r * Tk;
          const int nv = P + i0 + r + 1;
          const int k0 = first_key(d, nv - 1);
          const float *orow = O + (int64_t)r * qd;
          const float *dorow = dO + (int64_t)r * qd;
          float Di = 0.0f;
          for (int c = 0; c < hd; c++) Di += orow[c] * dorow[c];
          const float li = L[i0 + r];
          softmax_bwd_row(s + k0, ds + k0, nv - k0, li, Di, scale);
          for (int j = 0; j < k0; j++) {
            s[j] = 0.0f;
            ds[j] = 0.0f;
          }
          for (int j = nv; j < P + nk; j++) {
            s[j] = 0.0f;
            ds[j] = 0.0f;
          }
        }
        /* dQ += dS [pk ; K] */
        float *dQ = drows + (int64_t)i0 * ld + h * hd;
        if (P > 0)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, P, 1.0f,
                      dS, Tk, pk + g * hd, kvd, 1.0f, dQ, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1.0f,
                    dS + P, Tk, K, ld, 1.0f, dQ, ld);
        /* dK[0:nk] += dS^T Q ; dV[0:nk] += S^T dO */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, 1.0f,
                    dS + P, Tk, Q, ld, 1.0f, drows + qd + g * hd, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, 1.0f,
                    S + P, Tk, dO, qd, 1.0f, drows + qd + kvd + g * hd, ld);
        if (P > 0 && dpk)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, hd, nq, 1.0f, dS,
                      Tk, Q, ld, 1.0f, dpk + g * hd, kvd);
        if (P > 0 && dpv)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, hd, nq, 1.0f, S,
                      Tk, dO, qd, 1.0f, dpv + g * hd, kvd);
      }
    }
  }
}
