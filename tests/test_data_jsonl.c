/* --data FILE.jsonl (src/textdata.h): the token rows built from the shipped
 * tasks' raw JSON lines equal the shipped tokenized files (checked by a
 * Python reader), so training and evaluation from either are the same (the
 * losses of a short run and the eval's accuracy are compared); text rows and
 * --pack against a layout that Python builds from `deltatune tokenize`'s
 * ids; bad rows, --skip-bad-rows, too-long rows, the cache (reused, rebuilt
 * when the data or an option changes, no partial file left) and two ranks
 * writing the same bytes as one. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

#define MPIRUN "mpirun -np 2 --oversubscribe"
#define MODEL DT_SOURCE_DIR "/data/models/tiny-gpt2"
#define TASKS DT_SOURCE_DIR "/data/tasks"
/* copies of ../shared/tasks/raw and ../shared/tasks/<task> (data/tasks/README.md) */
#define RAW DT_SOURCE_DIR "/data/tasks/raw"

/* The files of dir ending in suffix: their count; the last one's path in
 * last (may be NULL). */
static int files_in(const char *dir, const char *suffix, char *last, size_t n) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int k = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t a = strlen(e->d_name), b = strlen(suffix);
    if (a >= b && !strcmp(e->d_name + a - b, suffix)) {
      k++;
      if (last) snprintf(last, n, "%s/%s", dir, e->d_name);
    }
  }
  closedir(d);
  return k;
}

/* deltatune eval of the first rows of data with the bare backbone: the
 * command's output; *rc its exit status. */
static char *eval(int *rc, const char *launcher, const char *data, const char *extra) {
  char **out = calloc(1, sizeof *out);
  assert_non_null(out);
  *rc = dt_test_run(out, "%s %s eval --model %s --data %s --method none --rows 16 --batch-size 8 %s",
                    launcher, DT_BINARY, MODEL, data, extra);
  char *text = *out;
  free(out);
  return text;
}

static void eval_ok(const char *launcher, const char *data, const char *extra, const char *needle) {
  int rc;
  char *out = eval(&rc, launcher, data, extra);
  if (rc != 0) fail_msg("eval --data %s %s: exit %d: %s", data, extra, rc, out ? out : "");
  if (needle) dt_test_expect(out, needle, "output");
  free(out);
}

/* The raw rows of a shipped task, unpacked (JSON lines, "split" kept). */
static const char *raw_jsonl(const char *task) {
  const char *p = dt_test_tmp(task);
  char *out = NULL;
  char path[1024];
  snprintf(path, sizeof path, "%s.jsonl", p);
  int rc = dt_test_run(&out, "test -s %s || zcat %s/%s.jsonl.gz > %s", path, RAW, task, path);
  if (rc != 0) fail_msg("zcat %s: %s", task, out ? out : "");
  free(out);
  return strdup(path);
}

/* Every shipped tokenized task file is the rows that --data FILE.jsonl
 * --data-split builds from the raw JSON lines (supersense: capped at its
 * first 20000 / 2000 rows, as --max-rows does; without it the shipped
 * rows are the first); the check reads both with Python. Under the
 * sanitizers (DT_SANITIZED) the supersense train split is built from its
 * first 2000 rows and compared as a prefix: the normal build compares all
 * 20000, and tokenizing them under ASan on two ranks was 70 s of CI. */
