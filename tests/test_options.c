/* Options database: defaults, syntaxes, bools, errors, help, accessors. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "options.h"
#include "testutil.h"

static const dt_optdef k_train[] = {
    {"data", DT_OPT_STRING, NULL, 0, 0, NULL, "training data file"},
    {"lr", DT_OPT_FLOAT, "0.001", 0, 10, NULL, "learning rate"},
    {"schedule", DT_OPT_CHOICE, "linear", 0, 0, "constant|linear|cosine",
     "learning-rate schedule"},
    {"steps", DT_OPT_INT, "100", 1, 1000000, NULL, "optimizer steps"},
    {"seed", DT_OPT_INT, "1234", 0, 0, NULL, "random seed"},
    {"betas", DT_OPT_STRING, "0.9,0.999", 0, 0, NULL, "AdamW betas"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const dt_optdef k_lora[] = {
    {"lora-rank", DT_OPT_INT, "8", 1, 4096, NULL, "LoRA rank r"},
    {"lora-alpha", DT_OPT_FLOAT, "16", 0, 1e6, NULL, "LoRA alpha"},
    {"lora-rslora", DT_OPT_BOOL, "false", 0, 0, NULL, "rank-stabilised scaling"},
    {"lora-fan-in-fan-out", DT_OPT_BOOL, "no", 0, 0, NULL, "Conv1D layout"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

static const dt_optgroup k_groups[] = {
    {"train", "training options", k_train},
    {"lora", "LoRA options", k_lora},
};

static dt_options g_o;

/* Parse a NULL-terminated list of arguments. */
static int parse(const char *first, ...) {
  char *argv[64];
  int argc = 0;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  dt_error_clear();
  return dt_options_parse(&g_o, "train", k_groups, 2, argc, argv);
}

static void expect_usage(const char *want1, const char *want2) {
  const char *msg = dt_error_message();
  if (!strstr(msg, want1) || (want2 && !strstr(msg, want2)))
    fail_msg("message '%s' lacks '%s' / '%s'", msg, want1, want2 ? want2 : "");
}

static void test_defaults(void **state) {
  (void)state;
  assert_int_equal(dt_options_parse(&g_o, "train", k_groups, 2, 0, NULL), DT_OK);
  assert_int_equal(g_o.n, 10);
  assert_int_equal(g_o.help, 0);
  assert_int_equal(dt_opt_int(&g_o, "lora-rank"), 8);
  assert_int_equal(dt_opt_int(&g_o, "steps"), 100);
  assert_true(dt_opt_float(&g_o, "lr") == 0.001);
  assert_true(dt_opt_float(&g_o, "lora-alpha") == 16.0);
  assert_string_equal(dt_opt_str(&g_o, "schedule"), "linear");
  assert_int_equal(dt_opt_bool(&g_o, "lora-rslora"), 0);
  assert_int_equal(dt_opt_bool(&g_o, "lora-fan-in-fan-out"), 0);
  assert_string_equal(dt_opt_str(&g_o, "data"), "");
  assert_false(dt_opt_is_set(&g_o, "data"));
  assert_true(dt_opt_is_set(&g_o, "lr"));
  assert_false(dt_opt_given(&g_o, "lr"));
  assert_true(dt_opt_exists(&g_o, "lora-rank"));
  assert_false(dt_opt_exists(&g_o, "lora-rnak"));
  double b[4];
  int n = 0;
  assert_int_equal(dt_opt_floats(&g_o, "betas", b, 4, &n), DT_OK);
  assert_int_equal(n, 2);
  assert_true(b[0] == 0.9 && b[1] == 0.999);
}

static void test_syntaxes(void **state) {
  (void)state;
  assert_int_equal(parse("--lora-rank", "16", "--lr=0.5", "--data", "a.bin",
                         "--schedule=cosine", "--seed", "-3", "--betas=0.8, 0.95",
                         NULL),
                   DT_OK);
  assert_int_equal(dt_opt_int(&g_o, "lora-rank"), 16);
  assert_true(dt_opt_given(&g_o, "lora-rank"));
  assert_true(dt_opt_float(&g_o, "lr") == 0.5);
  assert_string_equal(dt_opt_str(&g_o, "data"), "a.bin");
  assert_true(dt_opt_is_set(&g_o, "data"));
  assert_string_equal(dt_opt_str(&g_o, "schedule"), "cosine");
  assert_int_equal(dt_opt_int(&g_o, "seed"), -3);
  double b[2];
  int n = 0;
  assert_int_equal(dt_opt_floats(&g_o, "betas", b, 2, &n), DT_OK);
  assert_int_equal(n, 2);
  assert_true(b[0] == 0.8 && b[1] == 0.95);
  /* A value containing '=' after the first one is kept whole. */
  assert_int_equal(parse("--data=x=y", NULL), DT_OK);
  assert_string_equal(dt_opt_str(&g_o, "data"), "x=y");
  /* Help flags. */
  assert_int_equal(parse("--help", NULL), DT_OK);
  assert_int_equal(g_o.help, 1);
  assert_int_equal(parse("--lr", "1", "-h", NULL), DT_OK);
  assert_int_equal(g_o.help, 1);
}

