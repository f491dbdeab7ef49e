#include "ops.h"
#include "vmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* The norms' row sums are kept in 8 double lanes, j mod 8, then added in
 * pairs and the tail last (dt_row_sum_d's order): a written order, so the
 * clones vectorize them and agree bit for bit. In one sequential double the
 * sums were 2.5% of the GPT-2-small step (2026-12-06). */
static DT_VEC_CLONES void layernorm_forward_k(float *out, float *stat, const float *x,
                                              const float *w, const float *b, int N, int C,
                                              float eps) {
  for (int i = 0; i < N; i++) {
    const float *xi = x + (int64_t)i * C;
    float *oi = out + (int64_t)i * C;
    double l[8] = {0}, lv[8] = {0};
    const int C8 = C / 8 * 8;
    for (int j = 0; j < C8; j += 8)
      for (int k = 0; k < 8; k++) l[k] += xi[j + k];
    double m = DT_LANES_SUM(l);
    for (int j = C8; j < C; j++) m += xi[j];
    m /= C;
    for (int j = 0; j < C8; j += 8)
      for (int k = 0; k < 8; k++) {
        const double d = xi[j + k] - m;
        lv[k] += d * d;
      }
    double v = DT_LANES_SUM(lv);
    for (int j = C8; j < C; j++) {
      const double d = xi[j] - m;
      v += d * d;
    }
    v /= C;
    float rstd = (float)(1.0 / sqrt(v + eps));
    float mf = (float)m;
    if (b)
      for (int j = 0; j < C; j++) oi[j] = (xi[j] - mf) * rstd * w[j] + b[j];
    else
      for (int j = 0; j < C; j++) oi[j] = (xi[j] - mf) * rstd * w[j] + 0.0f;
    stat[2 * i] = mf;
    stat[2 * i + 1] = rstd;
  }
}

static DT_VEC_CLONES void layernorm_backward_k(float *dx, float *dw, float *db, const float *dout,
                                               const float *x, const float *w, const float *stat,
                                               int N, int C) {
  const int C8 = C / 8 * 8;
  for (int i = 0; i < N; i++) {
    const float *xi = x + (int64_t)i * C;
    const float *di = dout + (int64_t)i * C;
    float *dxi = dx + (int64_t)i * C;
    float mean = stat[2 * i], rstd = stat[2 * i + 1];
    double l1[8] = {0}, l2[8] = {0}; /* mean(dnorm), mean(dnorm * xhat) */
    for (int j = 0; j < C8; j += 8)
      for (int k = 0; k < 8; k++) {
        const float xhat = (xi[j + k] - mean) * rstd, dn = di[j + k] * w[j + k];
        l1[k] += dn;
        l2[k] += dn * xhat;
        if (dw) dw[j + k] += di[j + k] * xhat;
        if (db) db[j + k] += di[j + k];
      }
    double s1 = DT_LANES_SUM(l1), s2 = DT_LANES_SUM(l2);
    for (int j = C8; j < C; j++) {
      const float xhat = (xi[j] - mean) * rstd, dn = di[j] * w[j];
      s1 += dn;
      s2 += dn * xhat;
      if (dw) dw[j] += di[j] * xhat;
      if (db) db[j] += di[j];
    }
    float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
    for (int j = 0; j < C; j++) {
      float xhat = (xi[j] - mean) * rstd;
      float dn = di[j] * w[j];
      dxi[j] += (dn - m1 - xhat * m2) * rstd;
    }
  }
}

static DT_VEC_CLONES void rmsnorm_forward_k(float *out, float *stat, const float *x,
                                            const float *w, float w_off, int N, int C, float eps) {
  const int C8 = C / 8 * 8;
  for (int i = 0; i < N; i++) {
    const float *xi = x + (int64_t)i * C;
    float *oi = out + (int64_t)i * C;
    double l[8] = {0};
    for (int j = 0; j < C8; j += 8)
      for (int k = 0; k < 8; k++) l[k] += (double)xi[j + k] * xi[j + k];
    double ss = DT_LANES_SUM(l);
    for (int j = C8; j < C; j++) ss += (double)xi[j] * xi[j];
    float rstd = (float)(1.0 / sqrt(ss / C + eps));
    for (int j = 0; j < C; j++) oi[j] = (w_off + w[j]) * (xi[j] * rstd);
    stat[2 * i] = 0.0f;
    stat[2 * i + 1] = rstd;
  }
}

static DT_VEC_CLONES void rmsnorm_backward_k(float *dx, float *dw, const float *dout,
                                             const float *x, const float *w, float w_off,
                                             const float *stat, int N, int C) {
  const int C8 = C / 8 * 8;
  for (int i = 0; i < N; i++) {
    const float *xi = x + (int64_t)i * C;
    const float *di = dout + (int64_t)i * C;
    float *dxi = dx + (int64_t)i * C;
    float rstd = stat[2 * i + 1];
    double l[8] = {0}; /* mean(dn * xhat) */
    for (int j = 0; j < C8; j += 8)
      for (int k = 0; k < 8; k++) {
        const float xhat = xi[j + k] * rstd;
        l[k] += (di[j + k] * (w_off + w[j + k])) * xhat;
        if (dw) dw[j + k] += di[j + k] * xhat;
      }
    double s = DT_LANES_SUM(l);
    for (int j = C8; j < C; j++) {
      const float xhat = xi[j] * rstd;
      s += (di[j] * (w_off + w[j])) * xhat;
      if (dw) dw[j] += di[j] * xhat;
    }
    float m = (float)(s / C);
    for (int j = 0; j < C; j++) {
      float xhat = xi[j] * rstd;
      dxi[j] += (di[j] * (w_off + w[j]) - xhat * m) * rstd;
    }
  }
}

void dt_layernorm_forward(float *out, float *stat, const float *x, const float *w, const float *b,
                          int N, int C, float eps) {
  layernorm_forward_k(out, stat, x, w, b, N, C, eps);
}
void dt_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                           const float *w, const float *stat, int N, int C) {
  layernorm_backward_k(dx, dw, db, dout, x, w, stat, N, C);
}
void dt_rmsnorm_forward(float *out, float *stat, const float *x, const float *w, float w_off,
                        int N, int C, float eps) {
  rmsnorm_forward_k(out, stat, x, w, w_off, N, C, eps);
}
void dt_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                         float w_off, const float *stat, int N, int C) {
  rmsnorm_backward_k(dx, dw, dout, x, w, w_off, stat, N, C);
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* tanh through one exp: glibc's tanhf is several times slower and this is
 * the hottest elementwise op (accurate to a few ulp, saturates correctly:
 * at |u| = 15 the quotient already rounds to +-1). Branch-free with dt_expf
 * so that the GELU loops vectorize. */
static inline float fast_tanh(float u) {
  u = u > 15.0f ? 15.0f : (u < -15.0f ? -15.0f : u);
  float e = dt_expf(2.0f * u);
  return (e - 1.0f) / (e + 1.0f);
}

static DT_VEC_CLONES void gelu_forward_k(float *out, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    float u = GELU_K * (v + 0.044715f * v * v * v);
    out[i] = 0.5f * v * (1.0f + fast_tanh(u));
  }
}

