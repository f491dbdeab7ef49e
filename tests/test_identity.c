/* Identity at init: a method whose fresh (non-imported) init promises an
 * unchanged model (LoRA with B = 0, adapters with up = 0, IA3 ones, SAID
 * theta = 0) must give the same logits as the bare backbone.
 *
 * usage: test_identity FAMILY [deltatune eval options for the method...]
 * The reference is `deltatune eval --method none` on the same model/batch;
 * a second check perturbs nothing else, so a method that changed the output
 * at init fails with the max abs difference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "testutil.h"

static int g_argc;
static char **g_argv;

static float *logits(const char *path, int64_t *n) {
  dt_st_file f;
  if (dt_st_open(&f, path)) return NULL;
  float *v = malloc(sizeof(float) * f.t[0].numel);
  *n = f.t[0].numel;
  if (dt_st_read_f32(&f, &f.t[0], 0, f.t[0].numel, v)) {
    free(v);
    v = NULL;
  }
  dt_st_close(&f);
  return v;
}

static void test_identity(void **state) {
  (void)state;
  const char *fam = g_argv[1];
  char extra[4096] = "";
  for (int i = 2; i < g_argc; i++) {
    strcat(extra, " '");
    strcat(extra, g_argv[i]);
    strcat(extra, "'");
  }
  const char *dir = dt_test_fixture(fam);
  char d[1024];
  snprintf(d, sizeof d, "%s", dir);
  const char *tmp = dt_test_tmpdir();
  char *out = NULL;
  int rc = dt_test_run(&out, "%s eval --model %s/model --data %s/batch.safetensors "
                       "--batch-size 2 --method none --dump-logits %s/base.safetensors",
                       DT_BINARY, d, d, tmp);
  if (rc) fail_msg("base eval exited %d:\n%s", rc, out);
  free(out);
  rc = dt_test_run(&out, "%s eval --model %s/model --data %s/batch.safetensors "
                   "--batch-size 2 --seed 7 --dump-logits %s/method.safetensors %s",
                   DT_BINARY, d, d, tmp, extra);
  if (rc) fail_msg("method eval exited %d:\n%s", rc, out);
  free(out);
  char p1[1100], p2[1100];
  snprintf(p1, sizeof p1, "%s/base.safetensors", tmp);
  snprintf(p2, sizeof p2, "%s/method.safetensors", tmp);
  int64_t n1, n2;
  float *a = logits(p1, &n1), *b = logits(p2, &n2);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(n1, n2);
  double mx = 0;
  for (int64_t i = 0; i < n1; i++) mx = fmax(mx, fabs((double)a[i] - b[i]));
  if (!(mx <= 1e-5)) fail_msg("method changed the logits at init: max abs diff %.3e", mx);
  free(a);
  free(b);
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  if (argc < 3) {
    fprintf(stderr, "usage: test_identity FAMILY deltatune-options...\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_identity)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