static void test_bools(void **state) {
  (void)state;
  assert_int_equal(parse("--lora-rslora", NULL), DT_OK);
  assert_int_equal(dt_opt_bool(&g_o, "lora-rslora"), 1);
  assert_int_equal(parse("--lora-rslora", "--lora-rank", "4", NULL), DT_OK);
  assert_int_equal(dt_opt_bool(&g_o, "lora-rslora"), 1);
  assert_int_equal(dt_opt_int(&g_o, "lora-rank"), 4);
  assert_int_equal(parse("--lora-rslora", "no", "--lora-fan-in-fan-out=yes", NULL),
                   DT_OK);
  assert_int_equal(dt_opt_bool(&g_o, "lora-rslora"), 0);
  assert_int_equal(dt_opt_bool(&g_o, "lora-fan-in-fan-out"), 1);
  const char *words[] = {"yes", "true", "1", "no", "false", "0"};
  for (int i = 0; i < 6; i++) {
    char arg[64];
    snprintf(arg, sizeof arg, "--lora-rslora=%s", words[i]);
    assert_int_equal(parse(arg, NULL), DT_OK);
    assert_int_equal(dt_opt_bool(&g_o, "lora-rslora"), i < 3);
    assert_int_equal(parse("--lora-rslora", words[i], NULL), DT_OK);
    assert_int_equal(dt_opt_bool(&g_o, "lora-rslora"), i < 3);
  }
  assert_int_equal(parse("--lora-rslora=maybe", NULL), DT_EUSAGE);
  expect_usage("--lora-rslora", "yes|no|true|false|1|0");
  assert_int_equal(parse("--lora-rslora", "maybe", NULL), DT_EUSAGE);
  expect_usage("'maybe'", "--lora-rslora");
}

static void test_errors(void **state) {
  (void)state;
  assert_int_equal(parse("--lora-rank", "abc", NULL), DT_EUSAGE);
  expect_usage("option --lora-rank expects an integer in [1, 4096], got 'abc'",
               NULL);
  assert_int_equal(parse("--lora-rank=0", NULL), DT_EUSAGE);
  expect_usage("--lora-rank", "[1, 4096]");
  assert_int_equal(parse("--lora-rank=12x", NULL), DT_EUSAGE);
  expect_usage("--lora-rank", "'12x'");
  assert_int_equal(parse("--seed=99999999999999", NULL), DT_EUSAGE);
  expect_usage("--seed", "integer");
  assert_int_equal(parse("--lr", "20", NULL), DT_EUSAGE);
  expect_usage("--lr expects a number in [0, 10], got '20'", NULL);
  const char *bad_nums[] = {"inf", "nan", "-inf", "1e999", "0.1.2", "", "x"};
  for (int i = 0; i < 7; i++) {
    char arg[64];
    snprintf(arg, sizeof arg, "--lr=%s", bad_nums[i]);
    assert_int_equal(parse(arg, NULL), DT_EUSAGE);
    expect_usage("--lr", bad_nums[i][0] ? bad_nums[i] : "needs a value");
  }
  assert_int_equal(parse("--schedule", "step", NULL), DT_EUSAGE);
  expect_usage("--schedule must be one of constant|linear|cosine, got 'step'",
               NULL);
  assert_int_equal(parse("--data", NULL), DT_EUSAGE);
  expect_usage("option --data needs a value", NULL);
  assert_int_equal(parse("--data", "--lr", "1", NULL), DT_EUSAGE);
  expect_usage("option --data needs a value", NULL);
  assert_int_equal(parse("--schedule", NULL), DT_EUSAGE);
  expect_usage("--schedule needs a value", "constant|linear|cosine");
  assert_int_equal(parse("train.bin", NULL), DT_EUSAGE);
  expect_usage("'train.bin'", "deltatune train");
  assert_int_equal(parse("--lr", "0.1", "--lr=0.2", NULL), DT_EUSAGE);
  expect_usage("--lr", "twice");
  assert_int_equal(parse("--lora-rnak", "8", NULL), DT_EUSAGE);
  expect_usage(
      "unknown option '--lora-rnak' for 'deltatune train' (did you mean "
      "'--lora-rank'?; see deltatune train --help)",
      NULL);
  assert_int_equal(parse("--lr-schedule=cosine", NULL), DT_EUSAGE);
  expect_usage("unknown option '--lr-schedule'", "did you mean '--schedule'?");
  assert_int_equal(parse("--completely-different", NULL), DT_EUSAGE);
  expect_usage("unknown option '--completely-different'", "--help");
  assert_null(strstr(dt_error_message(), "did you mean"));
  assert_int_equal(parse("-x", NULL), DT_EUSAGE);
  expect_usage("'-x'", NULL);
  double b[1];
  int n;
  assert_int_equal(parse("--betas=0.9,abc", NULL), DT_OK);
  assert_int_equal(dt_opt_floats(&g_o, "betas", b, 1, &n), DT_EUSAGE);
  expect_usage("--betas", "abc");
  assert_int_equal(parse("--betas=0.9,0.99", NULL), DT_OK);
  assert_int_equal(dt_opt_floats(&g_o, "betas", b, 1, &n), DT_EUSAGE);
  expect_usage("--betas", "at most 1");
  assert_int_equal(parse("--betas=0.9,,1", NULL), DT_OK);
  assert_int_equal(dt_opt_floats(&g_o, "betas", b, 1, &n), DT_EUSAGE);
  expect_usage("--betas", "empty");
}

