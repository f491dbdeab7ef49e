/* The parts of a Hugging Face tokenizer.json pipeline, as data (filled by
 * text/tokenizer_json.c) and the functions that run each part (one file per
 * part: tok_normalizer.c, tok_pretokenizer.c, tok_bpe.c, tok_added.c,
 * tok_post.c, tok_decoder.c; tokenizer.c strings them together). The
 * semantics are those of HF `tokenizers` (the Rust crate) and are checked
 * against it by tests/test_tokenizer.c. Private to the tokenizer files. */
#ifndef DT_TOK_INTERNAL_H
#define DT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tok_regex.h"
#include "tok_text.h"

/* ---- normalizers ---- */
typedef enum {
  TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD, TOK_NORM_LOWERCASE,
  TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_STRIP, TOK_NORM_SEQUENCE
} tok_norm_type;

typedef struct tok_normalizer {
  tok_norm_type type;
  char *text;     /* PREPEND: the prefix; REPLACE: the content */
  size_t text_n;
  tok_regex *re;  /* REPLACE: the pattern (a literal is escaped) */
  int left, right; /* STRIP */
  struct tok_normalizer *items; /* SEQUENCE */
  int n_items;
} tok_normalizer;

/* Normalize s in place (scratch: working space). */
int tok_normalize(const tok_normalizer *nz, tok_buf *s, tok_buf *scratch);
void tok_normalizer_clear(tok_normalizer *nz);

/* ---- pieces of a pre-tokenized string ---- */
typedef enum {
  TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV,
  TOK_SPLIT_MERGED_NEXT, TOK_SPLIT_CONTIGUOUS
} tok_split_behavior;

typedef struct {
  size_t off, len; /* bytes in the arena */
  int32_t id;      /* an added token's id, or -1 (still to tokenize) */
  int at_origin;   /* starts at offset 0 of the original text */
} tok_piece;

typedef struct {
  size_t a, b; /* bytes of a piece */
  int match;   /* matched by the pattern (or, after a behavior, to remove) */
} tok_seg;

typedef struct {
  tok_buf arena;   /* the pieces' bytes (append only within one encode) */
  tok_piece *p;
  size_t n, cap;
  tok_piece *next; /* working space: the pieces of the next stage */
  size_t next_n, next_cap;
  tok_seg *seg;    /* working space: the segments of one piece */
  size_t seg_n, seg_cap;
} tok_pieces;

/* Append a piece to the next stage (tok_pieces_commit makes it current). */
int tok_pieces_push(tok_pieces *ps, size_t off, size_t len, int32_t id, int at_origin);
void tok_pieces_commit(tok_pieces *ps);
/* Split piece i into its segments (ps->seg) after the behavior; non-empty
 * parts not removed go to the next stage. */
int tok_pieces_split(tok_pieces *ps, size_t i, tok_split_behavior behavior);
int tok_seg_push(tok_pieces *ps, size_t a, size_t b, int match);
/* Append bytes to the arena; *off receives where they start. */
int tok_pieces_store(tok_pieces *ps, const char *s, size_t n, size_t *off);
void tok_pieces_free(tok_pieces *ps);

/* ---- pre-tokenizers ---- */
typedef enum {
  TOK_PRE_SPLIT, TOK_PRE_BYTELEVEL, TOK_PRE_METASPACE, TOK_PRE_DIGITS,
  TOK_PRE_PUNCTUATION, TOK_PRE_WHITESPACE, TOK_PRE_WHITESPACE_SPLIT,
  TOK_PRE_SEQUENCE
} tok_pre_type;

typedef enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER } tok_prepend_scheme;

typedef struct tok_pretok {
  tok_pre_type type;
  tok_regex *re;                /* SPLIT; BYTELEVEL with use_regex; WHITESPACE */
  tok_split_behavior behavior;  /* SPLIT, PUNCTUATION */
  int invert;                   /* SPLIT */
  int add_prefix_space;         /* BYTELEVEL */
  int use_regex;                /* BYTELEVEL */
  char replacement[8];          /* METASPACE: UTF-8 of one character */
  size_t replacement_n;
  tok_prepend_scheme prepend;   /* METASPACE */
  int split;                    /* METASPACE */
  int individual_digits;        /* DIGITS */
  struct tok_pretok *items;     /* SEQUENCE */
  int n_items;
} tok_pretok;

/* Split and transform the pieces that have no id yet. */
int tok_pretokenize(const tok_pretok *pt, tok_pieces *ps, tok_buf *scratch);
void tok_pretok_clear(tok_pretok *pt);

/* GPT-2's pattern (ByteLevel with use_regex) and the Whitespace
 * pre-tokenizer's (Rust regex's \w: Alphabetic, Mark, Nd, Pc, Join_Control). */
#define TOK_GPT2_PATTERN \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define TOK_RUST_WORD "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200c}\\x{200d}"
#define TOK_WHITESPACE_PATTERN "[" TOK_RUST_WORD "]+|[^" TOK_RUST_WORD "\\s]+"

