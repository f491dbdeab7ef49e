/* Hugging Face tokenizers from tokenizer.json, in C: byte-level BPE (GPT-2,
 * LLaMA-3, Qwen style) and SentencePiece-style BPE (LLaMA-2, Mistral style),
 * with the normalizers, pre-tokenizers, added tokens, post-processors and
 * decoders those files use. Ids and decoded text equal HF `tokenizers`'
 * (tests/test_tokenizer.c checks them against references it made). A file
 * that uses another model (WordPiece, Unigram, ...) or component is refused
 * with a message naming it. Not thread-safe: one tokenizer per thread. */
#ifndef DT_TOKENIZER_H
#define DT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct dt_tokenizer dt_tokenizer;

/* Load path: a tokenizer.json file, or a model folder holding one. */
int dt_tokenizer_load(dt_tokenizer **t, const char *path);
void dt_tokenizer_free(dt_tokenizer **t);

/* The ids of text[0..n) (valid UTF-8, checked), as encode(text,
 * add_special_tokens=add_special).ids. *ids (malloc'd, grown as needed,
 * *cap its capacity) receives *n_ids ids. */
int dt_tokenizer_encode(dt_tokenizer *t, const char *text, size_t n, int add_special,
                        int32_t **ids, size_t *n_ids, size_t *cap);
/* The text of ids, as decode(ids, skip_special_tokens=skip_special): ids
 * that are no token are left out, as HF does. *text (malloc'd, grown,
 * *cap its capacity) receives *n bytes of UTF-8 and a terminating NUL. */
int dt_tokenizer_decode(dt_tokenizer *t, const int32_t *ids, size_t n_ids, int skip_special,
                        char **text, size_t *n, size_t *cap);
/* 1 + the largest id of the model and added tokens. */
int32_t dt_tokenizer_vocab_size(const dt_tokenizer *t);
/* The id of a token string (model vocabulary or added token), or -1. */
int32_t dt_tokenizer_token_id(const dt_tokenizer *t, const char *token);

#endif
