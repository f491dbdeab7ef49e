/* Prompt tuning init from token embeddings: `--prompt-init ids:...` copies
 * exactly those rows of the model's token embedding (cycled to fill P), also
 * from a bf16 backbone (then the rows are the bf16-rounded values);
 * `vocab` copies rows of the vocabulary; bad ids are usage errors naming the
 * value. The reference rows are read from the model file independently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "testutil.h"

/* Token embedding [96, 48] of a fixture family, read from its model file. */
static float *wte_of(const char *fam, int64_t *rows, int64_t *cols) {
  char p[1024];
  snprintf(p, sizeof p, "%s/model/model.safetensors", dt_test_fixture(fam));
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, p), 0);
  const dt_st_tensor *t = dt_st_find(
      &f, strcmp(fam, "gpt2") == 0 ? "transformer.wte.weight" : "model.embed_tokens.weight");
  assert_non_null(t);
  *rows = t->shape[0];
  *cols = t->shape[1];
  float *v = malloc(sizeof(float) * t->numel);
  assert_int_equal(dt_st_read_f32(&f, t, 0, t->numel, v), 0);
  dt_st_close(&f);
  return v;
}

/* Run `train --steps 0 --out` and read the saved prompt [P, d]. */
static int run_init(const char *fam, const char *args, float **e, int64_t *P, int64_t *d,
                    char **log) {
  static int k;
  char dir[512];
  snprintf(dir, sizeof dir, "%s/run%d", dt_test_tmpdir(), k++);
  char fx[1024];
  snprintf(fx, sizeof fx, "%s", dt_test_fixture(fam));
  int rc = dt_test_run(log, "%s train --model %s/model --data %s/batch.safetensors "
                       "--batch-size 2 --steps 0 --method prompt --out %s %s",
                       DT_BINARY, fx, fx, dir, args);
  if (rc) return rc;
  char p[1024];
  snprintf(p, sizeof p, "%s/deltas.safetensors", dir);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, p), 0);
  assert_int_equal(f.n, 1);
  const dt_st_tensor *t = &f.t[0];
  assert_string_equal(t->name, "prompt_encoder.embedding.weight");
  assert_int_equal(t->ndim, 2);
  *P = t->shape[0];
  *d = t->shape[1];
  *e = malloc(sizeof(float) * t->numel);
  assert_int_equal(dt_st_read_f32(&f, t, 0, t->numel, *e), 0);
  dt_st_close(&f);
  return 0;
}

static void check_ids(const char *fam, int bf16) {
  int64_t V, D, P, d;
  float *w = wte_of(fam, &V, &D), *e;
  char *log = NULL;
  const int ids[3] = {5, 0, 95};
  int rc = run_init(fam, bf16 ? "--prompt-tokens 5 --prompt-init ids:5,0,95 --weights-dtype bf16"
                              : "--prompt-tokens 5 --prompt-init ids:5,0,95",
                    &e, &P, &d, &log);
  if (rc) fail_msg("deltatune exited %d:\n%s", rc, log);
  assert_int_equal(P, 5);
  assert_int_equal(d, D);
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < d; j++) {
      float ref = w[(int64_t)ids[i % 3] * D + j];
      if (bf16) ref = dt_bf16_to_f32(dt_f32_to_bf16(ref));
      if (e[(int64_t)i * d + j] != ref)
        fail_msg("%s%s: prompt row %d col %d = %.9g, token %d has %.9g", fam,
                 bf16 ? " bf16" : "", i, j, (double)e[(int64_t)i * d + j], ids[i % 3],
                 (double)ref);
    }
  free(w);
  free(e);
  free(log);
}

static void test_ids_gpt2(void **state) {
  (void)state;
  check_ids("gpt2", 0);
}
static void test_ids_llama_bf16(void **state) {
  (void)state;
  check_ids("llama", 1);
}

static void test_vocab(void **state) {
  (void)state;
  int64_t V, D, P, d;
  float *w = wte_of("llama", &V, &D), *e;
  char *log = NULL;
  int rc = run_init("llama", "--prompt-tokens 4 --prompt-init vocab", &e, &P, &d, &log);
  if (rc) fail_msg("deltatune exited %d:\n%s", rc, log);
  assert_int_equal(P, 4);
  for (int i = 0; i < P; i++) {
    int found = 0;
    for (int64_t v = 0; v < V && !found; v++)
      found = memcmp(e + i * d, w + v * D, sizeof(float) * d) == 0;
    if (!found) fail_msg("prompt row %d is no row of the token embedding", i);
  }
  free(w);
  free(e);
  free(log);
}

static void expect_usage_error(const char *init, const char *needle) {
  char args[256];
  snprintf(args, sizeof args, "--prompt-tokens 3 --prompt-init '%s'", init);
  char *log = NULL;
  float *e = NULL;
  int64_t P, d;
  int rc = run_init("gpt2", args, &e, &P, &d, &log);
  if (rc != 2) fail_msg("--prompt-init %s: exit %d, expected 2:\n%s", init, rc, log);
  if (!log || !strstr(log, needle))
    fail_msg("--prompt-init %s: message lacks '%s':\n%s", init, needle, log);
  free(log);
}

static void test_bad_ids(void **state) {
  (void)state;
  expect_usage_error("ids:3,96", "token id 96");
  expect_usage_error("ids:", "no token ids");
  expect_usage_error("ids:3,x", "'x' is not a token id");
  expect_usage_error("ids:-1", "token id -1");
  expect_usage_error("words", "'words'");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ids_gpt2),
      cmocka_unit_test(test_ids_llama_bf16),
      cmocka_unit_test(test_vocab),
      cmocka_unit_test(test_bad_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
