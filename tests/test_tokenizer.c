/* Tokenizer parity with Hugging Face `tokenizers`: every row of the corpus
 * (tests/data/tokenizer/corpus.jsonl) encoded with and without special
 * tokens, and both id lists decoded, must equal the references made by
 * tests/data/tokenizer/make_refs.py with HF tokenizers 0.23 (refs-NAME.jsonl).
 *
 * usage: test_tokenizer NAME TOKENIZER_JSON
 * A tokenizer file that is missing fails the test (it is fetched by
 * tests/data/tokenizer/fetch.sh at configure time). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "testutil.h"
#include "tokenizer.h"

static const char *g_name, *g_path;

typedef struct {
  json_t **rows;
  size_t n;
} jsonl;

static jsonl read_jsonl(const char *path) {
  jsonl j = {0};
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    json_error_t err;
    json_t *o = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &err);
    if (!o) fail_msg("%s line %zu: %s", path, j.n + 1, err.text);
    j.rows = realloc(j.rows, (j.n + 1) * sizeof *j.rows);
    j.rows[j.n++] = o;
  }
  free(line);
  fclose(f);
  return j;
}

static void free_jsonl(jsonl *j) {
  for (size_t i = 0; i < j->n; i++) json_decref(j->rows[i]);
  free(j->rows);
}

static int ids_equal(json_t *ref, const int32_t *ids, size_t n) {
  if (json_array_size(ref) != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (json_integer_value(json_array_get(ref, i)) != ids[i]) return 0;
  return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
  fprintf(stderr, "  %s:", what);
  for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
  fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

static void test_parity(void **state) {
  (void)state;
  dt_tokenizer *t = NULL;
  if (dt_tokenizer_load(&t, g_path) != DT_OK)
    fail_msg("cannot load %s: %s (run tests/data/tokenizer/fetch.sh)", g_path, dt_error_message());
  jsonl corpus = read_jsonl(dt_test_data("tokenizer/corpus.jsonl"));
  char refname[256];
  snprintf(refname, sizeof refname, "tokenizer/refs-%s.jsonl", g_name);
  jsonl refs = read_jsonl(dt_test_data(refname));
  assert_int_equal(corpus.n, refs.n);
  assert_true(corpus.n >= 300);
  int32_t *ids = NULL;
  size_t n_ids = 0, cap = 0, tcap = 0, tn = 0;
  char *text = NULL;
  int bad[4] = {0};
  const char *kinds[4] = {"ids (special tokens)", "ids (no special tokens)",
                          "decode (special tokens)", "decode (no special tokens)"};
  for (size_t r = 0; r < corpus.n; r++) {
    json_t *row = json_object_get(corpus.rows[r], "text");
    json_t *ref = refs.rows[r];
    for (int sp = 1; sp >= 0; sp--) {
      int k = sp ? 0 : 1;
      if (dt_tokenizer_encode(t, json_string_value(row), json_string_length(row), sp, &ids, &n_ids,
                              &cap) != DT_OK)
        fail_msg("row %zu: encode failed: %s", r + 1, dt_error_message());
      json_t *want = json_object_get(ref, sp ? "ids" : "ids_plain");
      if (!json_is_array(want)) fail_msg("%s row %zu: the reference has no ids (HF failed?)", g_name, r + 1);
      if (!ids_equal(want, ids, n_ids)) {
        if (bad[k]++ < 5) {
          char *w = json_dumps(want, JSON_COMPACT);
          fprintf(stderr, "%s row %zu %s differ: text %s\n  want: %.400s\n", g_name, r + 1,
                  kinds[k], json_dumps(row, JSON_ENCODE_ANY), w);
          free(w);
          print_ids("got ", ids, n_ids);
        }
      }
      /* decode HF's ids, so a decode check does not depend on encode */
      size_t nw = json_array_size(want);
      int32_t *wid = malloc((nw + 1) * sizeof *wid);
      for (size_t i = 0; i < nw; i++) wid[i] = (int32_t)json_integer_value(json_array_get(want, i));
      if (dt_tokenizer_decode(t, wid, nw, 0, &text, &tn, &tcap) != DT_OK)
        fail_msg("row %zu: decode failed: %s", r + 1, dt_error_message());
      free(wid);
      json_t *wt = json_object_get(ref, sp ? "decoded" : "decoded_plain");
      if (json_string_length(wt) != tn || memcmp(json_string_value(wt), text, tn)) {
        if (bad[k + 2]++ < 5) {
          json_t *got = json_stringn(text, tn);
          fprintf(stderr, "%s row %zu %s differ:\n  want: %s\n  got:  %s\n", g_name, r + 1,
                  kinds[k + 2], json_dumps(wt, JSON_ENCODE_ANY), json_dumps(got, JSON_ENCODE_ANY));
          json_decref(got);
        }
      }
    }
  }
  fprintf(stderr, "%s: %zu rows: mismatches: %d %s, %d %s, %d %s, %d %s\n", g_name, corpus.n,
          bad[0], kinds[0], bad[1], kinds[1], bad[2], kinds[2], bad[3], kinds[3]);
  free(ids);
  free(text);
  free_jsonl(&corpus);
  free_jsonl(&refs);
  dt_tokenizer_free(&t);
  assert_null(t);
  for (int k = 0; k < 4; k++) assert_int_equal(bad[k], 0);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s NAME TOKENIZER_JSON\n", argv[0]);
    return 2;
  }
  g_name = argv[1];
  g_path = argv[2];
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_parity)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
