/* Regular expressions of tokenizer.json files (Split pre-tokenizers,
 * Replace normalizers and decoders) with PCRE2 in UTF mode with Unicode
 * properties. HF `tokenizers` runs them with Oniguruma, whose \s, \S, \w
 * and \W are Unicode's White_Space and Letter|Mark|Number|Connector
 * punctuation; PCRE2's differ (its \s lacks U+0085), so those escapes are
 * rewritten as explicit classes before compiling. */
#ifndef DT_TOK_REGEX_H
#define DT_TOK_REGEX_H

#include <stddef.h>

typedef struct tok_regex tok_regex;

/* Compile pattern[0..n): literal = 1 matches the text itself. what names
 * the pattern's place in errors ("tokenizer.json: pre_tokenizer Split"). */
int tok_regex_compile(tok_regex **r, const char *pattern, size_t n, int literal,
                      const char *what);
/* The first match in s[0..n) at or after start (a character boundary):
 * *found = 1 and [*ms, *me), or *found = 0. A failed match (PCRE2's match
 * limit) is an error. */
int tok_regex_find(tok_regex *r, const char *s, size_t n, size_t start, size_t *ms,
                   size_t *me, int *found);
void tok_regex_free(tok_regex **r);

#endif