#ifdef DT_SANITIZED
#define SUPERSENSE_TRAIN "--max-rows 2000", "prefix"
#else
#define SUPERSENSE_TRAIN "--max-rows 20000", ""
#endif
static void test_shipped_tasks_from_raw(void **state) {
  (void)state;
  const struct {
    const char *task, *split;
    int T;
    const char *extra, *mode;
  } cases[] = {{"fortune-topic", "train", 160, "", ""},
               {"fortune-topic", "test", 160, "", ""},
               {"supersense", "train", 48, SUPERSENSE_TRAIN},
               {"supersense", "test", 48, "--max-rows 2000", ""},
               {"supersense", "test", 48, "", "prefix"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *raw = raw_jsonl(cases[i].task);
    char dir[1024], extra[2048], cache[1024];
    snprintf(dir, sizeof dir, "%s/shipped-%zu", dt_test_tmpdir(), i);
    snprintf(extra, sizeof extra, "--data-split %s --seq-len %d --data-cache %s %s", cases[i].split,
             cases[i].T, dir, cases[i].extra);
    eval_ok(MPIRUN, raw, extra, "-> cache");
    assert_int_equal(files_in(dir, ".safetensors", cache, sizeof cache), 1);
    char *out = NULL;
    int rc = dt_test_run(&out, "python3 %s/tests/compare_token_tensors.py %s %s/%s/%s.safetensors %s",
                         DT_SOURCE_DIR, cache, TASKS, cases[i].task, cases[i].split, cases[i].mode);
    if (rc != 0) fail_msg("%s %s: the rows from JSON lines differ: %s", cases[i].task, cases[i].split,
                          out ? out : "");
    free(out);
    free((void *)raw);
  }
}

/* Training 6 steps from the raw JSON lines and from the shipped file: the
 * same losses, bit for bit; the eval of the test split: the same loss and
 * exact-match lines. */
static void test_train_eval_same_as_tokenized(void **state) {
  (void)state;
  const char *raw = raw_jsonl("fortune-topic");
  const char *m1 = dt_test_tmp("m-jsonl.jsonl"), *m2 = dt_test_tmp("m-st.jsonl");
  const char *common = "--method lora --steps 6 --batch-size 8 --sample-rows 3 --lr 2e-3 --log-every 100";
  char *out = NULL;
  int rc = dt_test_run(&out, MPIRUN " %s train --model %s --data %s --data-split train --seq-len 160 "
                       "--data-cache %s/c-train %s --metrics %s", DT_BINARY, MODEL, raw, dt_test_tmpdir(),
                       common, m1);
  if (rc != 0) fail_msg("train from JSON lines: %s", out ? out : "");
  free(out);
  rc = dt_test_run(&out, MPIRUN " %s train --model %s --data %s/fortune-topic/train.safetensors %s "
                   "--metrics %s", DT_BINARY, MODEL, TASKS, common, m2);
  if (rc != 0) fail_msg("train from safetensors: %s", out ? out : "");
  free(out);
  int n1 = 0, n2 = 0;
  double *a = dt_test_read_losses(m1, &n1), *b = dt_test_read_losses(m2, &n2);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(n1, 6);
  assert_int_equal(n2, 6);
  for (int k = 0; k < 6; k++)
    if (a[k] != b[k]) fail_msg("step %d: loss %.17g from JSON lines, %.17g from safetensors", k, a[k], b[k]);
  free(a);
  free(b);
  char e1[2048];
  snprintf(e1, sizeof e1, "--data-split test --seq-len 160 --data-cache %s/c-test", dt_test_tmpdir());
  char *o1 = eval(&rc, MPIRUN, raw, e1);
  assert_int_equal(rc, 0);
  char *o2 = eval(&rc, MPIRUN, TASKS "/fortune-topic/test.safetensors", "");
  assert_int_equal(rc, 0);
  const char *keys[] = {"\nloss ", "\nexact_match "};
  for (int k = 0; k < 2; k++) {
    const char *p = strstr(o1, keys[k]), *q = strstr(o2, keys[k]);
    if (!p || !q) fail_msg("no '%s' line: %s / %s", keys[k] + 1, o1, o2);
    size_t lp = strcspn(p + 1, "\n"), lq = strcspn(q + 1, "\n");
    if (lp != lq || strncmp(p, q, lp + 1)) fail_msg("'%.*s' vs '%.*s'", (int)lp, p + 1, (int)lq, q + 1);
  }
  free(o1);
  free(o2);
  free((void *)raw);
}

/* Text rows, unpacked and packed, against the layout Python builds from
 * the ids of `deltatune tokenize`; too-long rows dropped and counted. */
static void test_text_rows_and_pack(void **state) {
  (void)state;
  const char *in = dt_test_tmp("text.jsonl"), *ids = dt_test_tmp("text-ids.jsonl");
  FILE *f = fopen(in, "wb");
  assert_non_null(f);
  for (int i = 0; i < 60; i++) {
    fprintf(f, "{\"text\": \"row %d:", i);
    for (int k = 0; k < (i * 7) % 23; k++) fprintf(f, " word%d", k * i);
    fprintf(f, "\"}\n");
  }
  fclose(f);
  char *out = NULL;
  assert_int_equal(dt_test_run(&out, "%s tokenize --tokenizer %s --input %s --output %s", DT_BINARY,
                               MODEL, in, ids), 0);
  free(out);
  const char *modes[] = {"nopack", "pack"};
  for (int m = 0; m < 2; m++) {
    char dir[1024], extra[2048], cache[1024];
    snprintf(dir, sizeof dir, "%s/text-%s", dt_test_tmpdir(), modes[m]);
    snprintf(extra, sizeof extra, "--seq-len 40 --pack %s --data-cache %s", m ? "yes" : "no", dir);
    int rc;
    out = eval(&rc, MPIRUN, in, extra);
    if (rc != 0) fail_msg("eval %s: %s", extra, out);
    dt_test_expect(out, "60 rows read", "output");
    dt_test_expect(out, "longer than --seq-len dropped", "output");
    if (strstr(out, " 0 longer than")) fail_msg("no row was too long: %s", out);
    free(out);
    assert_int_equal(files_in(dir, ".safetensors", cache, sizeof cache), 1);
    int rc2 = dt_test_run(&out, "python3 %s/tests/text_rows_reference.py %s %s 40 0 %s", DT_SOURCE_DIR,
                          ids, cache, modes[m]);
    if (rc2 != 0) fail_msg("%s: %s", modes[m], out ? out : "");
    free(out);
  }
  /* --too-long error refuses the first long row, naming its line */
  int rc;
  char e3[2048];
  snprintf(e3, sizeof e3, "--seq-len 40 --too-long error --data-cache %s/text-error", dt_test_tmpdir());
  out = eval(&rc, "", in, e3);
  if (rc != 3) fail_msg("exit %d (want 3): %s", rc, out);
  dt_test_expect(out, "text.jsonl line ", "output");
  dt_test_expect(out, "more than --seq-len 40", "output");
  free(out);
}

/* Bad rows are errors naming the file and line, or skipped and counted. */
static void test_bad_rows(void **state) {
  (void)state;
  const struct {
    const char *rows, *needle;
  } cases[] = {
      {"{\"text\": \"a b c\"}\n{\"text\": \"b\"\n", "line 2: invalid JSON"},
      {"{\"text\": \"a b c\"}\n\n{\"txt\": \"b\"}\n", "line 3: the row has no field \"text\""},
      {"{\"text\": \"a b c\"}\n{\"text\": \"\xff\"}\n", "line 2: not valid UTF-8"},
      {"{\"prompt\": \"a\", \"completion\": 5}\n", "line 1: field \"completion\" must be a string"},
      {"{\"prompt\": \"a\"}\n", "line 1: the row has no field \"completion\""},
  };
  const char *in = dt_test_tmp("bad.jsonl");
  char extra[2048];
  snprintf(extra, sizeof extra, "--seq-len 16 --data-cache %s/c-bad", dt_test_tmpdir());
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    dt_test_write(in, cases[i].rows);
    int rc;
    char *out = eval(&rc, MPIRUN, in, extra);
    if (rc != 3) fail_msg("case %zu: exit %d (want 3): %s", i, rc, out ? out : "");
    dt_test_expect(out, "bad.jsonl", "output");
    dt_test_expect(out, cases[i].needle, "output");
    free(out);
  }
  /* --data-split needs the split field */
  dt_test_write(in, "{\"text\": \"a b c\", \"split\": \"train\"}\n{\"text\": \"a b c\"}\n");
  char e2[2100];
  snprintf(e2, sizeof e2, "%s --data-split train", extra);
  int rc;
  char *out = eval(&rc, "", in, e2);
  if (rc != 3) fail_msg("exit %d (want 3): %s", rc, out);
  dt_test_expect(out, "bad.jsonl line 2: the row has no string field \"split\"", "output");
  free(out);
  /* every kind at once, skipped and counted; the good rows kept */
  dt_test_write(in, "{\"text\": \"one two three\"}\n{\"text\": \"b\"\n{\"txt\": \"b\"}\n"
                 "{\"text\": \"\xff\"}\n{\"prompt\": \"Q:\", \"completion\": \" yes\"}\n[1]\n");
  snprintf(e2, sizeof e2, "%s --skip-bad-rows", extra);
  out = eval(&rc, MPIRUN, in, e2);
  if (rc != 0) fail_msg("exit %d: %s", rc, out);
  dt_test_expect(out, "6 rows read, 2 kept in 2 rows of 16 tokens (0 longer than --seq-len dropped, 4 bad rows skipped", "output");
  free(out);
  /* JSONL options with tokenized data, compressed JSON lines */
  out = eval(&rc, "", TASKS "/fortune-topic/test.safetensors", "--seq-len 16");
  assert_int_equal(rc, 2);
  dt_test_expect(out, "--seq-len applies to JSON lines data", "output");
  free(out);
  out = eval(&rc, "", TASKS "/raw/fortune-topic.jsonl.gz", "--seq-len 16");
  assert_int_equal(rc, 2);
  dt_test_expect(out, "gunzip it first", "output");
  free(out);
  out = eval(&rc, "", in, "");
  assert_int_equal(rc, 2);
  dt_test_expect(out, "needs --seq-len", "output");
  free(out);
}

