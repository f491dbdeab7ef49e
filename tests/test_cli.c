/* The command line: help lists every option with its default, bad input
 * gives one clear message and exit code 2 (usage) on every rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "method.h"
#include "testutil.h"

#define MPIRUN "mpirun -np 2 --oversubscribe"

static void test_top_help(void **s) {
  (void)s;
  char *out;
  assert_int_equal(dt_test_run(&out, "%s --help", DT_BINARY), 0);
  for (const char *c = "train\0eval\0gradcheck\0methods\0"; *c; c += strlen(c) + 1)
    assert_non_null(strstr(out, c));
  free(out);
  assert_int_equal(dt_test_run(&out, "%s", DT_BINARY), 2);
  free(out);
  assert_int_equal(dt_test_run(&out, "%s trian", DT_BINARY), 2);
  assert_non_null(strstr(out, "unknown command 'trian'"));
  free(out);
}

/* train --help shows every option of every method table, with defaults. */
static void test_train_help(void **s) {
  (void)s;
  char *out;
  assert_int_equal(dt_test_run(&out, "%s train --help", DT_BINARY), 0);
  const char *core[] = {"--model", "--data", "--method", "--steps", "--lr", "--batch-size",
                        "--metrics", "--init-from", "--dump-grads", "--schedule",
                        "--warmup-steps", "--clip-norm", "--weight-decay", "--betas", "--eps",
                        "--shuffle", "--weights-dtype", "--recompute"};
  for (size_t i = 0; i < sizeof core / sizeof *core; i++)
    if (!strstr(out, core[i])) fail_msg("train --help lacks %s", core[i]);
  int n_method_opts = 0;
  for (int i = 0; i < dt_method_count(); i++) {
    const dt_optgroup *g = dt_method_at(i)->options;
    for (int k = 0; g && g->defs[k].name; k++, n_method_opts++) {
      char name[128];
      snprintf(name, sizeof name, "--%s ", g->defs[k].name);
      if (!strstr(out, name)) fail_msg("train --help lacks %s", name);
    }
  }
  assert_true(n_method_opts >= 10);
  assert_true(dt_test_count(out, "[default: ") >= 20);
  free(out);
}

static void expect_usage_error(const char *args, const char *needle) {
  char *out;
  const char *F = dt_test_fixture("gpt2");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", F);
  int rc = dt_test_run(&out, MPIRUN " %s train --model %s/model --data %s/batch.safetensors %s",
                       DT_BINARY, dir, dir, args);
  if (rc != 2) fail_msg("'%s': exit %d, expected 2:\n%s", args, rc, out);
  if (!strstr(out, needle)) fail_msg("'%s': message lacks '%s':\n%s", args, needle, out);
  /* the message comes once, from rank 0 */
  if (dt_test_count(out, "deltatune: error") != 1)
    fail_msg("'%s': expected one error line:\n%s", args, out);
  free(out);
}

static void test_bad_options(void **s) {
  (void)s;
  expect_usage_error("--lora-rnak 3", "--lora-rank");
  expect_usage_error("--lora-rank 0", "--lora-rank");
  expect_usage_error("--lr abc", "--lr");
  expect_usage_error("--schedule step", "constant|linear|cosine");
  expect_usage_error("--method lorra", "lorra");
  expect_usage_error("--method lora --prompt-tokens 3", "--prompt-tokens");
  expect_usage_error("--lora-targets q_proj", "q_proj");
  expect_usage_error("--batch-size 3", "--batch-size 3");
  expect_usage_error("--steps", "--steps");
}

static void test_bad_paths(void **s) {
  (void)s;
  char *out;
  const char *F = dt_test_fixture("gpt2");
  int rc = dt_test_run(&out, MPIRUN " %s train --model /nonexistent/model --data %s/batch.safetensors",
                       DT_BINARY, F);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(out, "/nonexistent/model"));
  free(out);
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", F);
  rc = dt_test_run(&out, MPIRUN " %s train --model %s/model --data /nonexistent.safetensors",
                   DT_BINARY, dir);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(out, "/nonexistent.safetensors"));
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_top_help), cmocka_unit_test(test_train_help),
      cmocka_unit_test(test_bad_options), cmocka_unit_test(test_bad_paths)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