static DT_VEC_CLONES void gelu_backward_k(float *dx, const float *dout, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    float u = GELU_K * (v + 0.044715f * v * v * v);
    float t = fast_tanh(u);
    float du = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
    float g = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
    dx[i] = dout[i] * g;
  }
}

/* z[j] = exp(z[j] - m), j < n (softmax numerators). */
static DT_VEC_CLONES void exp_shift_k(float *z, int64_t n, float m) {
  for (int64_t j = 0; j < n; j++) z[j] = dt_expf(z[j] - m);
}
/* l[k] += z[j + k] over the groups of 8 of z[0..n), n a multiple of 8:
 * dt_row_sum_d's lanes */
static DT_VEC_CLONES void lane_sums_k(double l[8], const float *z, int64_t n) {
  for (int64_t j = 0; j < n; j += 8)
    for (int k = 0; k < 8; k++) l[k] += (double)z[j + k];
}

static DT_VEC_CLONES void swiglu_forward_k(float *out, const float *gu, int N, int F) {
  for (int i = 0; i < N; i++) {
    const float *g = gu + (int64_t)i * 2 * F;
    const float *u = g + F;
    float *o = out + (int64_t)i * F;
    for (int j = 0; j < F; j++) {
      float s = g[j] / (1.0f + dt_expf(-g[j]));
      o[j] = s * u[j];
    }
  }
}

static DT_VEC_CLONES void swiglu_backward_k(float *dgu, const float *dout, const float *gu,
                                          int N, int F) {
  for (int i = 0; i < N; i++) {
    const float *g = gu + (int64_t)i * 2 * F;
    const float *u = g + F;
    const float *d = dout + (int64_t)i * F;
    float *dg = dgu + (int64_t)i * 2 * F;
    float *du = dg + F;
    for (int j = 0; j < F; j++) {
      float sig = 1.0f / (1.0f + dt_expf(-g[j]));
      float s = g[j] * sig;
      du[j] = d[j] * s;
      dg[j] = d[j] * u[j] * sig * (1.0f + g[j] * (1.0f - sig));
    }
  }
}

