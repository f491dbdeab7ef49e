/* PCRE2 for the patterns of tokenizer.json files (tok_regex.h). */
#define _GNU_SOURCE /* memmem */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok_regex.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_text.h"

struct tok_regex {
  pcre2_code *code;
  pcre2_match_data *md;
  char *literal; /* a literal pattern is searched with memmem, not PCRE2 */
  size_t literal_n;
};

/* Oniguruma's Unicode \s (White_Space) and \w (Letter, Mark, Number,
 * Connector_Punctuation), as class contents. */
#define ONIG_SPACE "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define ONIG_WORD "\\p{L}\\p{M}\\p{N}\\p{Pc}"

/* Rewrite \s \S \w \W of pattern as Oniguruma means them. A negated escape
 * inside a class (\S, \W within [...]) has no class-content form: refused. */
static int translate(tok_buf *out, const char *p, size_t n, const char *what) {
  int in_class = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char e = p[i + 1];
      const char *cls = e == 's' || e == 'S' ? ONIG_SPACE : e == 'w' || e == 'W' ? ONIG_WORD : NULL;
      if (cls) {
        int neg = e == 'S' || e == 'W';
        if (in_class) {
          DT_CHECK(!neg, DT_EINPUT, "%s: regex '%.*s': \\%c inside a character class is not supported",
                   what, (int)n, p, e);
          DT_CALL(tok_buf_append(out, cls, strlen(cls)));
        } else {
          DT_CALL(tok_buf_append(out, neg ? "[^" : "[", neg ? 2 : 1));
          DT_CALL(tok_buf_append(out, cls, strlen(cls)));
          DT_CALL(tok_buf_append(out, "]", 1));
        }
        i++;
        continue;
      }
      if (e == 'Q') { /* \Q...\E: copied as is */
        const char *end = NULL;
        for (size_t k = i + 2; k + 1 < n; k++)
          if (p[k] == '\\' && p[k + 1] == 'E') { end = p + k + 2; break; }
        size_t len = end ? (size_t)(end - (p + i)) : n - i;
        DT_CALL(tok_buf_append(out, p + i, len));
        i += len - 1;
        continue;
      }
      DT_CALL(tok_buf_append(out, p + i, 2));
      i++;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = 1;
      DT_CALL(tok_buf_append(out, p + i, 1));
      /* a ']' right after '[' or '[^' is a literal */
      if (i + 1 < n && p[i + 1] == '^') DT_CALL(tok_buf_append(out, p + ++i, 1));
      if (i + 1 < n && p[i + 1] == ']') DT_CALL(tok_buf_append(out, p + ++i, 1));
      continue;
    }
    if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] */
      const char *end = NULL;
      for (size_t k = i + 2; k + 1 < n; k++)
        if (p[k] == ':' && p[k + 1] == ']') { end = p + k + 2; break; }
      if (end) {
        DT_CALL(tok_buf_append(out, p + i, (size_t)(end - (p + i))));
        i = (size_t)(end - p) - 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = 0;
    DT_CALL(tok_buf_append(out, p + i, 1));
  }
  return DT_OK;
}

int tok_regex_compile(tok_regex **r, const char *pattern, size_t n, int literal,
                      const char *what) {
  *r = NULL;
  DT_CHECK(n > 0, DT_EINPUT, "%s: the pattern is empty", what);
  size_t bad;
  DT_CHECK(tok_utf8_valid(pattern, n, &bad), DT_EINPUT,
           "%s: the pattern is not valid UTF-8 (byte %zu)", what, bad);
  tok_buf t = {0};
  const char *src = pattern;
  size_t len = n;
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK;
  if (literal) {
    opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK | PCRE2_LITERAL; /* UCP is not allowed with LITERAL */
  } else {
    int rc = translate(&t, pattern, n, what);
    if (rc != DT_OK) {
      tok_buf_free(&t);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
    src = t.s;
    len = t.n;
  }
  int err = 0;
  PCRE2_SIZE eoff = 0;
  pcre2_code *code = pcre2_compile((PCRE2_SPTR)src, len, opts, &err, &eoff, NULL);
  tok_buf_free(&t);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    DT_ERR(DT_EINPUT, "%s: regex '%.*s' does not compile: %s (at offset %zu)", what,
           (int)(n > 200 ? 200 : n), pattern, (const char *)msg, (size_t)eoff);
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* best effort: falls back to the interpreter */
  tok_regex *x = calloc(1, sizeof *x);
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
  if (!x || !md) {
    free(x);
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    DT_ERR(DT_ENOMEM, "%s: out of memory for a regex", what);
  }
  x->code = code;
  x->md = md;
  if (literal) {
    x->literal = malloc(n);
    if (!x->literal) {
      tok_regex_free(&x);
      DT_ERR(DT_ENOMEM, "%s: out of memory for a regex", what);
    }
    memcpy(x->literal, pattern, n);
    x->literal_n = n;
  }
  *r = x;
  return DT_OK;
}

int tok_regex_find(tok_regex *r, const char *s, size_t n, size_t start, size_t *ms,
                   size_t *me, int *found) {
  *found = 0;
  if (start > n) return DT_OK;
  if (r->literal) {
    const char *p = memmem(s + start, n - start, r->literal, r->literal_n);
    if (p) {
      *ms = (size_t)(p - s);
      *me = *ms + r->literal_n;
      *found = 1;
    }
    return DT_OK;
  }
  int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, r->md, NULL);
  if (rc == PCRE2_ERROR_NOMATCH) return DT_OK;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    DT_ERR(DT_EINPUT, "regex match failed on a text of %zu bytes: %s", n, (const char *)msg);
  }
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
  *ms = ov[0];
  *me = ov[1];
  *found = 1;
  return DT_OK;
}

void tok_regex_free(tok_regex **r) {
  if (!*r) return;
  pcre2_match_data_free((*r)->md);
  pcre2_code_free((*r)->code);
  free((*r)->literal);
  free(*r);
  *r = NULL;
}
