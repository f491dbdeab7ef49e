/* Added tokens of tokenizer.json (special or not), split out of the text
 * before the model sees it, as HF `tokenizers`' AddedVocabulary does: the
 * tokens with normalized = false are found in the raw text, the others in
 * the normalized pieces; leftmost-longest matches, then single_word, lstrip
 * and rstrip. */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <utf8proc.h>

#include "error.h"
#include "tok_internal.h"

static const tok_added *sort_ctx;
static int by_len_desc(const void *x, const void *y) {
  const tok_added_token *a = &sort_ctx->t[*(const int *)x], *b = &sort_ctx->t[*(const int *)y];
  if (a->pattern_n != b->pattern_n) return a->pattern_n > b->pattern_n ? -1 : 1;
  return *(const int *)x - *(const int *)y;
}

int tok_added_prepare(tok_added *a) {
  for (int k = 0; k < 2; k++)
    for (int c = 0; c < 256; c++) {
      free(a->by_byte[k][c]);
      a->by_byte[k][c] = NULL;
      a->n_by_byte[k][c] = 0;
    }
  a->min_id = INT32_MAX;
  a->max_id = -1;
  for (int i = 0; i < a->n; i++) {
    const tok_added_token *t = &a->t[i];
    if (t->id < a->min_id) a->min_id = t->id;
    if (t->id > a->max_id) a->max_id = t->id;
    if (t->pattern_n == 0) continue;
    int k = t->normalized ? 1 : 0;
    unsigned c = (unsigned char)t->pattern[0];
    int *p = realloc(a->by_byte[k][c], (size_t)(a->n_by_byte[k][c] + 1) * sizeof *p);
    DT_CHECK(p, DT_ENOMEM, "out of memory for the added tokens");
    p[a->n_by_byte[k][c]++] = i;
    a->by_byte[k][c] = p;
  }
  sort_ctx = a;
  for (int k = 0; k < 2; k++)
    for (int c = 0; c < 256; c++)
      if (a->n_by_byte[k][c] > 1) qsort(a->by_byte[k][c], (size_t)a->n_by_byte[k][c], sizeof(int), by_len_desc);
  sort_ctx = NULL;
  return DT_OK;
}

/* The leftmost-longest match in s[from..n): 1 with *at and the token. */
static int find(const tok_added *a, int k, const char *s, size_t n, size_t from, size_t *at,
                int *tok) {
  for (size_t i = from; i < n; i++) {
    unsigned c = (unsigned char)s[i];
    int cnt = a->n_by_byte[k][c];
    if (!cnt) continue;
    const int *list = a->by_byte[k][c];
    for (int j = 0; j < cnt; j++) {
      const tok_added_token *t = &a->t[list[j]];
      if (t->pattern_n <= n - i && !memcmp(s + i, t->pattern, t->pattern_n)) {
        *at = i;
        *tok = list[j];
        return 1;
      }
    }
  }
  return 0;
}

/* Rust regex's \w (Alphabetic, Mark, Nd, Pc, Join_Control) for one
 * character, through utf8proc's categories: Alphabetic is approximated by
 * L, Nl and the marks (Other_Alphabetic is mostly Mn/Mc). */
static int is_word(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
                        (cp >= 'A' && cp <= 'Z') || cp == '_';
  if (cp == 0x200C || cp == 0x200D) return 1;
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ME) ||
         c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_PC;
}

int tok_added_split(const tok_added *a, int normalized, tok_pieces *ps) {
  const int k = normalized ? 1 : 0;
  int any = 0;
  for (int c = 0; c < 256 && !any; c++) any = a->n_by_byte[k][c] > 0;
  if (!any) return DT_OK;
  for (size_t pi = 0; pi < ps->n; pi++) {
    const tok_piece pc = ps->p[pi];
    if (pc.id >= 0) {
      DT_CALL(tok_pieces_push(ps, pc.off, pc.len, pc.id, pc.at_origin));
      continue;
    }
    const char *s = ps->arena.s + pc.off;
    const size_t n = pc.len;
    size_t done = 0, from = 0, at;
    int ti;
    while (from < n && find(a, k, s, n, from, &at, &ti)) {
      const tok_added_token *t = &a->t[ti];
      size_t start = at, stop = at + t->pattern_n;
      from = stop;
      if (t->single_word) {
        int start_space = start == 0 || !is_word(tok_utf8_last(s, start, NULL));
        size_t j = stop;
        int stop_space = stop == n || !is_word(tok_utf8_next(s, &j));
        if (!start_space || !stop_space) continue;
      }
      if (t->lstrip) {
        size_t ns = start;
        while (ns > 0) {
          size_t st;
          if (!tok_is_whitespace(tok_utf8_last(s, ns, &st))) break;
          ns = st;
        }
        start = ns > done ? ns : done;
      }
      if (t->rstrip) {
        while (stop < n) {
          size_t j = stop;
          if (!tok_is_whitespace(tok_utf8_next(s, &j))) break;
          stop = j;
        }
      }
      if (done < start) DT_CALL(tok_pieces_push(ps, pc.off + done, start - done, -1, pc.at_origin && done == 0));
      DT_CALL(tok_pieces_push(ps, pc.off + start, stop - start, t->id, pc.at_origin && start == 0));
      done = stop;
    }
    if (done < n) DT_CALL(tok_pieces_push(ps, pc.off + done, n - done, -1, pc.at_origin && done == 0));
  }
  tok_pieces_commit(ps);
  return DT_OK;
}

const tok_added_token *tok_added_by_id(const tok_added *a, int32_t id) {
  if (id < a->min_id || id > a->max_id) return NULL;
  for (int i = 0; i < a->n; i++)
    if (a->t[i].id == id) return &a->t[i];
  return NULL;
}

void tok_added_clear(tok_added *a) {
  for (int i = 0; i < a->n; i++) {
    free(a->t[i].content);
    if (a->t[i].pattern != a->t[i].content) free(a->t[i].pattern);
  }
  free(a->t);
  for (int k = 0; k < 2; k++)
    for (int c = 0; c < 256; c++) free(a->by_byte[k][c]);
  memset(a, 0, sizeof *a);
}
