/* Text helpers of the tokenizer (tok_text.h). */
#include "tok_text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "error.h"

int tok_buf_reserve(tok_buf *b, size_t n) {
  if (b->n + n <= b->cap) return DT_OK;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + n) cap *= 2;
  char *p = realloc(b->s, cap);
  DT_CHECK(p, DT_ENOMEM, "out of memory growing a text buffer to %zu bytes", cap);
  b->s = p;
  b->cap = cap;
  return DT_OK;
}

int tok_buf_append(tok_buf *b, const void *s, size_t n) {
  DT_CALL(tok_buf_reserve(b, n + 1));
  if (n) memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
  return DT_OK;
}

void tok_buf_free(tok_buf *b) {
  free(b->s);
  b->s = NULL;
  b->n = b->cap = 0;
}

int tok_ids_push(tok_ids *ids, int32_t id) {
  if (ids->n == ids->cap) {
    size_t cap = ids->cap ? 2 * ids->cap : 64;
    int32_t *p = realloc(ids->v, cap * sizeof *p);
    DT_CHECK(p, DT_ENOMEM, "out of memory growing a list of %zu token ids", cap);
    ids->v = p;
    ids->cap = cap;
  }
  ids->v[ids->n++] = id;
  return DT_OK;
}

void tok_ids_free(tok_ids *ids) {
  free(ids->v);
  ids->v = NULL;
  ids->n = ids->cap = 0;
}

int tok_strs_push(tok_strs *l, const char *s, size_t n) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    size_t *o = realloc(l->off, cap * sizeof *o);
    DT_CHECK(o, DT_ENOMEM, "out of memory growing a list of %zu strings", cap);
    l->off = o;
    size_t *q = realloc(l->len, cap * sizeof *q);
    DT_CHECK(q, DT_ENOMEM, "out of memory growing a list of %zu strings", cap);
    l->len = q;
    l->cap = cap;
  }
  l->off[l->n] = l->bytes.n;
  l->len[l->n] = n;
  DT_CALL(tok_buf_append(&l->bytes, s, n));
  l->n++;
  return DT_OK;
}

void tok_strs_reset(tok_strs *l) {
  l->n = 0;
  l->bytes.n = 0;
}

void tok_strs_free(tok_strs *l) {
  tok_buf_free(&l->bytes);
  free(l->off);
  free(l->len);
  memset(l, 0, sizeof *l);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid; *sub
 * gets the length of the maximal subpart of a valid sequence (at least 1),
 * which Rust's lossy decoding replaces by one U+FFFD. Ranges: Unicode
 * Table 3-7, well-formed UTF-8 byte sequences. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *sub) {
  unsigned c = s[0];
  *sub = 1;
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c == 0xE0) need = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) need = 3;
  else if (c == 0xED) need = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF) need = 3;
  else if (c == 0xF0) need = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) need = 4;
  else if (c == 0xF4) need = 4, hi = 0x8F;
  else return 0;
  for (size_t k = 1; k < need; k++) {
    if (k >= n) return 0;
    unsigned b = s[k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    *sub = k + 1;
  }
  return need;
}

int tok_utf8_valid(const char *s, size_t n, size_t *bad) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, sub;
  while (i < n) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    size_t k = utf8_seq(u + i, n - i, &sub);
    if (!k) {
      if (bad) *bad = i;
      return 0;
    }
    i += k;
  }
  return 1;
}

size_t tok_utf8_len(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

uint32_t tok_utf8_next(const char *s, size_t *i) {
  const unsigned char *u = (const unsigned char *)s + *i;
  uint32_t c = u[0];
  if (c < 0x80) {
    *i += 1;
    return c;
  }
  if (c < 0xE0) {
    *i += 2;
    return ((c & 0x1F) << 6) | (u[1] & 0x3F);
  }
  if (c < 0xF0) {
    *i += 3;
    return ((c & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
  }
  *i += 4;
  return ((c & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
         ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
}

uint32_t tok_utf8_last(const char *s, size_t n, size_t *start) {
  size_t i = n - 1;
  while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
  if (start) *start = i;
  size_t j = i;
  return tok_utf8_next(s, &j);
}

int tok_utf8_put(tok_buf *b, uint32_t cp) {
  utf8proc_uint8_t tmp[4];
  utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)cp, tmp);
  return tok_buf_append(b, tmp, (size_t)k);
}

int tok_utf8_lossy(tok_buf *out, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0, sub;
  while (i < n) {
    size_t k = u[i] < 0x80 ? 1 : utf8_seq(u + i, n - i, &sub);
    if (k) {
      i += k;
      continue;
    }
    DT_CALL(tok_buf_append(out, s + run, i - run));
    DT_CALL(tok_buf_append(out, "\xEF\xBF\xBD", 3));
    i += sub;
    run = i;
  }
  return tok_buf_append(out, s + run, n - run);
}

int tok_is_whitespace(uint32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20:
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return 1;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

int tok_is_numeric(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL ||
         c == UTF8PROC_CATEGORY_NO;
}

int tok_is_punctuation(uint32_t cp) {
  if (cp < 0x80)
    return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
           (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}