/* The cache: reused while nothing changes; a new file when the data or an
 * option changes; never a partial file; two ranks write the bytes one does. */
static void test_cache(void **state) {
  (void)state;
  const char *in = dt_test_tmp("cache.jsonl"), *dir = dt_test_tmp("c-cache"), *dir1 = dt_test_tmp("c-one");
  FILE *f = fopen(in, "wb");
  assert_non_null(f);
  for (int i = 0; i < 200; i++)
    if (i % 3)
      fprintf(f, "{\"prompt\": \"Question %d:\", \"completion\": \" answer %d\", \"split\": \"%s\"}\n", i,
              i % 7, i % 5 ? "train" : "test");
    else
      fprintf(f, "{\"text\": \"free text %d %s\", \"split\": \"train\"}\n", i, i % 2 ? "and more words" : "");
  fputs("not json\n", f);
  fclose(f);
  char extra[2048];
  const char *opts = "--seq-len 24 --pack yes --skip-bad-rows --data-split train";
  snprintf(extra, sizeof extra, "%s --data-cache %s", opts, dir);
  eval_ok(MPIRUN, in, extra, "-> cache");
  char first[1024];
  assert_int_equal(files_in(dir, ".safetensors", first, sizeof first), 1);
  struct stat s1, s2;
  assert_int_equal(stat(first, &s1), 0);
  eval_ok(MPIRUN, in, extra, "from the cache");
  eval_ok("", in, extra, "from the cache");
  assert_int_equal(stat(first, &s2), 0);
  assert_true(s1.st_mtim.tv_sec == s2.st_mtim.tv_sec && s1.st_mtim.tv_nsec == s2.st_mtim.tv_nsec);
  assert_int_equal(files_in(dir, ".safetensors", NULL, 0), 1);
  /* one rank: the same bytes */
  char e1[2048], one[1024];
  snprintf(e1, sizeof e1, "%s --data-cache %s", opts, dir1);
  eval_ok("", in, e1, "-> cache");
  assert_int_equal(files_in(dir1, ".safetensors", one, sizeof one), 1);
  char *out = NULL;
  if (dt_test_run(&out, "cmp %s %s", first, one) != 0) fail_msg("1 and 2 ranks differ: %s", out);
  free(out);
  /* another option, then changed data: new cache files */
  snprintf(e1, sizeof e1, "%s --data-cache %s --pack no", "--seq-len 24 --skip-bad-rows --data-split train", dir);
  eval_ok(MPIRUN, in, e1, "-> cache");
  assert_int_equal(files_in(dir, ".safetensors", NULL, 0), 2);
  f = fopen(in, "ab");
  assert_non_null(f);
  fputs("{\"text\": \"one more row\", \"split\": \"train\"}\n", f);
  fclose(f);
  eval_ok(MPIRUN, in, extra, "-> cache");
  assert_int_equal(files_in(dir, ".safetensors", NULL, 0), 3);
  eval_ok(MPIRUN, in, extra, "from the cache");
  /* cache files cut short (a full disk, a copy that stopped) are rebuilt */
  out = NULL;
  assert_int_equal(dt_test_run(&out, "truncate -s 100 %s/*.safetensors", dir), 0);
  free(out);
  eval_ok(MPIRUN, in, extra, "-> cache");
  assert_int_equal(files_in(dir, ".safetensors", NULL, 0), 3);
  /* no temporary file is left */
  assert_int_equal(files_in(dir, ".tmp", NULL, 0), 0);
  DIR *d = opendir(dir);
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".tmp.")) fail_msg("partial file left: %s", e->d_name);
  closedir(d);
}

