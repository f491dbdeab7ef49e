#include "attention.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "gemm_bf16.h"
#include "ops.h"
#include "sgemm_small.h"
#include "vmath.h"

/* Queries are processed in blocks of QB rows: block [i0, i1) sees the prefix
 * and real keys [0, i1), so the masked upper triangle is (mostly) never
 * computed; with a sliding window the keys before the window of the block's
 * first query are not computed either. */
#define QB 64

/* Rows of the score blocks and of the transposed copies below are TPAD(n)
 * floats apart for n columns: off a power-of-two stride, which at T = 512
 * (2 KB rows) put the 64 rows a product reads down a block's column into
 * two sets of the L1 cache: with TPAD(n) = n, GPT-2-small's attention took
 * 227-234 ms instead of 212-218 in dt_attention_bench (docs/performance.md). */
#define TPAD(n) ((n) + 16)

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

/* a . b over n floats in 16 lanes (lane k sums the products k mod 16 in
 * order), then the lanes pairwise: the same bits from every clone. The
 * scalar loop's chain of dependent additions was 5% of the attention's
 * backward at hd 64. */
static DT_VEC_CLONES float dot16(const float *restrict a, const float *restrict b, int n) {
  float l[16] = {0};
  const int n16 = n / 16 * 16;
  for (int c = 0; c < n16; c += 16)
    for (int k = 0; k < 16; k++) l[k] += a[c + k] * b[c + k];
  for (int c = n16; c < n; c++) l[c - n16] += a[c] * b[c];
  for (int w = 8; w > 0; w /= 2)
    for (int k = 0; k < w; k++) l[k] += l[k + w];
  return l[0];
}

/* the same with soft-capped scores: s holds the uncapped scale q.k, the
 * probability is exp(cap tanh(s / cap) - lse) and the chain rule adds
 * d(cap tanh(s / cap))/ds = 1 - tanh^2 */
static void softcap_bwd_row(float *restrict s, float *restrict ds, int nv, float li, float Di,
                            float scale, float cap) {
  for (int j = 0; j < nv; j++) {
    const float t = tanhf(s[j] / cap);
    s[j] = dt_expf(cap * t - li);
    ds[j] = s[j] * (ds[j] - Di) * scale * (1.0f - t * t);
  }
}

/* scores [n] = cap tanh(scores / cap) */
static void softcap_row(float *s, int n, float cap) {
  for (int j = 0; j < n; j++) s[j] = cap * tanhf(s[j] / cap);
}

/* The query rows head h attends with: all T, or [q0, q1) in a shared group. */
static inline void q_range(const dt_attn_dims *d, int h, int *q0, int *q1) {
  const int shared = d->KS > 0 && h / (d->H / d->KV) >= d->KV - d->KS;
  *q0 = shared ? d->q0 : 0;
  *q1 = shared ? d->q1 : d->T;
}

static inline float scale_of(const dt_attn_dims *d) {
  return d->scale > 0 ? d->scale : 1.0f / sqrtf((float)d->hd);
}

/* With bf16 products (d->bf16) the scratch holds, after the two fp32
 * blocks, bf16 arrays: an A operand [QB, max(P+T, hd)] and a head's keys,
 * values, queries and output gradients [T, hd] each. */
typedef struct {
  uint16_t *a16, *k16, *v16, *q16, *do16;
} bf16_ops;

/* the two score blocks [QB, TPAD(P + T)] */
static long blocks_elems(const dt_attn_dims *d) {
  return 2L * (d->T < QB ? d->T : QB) * TPAD(d->P + d->T);
}

static long bf16_elems(const dt_attn_dims *d) {
  const long qb = d->T < QB ? d->T : QB, tk = d->P + d->T;
  return qb * (tk > d->hd ? tk : d->hd) + 4L * d->T * d->hd;
}

/* With fp32 products the scratch holds, after the two blocks, a head's
 * operands laid out as dt_sgemm_small reads B: keys and values transposed
 * [hd, T] with rows TPAD(T) apart (scores q k^T, dP = dO v^T), and keys,
 * queries and output gradients as rows [T, hd] (dQ = dS k, dK = dS^T q,
 * dV = S^T dO); the forward keeps its values [T, hd] where the backward's
 * transposed values go. */