static DT_VEC_CLONES void geglu_forward_k(float *out, const float *gu, int N, int F) {
  for (int i = 0; i < N; i++) {
    const float *g = gu + (int64_t)i * 2 * F;
    const float *u = g + F;
    float *o = out + (int64_t)i * F;
    for (int j = 0; j < F; j++) {
      float v = g[j];
      float t = fast_tanh(GELU_K * (v + 0.044715f * v * v * v));
      o[j] = 0.5f * v * (1.0f + t) * u[j];
    }
  }
}

static DT_VEC_CLONES void geglu_backward_k(float *dgu, const float *dout, const float *gu, int N,
                                           int F) {
  for (int i = 0; i < N; i++) {
    const float *g = gu + (int64_t)i * 2 * F;
    const float *u = g + F;
    const float *d = dout + (int64_t)i * F;
    float *dg = dgu + (int64_t)i * 2 * F;
    float *du = dg + F;
    for (int j = 0; j < F; j++) {
      float v = g[j];
      float t = fast_tanh(GELU_K * (v + 0.044715f * v * v * v));
      float dt = GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
      du[j] = d[j] * 0.5f * v * (1.0f + t);
      dg[j] = d[j] * u[j] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt);
    }
  }
}

/* The exported entry points: the cloned kernels above are static, because a
 * target_clones function is only dispatched where every declaration carries
 * the attribute (clang), and the header's do not. */
void dt_gelu_forward(float *out, const float *x, int64_t n) { gelu_forward_k(out, x, n); }
void dt_gelu_backward(float *dx, const float *dout, const float *x, int64_t n) {
  gelu_backward_k(dx, dout, x, n);
}
/* Blocks of this many values go through the exponentials and then the
 * sum while they are in L1 (a loss-head row is 50,257 logits, 196 KB). */