static void test_declaration_errors(void **state) {
  (void)state;
  static const dt_optdef dup[] = {
      {"lr", DT_OPT_FLOAT, "0.1", 0, 1, NULL, "again"},
      {NULL, 0, NULL, 0, 0, NULL, NULL}};
  static const dt_optdef baddef[] = {
      {"rank", DT_OPT_INT, "0", 1, 8, NULL, "default out of range"},
      {NULL, 0, NULL, 0, 0, NULL, NULL}};
  dt_optgroup g[2] = {k_groups[0], {"dup", "dup", dup}};
  assert_int_equal(dt_options_parse(&g_o, "train", g, 2, 0, NULL), DT_EINTERNAL);
  expect_usage("--lr", "declared twice");
  g[1].defs = baddef;
  assert_int_equal(dt_options_parse(&g_o, "train", g, 2, 0, NULL), DT_EINTERNAL);
  expect_usage("--rank", "[1, 8]");
}

__attribute__((noinline)) static char *capture_help(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  dt_options_print_help(f, "train", "Fine-tune a model.", k_groups, 2);
  fclose(f);
  return buf;
}

static void test_help(void **state) {
  (void)state;
  char *h = capture_help();
  assert_non_null(strstr(h, "usage: deltatune train [options]"));
  assert_non_null(strstr(h, "Fine-tune a model."));
  assert_non_null(strstr(h, "training options"));
  assert_non_null(strstr(h, "LoRA options"));
  const dt_optdef *tabs[2] = {k_train, k_lora};
  size_t help_col = 0;
  char buf[512];
  for (int t = 0; t < 2; t++)
    for (const dt_optdef *d = tabs[t]; d->name; d++) {
      char want[256];
      snprintf(want, sizeof want, "  --%s ", d->name);
      const char *line = strstr(h, want);
      if (!line) fail_msg("help lacks %s:\n%s", d->name, h);
      const char *eol = strchr(line, '\n');
      size_t ll = (size_t)(eol - line);
      snprintf(buf, sizeof buf, "%.*s", (int)ll, line);
      assert_non_null(strstr(buf, d->help));
      /* Help text starts in the same column on every line. */
      size_t col = (size_t)(strstr(buf, d->help) - buf);
      if (help_col == 0) help_col = col;
      assert_int_equal(col, help_col);
      if (d->def) {
        snprintf(want, sizeof want, "[default: %s]", d->def);
        if (!strstr(buf, want)) fail_msg("line '%s' lacks '%s'", buf, want);
      }
    }
  assert_non_null(strstr(h, "[range: 1..4096]"));
  assert_non_null(strstr(h, "[range: 0..10]"));
  assert_non_null(strstr(h, "[choices: constant|linear|cosine]"));
  free(h);
}

static void test_print(void **state) {
  (void)state;
  assert_int_equal(parse("--lora-rank", "32", "--lora-rslora", NULL), DT_OK);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  dt_options_print(f, &g_o);
  fclose(f);
  assert_non_null(strstr(buf, "effective configuration:\n"));
  assert_non_null(strstr(buf, "  lora-rank = 32\n"));
  assert_non_null(strstr(buf, "  lora-rslora = true\n"));
  assert_non_null(strstr(buf, "  data = (unset)\n"));
  assert_non_null(strstr(buf, "  schedule = linear\n"));
  assert_non_null(strstr(buf, "  lr = 0.001\n"));
  /* train options come before lora options */
  assert_true(strstr(buf, "  lr =") < strstr(buf, "  lora-rank ="));
  free(buf);
}

static void test_undeclared_aborts(void **state) {
  (void)state;
  assert_int_equal(parse(NULL), DT_OK);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    dt_opt_int(&g_o, "no-such-option");
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGABRT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_syntaxes),
      cmocka_unit_test(test_bools),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_declaration_errors),
      cmocka_unit_test(test_help),
      cmocka_unit_test(test_print),
      cmocka_unit_test(test_undeclared_aborts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
