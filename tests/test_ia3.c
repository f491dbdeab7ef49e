/* IA3 on non-default targets: gradients against finite differences, and
 * option errors.
 *
 * The fixture models are used with random token ids; the IA3 vectors are
 * moved away from 1 so every path matters. Each trainable tensor is checked
 * by a central difference of the loss along its own gradient direction
 * (the derivative there is |g_t|), and the whole table along a random
 * direction (the harness, dt_test_gradcheck, is in testutil). The LLaMA case
 * covers all three code paths: output scaling of fused row blocks (k, v, up,
 * down), input scaling of a whole site through the pre hook (o_proj) and
 * input scaling of a fused row block through the post hook (q_proj,
 * gate_proj); it also runs with --recompute. */
#include <string.h>

#include "error.h"
#include "method.h"
#include "testutil.h"

static void test_llama_all_paths(void **state) {
  (void)state;
  const char *a[] = {"--ia3-targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                     "--ia3-ff", "q_proj,o_proj,gate_proj"};
  dt_test_gradcheck("llama", "ia3", 0, a, 4, 14);
}

static void test_llama_recompute(void **state) {
  (void)state;
  const char *a[] = {"--ia3-targets", "q_proj,v_proj,o_proj,up_proj,down_proj",
                     "--ia3-ff", "q_proj,o_proj,up_proj"};
  dt_test_gradcheck("llama", "ia3", 1, a, 4, 10);
}

static void test_gpt2_other_targets(void **state) {
  (void)state;
  const char *a[] = {"--ia3-targets", "attn.c_proj,mlp.c_fc,c_attn", "--ia3-ff", "attn.c_proj"};
  dt_test_gradcheck("gpt2", "ia3", 0, a, 4, 6);
}

static void expect_usage(const char *family, const char *const *args, int nargs,
                         const char *needle) {
  dt_test_fx f;
  int rc = dt_test_fx_open(&f, family, "ia3", 0, args, nargs);
  assert_int_equal(rc, DT_EUSAGE);
  if (!strstr(dt_error_message(), needle))
    fail_msg("error '%s' does not name '%s'", dt_error_message(), needle);
  dt_test_fx_close(&f);
}

static void test_usage_errors(void **state) {
  (void)state;
  const char *a1[] = {"--ia3-targets", "k_proj,v_proj", "--ia3-ff", "down_proj"};
  expect_usage("llama", a1, 4, "down_proj");
  const char *a2[] = {"--ia3-targets", "c_attn,wq"};
  expect_usage("gpt2", a2, 2, "wq");
  const char *a3[] = {"--ia3-targets", "c_attn", "--ia3-ff", "c_attn,c_proj"};
  expect_usage("gpt2", a3, 4, "c_proj");
  /* names that exist only in the other family */
  const char *a4[] = {"--ia3-targets", "k_proj"};
  expect_usage("gpt2", a4, 2, "k_proj");
}

/* Defaults are PEFT's; a custom target list keeps the default feed-forward
 * module only when it is targeted; 'none' turns input scaling off. */
static void test_defaults(void **state) {
  (void)state;
  dt_test_fx f;
  assert_int_equal(dt_test_fx_open(&f, "llama", "ia3", 0, NULL, 0), DT_OK);
  assert_int_equal(f.p.n, 6);
  assert_string_equal(f.p.p[0].name, "base_model.model.model.layers.0.self_attn.k_proj.ia3_l");
  assert_int_equal((int)f.p.p[0].shape[0], 24);
  assert_int_equal((int)f.p.p[0].shape[1], 1);
  assert_string_equal(f.p.p[2].name, "base_model.model.model.layers.0.mlp.down_proj.ia3_l");
  assert_int_equal((int)f.p.p[2].shape[0], 1);
  assert_int_equal((int)f.p.p[2].shape[1], 128);
  dt_test_fx_close(&f);
  const char *a[] = {"--ia3-targets", "c_attn"};
  assert_int_equal(dt_test_fx_open(&f, "gpt2", "ia3", 0, a, 2), DT_OK);
  assert_int_equal(f.p.n, 2);
  assert_int_equal((int)f.p.p[0].shape[0], 144);
  dt_test_fx_close(&f);
  const char *b[] = {"--ia3-ff", "none"};
  assert_int_equal(dt_test_fx_open(&f, "gpt2", "ia3", 0, b, 2), DT_OK);
  assert_int_equal(f.p.n, 4);
  assert_int_equal((int)f.p.p[1].shape[0], 48); /* mlp.c_proj output [48,1] */
  assert_int_equal((int)f.p.p[1].shape[1], 1);
  dt_test_fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_llama_all_paths),
      cmocka_unit_test(test_llama_recompute),
      cmocka_unit_test(test_gpt2_other_targets),
      cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_defaults),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
