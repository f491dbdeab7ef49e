/* Text helpers of the tokenizer: growable byte buffers, id lists and string
 * lists, UTF-8 (validation, iteration, Rust's lossy decoding) and the
 * Unicode character classes that HF `tokenizers` tests with Rust's char
 * methods (through utf8proc's tables). */
#ifndef DT_TOK_TEXT_H
#define DT_TOK_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *s;
  size_t n, cap;
} tok_buf;

typedef struct {
  int32_t *v;
  size_t n, cap;
} tok_ids;

/* A list of strings stored one after the other in one buffer. */
typedef struct {
  tok_buf bytes;
  size_t *off, *len;
  size_t n, cap;
} tok_strs;

int tok_buf_reserve(tok_buf *b, size_t n);
int tok_buf_append(tok_buf *b, const void *s, size_t n);
void tok_buf_free(tok_buf *b);
int tok_ids_push(tok_ids *ids, int32_t id);
void tok_ids_free(tok_ids *ids);
int tok_strs_push(tok_strs *l, const char *s, size_t n);
void tok_strs_reset(tok_strs *l);
void tok_strs_free(tok_strs *l);

/* Is s[0..n) valid UTF-8 (no surrogates, no overlong forms)? *bad gets the
 * offset of the first invalid byte. */
int tok_utf8_valid(const char *s, size_t n, size_t *bad);
/* Decode the character at s[*i] of valid UTF-8 and advance *i. */
uint32_t tok_utf8_next(const char *s, size_t *i);
/* Length of the UTF-8 character whose first byte is c (valid input). */
size_t tok_utf8_len(unsigned char c);
/* Append the UTF-8 of cp. */
int tok_utf8_put(tok_buf *b, uint32_t cp);
/* The code point of the last character of valid UTF-8 s[0..n), n > 0. */
uint32_t tok_utf8_last(const char *s, size_t n, size_t *start);
/* Append bytes as Rust's String::from_utf8_lossy does: each maximal invalid
 * subpart becomes one U+FFFD. */
int tok_utf8_lossy(tok_buf *out, const char *s, size_t n);

/* Rust char::is_whitespace (White_Space), char::is_numeric (N*), and the
 * Punctuation pre-tokenizer's test (ASCII punctuation or P*). */
int tok_is_whitespace(uint32_t cp);
int tok_is_numeric(uint32_t cp);
int tok_is_punctuation(uint32_t cp);

#endif
