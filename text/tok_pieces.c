/* Pieces of a pre-tokenized string and how a piece is split at matches
 * (the delimiter behaviors of HF `tokenizers`: Removed, Isolated,
 * MergedWithPrevious, MergedWithNext, Contiguous). Empty pieces are
 * dropped, as HF does after every split. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_internal.h"

int tok_pieces_push(tok_pieces *ps, size_t off, size_t len, int32_t id, int at_origin) {
  if (len == 0) return DT_OK;
  if (ps->next_n == ps->next_cap) {
    size_t cap = ps->next_cap ? 2 * ps->next_cap : 64;
    tok_piece *p = realloc(ps->next, cap * sizeof *p);
    DT_CHECK(p, DT_ENOMEM, "out of memory for %zu pieces of text", cap);
    ps->next = p;
    ps->next_cap = cap;
  }
  ps->next[ps->next_n++] = (tok_piece){off, len, id, at_origin};
  return DT_OK;
}

void tok_pieces_commit(tok_pieces *ps) {
  tok_piece *p = ps->p;
  size_t cap = ps->cap;
  ps->p = ps->next;
  ps->n = ps->next_n;
  ps->cap = ps->next_cap;
  ps->next = p;
  ps->next_cap = cap;
  ps->next_n = 0;
}

int tok_pieces_store(tok_pieces *ps, const char *s, size_t n, size_t *off) {
  *off = ps->arena.n;
  return tok_buf_append(&ps->arena, s, n);
}

int tok_seg_push(tok_pieces *ps, size_t a, size_t b, int match) {
  if (ps->seg_n == ps->seg_cap) {
    size_t cap = ps->seg_cap ? 2 * ps->seg_cap : 64;
    tok_seg *p = realloc(ps->seg, cap * sizeof *p);
    DT_CHECK(p, DT_ENOMEM, "out of memory for %zu segments of text", cap);
    ps->seg = p;
    ps->seg_cap = cap;
  }
  ps->seg[ps->seg_n++] = (tok_seg){a, b, match};
  return DT_OK;
}

int tok_pieces_split(tok_pieces *ps, size_t i, tok_split_behavior behavior) {
  tok_seg *s = ps->seg;
  size_t n = ps->seg_n, k = 0;
  /* fold the segments in place into (range, remove) pairs */
  switch (behavior) {
    case TOK_SPLIT_REMOVED:
      k = n;
      break;
    case TOK_SPLIT_ISOLATED:
      for (size_t j = 0; j < n; j++) s[j].match = 0;
      k = n;
      break;
    case TOK_SPLIT_CONTIGUOUS: {
      int prev = 0;
      for (size_t j = 0; j < n; j++) {
        int m = s[j].match;
        if (m == prev && k > 0) s[k - 1].b = s[j].b;
        else s[k++] = (tok_seg){s[j].a, s[j].b, 0};
        prev = m;
      }
      break;
    }
    case TOK_SPLIT_MERGED_PREV: {
      int prev = 0;
      for (size_t j = 0; j < n; j++) {
        int m = s[j].match;
        if (m && !prev && k > 0) s[k - 1].b = s[j].b;
        else s[k++] = (tok_seg){s[j].a, s[j].b, 0};
        prev = m;
      }
      break;
    }
    case TOK_SPLIT_MERGED_NEXT: {
      /* right to left, writing from the end */
      int prev = 0;
      size_t w = n;
      for (size_t j = n; j-- > 0;) {
        int m = s[j].match;
        if (m && !prev && w < n) s[w].a = s[j].a;
        else s[--w] = (tok_seg){s[j].a, s[j].b, 0};
        prev = m;
      }
      memmove(s, s + w, (n - w) * sizeof *s);
      k = n - w;
      break;
    }
  }
  const tok_piece pc = ps->p[i];
  for (size_t j = 0; j < k; j++) {
    if (s[j].match) continue;
    DT_CALL(tok_pieces_push(ps, pc.off + s[j].a, s[j].b - s[j].a, -1,
                            pc.at_origin && s[j].a == 0));
  }
  return DT_OK;
}

void tok_pieces_free(tok_pieces *ps) {
  tok_buf_free(&ps->arena);
  free(ps->p);
  free(ps->next);
  free(ps->seg);
  memset(ps, 0, sizeof *ps);
}
