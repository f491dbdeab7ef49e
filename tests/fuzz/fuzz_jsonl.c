/* libFuzzer: the bytes as a JSON lines file, read as deltatune tokenize
 * reads it: each row's "text" encoded and each row's "ids" decoded with the
 * shipped tiny models' tokenizer. Bad rows are errors, never crashes; the
 * ids of a text are within the vocabulary. */
#include <string.h>

#include "error.h"
#include "fuzz_util.h"
#include "jsonl.h"
#include "tokenizer.h"

static dt_tokenizer *g_tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_tok && dt_tokenizer_load(&g_tok, DT_FUZZ_TOKENIZER) != DT_OK) abort();
  const char *path = fuzz_file("rows.jsonl", data, size);
  dt_jsonl r;
  if (dt_jsonl_open(&r, path) != DT_OK) abort();
  int32_t *ids = NULL;
  size_t n = 0, cap = 0, tn = 0, tcap = 0;
  char *text = NULL;
  const int32_t vocab = dt_tokenizer_vocab_size(g_tok);
  for (;;) {
    json_t *row = NULL;
    int more = 0;
    if (dt_jsonl_next(&r, 1, &row, &more) != DT_OK) {
      /* a bad row: named by line */
      if (!strstr(dt_error_message(), "line")) abort();
      break;
    }
    if (!more) break;
    const char *s;
    size_t len;
    if (dt_jsonl_string(&r, row, "text", &s, &len) == DT_OK) {
      if (dt_tokenizer_encode(g_tok, s, len, 1, &ids, &n, &cap) != DT_OK) abort();
      for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) abort();
    }
    if (dt_jsonl_ids(&r, row, "ids", vocab, &ids, &n, &cap) == DT_OK)
      if (dt_tokenizer_decode(g_tok, ids, n, 0, &text, &tn, &tcap) != DT_OK) abort();
    json_decref(row);
  }
  free(ids);
  free(text);
  dt_jsonl_close(&r);
  dt_error_clear();
  return 0;
}
