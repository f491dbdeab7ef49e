/* deltatune tokenize: ids equal HF's references on the parity corpus (one
 * rank and two), decode round trip, and bad rows and bad tokenizer files
 * refused with messages naming the file and line or place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MPIRUN "mpirun -np 2 --oversubscribe"

/* The field of every line of a JSONL file, compacted by Python (the
 * independent reader). */
static char *field_lines(const char *path, const char *field) {
  char *out = NULL;
  int rc = dt_test_run(&out,
                       "python3 -c 'import json,sys\n"
                       "for l in open(sys.argv[1], encoding=\"utf-8\"): "
                       "print(json.dumps(json.loads(l)[sys.argv[2]]))' %s %s",
                       path, field);
  if (rc != 0) fail_msg("reading %s: %s", path, out ? out : "");
  return out;
}

static const char *tiny(void) { return dt_test_data("tokenizer/tiny"); }

static void test_encode_decode_match_hf(void **state) {
  (void)state;
  const char *corpus = dt_test_data("tokenizer/corpus.jsonl");
  const char *refs = dt_test_data("tokenizer/refs-tiny.jsonl");
  char *out = NULL;
  const char *ids1 = dt_test_tmp("ids1.jsonl"), *ids2 = dt_test_tmp("ids2.jsonl"), *text = dt_test_tmp("text.jsonl");
  assert_int_equal(dt_test_run(&out, "%s tokenize --tokenizer %s --input %s --output %s", DT_BINARY,
                               tiny(), corpus, ids1), 0);
  free(out);
  assert_int_equal(dt_test_run(&out, MPIRUN " %s tokenize --tokenizer %s/tokenizer.json --input %s "
                                     "--output %s --special no", DT_BINARY, tiny(), corpus, ids2), 0);
  free(out);
  char *got = field_lines(ids1, "ids"), *want = field_lines(refs, "ids");
  assert_string_equal(got, want);
  free(got);
  free(want);
  got = field_lines(ids2, "ids");
  want = field_lines(refs, "ids_plain");
  assert_string_equal(got, want);
  free(got);
  free(want);
  assert_int_equal(dt_test_run(&out, MPIRUN " %s tokenize --tokenizer %s --input %s --output %s "
                                     "--decode yes", DT_BINARY, tiny(), ids1, text), 0);
  free(out);
  got = field_lines(text, "text");
  want = field_lines(refs, "decoded");
  assert_string_equal(got, want);
  free(got);
  free(want);
}

static void expect_error(const char *input, const char *extra, const char *needle1,
                         const char *needle2) {
  const char *in = dt_test_tmp("bad.jsonl");
  dt_test_write(in, input);
  char *out = NULL;
  int rc = dt_test_run(&out, "%s tokenize --tokenizer %s --input %s --output %s %s", DT_BINARY,
                       tiny(), in, dt_test_tmp("bad-out.jsonl"), extra);
  if (rc != 3) fail_msg("exit %d (want 3) for input %s: %s", rc, input, out ? out : "");
  dt_test_expect(out, needle1, "output");
  dt_test_expect(out, needle2, "output");
  free(out);
}

static void test_bad_rows(void **state) {
  (void)state;
  expect_error("{\"text\": \"a\"}\n{\"text\": \"b\"\n", "", "bad.jsonl line 2", "invalid JSON");
  expect_error("{\"text\": \"a\"}\n\n{\"txt\": \"b\"}\n", "", "bad.jsonl line 3", "no field \"text\"");
  expect_error("{\"text\": \"a\"}\n{\"text\": \"\xff\"}\n", "", "bad.jsonl line 2", "not valid UTF-8");
  expect_error("{\"text\": 5}\n", "", "bad.jsonl line 1", "must be a string");
  expect_error("[1, 2]\n", "", "bad.jsonl line 1", "JSON object");
  expect_error("{\"body\": \"a\"}\n{\"text\": \"b\"}\n", "--field text", "line 1", "\"text\"");
  expect_error("{\"ids\": [1, 2]}\n{\"ids\": [1, 99999]}\n", "--decode yes", "bad.jsonl line 2",
               "\"ids\"[1] is not a token id in [0, 4096)");
  expect_error("{\"ids\": [1, -2]}\n", "--decode yes", "line 1", "\"ids\"[1]");
  expect_error("{\"ids\": \"x\"}\n", "--decode yes", "line 1", "array of token ids");
}

