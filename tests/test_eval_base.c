/* `deltatune eval` on the bare fixture backbones: the printed loss equals
 * base/expected.json loss0 (1e-5 absolute) and the logits equal
 * base/logits0.safetensors (max abs error <= 1e-4), for GPT-2 and LLaMA, in
 * fp32 and (loss only, looser: weights rounded to bf16) bf16 storage. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "testutil.h"

static double printed_loss(const char *out) {
  const char *p = strstr(out, "\nloss ");
  return p ? atof(p + 6) : NAN;
}

static double expected_loss0(const char *fam) {
  char path[1024];
  snprintf(path, sizeof path, "%s/base/expected.json", dt_test_fixture(fam));
  json_error_t e;
  json_t *j = json_load_file(path, 0, &e);
  assert_non_null(j);
  double v = json_number_value(json_object_get(j, "loss0"));
  json_decref(j);
  return v;
}

static void check_family(const char *fam) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", dt_test_fixture(fam));
  const char *tmp = dt_test_tmpdir();
  char *out = NULL;
  int rc = dt_test_run(&out, "%s eval --model %s/model --data %s/batch.safetensors --method none "
                       "--batch-size 2 --dump-logits %s/%s-logits.safetensors",
                       DT_BINARY, dir, dir, tmp, fam);
  if (rc) fail_msg("eval exited %d:\n%s", rc, out);
  const double loss = printed_loss(out), ref = expected_loss0(fam);
  free(out);
  if (!(fabs(loss - ref) <= 1e-5)) fail_msg("%s loss %.9f vs loss0 %.9f", fam, loss, ref);

  char got_path[1200], ref_path[1200];
  snprintf(got_path, sizeof got_path, "%s/%s-logits.safetensors", tmp, fam);
  snprintf(ref_path, sizeof ref_path, "%s/base/logits0.safetensors", dir);
  dt_st_file a, b;
  assert_int_equal(dt_st_open(&a, got_path), 0);
  assert_int_equal(dt_st_open(&b, ref_path), 0);
  assert_int_equal(a.t[0].numel, b.t[0].numel);
  assert_int_equal(a.t[0].ndim, 3);
  for (int d = 0; d < 3; d++) assert_int_equal(a.t[0].shape[d], b.t[0].shape[d]);
  float *x = malloc(sizeof(float) * a.t[0].numel), *y = malloc(sizeof(float) * b.t[0].numel);
  assert_int_equal(dt_st_read_f32(&a, &a.t[0], 0, a.t[0].numel, x), 0);
  assert_int_equal(dt_st_read_f32(&b, &b.t[0], 0, b.t[0].numel, y), 0);
  double mx = 0;
  for (int64_t i = 0; i < a.t[0].numel; i++) mx = fmax(mx, fabs((double)x[i] - y[i]));
  if (!(mx <= 1e-4)) fail_msg("%s logits max abs error %.3e", fam, mx);
  free(x);
  free(y);
  dt_st_close(&a);
  dt_st_close(&b);

  /* bf16 storage: same model rounded to bf16, loss within 2e-2 of fp32 */
  rc = dt_test_run(&out, "%s eval --model %s/model --data %s/batch.safetensors --method none "
                   "--batch-size 2 --weights-dtype bf16", DT_BINARY, dir, dir);
  if (rc) fail_msg("bf16 eval exited %d:\n%s", rc, out);
  const double lb = printed_loss(out);
  free(out);
  if (!(fabs(lb - ref) <= 2e-2 && lb != loss))
    fail_msg("%s bf16 loss %.9f vs fp32 reference %.9f", fam, lb, ref);
}

static void test_gpt2(void **s) { (void)s; check_family("gpt2"); }
static void test_llama(void **s) { (void)s; check_family("llama"); }

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_gpt2), cmocka_unit_test(test_llama)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
