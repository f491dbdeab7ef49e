/* The BPE model of tokenizer.json: vocabulary, merge ranks, byte fallback
 * (<0xNN> tokens), unknown token (fused or not), ignore_merges,
 * continuing_subword_prefix and end_of_word_suffix, as HF `tokenizers`
 * merges a word: the pair of lowest rank first, the leftmost among equal
 * ranks, with a priority queue. Words already seen are answered from a cache
 * (a hash table keyed by the word's xxHash). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "error.h"
#include "tok_internal.h"

typedef struct {
  uint64_t hash;
  size_t off;      /* the string in bytes */
  uint32_t len;
  int32_t value;   /* vocabulary: the id; cache: offset of the ids in cache_ids */
  int32_t count;   /* cache: number of ids */
} entry;

typedef struct {
  entry *e;        /* open addressing, size a power of two; len == UINT32_MAX: empty */
  size_t cap, n;
  tok_buf bytes;
} strmap;

typedef struct {
  uint64_t key;    /* (a << 32) | b, UINT64_MAX: empty */
  uint32_t rank;
  int32_t id;
} merge;

struct tok_bpe {
  tok_bpe_config cfg;
  char *unk, *prefix, *suffix;
  size_t prefix_n, suffix_n;
  strmap vocab;
  size_t *id_off;       /* id -> offset of its token in vocab.bytes */
  uint32_t *id_len;     /* id -> length, UINT32_MAX: no token */
  int32_t n_ids;
  merge *m;
  size_t m_cap, m_n;
  uint32_t next_rank;
  int32_t unk_id;
  int32_t byte_id[256]; /* <0xNN> ids, -1 */
  /* the cache of merged words */
  strmap cache;
  tok_ids cache_ids;
  /* working space of one word */
  int32_t *sym_id, *sym_prev, *sym_next;
  uint32_t *sym_len;
  size_t sym_cap;
  struct heap_item { uint32_t rank; uint32_t pos; int32_t id; } *heap;
  size_t heap_n, heap_cap;
  tok_buf tmp;
};

#define CACHE_MAX 65536
#define CACHE_WORD_MAX 256

static uint64_t hash_str(const char *s, size_t n) { return XXH3_64bits(s, n); }

static int strmap_init(strmap *m, size_t hint) {
  size_t cap = 1024;
  while (cap < 2 * hint) cap *= 2;
  m->e = malloc(cap * sizeof *m->e);
  DT_CHECK(m->e, DT_ENOMEM, "out of memory for a table of %zu strings", cap);
  for (size_t i = 0; i < cap; i++) m->e[i].len = UINT32_MAX;
  m->cap = cap;
  m->n = 0;
  return DT_OK;
}

static entry *strmap_find(const strmap *m, const char *s, size_t n, uint64_t h) {
  size_t i = h & (m->cap - 1);
  for (;;) {
    entry *e = &m->e[i];
    if (e->len == UINT32_MAX) return NULL;
    if (e->hash == h && e->len == n && !memcmp(m->bytes.s + e->off, s, n)) return e;
    i = (i + 1) & (m->cap - 1);
  }
}

static int strmap_grow(strmap *m) {
  entry *old = m->e;
  size_t oc = m->cap;
  size_t cap = 2 * oc;
  entry *e = malloc(cap * sizeof *e);
  DT_CHECK(e, DT_ENOMEM, "out of memory for a table of %zu strings", cap);
  for (size_t i = 0; i < cap; i++) e[i].len = UINT32_MAX;
  for (size_t i = 0; i < oc; i++) {
    if (old[i].len == UINT32_MAX) continue;
    size_t j = old[i].hash & (cap - 1);
    while (e[j].len != UINT32_MAX) j = (j + 1) & (cap - 1);
    e[j] = old[i];
  }
  free(old);
  m->e = e;
  m->cap = cap;
  return DT_OK;
}

