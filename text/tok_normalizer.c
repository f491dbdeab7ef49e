/* Normalizers of tokenizer.json (NFC, NFD, NFKC, NFKD, Lowercase, Prepend,
 * Replace, Strip, Sequence), as HF `tokenizers` applies them to a whole
 * piece of text. Unicode normalization and case mapping by utf8proc. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "error.h"
#include "tok_internal.h"

static int is_ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) return 0;
  return 1;
}

/* s = scratch, scratch keeps the old bytes for reuse */
static void swap(tok_buf *a, tok_buf *b) {
  tok_buf t = *a;
  *a = *b;
  *b = t;
}

static int unicode_form(tok_buf *s, int options) {
  if (is_ascii(s->s, s->n)) return DT_OK; /* ASCII is stable under every form */
  utf8proc_uint8_t *out = NULL;
  utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s->s, (utf8proc_ssize_t)s->n,
                                    &out, (utf8proc_option_t)options);
  DT_CHECK(k >= 0, k == UTF8PROC_ERROR_NOMEM ? DT_ENOMEM : DT_EINPUT,
           "Unicode normalization of %zu bytes failed: %s", s->n,
           utf8proc_errmsg(k));
  s->n = 0;
  int rc = tok_buf_append(s, out, (size_t)k);
  free(out);
  return rc;
}

static int lowercase(tok_buf *s, tok_buf *scratch) {
  if (is_ascii(s->s, s->n)) {
    for (size_t i = 0; i < s->n; i++)
      if (s->s[i] >= 'A' && s->s[i] <= 'Z') s->s[i] = (char)(s->s[i] + 32);
    return DT_OK;
  }
  scratch->n = 0;
  for (size_t i = 0; i < s->n;) {
    uint32_t c = tok_utf8_next(s->s, &i);
    if (c == 0x130) { /* the one unconditional multi-character lowercase */
      DT_CALL(tok_buf_append(scratch, "i\xCC\x87", 3));
      continue;
    }
    DT_CALL(tok_utf8_put(scratch, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c)));
  }
  swap(s, scratch);
  return DT_OK;
}

static int replace(const tok_normalizer *nz, tok_buf *s, tok_buf *scratch) {
  scratch->n = 0;
  size_t pos = 0, last = 0;
  for (;;) {
    size_t ms, me;
    int found;
    DT_CALL(tok_regex_find(nz->re, s->s, s->n, pos, &ms, &me, &found));
    if (!found) break;
    DT_CALL(tok_buf_append(scratch, s->s + last, ms - last));
    DT_CALL(tok_buf_append(scratch, nz->text, nz->text_n));
    last = me;
    pos = me > ms ? me : me + (me < s->n ? tok_utf8_len((unsigned char)s->s[me]) : 1);
    if (me == ms && me < s->n) { /* an empty match: keep the character it skipped */
      DT_CALL(tok_buf_append(scratch, s->s + me, pos - me));
      last = pos;
    }
  }
  if (last < s->n) DT_CALL(tok_buf_append(scratch, s->s + last, s->n - last));
  else DT_CALL(tok_buf_append(scratch, "", 0));
  swap(s, scratch);
  return DT_OK;
}

static int strip(const tok_normalizer *nz, tok_buf *s) {
  size_t a = 0, b = s->n;
  if (nz->left)
    while (a < b) {
      size_t j = a;
      if (!tok_is_whitespace(tok_utf8_next(s->s, &j))) break;
      a = j;
    }
  if (nz->right)
    while (b > a) {
      size_t st;
      if (!tok_is_whitespace(tok_utf8_last(s->s, b, &st))) break;
      b = st;
    }
  memmove(s->s, s->s + a, b - a);
  s->n = b - a;
  return DT_OK;
}

int tok_normalize(const tok_normalizer *nz, tok_buf *s, tok_buf *scratch) {
  switch (nz->type) {
    case TOK_NORM_NFC: return unicode_form(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case TOK_NORM_NFD: return unicode_form(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case TOK_NORM_NFKC: return unicode_form(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case TOK_NORM_NFKD: return unicode_form(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
    case TOK_NORM_LOWERCASE: return lowercase(s, scratch);
    case TOK_NORM_PREPEND:
      if (s->n == 0) return DT_OK;
      scratch->n = 0;
      DT_CALL(tok_buf_append(scratch, nz->text, nz->text_n));
      DT_CALL(tok_buf_append(scratch, s->s, s->n));
      swap(s, scratch);
      return DT_OK;
    case TOK_NORM_REPLACE: return s->n ? replace(nz, s, scratch) : DT_OK;
    case TOK_NORM_STRIP: return strip(nz, s);
    case TOK_NORM_SEQUENCE:
      for (int i = 0; i < nz->n_items; i++) DT_CALL(tok_normalize(&nz->items[i], s, scratch));
      return DT_OK;
  }
  DT_ERR(DT_EINTERNAL, "unknown normalizer type %d", (int)nz->type);
}

void tok_normalizer_clear(tok_normalizer *nz) {
  if (!nz) return;
  free(nz->text);
  tok_regex_free(&nz->re);
  for (int i = 0; i < nz->n_items; i++) tok_normalizer_clear(&nz->items[i]);
  free(nz->items);
  memset(nz, 0, sizeof *nz);
}
