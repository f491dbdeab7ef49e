/* The tokenizer pipeline (tokenizer.h): added tokens, normalizer,
 * pre-tokenizer, BPE model, post-processor; and the decoding chain. The
 * order and the rules are HF `tokenizers`' encode and decode. */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_internal.h"

int dt_tokenizer_encode(dt_tokenizer *t, const char *text, size_t n, int add_special,
                        int32_t **ids, size_t *n_ids, size_t *cap) {
  size_t bad = 0;
  DT_CHECK(tok_utf8_valid(text, n, &bad), DT_EINPUT,
           "the text is not valid UTF-8 (byte %zu of %zu)", bad, n);
  tok_pieces *ps = &t->pieces;
  ps->arena.n = 0;
  ps->n = ps->next_n = 0;
  tok_ids out = {*ids, 0, *cap};
  size_t off;
  DT_CALL(tok_pieces_store(ps, text, n, &off));
  DT_CALL(tok_pieces_push(ps, off, n, -1, 1));
  tok_pieces_commit(ps);
  /* 1. added tokens matched on the raw text */
  DT_CALL(tok_added_split(&t->added, 0, ps));
  /* 2. each remaining piece normalized, then the normalized added tokens */
  if (t->normalizer) {
    for (size_t i = 0; i < ps->n; i++) {
      tok_piece *pc = &ps->p[i];
      if (pc->id >= 0) continue;
      t->scratch.n = 0;
      DT_CALL(tok_buf_append(&t->scratch, ps->arena.s + pc->off, pc->len));
      DT_CALL(tok_normalize(t->normalizer, &t->scratch, &t->scratch2));
      DT_CALL(tok_pieces_store(ps, t->scratch.s, t->scratch.n, &pc->off));
      pc->len = t->scratch.n;
    }
    /* pieces normalized to nothing go, as HF drops empty splits */
    for (size_t i = 0; i < ps->n; i++)
      DT_CALL(tok_pieces_push(ps, ps->p[i].off, ps->p[i].len, ps->p[i].id, ps->p[i].at_origin));
    tok_pieces_commit(ps);
  }
  DT_CALL(tok_added_split(&t->added, 1, ps));
  /* 3. pre-tokenizer */
  if (t->pretok) DT_CALL(tok_pretokenize(t->pretok, ps, &t->scratch));
  /* 4. model */
  for (size_t i = 0; i < ps->n; i++) {
    const tok_piece *pc = &ps->p[i];
    if (pc->id >= 0) {
      DT_CALL(tok_ids_push(&out, pc->id));
    } else {
      int rc = tok_bpe_encode(t->model, ps->arena.s + pc->off, pc->len, &out);
      *ids = out.v;
      *cap = out.cap;
      DT_CALL(rc);
    }
  }
  /* 5. post-processor */
  if (add_special && t->post) DT_CALL(tok_post_process(t->post, &out));
  *ids = out.v;
  *cap = out.cap;
  *n_ids = out.n;
  return DT_OK;
}

int dt_tokenizer_decode(dt_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special,
                        char **text, size_t *n, size_t *cap) {
  tok_strs *l = &t->strs;
  tok_strs_reset(l);
  for (size_t i = 0; i < n_ids; i++) {
    const tok_added_token *a = tok_added_by_id(&t->added, ids[i]);
    if (a) {
      if (skip_special && a->special) continue;
      /* a normalized token decodes as its normalized form, as HF's
       * simple_id_to_token (the decoder inverts that form) */
      DT_CALL(tok_strs_push(l, a->pattern, a->pattern_n));
      continue;
    }
    size_t len;
    const char *s = tok_bpe_id_to_token(t->model, ids[i], &len);
    if (!s) continue; /* no such token: left out, as HF does */
    /* a special token's string that is also in the model vocabulary */
    DT_CALL(tok_strs_push(l, s, len));
  }
  if (t->decoder) DT_CALL(tok_decode_chain(t->decoder, l, &t->scratch));
  tok_buf out = {*text, 0, *cap};
  for (size_t i = 0; i < l->n; i++) {
    if (!t->decoder && i > 0) DT_CALL(tok_buf_append(&out, " ", 1));
    int rc = tok_buf_append(&out, l->bytes.s + l->off[i], l->len[i]);
    *text = out.s;
    *cap = out.cap;
    DT_CALL(rc);
  }
  DT_CALL(tok_buf_append(&out, "", 0));
  *text = out.s;
  *cap = out.cap;
  *n = out.n;
  return DT_OK;
}

int32_t dt_tokenizer_vocab_size(const dt_tokenizer *t) {
  int32_t n = tok_bpe_vocab_size(t->model);
  for (int i = 0; i < t->added.n; i++)
    if (t->added.t[i].id + 1 > n) n = t->added.t[i].id + 1;
  return n;
}

int32_t dt_tokenizer_token_id(const dt_tokenizer *t, const char *token) {
  size_t n = strlen(token);
  for (int i = 0; i < t->added.n; i++)
    if (t->added.t[i].content_n == n && !memcmp(t->added.t[i].content, token, n))
      return t->added.t[i].id;
  return tok_bpe_token_to_id(t->model, token, n);
}

void dt_tokenizer_free(dt_tokenizer **pt) {
  dt_tokenizer *t = *pt;
  if (!t) return;
  free(t->path);
  tok_normalizer_clear(t->normalizer);
  free(t->normalizer);
  tok_pretok_clear(t->pretok);
  free(t->pretok);
  tok_bpe_free(&t->model);
  tok_added_clear(&t->added);
  tok_post_clear(t->post);
  free(t->post);
  tok_decoder_clear(t->decoder);
  free(t->decoder);
  tok_pieces_free(&t->pieces);
  tok_buf_free(&t->scratch);
  tok_buf_free(&t->scratch2);
  tok_strs_free(&t->strs);
  free(t);
  *pt = NULL;
}