/* Insert (s, value); an existing string gets the new value. */
static int strmap_put(strmap *m, const char *s, size_t n, uint64_t h, int32_t value,
                      int32_t count, entry **out) {
  entry *e = strmap_find(m, s, n, h);
  if (!e) {
    if (2 * (m->n + 1) > m->cap) DT_CALL(strmap_grow(m));
    size_t i = h & (m->cap - 1);
    while (m->e[i].len != UINT32_MAX) i = (i + 1) & (m->cap - 1);
    e = &m->e[i];
    e->hash = h;
    e->off = m->bytes.n;
    e->len = (uint32_t)n;
    DT_CALL(tok_buf_append(&m->bytes, s, n));
    m->n++;
  }
  e->value = value;
  e->count = count;
  if (out) *out = e;
  return DT_OK;
}

static void strmap_free(strmap *m) {
  free(m->e);
  tok_buf_free(&m->bytes);
  memset(m, 0, sizeof *m);
}

static char *dupn(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

int tok_bpe_create(tok_bpe **out, const tok_bpe_config *cfg, size_t vocab_hint) {
  *out = NULL;
  tok_bpe *m = calloc(1, sizeof *m);
  DT_CHECK(m, DT_ENOMEM, "out of memory for a BPE model");
  m->cfg = *cfg;
  m->unk = dupn(cfg->unk_token);
  m->prefix = dupn(cfg->continuing_subword_prefix);
  m->suffix = dupn(cfg->end_of_word_suffix);
  m->cfg.unk_token = m->unk;
  m->cfg.continuing_subword_prefix = m->prefix;
  m->cfg.end_of_word_suffix = m->suffix;
  m->prefix_n = m->prefix ? strlen(m->prefix) : 0;
  m->suffix_n = m->suffix ? strlen(m->suffix) : 0;
  m->unk_id = -1;
  for (int b = 0; b < 256; b++) m->byte_id[b] = -1;
  int rc = strmap_init(&m->vocab, vocab_hint);
  if (rc == DT_OK) rc = strmap_init(&m->cache, CACHE_MAX);
  if (rc != DT_OK || (cfg->unk_token && !m->unk) ||
      (cfg->continuing_subword_prefix && !m->prefix) || (cfg->end_of_word_suffix && !m->suffix)) {
    tok_bpe_free(&m);
    if (rc == DT_OK) DT_ERR(DT_ENOMEM, "out of memory for a BPE model");
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  *out = m;
  return DT_OK;
}

int tok_bpe_add_vocab(tok_bpe *m, const char *tok, size_t n, int32_t id) {
  DT_CHECK(id >= 0 && id < (1 << 30), DT_EINPUT, "token id %d of '%.*s' is out of range",
           (int)id, (int)(n > 64 ? 64 : n), tok);
  DT_CHECK(n < UINT32_MAX / 2, DT_EINPUT, "a token of %zu bytes is too long", n);
  entry *e;
  DT_CALL(strmap_put(&m->vocab, tok, n, hash_str(tok, n), id, 0, &e));
  if (id >= m->n_ids) {
    int32_t nn = m->n_ids ? m->n_ids : 1024;
    while (nn <= id) nn *= 2;
    size_t *po = realloc(m->id_off, (size_t)nn * sizeof *po);
    if (po) m->id_off = po;
    uint32_t *pl = po ? realloc(m->id_len, (size_t)nn * sizeof *pl) : NULL;
    DT_CHECK(pl, DT_ENOMEM, "out of memory for a vocabulary of %d ids", (int)nn);
    for (int32_t i = m->n_ids; i < nn; i++) pl[i] = UINT32_MAX;
    m->id_len = pl;
    m->n_ids = nn;
  }
  m->id_off[id] = e->off;
  m->id_len[id] = e->len;
  return DT_OK;
}

int32_t tok_bpe_token_to_id(const tok_bpe *m, const char *s, size_t n) {
  entry *e = strmap_find(&m->vocab, s, n, hash_str(s, n));
  return e ? e->value : -1;
}

static size_t merge_slot(const tok_bpe *m, uint64_t key) {
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(h >> 20) & (m->m_cap - 1);
  while (m->m[i].key != UINT64_MAX && m->m[i].key != key) i = (i + 1) & (m->m_cap - 1);
  return i;
}

static int merges_grow(tok_bpe *m) {
  merge *old = m->m;
  size_t oc = m->m_cap;
  size_t cap = oc ? 2 * oc : 4096;
  merge *p = malloc(cap * sizeof *p);
  DT_CHECK(p, DT_ENOMEM, "out of memory for %zu merges", cap);
  for (size_t i = 0; i < cap; i++) p[i].key = UINT64_MAX;
  m->m = p;
  m->m_cap = cap;
  for (size_t i = 0; i < oc; i++)
    if (old[i].key != UINT64_MAX) m->m[merge_slot(m, old[i].key)] = old[i];
  free(old);
  return DT_OK;
}

int tok_bpe_add_merge(tok_bpe *m, const char *a, size_t an, const char *b, size_t bn,
                      const char *file) {
  uint32_t rank = m->next_rank++;
  int32_t ia = tok_bpe_token_to_id(m, a, an), ib = tok_bpe_token_to_id(m, b, bn);
  DT_CHECK(ia >= 0, DT_EINPUT, "%s: merge %u ('%.*s' '%.*s'): '%.*s' is not in the vocabulary",
           file, rank, (int)an, a, (int)bn, b, (int)an, a);
  DT_CHECK(ib >= 0, DT_EINPUT, "%s: merge %u ('%.*s' '%.*s'): '%.*s' is not in the vocabulary",
           file, rank, (int)an, a, (int)bn, b, (int)bn, b);
  /* the merged token drops b's continuing-subword prefix */
  size_t skip = m->prefix_n <= bn ? m->prefix_n : 0;
  m->tmp.n = 0;
  DT_CALL(tok_buf_append(&m->tmp, a, an));
  DT_CALL(tok_buf_append(&m->tmp, b + skip, bn - skip));
  int32_t id = tok_bpe_token_to_id(m, m->tmp.s, m->tmp.n);
  DT_CHECK(id >= 0, DT_EINPUT,
           "%s: merge %u ('%.*s' '%.*s'): the merged token '%.*s' is not in the vocabulary",
           file, rank, (int)an, a, (int)bn, b, (int)m->tmp.n, m->tmp.s);
  if (2 * (m->m_n + 1) > m->m_cap) DT_CALL(merges_grow(m));
  uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
  size_t i = merge_slot(m, key);
  if (m->m[i].key == UINT64_MAX) m->m_n++;
  m->m[i] = (merge){key, rank, id}; /* a repeated pair keeps its last rank, as HF */
  return DT_OK;
}

int tok_bpe_finish(tok_bpe *m, const char *file) {
  if (m->m_cap == 0) DT_CALL(merges_grow(m));
  if (m->unk) {
    m->unk_id = tok_bpe_token_to_id(m, m->unk, strlen(m->unk));
    /* HF fails only when an unknown character meets a missing unk token;
     * a file whose unk_token is not in its vocabulary is refused up front */
    DT_CHECK(m->unk_id >= 0, DT_EINPUT, "%s: model.unk_token '%s' is not in the vocabulary",
             file, m->unk);
  }
  for (int b = 0; b < 256; b++) {
    char code[8];
    snprintf(code, sizeof code, "<0x%02X>", b);
    m->byte_id[b] = tok_bpe_token_to_id(m, code, 6);
  }
  return DT_OK;
}

static const merge *find_merge(const tok_bpe *m, int32_t a, int32_t b) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  const merge *x = &m->m[merge_slot(m, key)];
  return x->key == UINT64_MAX ? NULL : x;
}

/* ---- the priority queue: lowest rank, then lowest position ---- */
static int heap_less(const struct heap_item *x, const struct heap_item *y) {
  return x->rank != y->rank ? x->rank < y->rank : x->pos < y->pos;
}

static int heap_push(tok_bpe *m, uint32_t rank, uint32_t pos, int32_t id) {
  if (m->heap_n == m->heap_cap) {
    size_t cap = m->heap_cap ? 2 * m->heap_cap : 256;
    struct heap_item *p = realloc(m->heap, cap * sizeof *p);
    DT_CHECK(p, DT_ENOMEM, "out of memory for a merge queue of %zu", cap);
    m->heap = p;
    m->heap_cap = cap;
  }
  size_t i = m->heap_n++;
  struct heap_item it = {rank, pos, id};
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(&it, &m->heap[parent])) break;
    m->heap[i] = m->heap[parent];
    i = parent;
  }
  m->heap[i] = it;
  return DT_OK;
}