/* A sweep: a task on the raw JSON lines has the losses of the same task on
 * the shipped file; a task on the same JSON lines with another --seq-len
 * gets its own rows (not the first task's). */
static void test_sweep_tasks(void **state) {
  (void)state;
  const char *raw = raw_jsonl("fortune-topic"), *ini = dt_test_tmp("tasks.ini");
  char text[8192];
  const char *keys = "method = lora\nsteps = 4\nbatch-size = 8\nsample-rows = 5\nlr = 2e-3\n";
  snprintf(text, sizeof text,
           "[task raw]\n%sdata = %s\ndata-split = train\nseq-len = 160\ndata-cache = %s/c-sweep\n"
           "metrics = %s\n\n[task shipped]\n%sdata = %s/fortune-topic/train.safetensors\nmetrics = %s\n\n"
           "[task short]\n%sdata = %s\ndata-split = train\nseq-len = 100\ndata-cache = %s/c-sweep\n"
           "metrics = %s\n",
           keys, raw, dt_test_tmpdir(), dt_test_tmp("s-raw.jsonl"), keys, TASKS, dt_test_tmp("s-st.jsonl"), keys, raw,
           dt_test_tmpdir(), dt_test_tmp("s-short.jsonl"));
  dt_test_write(ini, text);
  char *out = NULL;
  int rc = dt_test_run(&out, MPIRUN " %s sweep --model %s --tasks %s", DT_BINARY, MODEL, ini);
  if (rc != 0) fail_msg("sweep: exit %d: %s", rc, out ? out : "");
  dt_test_expect(out, "2875 kept in 2875 rows of 160 tokens", "output");
  dt_test_expect(out, "rows of 100 tokens", "output");
  free(out);
  int n1 = 0, n2 = 0, n3 = 0;
  double *a = dt_test_read_losses(dt_test_tmp("s-raw.jsonl"), &n1), *b = dt_test_read_losses(dt_test_tmp("s-st.jsonl"), &n2);
  double *c = dt_test_read_losses(dt_test_tmp("s-short.jsonl"), &n3);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_int_equal(n1, 4);
  assert_int_equal(n2, 4);
  assert_int_equal(n3, 4);
  for (int k = 0; k < 4; k++)
    if (a[k] != b[k]) fail_msg("step %d: loss %.17g from JSON lines, %.17g from safetensors", k, a[k], b[k]);
  if (a[0] == c[0]) fail_msg("the --seq-len 100 task has the loss of the --seq-len 160 one: %.17g", c[0]);
  free(a);
  free(b);
  free(c);
  free((void *)raw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shipped_tasks_from_raw),
      cmocka_unit_test(test_train_eval_same_as_tokenized),
      cmocka_unit_test(test_text_rows_and_pack),
      cmocka_unit_test(test_bad_rows),
      cmocka_unit_test(test_cache),
      cmocka_unit_test(test_sweep_tasks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
