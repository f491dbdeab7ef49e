/* Parity with Hugging Face transformers + PEFT (tests/data/hf-parity).
 *
 * usage: test_parity FAMILY METHOD LOSS_TOL [deltatune train options...]
 * With DT_TEST_LAUNCH set (e.g. "mpirun -np 4 --oversubscribe") the run is
 * launched through it, so the same checks hold on other rank layouts.
 * Runs `deltatune train` for 5 steps from the fixture's init and checks:
 *   - the losses of steps 0..4 against expected.json (within LOSS_TOL),
 *   - each loss change l[k]-l[0] within 1e-3 relative (+2e-6) of the
 *     reference change,
 *   - step-0 gradients against grads.safetensors: every tensor present, same
 *     shape, relative L2 error <= 1e-4,
 *   - the logits of the first forward pass against logits0.safetensors.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "safetensors.h"
#include "testutil.h"

static int g_argc;
static char **g_argv;

static void max_abs_logits(const char *got_path, const char *ref_path, double tol) {
  dt_st_file got, ref;
  assert_int_equal(dt_st_open(&got, got_path), 0);
  assert_int_equal(dt_st_open(&ref, ref_path), 0);
  assert_int_equal(got.t[0].numel, ref.t[0].numel);
  float *a = dt_test_read_tensor(&got, &got.t[0]), *b = dt_test_read_tensor(&ref, &ref.t[0]);
  double mx = 0;
  for (int64_t k = 0; k < got.t[0].numel; k++) mx = fmax(mx, fabs((double)a[k] - b[k]));
  if (!(mx <= tol)) fail_msg("logits max abs error %.3e > %.1e", mx, tol);
  free(a);
  free(b);
  dt_st_close(&got);
  dt_st_close(&ref);
}

static void test_parity(void **state) {
  (void)state;
  assert_true(g_argc >= 4);
  const char *fam = g_argv[1], *method = g_argv[2];
  const double loss_tol = atof(g_argv[3]);
  char extra[4096] = "";
  for (int i = 4; i < g_argc; i++) {
    strcat(extra, " '");
    strcat(extra, g_argv[i]);
    strcat(extra, "'");
  }
  char dir[512], exp_path[1200];
  snprintf(dir, sizeof dir, "%s", dt_test_fixture(fam));
  snprintf(exp_path, sizeof exp_path, "%s/%s/expected.json", dir, method);
  const char *tmp = dt_test_tmpdir();
  char *out = NULL;
  const char *launch = getenv("DT_TEST_LAUNCH");
  int rc = dt_test_run(&out,
                       "%s %s train --model %s/model --data %s/batch.safetensors --batch-size 2 "
                       "--steps 5 --lr 1e-2 --metrics %s/m.jsonl --dump-grads %s/g.safetensors "
                       "--dump-logits %s/l.safetensors %s",
                       launch ? launch : "", DT_BINARY, dir, dir, tmp, tmp, tmp, extra);
  if (rc != 0) fail_msg("deltatune exited %d:\n%s", rc, out ? out : "");
  free(out);

  json_error_t je;
  json_t *exp = json_load_file(exp_path, 0, &je);
  assert_non_null(exp);
  json_t *losses = json_object_get(exp, "losses");
  assert_true(json_array_size(losses) >= 5);
  int n;
  char mpath[1200];
  snprintf(mpath, sizeof mpath, "%s/m.jsonl", tmp);
  double *got = dt_test_read_losses(mpath, &n);
  assert_non_null(got);
  assert_int_equal(n, 5);
  const double ref0 = json_number_value(json_array_get(losses, 0));
  for (int k = 0; k < 5; k++) {
    const double ref = json_number_value(json_array_get(losses, k));
    if (!(fabs(got[k] - ref) <= loss_tol))
      fail_msg("step %d loss %.9f vs reference %.9f (tol %.1e)", k, got[k], ref, loss_tol);
    const double dref = ref - ref0, dgot = got[k] - got[0];
    if (!(fabs(dgot - dref) <= 1e-3 * fabs(dref) + 2e-6))
      fail_msg("step %d loss change %.9g vs reference %.9g", k, dgot, dref);
  }
  free(got);
  json_decref(exp);

  char gp[1200], rp[1200];
  snprintf(gp, sizeof gp, "%s/g.safetensors", tmp);
  snprintf(rp, sizeof rp, "%s/%s/grads.safetensors", dir, method);
  dt_test_compare_tensors(gp, rp, 1e-4, "gradient");
  snprintf(gp, sizeof gp, "%s/l.safetensors", tmp);
  snprintf(rp, sizeof rp, "%s/%s/logits0.safetensors", dir, method);
  max_abs_logits(gp, rp, 1e-4);
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_parity)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
