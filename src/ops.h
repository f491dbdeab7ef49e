/* Elementwise and row-wise kernels as forward/backward pairs.
 * Shapes are in the comments; N rows of width C, row-major. Backward
 * functions ADD into their input gradients unless stated otherwise. */
#ifndef DT_OPS_H
#define DT_OPS_H

#include <stdint.h>

#include "arch.h"

/* out = LayerNorm(x) * w + b; stat [N,2] = mean, rstd. */
void dt_layernorm_forward(float *out, float *stat, const float *x,
                          const float *w, const float *b, int N, int C,
                          float eps);
/* dx += d/dx; dw, db (optional, may be NULL) += param grads. */
void dt_layernorm_backward(float *dx, float *dw, float *db, const float *dout,
                           const float *x, const float *w, const float *stat,
                           int N, int C);

/* out = x * rsqrt(mean(x^2) + eps) * (w_off + w); stat [N,2] = (unused,
 * rstd). w_off: 0, or 1 for Gemma's norms (scale 1 + w). */
void dt_rmsnorm_forward(float *out, float *stat, const float *x, const float *w,
                        float w_off, int N, int C, float eps);
void dt_rmsnorm_backward(float *dx, float *dw, const float *dout,
                         const float *x, const float *w, float w_off, const float *stat,
                         int N, int C);

/* z[j] = exp(z[j] - m) for j < n, vectorized (src/vmath.h), and the sum of
 * the results: the bits of dt_row_sum_d(z, n) after the exponentials, in one
 * pass over memory (softmax numerators and their denominator). */
double dt_exp_shift_sum(float *z, int64_t n, float m);
/* A family's FFN activation (its descriptor's act): out [N,F] = act(fc),
 * fc [N,F] or [N,2F] for the gated SwiGLU; the backward overwrites dfc. Every
 * forward path (the training pass, the cached decoder) calls these. */
void dt_ffn_act_forward(dt_act_kind k, float *out, const float *fc, int N, int F);
void dt_ffn_act_backward(dt_act_kind k, float *dfc, const float *dout, const float *fc, int N,
                         int F);
/* relu (OPT): out [n] = max(x, 0); dx [n] = dout * (x > 0) (overwrites). */
void dt_relu_forward(float *out, const float *x, int64_t n);
void dt_relu_backward(float *dx, const float *dout, const float *x, int64_t n);
/* gelu with erf (GPT-NeoX's "gelu"): out [n] = x Phi(x); dx [n] = dout *
 * gelu'(x) (overwrites). */
void dt_gelu_erf_forward(float *out, const float *x, int64_t n);
void dt_gelu_erf_backward(float *dx, const float *dout, const float *x, int64_t n);
/* gelu, tanh form (gelu_new). out [n] = gelu(x [n]). */
void dt_gelu_forward(float *out, const float *x, int64_t n);
/* dx [n] = dout * gelu'(x) (overwrites). */
void dt_gelu_backward(float *dx, const float *dout, const float *x, int64_t n);

/* GeGLU (Gemma): gu [N, 2F] holds gate | up; out [N,F] = gelu(gate) * up
 * with the tanh GELU (gelu_pytorch_tanh). dgu [N,2F] overwritten. */
void dt_geglu_forward(float *out, const float *gu, int N, int F);
void dt_geglu_backward(float *dgu, const float *dout, const float *gu, int N, int F);

/* SwiGLU: gu [N, 2F] holds gate | up per row; out [N,F] = silu(gate) * up. */
void dt_swiglu_forward(float *out, const float *gu, int N, int F);
/* dgu [N,2F] = grads of gate | up (overwrites). */
void dt_swiglu_backward(float *dgu, const float *dout, const float *gu, int N,
                        int F);

/* Rotary embeddings, rotate_half convention, in place on x [N, ld] at
 * columns [col0, col0 + n_heads*hd); row r has position pos[r % T]
 * (pos = 0..T-1 within each batch row). cos/sin tables [T, hd/2].
 * inverse = 1 applies the transpose (for backward). */
void dt_rope_apply(float *x, int N, int ld, int col0, int n_heads, int hd,
                   int T, const float *cos_t, const float *sin_t, int inverse);
/* The same on the first rot (even, <= hd) dimensions of each head of hd
 * (GPT-NeoX's partial rotary); the tables are [T, rot/2] (dt_rope_tables
 * with hd = rot), the other dimensions pass unchanged. */
void dt_rope_apply_part(float *x, int N, int ld, int col0, int n_heads, int hd, int rot, int T,
                        const float *cos_t, const float *sin_t, int inverse);
/* ALiBi (BLOOM): the slope of head h of n_head, as transformers'
 * build_alibi_tensor: 2^(-8 (h+1) / p) for the first p heads, p the largest
 * power of two <= n_head, then 2^(-4 (2k+1) / p) for the k-th extra head. */
float dt_alibi_slope(int n_head, int h);
/* s [n] += slope * (rel0 + j): scores of keys at relative positions rel0..
 * (key minus query position; the per-row constant softmax ignores). */
void dt_alibi_add(float *s, int n, float slope, int rel0);
void dt_rope_tables(float *cos_t, float *sin_t, int T, int hd, float theta);

/* Dense layers through BLAS. W is [out, in]. */
/* y [N,out] = x [N,in] W^T (+ b) */
void dt_linear_forward(float *y, const float *x, const float *W,
                       const float *b, int N, int in, int out);
/* dx [N,in] += dy [N,out] W */
void dt_linear_backward_input(float *dx, const float *dy, const float *W,
                              int N, int in, int out);
/* dW [out,in] += dy^T x; db [out] += colsum(dy) (db may be NULL). */
void dt_linear_backward_weight(float *dW, float *db, const float *dy,
                               const float *x, int N, int in, int out);

#endif
