/* bf16 products of the frozen matrices through oneDNN's matmul primitive.
 *
 * Shapes recur step after step (the same sites, micro-batches and head
 * chunks), so each (M, N, K, layout, beta) gets its primitive built once and
 * kept in a small cache; a call then only binds the three pointers and runs.
 * The weights are passed in their stored [out,in] layout with strides: oneDNN
 * packs them for its kernel per call, which keeps one copy of the frozen
 * weights in memory (no second, pre-packed copy per direction).
 */
#include "gemm_bf16.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <dnnl.h>

#include "error.h"
#include "bf16.h"
#include "vmath.h"

#define CACHE_SLOTS DT_GEMM_BF16_CACHE

/* A product's shape and layouts: the cache's key. */
typedef struct {
  int M, N, K, trans_a, trans_b, lda, ldb, ldc, beta;
} shape;

typedef struct {
  int used;
  shape key;
  dnnl_primitive_t prim;
  dnnl_memory_t a, b, c;
} slot;

static struct {
  int ready;
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  slot cache[CACHE_SLOTS];
  int next; /* round-robin eviction */
  char version[48];
} G;

static const char *status_name(dnnl_status_t s) {
  switch (s) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "no implementation on this CPU";
    case dnnl_runtime_error: return "runtime error";
    default: return "error";
  }
}

#define DNNL_CALL(expr, what)                                                            \
  do {                                                                                   \
    dnnl_status_t st_ = (expr);                                                          \
    if (st_ != dnnl_success)                                                             \
      DT_ERR(st_ == dnnl_out_of_memory ? DT_ENOMEM : DT_EINTERNAL, "oneDNN %s: %s (%d)", \
             what, status_name(st_), (int)st_);                                          \
  } while (0)

const char *dt_gemm_bf16_library(void) {
  if (!G.version[0]) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(G.version, sizeof G.version, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
  }
  return G.version;
}

/* oneDNN's CPU runtime is OpenMP: without OMP_NUM_THREADS it would start a
 * thread per core in every rank. Follow OpenBLAS's thread count instead
 * (OPENBLAS_NUM_THREADS, 1 per rank in the job scripts), so both libraries
 * use the same cores. The OpenMP runtime is oneDNN's dependency, found at
 * run time. */
static void match_threads(void) {
  if (getenv("OMP_NUM_THREADS")) return;
  void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
  if (set) set(openblas_get_num_threads());
}

static int init(void) {
  if (G.ready) return DT_OK;
  match_threads();
  DNNL_CALL(dnnl_engine_create(&G.eng, dnnl_cpu, 0), "CPU engine");
  DNNL_CALL(dnnl_stream_create(&G.stream, G.eng, dnnl_stream_default_flags), "stream");
  G.ready = 1;
  return DT_OK;
}

static void slot_free(slot *s) {
  if (!s->used) return;
  dnnl_primitive_destroy(s->prim);
  dnnl_memory_destroy(s->a);
  dnnl_memory_destroy(s->b);
  dnnl_memory_destroy(s->c);
  memset(s, 0, sizeof *s);
}

void dt_gemm_bf16_shutdown(void) {
  if (!G.ready) return;
  for (int i = 0; i < CACHE_SLOTS; i++) slot_free(&G.cache[i]);
  dnnl_stream_destroy(G.stream);
  dnnl_engine_destroy(G.eng);
  G.ready = 0;
  G.next = 0;
}

/* Build the primitive of one shape into s; impl (optional) gets its name. */
static int build(slot *s, const shape *p, const char **impl) {
  const int M = p->M, N = p->N, K = p->K;
  dnnl_memory_desc_t amd, bmd, cmd;
  const dnnl_dims_t ad = {M, K}, as_n = {p->lda, 1}, as_t = {1, p->lda}; /* [M,K], or [K,M] read transposed */
  const dnnl_dims_t bd = {K, N};
  const dnnl_dims_t bs_t = {1, p->ldb}, bs_n = {p->ldb, 1}; /* [N,K] read as its transpose, or [K,N] */
  const dnnl_dims_t cd = {M, N}, cs = {p->ldc, 1};
  const int beta = p->beta;
  DNNL_CALL(dnnl_memory_desc_init_by_strides(&amd, 2, ad, dnnl_bf16, p->trans_a ? as_t : as_n),
            "source descriptor");
  DNNL_CALL(dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dnnl_bf16, p->trans_b ? bs_t : bs_n),
            "weights descriptor");
  DNNL_CALL(dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs), "destination descriptor");
  dnnl_matmul_desc_t md;
  DNNL_CALL(dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd), "matmul descriptor");
  dnnl_primitive_attr_t attr;
  DNNL_CALL(dnnl_primitive_attr_create(&attr), "attributes");
  dnnl_post_ops_t po = NULL;
  dnnl_status_t st = dnnl_success;
  if (beta) {
    st = dnnl_post_ops_create(&po);
    if (st == dnnl_success) st = dnnl_post_ops_append_sum(po, 1.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
  }
  dnnl_primitive_desc_t pd = NULL;
  if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &md, attr, G.eng, NULL);
  if (po) dnnl_post_ops_destroy(po);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success)
    DT_ERR(st == dnnl_unimplemented ? DT_EUSAGE : DT_EINTERNAL,
           "oneDNN (%s) has no bf16 matmul for [%d,%d] x [%d,%d] on this CPU: %s "
           "(use --matmul-dtype fp32)",
           dt_gemm_bf16_library(), M, K, K, N, status_name(st));
  if (impl) {
    const char *name = NULL;
    static char keep[64]; /* the name lives in pd: keep a copy */
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) != dnnl_success) name = "?";
    snprintf(keep, sizeof keep, "%s", name);
    *impl = keep;
  }
  st = dnnl_primitive_create(&s->prim, pd);
  dnnl_primitive_desc_destroy(pd);
  DNNL_CALL(st, "matmul primitive");
  DNNL_CALL(dnnl_memory_create(&s->a, &amd, G.eng, DNNL_MEMORY_NONE), "source memory");
  DNNL_CALL(dnnl_memory_create(&s->b, &bmd, G.eng, DNNL_MEMORY_NONE), "weights memory");
  DNNL_CALL(dnnl_memory_create(&s->c, &cmd, G.eng, DNNL_MEMORY_NONE), "destination memory");
  s->key = *p;
  s->used = 1;
  return DT_OK;
}