/* The 256 characters byte-level BPE writes bytes as (GPT-2's table): UTF-8
 * of the character for byte b. */
const char *tok_bytelevel_char(unsigned b, size_t *n);
/* The byte a byte-level character stands for, or -1. */
int tok_bytelevel_byte(uint32_t cp);

/* ---- the BPE model ---- */
typedef struct tok_bpe tok_bpe;

typedef struct {
  int byte_fallback, fuse_unk, ignore_merges;
  const char *unk_token;                 /* NULL: none */
  const char *continuing_subword_prefix; /* NULL: none */
  const char *end_of_word_suffix;        /* NULL: none */
} tok_bpe_config;

/* An empty model; add the vocabulary, then the merges in rank order. */
int tok_bpe_create(tok_bpe **m, const tok_bpe_config *cfg, size_t vocab_hint);
int tok_bpe_add_vocab(tok_bpe *m, const char *tok, size_t n, int32_t id);
/* Merge (a, b) of rank = the order of the calls; errors name the missing token. */
int tok_bpe_add_merge(tok_bpe *m, const char *a, size_t an, const char *b, size_t bn,
                      const char *file);
/* After the last merge: checks the unknown token. */
int tok_bpe_finish(tok_bpe *m, const char *file);
/* Append the ids of one pre-token (UTF-8, not empty). */
int tok_bpe_encode(tok_bpe *m, const char *s, size_t n, tok_ids *out);
/* The token of id, or NULL. */
const char *tok_bpe_id_to_token(const tok_bpe *m, int32_t id, size_t *n);
int32_t tok_bpe_token_to_id(const tok_bpe *m, const char *s, size_t n); /* -1: none */
int32_t tok_bpe_vocab_size(const tok_bpe *m); /* 1 + the largest id */
void tok_bpe_free(tok_bpe **m);

/* ---- added tokens ---- */
typedef struct {
  char *content;
  size_t content_n;
  char *pattern;   /* what is matched: content, normalized when normalized */
  size_t pattern_n;
  int32_t id;
  int special, lstrip, rstrip, normalized, single_word;
} tok_added_token;

typedef struct {
  tok_added_token *t;
  int n;
  /* per first byte of pattern: indices into t, longest pattern first;
   * one list for the raw-text tokens, one for the normalized ones */
  int *by_byte[2][256];
  int n_by_byte[2][256];
  int32_t min_id, max_id; /* range of the ids (lookups outside it are quick) */
} tok_added;

/* Build the match tables (after the patterns are set). */
int tok_added_prepare(tok_added *a);
/* Split the pieces without an id at the added tokens of kind normalized
 * (0: matched on the raw text, 1: on the normalized text). */
int tok_added_split(const tok_added *a, int normalized, tok_pieces *ps);
const tok_added_token *tok_added_by_id(const tok_added *a, int32_t id);
void tok_added_clear(tok_added *a);

/* ---- post-processors ---- */
typedef enum { TOK_POST_TEMPLATE, TOK_POST_BYTELEVEL, TOK_POST_SEQUENCE } tok_post_type;

typedef struct tok_post {
  tok_post_type type;
  /* TEMPLATE (single sequence): the ids before and after the sequence */
  int32_t *before, *after;
  int n_before, n_after;
  struct tok_post *items; /* SEQUENCE */
  int n_items;
} tok_post;

/* Add the special tokens of a single sequence to ids (in place). */
int tok_post_process(const tok_post *pp, tok_ids *ids);
void tok_post_clear(tok_post *pp);

/* ---- decoders ---- */
typedef enum {
  TOK_DEC_BYTELEVEL, TOK_DEC_METASPACE, TOK_DEC_REPLACE, TOK_DEC_BYTEFALLBACK,
  TOK_DEC_FUSE, TOK_DEC_STRIP, TOK_DEC_SEQUENCE
} tok_dec_type;

typedef struct tok_decoder {
  tok_dec_type type;
  tok_regex *re;         /* REPLACE */
  char *content;         /* REPLACE: the replacement */
  size_t content_n;
  uint32_t ch;           /* METASPACE: replacement; STRIP: content */
  tok_prepend_scheme prepend; /* METASPACE */
  int start, stop;       /* STRIP */
  struct tok_decoder *items; /* SEQUENCE */
  int n_items;
} tok_decoder;

/* Transform the token strings (in place). */
int tok_decode_chain(const tok_decoder *d, tok_strs *toks, tok_buf *scratch);
void tok_decoder_clear(tok_decoder *d);

/* ---- the whole tokenizer ---- */
struct dt_tokenizer {
  char *path;
  tok_normalizer *normalizer; /* NULL: none */
  tok_pretok *pretok;         /* NULL: none */
  tok_bpe *model;
  tok_added added;
  tok_post *post;             /* NULL: none */
  tok_decoder *decoder;       /* NULL: none (tokens joined by spaces) */
  /* working space of one encode */
  tok_pieces pieces;
  tok_buf scratch, scratch2;
  tok_strs strs;
};

#endif
