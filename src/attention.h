/* Causal multi-head attention with grouped key/value heads and optional
 * prefix key/values, one (batch row, head) at a time so at most one
 * [T, P+T] score block is materialised. Works on strided views of the fused
 * qkv activations, so nothing is gathered or copied.
 *
 * qkv [B*T, qkv_dim] = q (H*hd) | k (KV*hd) | v (KV*hd) per row.
 * Prefix pk, pv [P, PH*hd] (shared by all batch rows) are attended by every
 * query: query head h reads prefix head h / (H/PH), its key/value group's
 * with PH = KV, its own with PH = H (Falcon's prefix, as PEFT's); real
 * key j is visible to query i when j <= i. With a sliding window
 * W > 0 (Mistral), key positions are those of transformers with past
 * key/values (prefix 0..P-1, real tokens P..P+T-1) and a key is visible only
 * when its position is above the query's minus W (HF's kv_idx > q_idx - W):
 * a query sees itself and the W - 1 positions before it.
 * With ALiBi slopes (BLOOM), head h's score of a key adds alibi[h] * (key
 * position - query position) in the same positions (prefix 0..P-1, real
 * tokens P..): transformers adds slope * key position, which differs by a
 * constant per query row that softmax ignores.
 */
#ifndef DT_ATTENTION_H
#define DT_ATTENTION_H

typedef struct {
  int B, T, P, H, KV, hd;
  int W; /* sliding window; 0: none */
  float scale; /* scores = scale q.k; 0: 1/sqrt(hd) */
  float cap;   /* soft-capping (Gemma-2): scores become cap tanh(s / cap)
                  before the mask and softmax; 0: none */
  const float *alibi; /* [H] ALiBi slopes of these heads, added to the
                         scaled scores (before a cap); NULL: none */
  int PH; /* prefix heads: KV (one per key/value group) or H (one per query
             head); at least 1 where KV is */
  int KS;     /* the last KS key/value groups are shared with other ranks by
                 query rows (mpi/shard.h): their heads attend only with
                 queries [q0, q1) of each batch row, and their output is zero
                 in the other rows; 0: none */
  int q0, q1;
  int bf16; /* the products of queries, keys, probabilities and values
               (and their gradients) on operands rounded to bf16, summed in
               fp32 (oneDNN: --matmul-dtype bf16); the prefix's stay fp32 */
} dt_attn_dims;

/* Floats of scratch needed (two [QB, P+T] blocks; with bf16, the bf16
 * operands too). */
long dt_attention_scratch(const dt_attn_dims *d);

/* att [B*T, H*hd] = softmax(q k^T / sqrt(hd)) v; lse [B,H,T]. Fails only
 * where a bf16 product does (oneDNN). */
int dt_attention_forward(float *att, float *lse, const float *qkv,
                         const float *pk, const float *pv,
                         const dt_attn_dims *d, float *scratch);

/* dqkv [B*T, qkv_dim] += grads of q,k,v; dpk, dpv [P, PH*hd] += prefix grads
 * (may be NULL when P == 0 or not trained). */
int dt_attention_backward(float *dqkv, float *dpk, float *dpv,
                          const float *datt, const float *att,
                          const float *lse, const float *qkv,
                          const float *pk, const float *pv,
                          const dt_attn_dims *d, float *scratch);

#endif
