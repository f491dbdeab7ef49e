/* JSON lines as training data: rows {"text": ...} (every token scored) or
 * {"prompt": ..., "completion": ...} (the completion and an appended EOS
 * scored, the prompt labelled -100), tokenized with a Hugging Face
 * tokenizer.json into the layout of io/dataset.h: input_ids and labels
 * [N, seq_len], right-padded with EOS ids whose labels are -100.
 *
 * A row longer than seq_len is dropped and counted, or an error
 * (too_long_error); no scored token is ever cut. With pack, rows (text rows
 * followed by a scored EOS) are laid one after another into full rows, in
 * file order, a row never split across two. Bad rows (not UTF-8, invalid
 * JSON, a field missing or not a string, a split field that is not a
 * string) are errors naming the file and line, or skipped and counted.
 *
 * Collective over comm: every rank tokenizes one contiguous block of rows
 * (into an unlinked scratch file beside the output: one row in memory) and
 * writes its rows into the output at offsets agreed from every row's
 * length, so the file is byte-identical for any number of ranks. The file
 * is written as PATH.tmp.<host>.<pid> and renamed over PATH when whole. */
#ifndef DT_TEXTDATA_H
#define DT_TEXTDATA_H

#include <mpi.h>
#include <stddef.h>

#include "options.h"

typedef struct {
  const char *data;      /* the JSON lines */
  const char *tokenizer; /* a tokenizer.json or a model folder holding one */
  const char *eos;       /* the EOS token; NULL: eos_token of tokenizer_config.json */
  const char *field;     /* the text field of text rows ("text") */
  const char *split;     /* keep only rows whose "split" equals it; NULL: every row */
  int seq_len, too_long_error, pack, skip_bad, special;
  long max_rows;         /* > 0: keep only the first max_rows rows that fit */
} dt_textdata_spec;

typedef struct {
  long rows_read, rows_kept, rows_out, dropped, skipped, other_split, beyond_max;
} dt_textdata_stats;

/* Tokenize s->data into the safetensors file out (collective, agreed: every
 * rank returns the same code). meta: n_meta extra __metadata__ pairs. */
int dt_textdata_write(const dt_textdata_spec *s, const char *out, const char *const *meta_keys,
                      const char *const *meta_values, int n_meta, dt_textdata_stats *st,
                      MPI_Comm comm);

/* The file that the data options of o (--data and, for FILE.jsonl,
 * --tokenizer, --seq-len, --too-long, --pack, --skip-bad-rows, --data-split,
 * --max-rows, --data-cache, --eos) name, into path[n]: --data itself unless it ends in
 * .jsonl; then the token cache, tokenized there first unless a cache file
 * of the same data, tokenizer and options exists. model: the --model
 * (the default tokenizer folder). Collective over comm, agreed. */
int dt_data_prepare(const dt_options *o, const char *model, MPI_Comm comm, char *path, size_t n);

/* Do the data options of a and b name the same data (sweep tasks share it)? */
int dt_data_same(const dt_options *a, const dt_options *b);

#endif