static void test_bad_tokenizers(void **state) {
  (void)state;
  char *out = NULL;
  const char *in = dt_test_tmp("ok.jsonl");
  dt_test_write(in, "{\"text\": \"a\"}\n");
  const struct {
    const char *json, *needle;
  } cases[] = {
      {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "model type 'WordPiece' is not supported"},
      {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "model type 'Unigram' is not supported"},
      {"{\"normalizer\": {\"type\": \"BertNormalizer\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, "
       "\"merges\": []}}", "normalizer type 'BertNormalizer' is not supported"},
      {"{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"CharDelimiterSplit\"}]}, "
       "\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
       "pre_tokenizer.pretokenizers[0] type 'CharDelimiterSplit' is not supported"},
      {"{\"decoder\": {\"type\": \"WordPiece\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
       "decoder type 'WordPiece' is not supported"},
      {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
       "'b' is not in the vocabulary"},
      {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}}",
       "unk_token '<unk>' is not in the vocabulary"},
      {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": "
       "\"Isolated\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "does not compile"},
      {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}, \"truncation\": {\"max_length\": 5}}",
       "truncation is set"},
      {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}", "not valid JSON"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *tj = dt_test_tmp("tokenizer.json");
    dt_test_write(tj, cases[i].json);
    int rc = dt_test_run(&out, "%s tokenize --tokenizer %s --input %s --output %s", DT_BINARY, tj,
                         in, dt_test_tmp("o.jsonl"));
    if (rc != 3) fail_msg("case %zu: exit %d (want 3): %s", i, rc, out ? out : "");
    dt_test_expect(out, "tokenizer.json", "output");
    dt_test_expect(out, cases[i].needle, "output");
    free(out);
  }
  int rc = dt_test_run(&out, "%s tokenize --tokenizer %s --input %s --output x.txt", DT_BINARY,
                       tiny(), in);
  assert_int_equal(rc, 2);
  dt_test_expect(out, "must end in .jsonl", "output");
  free(out);
  rc = dt_test_run(&out, "%s tokenize --tokenizer %s --output x.jsonl", DT_BINARY, tiny());
  assert_int_equal(rc, 2);
  dt_test_expect(out, "--input is required", "output");
  free(out);
  rc = dt_test_run(&out, "%s tokenize --help", DT_BINARY);
  assert_int_equal(rc, 0);
  dt_test_expect(out, "--decode", "output");
  free(out);
}

/* The shipped fortune-topic task files were tokenized in Python from the raw
 * rows (prompt, completion, EOS, right padding with EOS, labels -100 on the
 * prompt and padding, rows longer than 160 dropped): tokenize must give the
 * same tensors, on one rank and two. */
static void test_training_layout(void **state) {
  (void)state;
  char *out = NULL;
  const char *raw = dt_test_tmp("ft-train.jsonl"), *raw_test = dt_test_tmp("ft-test.jsonl");
  assert_int_equal(dt_test_run(&out, "zcat %s/data/tasks/raw/fortune-topic.jsonl.gz | grep '\"split\": \"train\"' > %s"
                               " && zcat %s/data/tasks/raw/fortune-topic.jsonl.gz | grep '\"split\": \"test\"' > %s",
                               DT_SOURCE_DIR, raw, DT_SOURCE_DIR, raw_test), 0);
  free(out);
  const char *st1 = dt_test_tmp("ft1.safetensors"), *st2 = dt_test_tmp("ft2.safetensors"), *st3 = dt_test_tmp("ft3.safetensors");
  assert_int_equal(dt_test_run(&out, "%s tokenize --tokenizer %s/data/models/tiny-gpt2 --input %s --output %s "
                               "--seq-len 160", DT_BINARY, DT_SOURCE_DIR, raw, st1), 0);
  dt_test_expect(out, "2875 of 3018 rows fit --seq-len 160 (143 dropped", "output");
  free(out);
  assert_int_equal(dt_test_run(&out, MPIRUN " %s tokenize --tokenizer %s/data/models/tiny-llama/tokenizer.json "
                               "--input %s --output %s --seq-len 160", DT_BINARY, DT_SOURCE_DIR, raw, st2), 0);
  free(out);
  assert_int_equal(dt_test_run(&out, MPIRUN " %s tokenize --tokenizer %s/data/models/tiny-gpt2 --eos '<|endoftext|>' "
                               "--input %s --output %s --seq-len 160", DT_BINARY, DT_SOURCE_DIR, raw_test, st3), 0);
  free(out);
  const char *files[][2] = {{st1, "train"}, {st2, "train"}, {st3, "test"}};
  for (int k = 0; k < 3; k++) {
    int rc = dt_test_run(&out, "python3 %s/tests/compare_token_tensors.py %s %s/data/tasks/fortune-topic/%s.safetensors",
                         DT_SOURCE_DIR, files[k][0], DT_SOURCE_DIR, files[k][1]);
    if (rc != 0) fail_msg("%s differs from the shipped %s file: %s", files[k][0], files[k][1], out ? out : "");
    free(out);
  }
  /* too long rows as errors; the layout needs --seq-len and an EOS */
  int rc = dt_test_run(&out, "%s tokenize --tokenizer %s/data/models/tiny-gpt2 --input %s --output %s --seq-len 160 "
                       "--too-long error", DT_BINARY, DT_SOURCE_DIR, raw, st1);
  assert_int_equal(rc, 3);
  dt_test_expect(out, "ft-train.jsonl line ", "output");
  dt_test_expect(out, "more than --seq-len 160", "output");
  free(out);
  rc = dt_test_run(&out, "%s tokenize --tokenizer %s/data/models/tiny-gpt2 --input %s --output %s", DT_BINARY,
                   DT_SOURCE_DIR, raw, st1);
  assert_int_equal(rc, 2);
  dt_test_expect(out, "needs --seq-len", "output");
  free(out);
  rc = dt_test_run(&out, "%s tokenize --tokenizer %s/data/models/tiny-gpt2 --input %s --output %s --seq-len 160 "
                   "--eos '<nope>'", DT_BINARY, DT_SOURCE_DIR, raw, st1);
  assert_int_equal(rc, 2);
  dt_test_expect(out, "'<nope>' is not a token", "output");
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_decode_match_hf),
      cmocka_unit_test(test_bad_rows),
      cmocka_unit_test(test_bad_tokenizers),
      cmocka_unit_test(test_training_layout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
