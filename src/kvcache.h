/* The key/value cache of incremental decoding and the attention of new
 * queries over it.
 *
 * One cache holds, for every layer and every one of B slots (a sequence
 * being generated), the keys and values of its first Tc positions, for this
 * rank's kv heads only (tensor parallelism: kv_l = n_kv_l * head_dim):
 *   k, v [n_layer][B][Tc][kv_l]
 * Keys are stored after rotary embedding at their own position (LLaMA), so
 * a cached key is never rotated again. Prefix key/values (prefix tuning)
 * are not cached: they are the method's, shared by every slot, attended by
 * every query, and take no position. Sized up front; allocates nothing
 * after dt_kvcache_init. */
#ifndef DT_KVCACHE_H
#define DT_KVCACHE_H

#include <stddef.h>

typedef struct {
  int n_layer, B, Tc, kv_l;
  float *k, *v; /* [n_layer][B][Tc][kv_l] */
  int *len;     /* [B] positions cached in each slot */
} dt_kvcache;

int dt_kvcache_init(dt_kvcache *c, int n_layer, int B, int Tc, int kv_l);
void dt_kvcache_free(dt_kvcache *c);
/* Bytes dt_kvcache_init allocates. */
size_t dt_kvcache_bytes(int n_layer, int B, int Tc, int kv_l);
/* The keys (values) of slot b in layer l: [Tc, kv_l]. */
float *dt_kvcache_k(const dt_kvcache *c, int l, int b);
float *dt_kvcache_v(const dt_kvcache *c, int l, int b);

/* Causal attention of n new queries of one slot, the first at cache
 * position c0 (its key and value already stored there):
 *   q   [n, ld] rows, the query heads at columns 0..H*hd (strided view)
 *   K,V [Tc, KV*hd] the slot's cache; query i sees keys 0..c0+i
 *   pk, pv [P, PH*hd] prefix (NULL when P == 0), seen by every query:
 *       PH = KV (head h reads its group's) or H (its own, Falcon as PEFT)
 *   W   sliding window (0: none): as the training pass (src/attention.h),
 *       the prefix at positions 0..P-1 and the cache at P.., a key is seen
 *       only when its position is above the query's minus W
 *   alibi [H] ALiBi slopes (NULL: none): as the training pass, slope *
 *       (key position - query position) added to the scaled scores (before
 *       a cap)
 *   scale the scores' scale (1/sqrt(hd), Gemma-2: 1/sqrt(query_pre_attn_scalar))
 *   cap  soft-capping of the scores, cap tanh(s / cap) (0: none)
 *   att [n, H*hd] output; s: scratch of P + c0 + n floats.
 * Grouped heads: query head h reads kv head h / (H / KV). */
void dt_kv_attend(float *att, const float *q, int ld, const float *K, const float *V, int c0,
                  int n, const float *pk, const float *pv, int P, int PH, int W,
                  const float *alibi, int H, int KV, int hd, float scale, float cap, float *s);

#endif