typedef struct {
  float *kt, *vt, *vc, *kc, *qc, *doc;
} f32_ops;

#define F32_COPIES 5

long dt_attention_scratch(const dt_attn_dims *d) {
  const long f = blocks_elems(d);
  return d->bf16 ? f + (bf16_elems(d) + 1) / 2 : f + F32_COPIES * (long)TPAD(d->T) * d->hd;
}

static f32_ops f32_carve(const dt_attn_dims *d, float *scratch) {
  f32_ops o = {0};
  if (d->bf16) return o;
  const long th = (long)TPAD(d->T) * d->hd;
  o.kt = scratch + blocks_elems(d);
  o.vt = o.kt + th;
  o.vc = o.vt; /* the forward's values, where the backward's transposed ones go */
  o.kc = o.vt + th;
  o.qc = o.kc + th;
  o.doc = o.qc + th;
  return o;
}

/* dst [hd, T] (rows TPAD(T) apart) = the transpose of src [T, hd] (rows
 * ld floats apart) */
static void cols_f32(float *dst, const float *src, int T, int hd, int ld) {
  dt_sgemm_small_transpose(dst, TPAD(T), src, ld, T, hd);
}

/* dst [rows, cols] (contiguous) = src, rows ld floats apart */
static void rows_f32(float *dst, const float *src, int rows, int cols, int ld) {
  for (int r = 0; r < rows; r++)
    memcpy(dst + (size_t)r * cols, src + (size_t)r * ld, sizeof(float) * (size_t)cols);
}

static bf16_ops bf16_carve(const dt_attn_dims *d, float *scratch) {
  bf16_ops o = {0};
  if (!d->bf16) return o;
  const long qb = d->T < QB ? d->T : QB, tk = d->P + d->T, th = (long)d->T * d->hd;
  o.a16 = (uint16_t *)(scratch + blocks_elems(d));
  o.k16 = o.a16 + qb * (tk > d->hd ? tk : d->hd);
  o.v16 = o.k16 + th;
  o.q16 = o.v16 + th;
  o.do16 = o.q16 + th;
  return o;
}

/* dst [rows, cols] (contiguous) = bf16(src), src rows ld floats apart */
static void rows_bf16(uint16_t *dst, const float *src, int rows, int cols, int ld) {
  for (int r = 0; r < rows; r++)
    dt_f32_to_bf16_n(dst + (size_t)r * cols, src + (size_t)r * ld, (size_t)cols);
}

/* s[j] *= scale: the bf16 products leave the scale to the row passes */
static void scale_row(float *s, int n, float scale) {
  for (int j = 0; j < n; j++) s[j] *= scale;
}

