/* Every registered method through every command. A method is one file plus
 * one line of the registry (src/methods.c); what the commands need of it
 * comes through its ops. This test walks the registry, not a list of names,
 * so a new method that forgets something a command needs fails here:
 *   train   one step, a checkpoint and deltas;
 *   plan    the same trainable parameter count as train;
 *   export  --format safetensors: the tensors and values of train's
 *           deltas.safetensors, no more, no fewer;
 *   merge   a model folder exactly when the method has no merge_refusal,
 *           else a refusal that quotes it;
 *   sweep   a one-task sweep gives train's deltas byte for byte;
 *   methods lists it.
 * On the GPT-2 fixture (it has every kind of tensor, biases included).
 *
 * With arguments BINARY NAME...: the methods NAME... must be registered in
 * this program and in BINARY (a test build with the test-only methods of
 * tests/methods/, which no command knows by name); each goes through every
 * command of BINARY as above, and through `gradcheck` (its gradient against
 * finite differences of the loss). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "method.h"
#include "testutil.h"

static const char *g_tmp;
static const char *g_bin = DT_BINARY; /* the binary under test */
static char **g_only;                  /* NULL: every method */
static int g_n_only;

/* the number after `key` in text; -1 when absent */
static long long number_after(const char *text, const char *key) {
  const char *p = text ? strstr(text, key) : NULL;
  return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static int same_bytes(const char *a, const char *b) {
  char *out = NULL;
  int rc = dt_test_run(&out, "cmp %s %s", a, b);
  free(out);
  return rc == 0;
}

static void one_method(const dt_method_ops *ops) {
  const char *F = dt_test_fixture("gpt2");
  const char *name = ops->name;
  char dir[1024], *out = NULL;
  snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
  if (dt_test_run(&out, "mkdir -p %s", dir) != 0) fail_msg("mkdir %s: %s", dir, out);
  free(out);
  out = NULL;

  /* train */
  int rc = dt_test_run(&out, "%s train --model %s/model --data %s/batch.safetensors --method %s "
                       "--batch-size 2 --steps 1 --save-every 1 --seed 5 --out %s/train",
                       g_bin, F, F, name, dir);
  if (rc != 0) fail_msg("%s: train exit %d\n%s", name, rc, out);
  char key[64];
  snprintf(key, sizeof key, "method %s: ", name);
  const long long trained = number_after(out, key);
  if (trained <= 0) fail_msg("%s: train printed no trainable count (\"%s\")\n%s", name, key, out);
  free(out);

  /* plan: same count */
  rc = dt_test_run(&out, "%s plan --model %s/model --method %s --batch-size 2 --seq-len 12", g_bin,
                   F, name);
  if (rc != 0) fail_msg("%s: plan exit %d\n%s", name, rc, out);
  const long long planned = number_after(out, "trainable: ");
  if (planned != trained) fail_msg("%s: plan counts %lld trainable parameters, train %lld\n%s", name,
                                   planned, trained, out);
  free(out);

  /* export --format safetensors: the deltas file of the run */
  char ck[1100], ex[1100], a[1200], b[1200];
  snprintf(ck, sizeof ck, "%s/train/ckpt-0000000001.nc", dir);
  snprintf(ex, sizeof ex, "%s/export", dir);
  rc = dt_test_run(&out, "%s export --checkpoint %s --format safetensors --out %s", g_bin, ck, ex);
  if (rc != 0) fail_msg("%s: export exit %d\n%s", name, rc, out);
  free(out);
  snprintf(a, sizeof a, "%s/deltas.safetensors", ex);
  snprintf(b, sizeof b, "%s/train/deltas.safetensors", dir);
  dt_test_compare_tensors(a, b, 0.0, name); /* every tensor, the same values */

  /* merge: a folder, or the method's own refusal */
  rc = dt_test_run(&out, "%s merge --checkpoint %s --model %s/model --out %s/merged", g_bin, ck, F, dir);
  if (ops->merge_refusal) {
    if (rc == 0) fail_msg("%s: merge succeeded, the method says it cannot be merged\n%s", name, out);
    char head[48];
    snprintf(head, sizeof head, "%.40s", ops->merge_refusal);
    if (!strstr(out, head)) fail_msg("%s: merge's refusal does not give the method's reason\n%s", name, out);
  } else if (rc != 0) {
    fail_msg("%s: merge exit %d\n%s", name, rc, out);
  }
  free(out);

  /* sweep: one task = train */
  char tasks[1100];
  snprintf(tasks, sizeof tasks, "%s/tasks.ini", dir);
  FILE *f = fopen(tasks, "w");
  assert_non_null(f);
  fprintf(f, "[task one]\nmethod = %s\ndata = %s/batch.safetensors\nbatch-size = 2\nsteps = 1\n"
             "seed = 5\nout = %s/sweep-one\n", name, F, dir);
  fclose(f);
  rc = dt_test_run(&out, "%s sweep --model %s/model --tasks %s", g_bin, F, tasks);
  if (rc != 0) fail_msg("%s: sweep exit %d\n%s", name, rc, out);
  free(out);
  snprintf(a, sizeof a, "%s/sweep-one/deltas.safetensors", dir);
  if (!same_bytes(a, b)) fail_msg("%s: the sweep's deltas %s differ from train's %s", name, a, b);

  /* methods: listed with its summary */
  rc = dt_test_run(&out, "%s methods", g_bin);
  char line[256];
  snprintf(line, sizeof line, "  %-10s %s", name, ops->summary);
  if (rc != 0 || !strstr(out, line)) fail_msg("%s: `methods` does not list it:\n%s", name, out);
  free(out);
}

/* gradcheck: every trainable tensor's gradient against the central
 * difference of the loss (the command's own check; exit 0 = none differs) */
static void gradcheck(const char *name) {
  const char *F = dt_test_fixture("gpt2");
  char *out = NULL;
  int rc = dt_test_run(&out, "%s gradcheck --model %s/model --data %s/batch.safetensors "
                       "--method %s --batch-size 2", g_bin, F, F, name);
  if (rc != 0 || !strstr(out, " 0 mismatches")) fail_msg("%s: gradcheck exit %d\n%s", name, rc, out);
  free(out);
}

static void test_every_method(void **st) {
  (void)st;
  assert_true(dt_method_count() >= 9);
  if (g_only) {
    for (int i = 0; i < g_n_only; i++) {
      const dt_method_ops *ops = dt_method_lookup(g_only[i]);
      if (!ops) fail_msg("method %s is not registered (src/methods.c)", g_only[i]);
      printf("method %s (test build %s)\n", ops->name, g_bin);
      fflush(stdout);
      one_method(ops);
      gradcheck(ops->name);
    }
    return;
  }
  for (int i = 0; i < dt_method_count(); i++) {
    printf("method %s\n", dt_method_at(i)->name);
    fflush(stdout);
    one_method(dt_method_at(i));
  }
}

int main(int argc, char **argv) {
  g_tmp = dt_test_tmpdir();
  if (argc > 2) {
    g_bin = argv[1];
    g_only = argv + 2;
    g_n_only = argc - 2;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_method)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