static int same(const slot *s, const shape *p) {
  const shape *k = &s->key;
  return s->used && k->M == p->M && k->N == p->N && k->K == p->K && k->trans_a == p->trans_a &&
         k->trans_b == p->trans_b && k->lda == p->lda && k->ldb == p->ldb && k->ldc == p->ldc &&
         k->beta == p->beta;
}

static int lookup(slot **out, const shape *p) {
  DT_CALL(init());
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (same(&G.cache[i], p)) {
      *out = &G.cache[i];
      return DT_OK;
    }
  slot *s = &G.cache[G.next];
  G.next = (G.next + 1) % CACHE_SLOTS;
  slot_free(s);
  DT_CALL(build(s, p, NULL));
  *out = s;
  return DT_OK;
}

int dt_matmul_dtype_check(const char *matmul_dtype, const char *weights_dtype) {
  DT_CHECK(strcmp(matmul_dtype, "bf16") || strcmp(weights_dtype, "fp32"), DT_EUSAGE,
           "--matmul-dtype bf16 multiplies bf16 weights (stored, or dequantized from int8/nf4): "
           "it needs --weights-dtype bf16, int8 or nf4 (got --weights-dtype %s)",
           weights_dtype);
  return DT_OK;
}

/* dt_f32_to_bf16 without its branch, so that the loop vectorizes (integer
 * lanes: the same bits on every ISA). The scalar loop was 9.6% of a
 * one-rank bf16 step of the 1.31B width (docs/performance.md). */
static DT_VEC_CLONES void f32_to_bf16_k(uint16_t *restrict dst, const float *restrict src,
                                        size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint32_t v;
    memcpy(&v, &src[i], sizeof v);
    const uint32_t rounded = (v + 0x7fffu + ((v >> 16) & 1u)) >> 16;
    const uint32_t quiet = (v >> 16) | 0x40u; /* a NaN stays a NaN */
    const uint32_t nan = 0u - (uint32_t)((v & 0x7fffffffu) > 0x7f800000u); /* all ones or 0 */
    dst[i] = (uint16_t)((quiet & nan) | (rounded & ~nan));
  }
}

void dt_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n) {
  f32_to_bf16_k(dst, src, n);
}

int dt_gemm_bf16(float *C, const float *A, const uint16_t *B, int M, int N, int K,
                 int trans_b, float beta, uint16_t *a16) {
  if (M > 0 && K > 0) dt_f32_to_bf16_n(a16, A, (size_t)M * K);
  return dt_gemm_bf16_ld(C, N, a16, K, 0, B, trans_b ? K : N, trans_b, M, N, K, beta);
}

int dt_gemm_bf16_ld(float *C, int ldc, const uint16_t *A16, int lda, int trans_a,
                    const uint16_t *B, int ldb, int trans_b, int M, int N, int K, float beta) {
  if (M == 0 || N == 0) return DT_OK;
  if (K == 0) { /* an empty sum */
    if (beta == 0.0f)
      for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, sizeof(float) * (size_t)N);
    return DT_OK;
  }
  slot *s = NULL;
  const shape p = {M, N, K, trans_a, trans_b, lda, ldb, ldc, beta != 0.0f};
  DT_CALL(lookup(&s, &p));
  DNNL_CALL(dnnl_memory_set_data_handle(s->a, (void *)A16), "source handle");
  DNNL_CALL(dnnl_memory_set_data_handle(s->b, (void *)B), "weights handle");
  DNNL_CALL(dnnl_memory_set_data_handle(s->c, C), "destination handle");
  const dnnl_exec_arg_t args[3] = {
      {DNNL_ARG_SRC, s->a}, {DNNL_ARG_WEIGHTS, s->b}, {DNNL_ARG_DST, s->c}};
  DNNL_CALL(dnnl_primitive_execute(s->prim, G.stream, 3, args), "matmul");
  DNNL_CALL(dnnl_stream_wait(G.stream), "stream wait");
  return DT_OK;
}

int dt_gemm_bf16_probe(const char **impl) {
  DT_CALL(init());
  slot s = {0};
  const shape p = {256, 256, 256, 0, 1, 256, 256, 256, 0};
  DT_CALL(build(&s, &p, impl));
  slot_free(&s);
  return DT_OK;
}