int dt_attention_forward(float *att, float *lse, const float *qkv,
                         const float *pk, const float *pv,
                         const dt_attn_dims *d, float *scratch) {
  if (d->H == 0 || d->KV == 0) return DT_OK; /* a rank without heads */
  const int T = d->T, P = d->P, H = d->H, KV = d->KV, hd = d->hd;
  const int Tk = P + T, ls = TPAD(Tk), qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
  const int group = H / KV, ph = d->PH, pd = ph * hd, pgroup = H / ph;
  const float scale = scale_of(d);
  float *S = scratch; /* [QB, Tk], rows ls apart */
  const bf16_ops o = bf16_carve(d, scratch);
  const f32_ops f = f32_carve(d, scratch);
  for (int b = 0; b < d->B; b++) {
    const float *rows = qkv + (int64_t)b * T * ld;
    for (int h = 0; h < H; h++) {
      const int g = h / group, pq = h / pgroup; /* its key/value group and prefix head */
      const float *K = rows + qd + g * hd;
      const float *V = rows + qd + kvd + g * hd;
      float *L = lse + ((int64_t)b * H + h) * T;
      int qa, qz;
      q_range(d, h, &qa, &qz);
      if (h % group == 0) { /* the group's keys and values, once */
        if (d->bf16) {
          rows_bf16(o.k16, K, T, hd, ld);
          rows_bf16(o.v16, V, T, hd, ld);
        } else {
          cols_f32(f.kt, K, T, hd, ld);
          rows_f32(f.vc, V, T, hd, ld);
        }
      }
      for (int i = 0; i < T; i++) /* rows another rank attends with: zero */
        if (i < qa || i >= qz) {
          memset(att + ((int64_t)b * T + i) * qd + h * hd, 0, sizeof(float) * hd);
          L[i] = 0.0f;
        }
      for (int i0 = qa; i0 < qz; i0 += QB) {
        const int i1 = i0 + QB < qz ? i0 + QB : qz, nq = i1 - i0, nk = i1;
        const float *Q = rows + (int64_t)i0 * ld + h * hd;
        /* the block's keys: from the window's first of its first query
         * (kb, 0 without a window): prefix [kb, P), real [r0, nk) */
        const int kb = first_key(d, P + i0), r0 = kb > P ? kb - P : 0;
        /* S = scale * Q [pk | K[0:nk]]^T, columns kb.. */
        if (kb < P)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, P - kb, hd, scale,
                      Q, ld, pk + (int64_t)kb * pd + pq * hd, pd, 0.0f, S + kb, ls);
        if (d->bf16) { /* unscaled: the rows scale them below */
          rows_bf16(o.a16, Q, nq, hd, ld);
          DT_CALL(dt_gemm_bf16_ld(S + P + r0, ls, o.a16, hd, 0, o.k16 + (int64_t)r0 * hd, hd, 1,
                                  nq, nk - r0, hd, 0.0f));
        } else {
          dt_sgemm_small(0, nq, nk - r0, hd, scale, Q, ld, f.kt + r0, TPAD(T), 0.0f, S + P + r0, ls);
        }
        for (int r = 0; r < nq; r++) {
          float *s = S + (int64_t)r * ls;
          const int nv = P + i0 + r + 1; /* keys up to the query's own */
          const int k0 = first_key(d, nv - 1); /* the window's first */
          if (d->bf16) {
            const int j0 = k0 > P ? k0 : P;
            scale_row(s + j0, nv - j0, scale);
          }
          if (d->alibi) dt_alibi_add(s + k0, nv - k0, d->alibi[h], k0 - (nv - 1));
          if (d->cap > 0) softcap_row(s + k0, nv - k0, d->cap);
          const float mx = dt_row_max(s + k0, nv - k0);
          const double sum = dt_exp_shift_sum(s + k0, nv - k0, mx);
          const float inv = (float)(1.0 / sum);
          for (int j = kb; j < k0; j++) s[j] = 0.0f; /* columns < kb are never read */
          for (int j = k0; j < nv; j++) s[j] *= inv;
          for (int j = nv; j < P + nk; j++) s[j] = 0.0f;
          L[i0 + r] = mx + (float)log(sum);
        }
        /* O = S [pv ; V[0:nk]], rows kb.. */
        float *O = att + ((int64_t)b * T + i0) * qd + h * hd;
        if (kb < P)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, P - kb, 1.0f,
                      S + kb, ls, pv + (int64_t)kb * pd + pq * hd, pd, 0.0f, O, qd);
        if (d->bf16) {
          rows_bf16(o.a16, S + P + r0, nq, nk - r0, ls);
          DT_CALL(dt_gemm_bf16_ld(O, qd, o.a16, nk - r0, 0, o.v16 + (int64_t)r0 * hd, hd, 0, nq, hd,
                                  nk - r0, kb < P ? 1.0f : 0.0f));
        } else {
          dt_sgemm_small(0, nq, hd, nk - r0, 1.0f, S + P + r0, ls, f.vc + (int64_t)r0 * hd, hd,
                         kb < P ? 1.0f : 0.0f, O, qd);
        }
      }
    }
  }
  return DT_OK;
}

