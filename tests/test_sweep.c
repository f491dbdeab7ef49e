/* deltatune sweep: each task of a sweep (LoRA, adapter and IA3 in one
 * combined batch, prefix, prefix with MLP and prompt in their own groups)
 * , and LoRA-free tasks that train backbone tensors on private copies: last
 * layer, full, SAID, BitFit) has the same per-step losses (1e-5) as the same
 * task trained alone with
 * deltatune train, at 1 rank and at 2 ranks (2 replicas; 2 shards); a task
 * with a missing data file is reported and dropped while the others finish.
 * usage: test_sweep FAMILY */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *g_fam;

typedef struct {
  const char *name, *args; /* task keys (one per line) */
} tcase;

static int read_losses(const char *path, double *v, int max) {
  char *s = dt_test_slurp(path);
  if (!s) return -1;
  int n = 0;
  for (const char *p = s; n < max && (p = strstr(p, "\"loss\": ")); p += 8) v[n++] = atof(p + 8);
  free(s);
  return n;
}

static void run_layout(const char *launch, const char *tp) {
  char F[1024];
  snprintf(F, sizeof F, "%s", dt_test_fixture(g_fam));
  const char *tmp = dt_test_tmpdir();
  const int llama = !strcmp(g_fam, "llama");
  const tcase cases[] = {
      {"lora", llama ? "method = lora\nlora-rank = 4\nlora-alpha = 8\nlora-targets = q_proj,v_proj,down_proj"
                     : "method = lora\nlora-rank = 4\nlora-alpha = 8\nlora-targets = c_attn,mlp.c_fc"},
      {"adapter", "method = adapter\nadapter-size = 8"},
      {"ia3", "method = ia3"},
      {"prefix", "method = prefix\nprefix-tokens = 3"},
      {"prefix_proj", "method = prefix\nprefix-tokens = 3\nprefix-hidden = 32"},
      {"prompt", "method = prompt\nprompt-tokens = 3"},
      {"lastlayer", "method = lastlayer"},
      {"full", "method = full"},
      {"said", "method = said\nsaid-dim = 24"},
      {"bitfit", "method = bitfit"},
  };
  const int nc = (int)(sizeof cases / sizeof *cases) - (llama ? 1 : 0); /* no bitfit on LLaMA */
  char ini[1200];
  snprintf(ini, sizeof ini, "%s/tasks.ini", tmp);
  FILE *f = fopen(ini, "w");
  assert_non_null(f);
  char init[16][2600];
  for (int i = 0; i < nc; i++) {
    if (!strcmp(cases[i].name, "said"))
      snprintf(init[i], sizeof init[i], "%s/said/init.safetensors,%s/said/projection.safetensors", F, F);
    else
      snprintf(init[i], sizeof init[i], "%s/%s/init.safetensors", F, cases[i].name);
    fprintf(f,
            "[task %s]\n%s\ninit-from = %s\ndata = %s/batch.safetensors\n"
            "batch-size = 2\nsteps = %d\nlr = 1e-2\nmetrics = %s/sweep_%s.jsonl\n\n",
            cases[i].name, cases[i].args, init[i], F, 5 - (i % 2), tmp, cases[i].name);
  }
  fprintf(f, "[task broken]\nmethod = lora\ndata = %s/missing.safetensors\nbatch-size = 2\n", tmp);
  fclose(f);
  char *out;
  int rc = dt_test_run(&out, "%s %s sweep --model %s/model --tasks %s --log-every 1 %s", launch,
                       DT_BINARY, F, ini, tp);
  /* the broken task makes the sweep fail, after the others finished */
  if (rc == 0 || !strstr(out, "missing.safetensors") || !strstr(out, "task broken: FAILED"))
    fail_msg("expected the broken task to be reported (exit %d):\n%s", rc, out);
  free(out);
  for (int i = 0; i < nc; i++) {
    /* the same task alone: convert "key = value" lines to options */
    char opts[1024] = "";
    char buf[512];
    snprintf(buf, sizeof buf, "%s", cases[i].args);
    for (char *save = NULL, *ln = strtok_r(buf, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
      char k[128], v[256];
      if (sscanf(ln, "%127s = %255s", k, v) == 2) {
        strcat(opts, " --");
        strcat(opts, k);
        strcat(opts, " ");
        strcat(opts, v);
      }
    }
    rc = dt_test_run(&out,
                     "%s %s train --model %s/model --data %s/batch.safetensors --batch-size 2 "
                     "--steps %d --lr 1e-2 --init-from %s --metrics "
                     "%s/alone_%s.jsonl %s %s",
                     launch, DT_BINARY, F, F, 5 - (i % 2), init[i], tmp, cases[i].name, opts, tp);
    if (rc) fail_msg("%s alone exited %d:\n%s", cases[i].name, rc, out);
    free(out);
    char p1[1300], p2[1300];
    snprintf(p1, sizeof p1, "%s/sweep_%s.jsonl", tmp, cases[i].name);
    snprintf(p2, sizeof p2, "%s/alone_%s.jsonl", tmp, cases[i].name);
    double a[16], b[16];
    int na = read_losses(p1, a, 16), nb = read_losses(p2, b, 16);
    if (na != 5 - (i % 2) || nb != na) fail_msg("%s: %d sweep losses, %d alone", cases[i].name, na, nb);
    for (int k = 0; k < na; k++)
      if (!(fabs(a[k] - b[k]) <= 1e-5))
        fail_msg("%s step %d: sweep loss %.9f, alone %.9f", cases[i].name, k, a[k], b[k]);
  }
}

static void test_one_rank(void **s) {
  (void)s;
  run_layout("", "");
}
static void test_two_replicas(void **s) {
  (void)s;
  run_layout("mpirun -np 2 --oversubscribe", "");
}
static void test_two_shards(void **s) {
  (void)s;
  run_layout("mpirun -np 2 --oversubscribe", "--tp 2");
}

int main(int argc, char **argv) {
  g_fam = argc > 1 ? argv[1] : "gpt2";
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_one_rank),
                                     cmocka_unit_test(test_two_replicas),
                                     cmocka_unit_test(test_two_shards)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
