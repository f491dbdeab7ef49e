/* Decoders of tokenizer.json (ByteLevel, Metaspace, Replace, ByteFallback,
 * Fuse, Strip, Sequence): each turns the list of token strings into
 * another, as HF `tokenizers`' decode_chain; the caller joins the result. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_internal.h"

static void swap_strs(tok_strs *a, tok_strs *b) {
  tok_strs t = *a;
  *a = *b;
  *b = t;
}

#define TOK(l, i) ((l)->bytes.s + (l)->off[i])

static int bytelevel(tok_strs *in, tok_strs *out, tok_buf *bytes) {
  bytes->n = 0;
  for (size_t i = 0; i < in->n; i++) {
    const char *s = TOK(in, i);
    size_t n = in->len[i], start = bytes->n;
    int all = 1;
    for (size_t j = 0; j < n && all;) {
      int b = tok_bytelevel_byte(tok_utf8_next(s, &j));
      if (b < 0) all = 0;
      else DT_CALL(tok_buf_append(bytes, &(char){(char)b}, 1));
    }
    if (!all) { /* a token that is not byte-level text stays as it is */
      bytes->n = start;
      DT_CALL(tok_buf_append(bytes, s, n));
    }
  }
  tok_buf text = {0};
  int rc = tok_utf8_lossy(&text, bytes->s ? bytes->s : "", bytes->n);
  if (rc == DT_OK) rc = tok_strs_push(out, text.s ? text.s : "", text.n);
  tok_buf_free(&text);
  return rc;
}

static int metaspace(const tok_decoder *d, tok_strs *in, tok_strs *out, tok_buf *tmp) {
  for (size_t i = 0; i < in->n; i++) {
    const char *s = TOK(in, i);
    tmp->n = 0;
    for (size_t j = 0; j < in->len[i];) {
      size_t b = j;
      uint32_t c = tok_utf8_next(s, &j);
      if (c == d->ch) {
        if (!(i == 0 && d->prepend != TOK_PREPEND_NEVER)) DT_CALL(tok_buf_append(tmp, " ", 1));
      } else {
        DT_CALL(tok_buf_append(tmp, s + b, j - b));
      }
    }
    DT_CALL(tok_strs_push(out, tmp->s ? tmp->s : "", tmp->n));
  }
  return DT_OK;
}

static int replace(const tok_decoder *d, tok_strs *in, tok_strs *out, tok_buf *tmp) {
  for (size_t i = 0; i < in->n; i++) {
    /* the token is copied: matching reads it while out grows */
    tok_buf src = {0};
    int rc = tok_buf_append(&src, TOK(in, i), in->len[i]);
    size_t pos = 0, last = 0, n = in->len[i];
    tmp->n = 0;
    while (rc == DT_OK && n) {
      size_t ms, me;
      int found;
      rc = tok_regex_find(d->re, src.s, n, pos, &ms, &me, &found);
      if (rc != DT_OK || !found) break;
      rc = tok_buf_append(tmp, src.s + last, ms - last);
      if (rc == DT_OK) rc = tok_buf_append(tmp, d->content, d->content_n);
      last = me;
      pos = me > ms ? me : me + 1;
      if (pos > n) break;
    }
    if (rc == DT_OK && last < n) rc = tok_buf_append(tmp, src.s + last, n - last);
    if (rc == DT_OK) rc = tok_strs_push(out, tmp->s ? tmp->s : "", tmp->n);
    tok_buf_free(&src);
    DT_CALL(rc);
  }
  return DT_OK;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* "<0xNN>" -> the byte, or -1 (Rust's u8::from_str_radix also takes "+N") */
static int byte_token(const char *s, size_t n) {
  if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
  int hi = hexval(s[3]), lo = hexval(s[4]);
  if (s[3] == '+' && lo >= 0) return lo;
  return hi >= 0 && lo >= 0 ? hi * 16 + lo : -1;
}

static int flush_bytes(tok_buf *pending, tok_strs *out) {
  if (!pending->n) return DT_OK;
  if (tok_utf8_valid(pending->s, pending->n, NULL)) {
    DT_CALL(tok_strs_push(out, pending->s, pending->n));
  } else {
    for (size_t k = 0; k < pending->n; k++) DT_CALL(tok_strs_push(out, "\xEF\xBF\xBD", 3));
  }
  pending->n = 0;
  return DT_OK;
}

static int bytefallback(tok_strs *in, tok_strs *out, tok_buf *pending) {
  pending->n = 0;
  for (size_t i = 0; i < in->n; i++) {
    int b = byte_token(TOK(in, i), in->len[i]);
    if (b >= 0) {
      DT_CALL(tok_buf_append(pending, &(char){(char)b}, 1));
      continue;
    }
    DT_CALL(flush_bytes(pending, out));
    DT_CALL(tok_strs_push(out, TOK(in, i), in->len[i]));
  }
  return flush_bytes(pending, out);
}

static int fuse(tok_strs *in, tok_strs *out, tok_buf *tmp) {
  tmp->n = 0;
  for (size_t i = 0; i < in->n; i++) DT_CALL(tok_buf_append(tmp, TOK(in, i), in->len[i]));
  return tok_strs_push(out, tmp->s ? tmp->s : "", tmp->n);
}

static int strip(const tok_decoder *d, tok_strs *in, tok_strs *out) {
  for (size_t i = 0; i < in->n; i++) {
    const char *s = TOK(in, i);
    size_t a = 0, b = in->len[i];
    for (int k = 0; k < d->start && a < b; k++) {
      size_t j = a;
      if (tok_utf8_next(s, &j) != d->ch) break;
      a = j;
    }
    for (int k = 0; k < d->stop && b > a; k++) {
      size_t st;
      if (tok_utf8_last(s, b, &st) != d->ch) break;
      b = st;
    }
    DT_CALL(tok_strs_push(out, s + a, b - a));
  }
  return DT_OK;
}

int tok_decode_chain(const tok_decoder *d, tok_strs *toks, tok_buf *scratch) {
  if (d->type == TOK_DEC_SEQUENCE) {
    for (int i = 0; i < d->n_items; i++) DT_CALL(tok_decode_chain(&d->items[i], toks, scratch));
    return DT_OK;
  }
  tok_strs out = {0};
  int rc;
  switch (d->type) {
    case TOK_DEC_BYTELEVEL: rc = bytelevel(toks, &out, scratch); break;
    case TOK_DEC_METASPACE: rc = metaspace(d, toks, &out, scratch); break;
    case TOK_DEC_REPLACE: rc = replace(d, toks, &out, scratch); break;
    case TOK_DEC_BYTEFALLBACK: rc = bytefallback(toks, &out, scratch); break;
    case TOK_DEC_FUSE: rc = fuse(toks, &out, scratch); break;
    case TOK_DEC_STRIP: rc = strip(d, toks, &out); break;
    default: rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                               "unknown decoder type %d", (int)d->type);
  }
  if (rc != DT_OK) {
    tok_strs_free(&out);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  swap_strs(toks, &out);
  tok_strs_free(&out);
  return DT_OK;
}

void tok_decoder_clear(tok_decoder *d) {
  if (!d) return;
  tok_regex_free(&d->re);
  free(d->content);
  for (int i = 0; i < d->n_items; i++) tok_decoder_clear(&d->items[i]);
  free(d->items);
  memset(d, 0, sizeof *d);
}