#define EXP_SUM_BLOCK 2048
double dt_exp_shift_sum(float *z, int64_t n, float m) {
  double l[8] = {0};
  const int64_t n8 = n / 8 * 8;
  for (int64_t b = 0; b < n8; b += EXP_SUM_BLOCK) {
    const int64_t nb = n8 - b < EXP_SUM_BLOCK ? n8 - b : EXP_SUM_BLOCK;
    exp_shift_k(z + b, nb, m);
    lane_sums_k(l, z + b, nb);
  }
  exp_shift_k(z + n8, n - n8, m);
  double s = DT_LANES_SUM(l); /* dt_row_sum_d's order: lanes, pairs, the tail */
  for (int64_t j = n8; j < n; j++) s += (double)z[j];
  return s;
}
void dt_gelu_erf_forward(float *out, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
void dt_gelu_erf_backward(float *dx, const float *dout, const float *x, int64_t n) {
  /* d/dx x Phi(x) = Phi(x) + x phi(x) */
  const float inv_sqrt_2pi = 0.3989422804014327f;
  for (int64_t i = 0; i < n; i++) {
    const float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
    dx[i] = dout[i] * (cdf + x[i] * inv_sqrt_2pi * expf(-0.5f * x[i] * x[i]));
  }
}
void dt_relu_forward(float *out, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
void dt_relu_backward(float *dx, const float *dout, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dout[i] : 0.0f;
}

void dt_ffn_act_forward(dt_act_kind k, float *out, const float *fc, int N, int F) {
  switch (k) {
    case DT_ACT_GELU_TANH: dt_gelu_forward(out, fc, (int64_t)N * F); break;
    case DT_ACT_RELU: dt_relu_forward(out, fc, (int64_t)N * F); break;
    case DT_ACT_GELU_ERF: dt_gelu_erf_forward(out, fc, (int64_t)N * F); break;
    case DT_ACT_SWIGLU: dt_swiglu_forward(out, fc, N, F); break;
    case DT_ACT_GEGLU: dt_geglu_forward(out, fc, N, F); break;
  }
}

void dt_ffn_act_backward(dt_act_kind k, float *dfc, const float *dout, const float *fc, int N,
                         int F) {
  switch (k) {
    case DT_ACT_GELU_TANH: dt_gelu_backward(dfc, dout, fc, (int64_t)N * F); break;
    case DT_ACT_RELU: dt_relu_backward(dfc, dout, fc, (int64_t)N * F); break;
    case DT_ACT_GELU_ERF: dt_gelu_erf_backward(dfc, dout, fc, (int64_t)N * F); break;
    case DT_ACT_SWIGLU: dt_swiglu_backward(dfc, dout, fc, N, F); break;
    case DT_ACT_GEGLU: dt_geglu_backward(dfc, dout, fc, N, F); break;
  }
}
void dt_geglu_forward(float *out, const float *gu, int N, int F) {
  geglu_forward_k(out, gu, N, F);
}
void dt_geglu_backward(float *dgu, const float *dout, const float *gu, int N, int F) {
  geglu_backward_k(dgu, dout, gu, N, F);
}
void dt_swiglu_forward(float *out, const float *gu, int N, int F) {
  swiglu_forward_k(out, gu, N, F);
}
void dt_swiglu_backward(float *dgu, const float *dout, const float *gu, int N, int F) {
  swiglu_backward_k(dgu, dout, gu, N, F);
}

void dt_rope_tables(float *cos_t, float *sin_t, int T, int hd, float theta) {
  int h2 = hd / 2;
  for (int j = 0; j < h2; j++) {
    /* inv_freq as transformers computes it: 1 / theta^(2j/hd) in float */
    float inv = 1.0f / powf(theta, (float)(2 * j) / (float)hd);
    for (int t = 0; t < T; t++) {
      float a = (float)t * inv;
      cos_t[t * h2 + j] = cosf(a);
      sin_t[t * h2 + j] = sinf(a);
    }
  }
}

float dt_alibi_slope(int n_head, int h) {
  int p = 1;
  while (2 * p <= n_head) p *= 2;
  const double e = h < p ? -8.0 * (h + 1) / p : -4.0 * (2 * (h - p) + 1) / p;
  return (float)pow(2.0, e);
}

void dt_alibi_add(float *s, int n, float slope, int rel0) {
  for (int j = 0; j < n; j++) s[j] += slope * (float)(rel0 + j);
}

void dt_rope_apply_part(float *x, int N, int ld, int col0, int n_heads, int hd, int rot, int T,
                        const float *cos_t, const float *sin_t, int inverse) {
  int h2 = rot / 2;
  float sgn = inverse ? -1.0f : 1.0f;
  for (int r = 0; r < N; r++) {
    int t = r % T;
    const float *c = cos_t + (int64_t)t * h2;
    const float *s = sin_t + (int64_t)t * h2;
    for (int h = 0; h < n_heads; h++) {
      float *v = x + (int64_t)r * ld + col0 + h * hd;
      for (int j = 0; j < h2; j++) {
        float a = v[j], b = v[j + h2];
        /* out = x*cos + rotate_half(x)*sin, rotate_half = (-b, a) */
        v[j] = a * c[j] - sgn * b * s[j];
        v[j + h2] = b * c[j] + sgn * a * s[j];
      }
    }
  }
}

void dt_rope_apply(float *x, int N, int ld, int col0, int n_heads, int hd,
                   int T, const float *cos_t, const float *sin_t, int inverse) {
  dt_rope_apply_part(x, N, ld, col0, n_heads, hd, hd, T, cos_t, sin_t, inverse);
}

void dt_linear_forward(float *y, const float *x, const float *W,
                       const float *b, int N, int in, int out) {
  if (N == 0 || out == 0) return;
  if (in == 0) { /* a rank that owns no input columns: a zero partial sum */
    for (int i = 0; i < N; i++)
      for (int j = 0; j < out; j++) y[(int64_t)i * out + j] = b ? b[j] : 0.0f;
    return;
  }
  if (b) {
    for (int i = 0; i < N; i++) memcpy(y + (int64_t)i * out, b, sizeof(float) * out);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in,
              W, in, b ? 1.0f : 0.0f, y, out);
}

void dt_linear_backward_input(float *dx, const float *dy, const float *W,
                              int N, int in, int out) {
  if (N == 0 || in == 0 || out == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy,
              out, W, in, 1.0f, dx, in);
}

void dt_linear_backward_weight(float *dW, float *db, const float *dy,
                               const float *x, int N, int in, int out) {
  if (N == 0 || out == 0) return;
  if (in > 0 && dW)
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy,
              out, x, in, 1.0f, dW, in);
  if (db) {
    for (int i = 0; i < N; i++) {
      const float *d = dy + (int64_t)i * out;
      for (int j = 0; j < out; j++) db[j] += d[j];
    }
  }
}
