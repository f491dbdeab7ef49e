/* deltatune tokenize: JSON lines of text to JSON lines of token ids (or
 * back, with --decode yes) with a Hugging Face tokenizer.json, as HF
 * `tokenizers` encode/decode; or to the tokenized training layout
 * (OUT.safetensors: input_ids and labels [N, seq_len], io/dataset.h).
 * Collective over MPI_COMM_WORLD: the rows are cut into one contiguous block
 * per rank; for JSON lines each rank writes its block to a part file and
 * rank 0 joins the parts in order; safetensors are written by
 * dt_textdata_write (textdata.h), every rank writing its rows in place. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agree.h"
#include "commands.h"
#include "error.h"
#include "jsonl.h"
#include "options.h"
#include "textdata.h"
#include "tokenizer.h"

static const dt_optdef tokenize_opts[] = {
    {"tokenizer", DT_OPT_STRING, NULL, 0, 0, NULL,
     "a tokenizer.json, or a Hugging Face model folder holding one (required)"},
    {"input", DT_OPT_STRING, NULL, 0, 0, NULL,
     "JSON lines to read: rows {\"FIELD\": text}, or {\"ids\": [...]} with --decode yes (required)"},
    {"output", DT_OPT_STRING, NULL, 0, 0, NULL,
     "JSON lines to write (.jsonl): {\"ids\": [...]} per row in input order, or {\"text\": ...} "
     "with --decode yes (required)"},
    {"field", DT_OPT_STRING, "text", 0, 0, NULL, "the field of each input row that holds the text"},
    {"special", DT_OPT_BOOL, "yes", 0, 0, NULL,
     "add the post-processor's special tokens (BOS/EOS), as add_special_tokens=True"},
    {"decode", DT_OPT_BOOL, "no", 0, 0, NULL,
     "decode ids to text instead, as decode(ids, skip_special_tokens=False)"},
    {"seq-len", DT_OPT_INT, "0", 0, 1 << 20, NULL,
     "OUT.safetensors: the length T of every row of input_ids/labels [N, T] (required there)"},
    {"too-long", DT_OPT_CHOICE, "drop", 0, 0, "drop|error",
     "OUT.safetensors: a row longer than --seq-len is dropped (and counted) or an error"},
    {"eos", DT_OPT_STRING, NULL, 0, 0, NULL,
     "OUT.safetensors: the EOS token, appended to each completion and used as padding (default: "
     "eos_token of tokenizer_config.json beside the tokenizer.json)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

typedef struct {
  dt_tokenizer *tok;
  int32_t *ids;
  size_t n_ids, ids_cap;
  char *text;
  size_t text_n, text_cap;
  json_t *row;
} work;

static int write_ids(FILE *f, const int32_t *ids, size_t n) {
  fputs("{\"ids\": [", f);
  for (size_t i = 0; i < n; i++) fprintf(f, i ? ", %d" : "%d", ids[i]);
  fputs("]}\n", f);
  return DT_OK;
}

static int write_text(FILE *f, const char *s, size_t n) {
  json_t *o = json_object();
  json_t *v = json_stringn(s, n);
  DT_CHECK(o && v && json_object_set_new(o, "text", v) == 0, DT_ENOMEM, "out of memory");
  int rc = json_dumpf(o, f, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(o);
  DT_CHECK(rc == 0, DT_EIO, "cannot write a row");
  fputc('\n', f);
  return DT_OK;
}

/* Rows [first, last) of the input to out. */
static int run_block(work *w, const dt_options *o, long first, long last, FILE *out) {
  const char *field = dt_opt_str(o, "field");
  const int decode = dt_opt_bool(o, "decode"), special = dt_opt_bool(o, "special");
  const int32_t vocab = dt_tokenizer_vocab_size(w->tok);
  dt_jsonl r;
  DT_CALL(dt_jsonl_open(&r, dt_opt_str(o, "input")));
  int rc = DT_OK;
  for (long i = 0; i < last && rc == DT_OK; i++) {
    int more;
    rc = dt_jsonl_next(&r, i >= first, &w->row, &more);
    if (rc != DT_OK || !more) break;
    if (i < first) continue;
    if (decode) {
      rc = dt_jsonl_ids(&r, w->row, "ids", vocab, &w->ids, &w->n_ids, &w->ids_cap);
      if (rc == DT_OK)
        rc = dt_tokenizer_decode(w->tok, w->ids, w->n_ids, 0, &w->text, &w->text_n, &w->text_cap);
      if (rc == DT_OK) rc = write_text(out, w->text, w->text_n);
    } else {
      const char *s;
      size_t n;
      rc = dt_jsonl_string(&r, w->row, field, &s, &n);
      if (rc == DT_OK) {
        rc = dt_tokenizer_encode(w->tok, s, n, special, &w->ids, &w->n_ids, &w->ids_cap);
        if (rc != DT_OK) {
          char msg[512];
          snprintf(msg, sizeof msg, "%s", dt_error_message());
          rc = dt_error_set(rc, __FILE__, __LINE__, __func__, "%s line %ld: %s", r.path, r.lineno, msg);
        }
      }
      if (rc == DT_OK) rc = write_ids(out, w->ids, w->n_ids);
    }
    json_decref(w->row);
    w->row = NULL;
  }
  dt_jsonl_close(&r);
  if (rc == DT_OK && out && ferror(out)) rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "write error");
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* Append the file at path to out. */
static int append_file(FILE *out, const char *path) {
  FILE *f = fopen(path, "rb");
  DT_CHECK(f, DT_EIO, "cannot open the part file '%s'", path);
  char buf[1 << 16];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0)
    if (fwrite(buf, 1, k, out) != k) break;
  int bad = ferror(f) || ferror(out);
  fclose(f);
  DT_CHECK(!bad, DT_EIO, "cannot copy the part file '%s'", path);
  return DT_OK;
}

