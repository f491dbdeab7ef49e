/* Tokenizer throughput on one thread: load a tokenizer.json, read the "text"
 * field of every row of a JSON lines file into memory, then time encoding
 * them all (add_special_tokens=True), best of REPEATS passes; the BPE word
 * cache starts empty in the first pass only, as in a fresh process.
 * Prints rows, bytes, tokens, seconds, MB/s and Mtokens/s. Built without
 * MPI (target dt_tokenize_bench) so it runs wherever jansson, PCRE2 and
 * utf8proc do. usage: dt_tokenize_bench TOKENIZER ROWS.jsonl [REPEATS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "jsonl.h"
#include "tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s TOKENIZER ROWS.jsonl [REPEATS]\n", argv[0]);
    return 2;
  }
  int repeats = argc > 3 ? atoi(argv[3]) : 3;
  double t0 = now();
  dt_tokenizer *t = NULL;
  if (dt_tokenizer_load(&t, argv[1]) != DT_OK) {
    fprintf(stderr, "error: %s\n", dt_error_message());
    return 1;
  }
  double t_load = now() - t0;
  dt_jsonl r;
  if (dt_jsonl_open(&r, argv[2]) != DT_OK) {
    fprintf(stderr, "error: %s\n", dt_error_message());
    return 1;
  }
  char **texts = NULL;
  size_t *lens = NULL, n = 0, bytes = 0;
  for (;;) {
    json_t *row;
    int more;
    const char *s;
    size_t len;
    if (dt_jsonl_next(&r, 1, &row, &more) != DT_OK ||
        (more && dt_jsonl_string(&r, row, "text", &s, &len) != DT_OK)) {
      fprintf(stderr, "error: %s\n", dt_error_message());
      return 1;
    }
    if (!more) break;
    texts = realloc(texts, (n + 1) * sizeof *texts);
    lens = realloc(lens, (n + 1) * sizeof *lens);
    texts[n] = malloc(len + 1);
    memcpy(texts[n], s, len + 1);
    lens[n++] = len;
    bytes += len;
    json_decref(row);
  }
  dt_jsonl_close(&r);
  int32_t *ids = NULL;
  size_t n_ids = 0, cap = 0, tokens = 0;
  double best = 1e30, first = 0;
  for (int k = 0; k < repeats; k++) {
    tokens = 0;
    double a = now();
    for (size_t i = 0; i < n; i++) {
      if (dt_tokenizer_encode(t, texts[i], lens[i], 1, &ids, &n_ids, &cap) != DT_OK) {
        fprintf(stderr, "error: row %zu: %s\n", i + 1, dt_error_message());
        return 1;
      }
      tokens += n_ids;
    }
    double dt = now() - a;
    if (k == 0) first = dt;
    if (dt < best) best = dt;
  }
  printf("%s: %zu rows, %zu bytes, %zu tokens; load %.3f s; encode first pass %.3f s, best of %d "
         "%.3f s: %.2f MB/s, %.3f Mtok/s (1 thread)\n",
         argv[1], n, bytes, tokens, t_load, first, repeats, best, (double)bytes / best / 1e6,
         (double)tokens / best / 1e6);
  for (size_t i = 0; i < n; i++) free(texts[i]);
  free(texts);
  free(lens);
  free(ids);
  dt_tokenizer_free(&t);
  return 0;
}