static struct heap_item heap_pop(tok_bpe *m) {
  struct heap_item top = m->heap[0];
  struct heap_item last = m->heap[--m->heap_n];
  size_t i = 0, n = m->heap_n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap_less(&m->heap[c + 1], &m->heap[c])) c++;
    if (!heap_less(&m->heap[c], &last)) break;
    m->heap[i] = m->heap[c];
    i = c;
  }
  if (n) m->heap[i] = last;
  return top;
}

static int sym_reserve(tok_bpe *m, size_t n) {
  if (n <= m->sym_cap) return DT_OK;
  size_t cap = m->sym_cap ? m->sym_cap : 64;
  while (cap < n) cap *= 2;
  int32_t *a = realloc(m->sym_id, cap * sizeof *a);
  if (a) m->sym_id = a;
  int32_t *b = a ? realloc(m->sym_prev, cap * sizeof *b) : NULL;
  if (b) m->sym_prev = b;
  int32_t *c = b ? realloc(m->sym_next, cap * sizeof *c) : NULL;
  if (c) m->sym_next = c;
  uint32_t *d = c ? realloc(m->sym_len, cap * sizeof *d) : NULL;
  if (d) m->sym_len = d;
  DT_CHECK(d, DT_ENOMEM, "out of memory for a word of %zu symbols", cap);
  m->sym_cap = cap;
  return DT_OK;
}