static int tokenize_run(const dt_options *o, int rank, int nranks) {
  const char *in = dt_opt_str(o, "input"), *outp = dt_opt_str(o, "output");
  const int st = ends_with(outp, ".safetensors");
  DT_CHECK(ends_with(outp, ".jsonl") || st, DT_EUSAGE,
           "--output '%s' must end in .jsonl (ids per row) or .safetensors (training layout)", outp);
  DT_CHECK(!st || dt_opt_int(o, "seq-len") >= 2, DT_EUSAGE,
           "--output '%s': the training layout needs --seq-len (at least 2)", outp);
  DT_CHECK(!st || !dt_opt_bool(o, "decode"), DT_EUSAGE, "--decode yes writes text: --output must be .jsonl");
  DT_CHECK(st || !dt_opt_given(o, "seq-len"), DT_EUSAGE, "--seq-len is for an --output .safetensors");
  if (st) { /* the training layout: src/textdata.c */
    dt_textdata_spec s = {.data = in,
                          .tokenizer = dt_opt_str(o, "tokenizer"),
                          .eos = dt_opt_is_set(o, "eos") ? dt_opt_str(o, "eos") : NULL,
                          .field = dt_opt_str(o, "field"),
                          .seq_len = dt_opt_int(o, "seq-len"),
                          .too_long_error = !strcmp(dt_opt_str(o, "too-long"), "error"),
                          .special = dt_opt_bool(o, "special")};
    dt_textdata_stats ts;
    DT_CALL(dt_textdata_write(&s, outp, NULL, NULL, 0, &ts, MPI_COMM_WORLD));
    if (rank == 0)
      fprintf(stderr, "tokenize: %ld of %ld rows fit --seq-len %d (%ld dropped as too long)\n",
              ts.rows_kept, ts.rows_read, s.seq_len, ts.dropped);
    return DT_OK;
  }
  work w = {0};
  int rc = dt_tokenizer_load(&w.tok, dt_opt_str(o, "tokenizer"));
  long n = 0;
  if (rc == DT_OK) rc = dt_jsonl_count_rows(in, &n);
  /* every rank found the same (the same files): usage and input errors are agreed */
  if (rc != DT_OK) dt_tokenizer_free(&w.tok);
  DT_CALL(dt_agree(rc, MPI_COMM_WORLD));
  long first = n * rank / nranks, last = n * (rank + 1) / nranks;
  char part[4096];
  if (nranks == 1) snprintf(part, sizeof part, "%s", outp);
  else snprintf(part, sizeof part, "%s.part%d", outp, rank);
  FILE *f = fopen(part, "wb");
  rc = f ? DT_OK
         : dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot open '%s' for writing", part);
  if (rc == DT_OK) rc = run_block(&w, o, first, last, f);
  if (f && fclose(f) != 0 && rc == DT_OK)
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot write '%s'", part);
  free(w.ids);
  free(w.text);
  json_decref(w.row);
  dt_tokenizer_free(&w.tok);
  rc = dt_agree(rc, MPI_COMM_WORLD);
  if (nranks > 1) {
    if (rc == DT_OK && rank == 0) {
      FILE *out = fopen(outp, "wb");
      rc = out ? DT_OK
               : dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot open '%s' for writing", outp);
      for (int k = 0; k < nranks && rc == DT_OK; k++) {
        snprintf(part, sizeof part, "%s.part%d", outp, k);
        rc = append_file(out, part);
      }
      if (out && fclose(out) != 0 && rc == DT_OK)
        rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot write '%s'", outp);
    }
    rc = dt_agree(rc, MPI_COMM_WORLD);
    snprintf(part, sizeof part, "%s.part%d", outp, rank);
    unlink(part);
  }
  DT_CALL(rc);
  if (rank == 0)
    fprintf(stderr, "tokenize: %ld rows of %s -> %s (%d rank%s)\n", n, in, outp, nranks,
            nranks > 1 ? "s" : "");
  return DT_OK;
}

int dt_cmd_tokenize(int argc, char **argv) {
  int rank, nranks;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  const dt_optgroup g = {"tokenize", "Tokenize", tokenize_opts};
  dt_options o;
  DT_CALL(dt_options_parse(&o, "tokenize", &g, 1, argc, argv));
  if (o.help) {
    if (rank == 0)
      dt_options_print_help(stdout, "tokenize",
                            "Token ids of JSON lines of text with a Hugging Face tokenizer.json "
                            "(BPE: byte-level or SentencePiece-style), exactly as HF tokenizers: "
                            "OUT.jsonl gets {\"ids\": [...]} per row, OUT.safetensors (with "
                            "--seq-len) the training layout of --data; or text of token ids "
                            "(--decode yes). Every rank takes a block of rows.",
                            &g, 1);
    return DT_OK;
  }
  DT_CHECK(dt_opt_is_set(&o, "tokenizer"), DT_EUSAGE,
           "--tokenizer is required (see deltatune tokenize --help)");
  DT_CHECK(dt_opt_is_set(&o, "input"), DT_EUSAGE, "--input is required (see deltatune tokenize --help)");
  DT_CHECK(dt_opt_is_set(&o, "output"), DT_EUSAGE,
           "--output is required (see deltatune tokenize --help)");
  return tokenize_run(&o, rank, nranks);
}
