/* libFuzzer: the bytes as a tokenizer.json. A file that loads must encode
 * and decode a few fixed texts without error, every id it gives within the
 * vocabulary. */
#include <string.h>

#include "error.h"
#include "fuzz_util.h"
#include "tokenizer.h"

static const char *const k_texts[] = {
    "Hello world", "  spaces\tand\r\nlines ", "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac",
    "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd <s> <|endoftext|> 123 4567", ""};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("tokenizer.json", data, size);
  dt_tokenizer *t = NULL;
  if (dt_tokenizer_load(&t, path) == DT_OK) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0, tn = 0, tcap = 0;
    char *text = NULL;
    const int32_t vocab = dt_tokenizer_vocab_size(t);
    for (size_t k = 0; k < sizeof k_texts / sizeof *k_texts; k++) {
      for (int sp = 0; sp < 2; sp++) {
        if (dt_tokenizer_encode(t, k_texts[k], strlen(k_texts[k]), sp, &ids, &n, &cap) != DT_OK) {
          /* only an unknown character without an unk token may fail */
          continue;
        }
        for (size_t i = 0; i < n; i++)
          if (ids[i] < 0 || ids[i] >= vocab) abort();
        if (dt_tokenizer_decode(t, ids, n, sp, &text, &tn, &tcap) != DT_OK) abort();
        if (strlen(text) > tn) abort();
      }
    }
    free(ids);
    free(text);
    dt_tokenizer_free(&t);
  }
  dt_error_clear();
  return 0;
}