static int sym_add(tok_bpe *m, size_t *n, int32_t id, uint32_t len) {
  DT_CALL(sym_reserve(m, *n + 1));
  size_t i = (*n)++;
  m->sym_id[i] = id;
  m->sym_len[i] = len;
  m->sym_prev[i] = (int32_t)i - 1;
  m->sym_next[i] = (int32_t)i + 1;
  return DT_OK;
}

/* The symbols of a word before merging, as HF's merge_word builds them. */
static int initial_symbols(tok_bpe *m, const char *s, size_t n, size_t *ns) {
  *ns = 0;
  int32_t unk = -1;
  uint32_t unk_len = 0;
  for (size_t i = 0; i < n;) {
    size_t b = i;
    i += tok_utf8_len((unsigned char)s[i]);
    if (i > n) i = n;
    const uint32_t blen = (uint32_t)(i - b);
    const char *piece = s + b;
    size_t plen = blen;
    if ((b > 0 && m->prefix) || (i == n && m->suffix)) {
      m->tmp.n = 0;
      if (b > 0 && m->prefix) DT_CALL(tok_buf_append(&m->tmp, m->prefix, m->prefix_n));
      DT_CALL(tok_buf_append(&m->tmp, s + b, blen));
      if (i == n && m->suffix) DT_CALL(tok_buf_append(&m->tmp, m->suffix, m->suffix_n));
      piece = m->tmp.s;
      plen = m->tmp.n;
    }
    int32_t id = tok_bpe_token_to_id(m, piece, plen);
    if (id >= 0) {
      if (unk >= 0) {
        DT_CALL(sym_add(m, ns, unk, unk_len));
        unk = -1;
      }
      DT_CALL(sym_add(m, ns, id, blen));
      continue;
    }
    if (m->cfg.byte_fallback) {
      int all = 1;
      for (size_t k = 0; k < plen; k++)
        if (m->byte_id[(unsigned char)piece[k]] < 0) all = 0;
      if (all) { /* as HF: a pending unknown token waits */
        for (size_t k = 0; k < plen; k++)
          DT_CALL(sym_add(m, ns, m->byte_id[(unsigned char)piece[k]], 1));
        continue;
      }
    }
    if (m->unk_id >= 0) {
      if (unk >= 0 && m->cfg.fuse_unk) {
        unk_len += blen;
      } else {
        if (unk >= 0) DT_CALL(sym_add(m, ns, unk, unk_len));
        unk = m->unk_id;
        unk_len = blen;
      }
    }
  }
  if (unk >= 0) DT_CALL(sym_add(m, ns, unk, unk_len));
  if (*ns) m->sym_next[*ns - 1] = -1;
  return DT_OK;
}