int dt_attention_backward(float *dqkv, float *dpk, float *dpv,
                          const float *datt, const float *att,
                          const float *lse, const float *qkv,
                          const float *pk, const float *pv,
                          const dt_attn_dims *d, float *scratch) {
  if (d->H == 0 || d->KV == 0) return DT_OK;
  const int T = d->T, P = d->P, H = d->H, KV = d->KV, hd = d->hd;
  const int Tk = P + T, ls = TPAD(Tk), qd = H * hd, kvd = KV * hd, ld = qd + 2 * kvd;
  const int group = H / KV, qb = T < QB ? T : QB;
  const int ph = d->PH, pd = ph * hd, pgroup = H / ph;
  const float scale = scale_of(d);
  float *S = scratch;                      /* [QB, Tk] probabilities, rows ls apart */
  float *dS = scratch + (int64_t)qb * ls;  /* [QB, Tk], rows ls apart */
  const bf16_ops o = bf16_carve(d, scratch);
  const f32_ops f = f32_carve(d, scratch);
  for (int b = 0; b < d->B; b++) {
    const float *rows = qkv + (int64_t)b * T * ld;
    float *drows = dqkv + (int64_t)b * T * ld;
    for (int h = 0; h < H; h++) {
      const int g = h / group, pq = h / pgroup;
      const float *K = rows + qd + g * hd;
      const float *V = rows + qd + kvd + g * hd;
      const float *L = lse + ((int64_t)b * H + h) * T;
      int qa, qz;
      q_range(d, h, &qa, &qz);
      if (d->bf16) { /* the head's operands, once: keys and values per group */
        if (h % group == 0) {
          rows_bf16(o.k16, K, T, hd, ld);
          rows_bf16(o.v16, V, T, hd, ld);
        }
        rows_bf16(o.q16 + (int64_t)qa * hd, rows + (int64_t)qa * ld + h * hd, qz - qa, hd, ld);
        rows_bf16(o.do16 + (int64_t)qa * hd, datt + ((int64_t)b * T + qa) * qd + h * hd, qz - qa, hd,
                  qd);
      } else {
        if (h % group == 0) {
          cols_f32(f.kt, K, T, hd, ld);
          cols_f32(f.vt, V, T, hd, ld);
          rows_f32(f.kc, K, T, hd, ld);
        }
        rows_f32(f.qc + (int64_t)qa * hd, rows + (int64_t)qa * ld + h * hd, qz - qa, hd, ld);
        rows_f32(f.doc + (int64_t)qa * hd, datt + ((int64_t)b * T + qa) * qd + h * hd, qz - qa, hd,
                 qd);
      }
      for (int i0 = qa; i0 < qz; i0 += QB) {
        const int i1 = i0 + QB < qz ? i0 + QB : qz, nq = i1 - i0, nk = i1;
        const float *Q = rows + (int64_t)i0 * ld + h * hd;
        const float *O = att + ((int64_t)b * T + i0) * qd + h * hd;
        const float *dO = datt + ((int64_t)b * T + i0) * qd + h * hd;
        /* the block's keys, as in the forward: prefix [kb, P), real [r0, nk) */
        const int kb = first_key(d, P + i0), r0 = kb > P ? kb - P : 0;
        const float *pkb = pk + (int64_t)kb * pd + pq * hd, *pvb = pv + (int64_t)kb * pd + pq * hd;
        /* recompute scores; dP = dO [pv ; V]^T */
        if (kb < P) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, P - kb, hd, scale,
                      Q, ld, pkb, pd, 0.0f, S + kb, ls);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, P - kb, hd, 1.0f,
                      dO, qd, pvb, pd, 0.0f, dS + kb, ls);
        }
        const uint16_t *q16 = d->bf16 ? o.q16 + (int64_t)i0 * hd : NULL;
        const uint16_t *do16 = d->bf16 ? o.do16 + (int64_t)i0 * hd : NULL;
        if (d->bf16) { /* the scores unscaled, as in the forward */
          DT_CALL(dt_gemm_bf16_ld(S + P + r0, ls, q16, hd, 0, o.k16 + (int64_t)r0 * hd, hd, 1, nq,
                                  nk - r0, hd, 0.0f));
          DT_CALL(dt_gemm_bf16_ld(dS + P + r0, ls, do16, hd, 0, o.v16 + (int64_t)r0 * hd, hd, 1, nq,
                                  nk - r0, hd, 0.0f));
        } else {
          dt_sgemm_small(0, nq, nk - r0, hd, scale, Q, ld, f.kt + r0, TPAD(T), 0.0f, S + P + r0, ls);
          dt_sgemm_small(0, nq, nk - r0, hd, 1.0f, dO, qd, f.vt + r0, TPAD(T), 0.0f, dS + P + r0, ls);
        }
        for (int r = 0; r < nq; r++) {
          float *s = S + (int64_t)r * ls;
          float *ds = dS + (int64_t)r * ls;
          const int nv = P + i0 + r + 1;
          const int k0 = first_key(d, nv - 1);
          const float *orow = O + (int64_t)r * qd;
          const float *dorow = dO + (int64_t)r * qd;
          const float Di = dot16(orow, dorow, hd);
          const float li = L[i0 + r];
          if (d->bf16) {
            const int j0 = k0 > P ? k0 : P;
            scale_row(s + j0, nv - j0, scale);
          }
          if (d->alibi) dt_alibi_add(s + k0, nv - k0, d->alibi[h], k0 - (nv - 1));
          if (d->cap > 0) softcap_bwd_row(s + k0, ds + k0, nv - k0, li, Di, scale, d->cap);
          else softmax_bwd_row(s + k0, ds + k0, nv - k0, li, Di, scale);
          for (int j = kb; j < k0; j++) {
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
        if (kb < P)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, P - kb, 1.0f,
                      dS + kb, ls, pkb, pd, 1.0f, dQ, ld);
        float *dK = drows + (int64_t)r0 * ld + qd + g * hd;
        float *dV = drows + (int64_t)r0 * ld + qd + kvd + g * hd;
        if (d->bf16) {
          /* dQ += dS K, dK[r0:nk] += dS^T Q: one bf16 copy of dS [nq, nk - r0] */
          const int nr = nk - r0;
          rows_bf16(o.a16, dS + P + r0, nq, nr, ls);
          DT_CALL(dt_gemm_bf16_ld(dQ, ld, o.a16, nr, 0, o.k16 + (int64_t)r0 * hd, hd, 0, nq, hd, nr,
                                  1.0f));
          DT_CALL(dt_gemm_bf16_ld(dK, ld, o.a16, nr, 1, q16, hd, 0, nr, hd, nq, 1.0f));
          /* dV[r0:nk] += S^T dO */
          rows_bf16(o.a16, S + P + r0, nq, nr, ls);
          DT_CALL(dt_gemm_bf16_ld(dV, ld, o.a16, nr, 1, do16, hd, 0, nr, hd, nq, 1.0f));
        } else {
          const int nr = nk - r0;
          dt_sgemm_small(0, nq, hd, nr, 1.0f, dS + P + r0, ls, f.kc + (int64_t)r0 * hd, hd, 1.0f,
                         dQ, ld);
          /* dK[r0:nk] += dS^T Q ; dV[r0:nk] += S^T dO */
          dt_sgemm_small(1, nr, hd, nq, 1.0f, dS + P + r0, ls, f.qc + (int64_t)i0 * hd, hd, 1.0f,
                         dK, ld);
          dt_sgemm_small(1, nr, hd, nq, 1.0f, S + P + r0, ls, f.doc + (int64_t)i0 * hd, hd, 1.0f,
                         dV, ld);
        }
        if (kb < P && dpk)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P - kb, hd, nq, 1.0f, dS + kb,
                      ls, Q, ld, 1.0f, dpk + (int64_t)kb * pd + pq * hd, pd);
        if (kb < P && dpv)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P - kb, hd, nq, 1.0f, S + kb,
                      ls, dO, qd, 1.0f, dpv + (int64_t)kb * pd + pq * hd, pd);
      }
    }
  }
  return DT_OK;
}