static int merge_word(tok_bpe *m, const char *s, size_t n, tok_ids *out) {
  size_t ns;
  DT_CALL(initial_symbols(m, s, n, &ns));
  m->heap_n = 0;
  for (size_t i = 0; i + 1 < ns; i++) {
    const merge *x = find_merge(m, m->sym_id[i], m->sym_id[i + 1]);
    if (x) DT_CALL(heap_push(m, x->rank, (uint32_t)i, x->id));
  }
  while (m->heap_n) {
    struct heap_item top = heap_pop(m);
    uint32_t p = top.pos;
    if (m->sym_len[p] == 0 || m->sym_next[p] < 0) continue;
    int32_t q = m->sym_next[p];
    const merge *x = find_merge(m, m->sym_id[p], m->sym_id[q]);
    if (!x || x->id != top.id) continue;
    m->sym_id[p] = top.id;
    m->sym_len[p] += m->sym_len[q];
    m->sym_next[p] = m->sym_next[q];
    m->sym_len[q] = 0;
    if (m->sym_next[q] >= 0) m->sym_prev[m->sym_next[q]] = (int32_t)p;
    if (m->sym_prev[p] >= 0) {
      int32_t pr = m->sym_prev[p];
      const merge *y = find_merge(m, m->sym_id[pr], m->sym_id[p]);
      if (y) DT_CALL(heap_push(m, y->rank, (uint32_t)pr, y->id));
    }
    if (m->sym_next[p] >= 0) {
      const merge *y = find_merge(m, m->sym_id[p], m->sym_id[m->sym_next[p]]);
      if (y) DT_CALL(heap_push(m, y->rank, p, y->id));
    }
  }
  for (size_t i = 0; i < ns; i++)
    if (m->sym_len[i]) DT_CALL(tok_ids_push(out, m->sym_id[i]));
  return DT_OK;
}

int tok_bpe_encode(tok_bpe *m, const char *s, size_t n, tok_ids *out) {
  if (n == 0) return DT_OK;
  uint64_t h = hash_str(s, n);
  if (m->cfg.ignore_merges) {
    entry *e = strmap_find(&m->vocab, s, n, h);
    if (e) return tok_ids_push(out, e->value);
  }
  entry *c = strmap_find(&m->cache, s, n, h);
  if (c) {
    for (int32_t k = 0; k < c->count; k++) DT_CALL(tok_ids_push(out, m->cache_ids.v[c->value + k]));
    return DT_OK;
  }
  size_t start = out->n;
  DT_CALL(merge_word(m, s, n, out));
  if (n <= CACHE_WORD_MAX) {
    if (m->cache.n >= CACHE_MAX) { /* full: start again */
      for (size_t i = 0; i < m->cache.cap; i++) m->cache.e[i].len = UINT32_MAX;
      m->cache.n = 0;
      m->cache.bytes.n = 0;
      m->cache_ids.n = 0;
    }
    int32_t at = (int32_t)m->cache_ids.n;
    for (size_t k = start; k < out->n; k++) DT_CALL(tok_ids_push(&m->cache_ids, out->v[k]));
    DT_CALL(strmap_put(&m->cache, s, n, h, at, (int32_t)(out->n - start), NULL));
  }
  return DT_OK;
}

const char *tok_bpe_id_to_token(const tok_bpe *m, int32_t id, size_t *n) {
  if (id < 0 || id >= m->n_ids || m->id_len[id] == UINT32_MAX) return NULL;
  *n = m->id_len[id];
  return m->vocab.bytes.s + m->id_off[id];
}

int32_t tok_bpe_vocab_size(const tok_bpe *m) {
  int32_t n = 0;
  for (int32_t i = 0; i < m->n_ids; i++)
    if (m->id_len[i] != UINT32_MAX) n = i + 1;
  return n;
}

void tok_bpe_free(tok_bpe **pm) {
  tok_bpe *m = *pm;
  if (!m) return;
  free(m->unk);
  free(m->prefix);
  free(m->suffix);
  strmap_free(&m->vocab);
  strmap_free(&m->cache);
  tok_ids_free(&m->cache_ids);
  free(m->id_off);
  free(m->id_len);
  free(m->m);
  free(m->sym_id);
  free(m->sym_prev);
  free(m->sym_next);
  free(m->sym_len);
  free(m->heap);
  tok_buf_free(&m->tmp);
  free(m);
  *pm = NULL;
}
