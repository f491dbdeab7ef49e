/* Houlsby adapters with non-default options, and composed with IA3:
 * gradients against finite differences.
 *
 * The fixture models are used with random token ids and every adapter tensor
 * is moved away from its init (up = 0 would zero the down gradients). Each
 * trainable tensor is checked by a central difference of the loss along its
 * own gradient direction (the derivative there is |g_t|), and the whole table
 * along a random direction (the harness, dt_test_gradcheck, is in testutil).
 * Covers relu and gelu_tanh bottlenecks, --recompute, and two post-hook
 * methods stacked on one site in both orders. */
#include <math.h>

#include "error.h"
#include "method.h"
#include "testutil.h"

static void test_gpt2_relu(void **state) {
  (void)state;
  const char *a[] = {"--adapter-size", "5", "--adapter-act", "relu", "--adapter-init-std", "0.1"};
  dt_test_gradcheck("gpt2", "adapter", 0, a, 6, 16);
}

static void test_llama_gelu_recompute(void **state) {
  (void)state;
  const char *a[] = {"--adapter-size", "3"};
  dt_test_gradcheck("llama", "adapter", 1, a, 2, 16);
}

/* IA3 output scaling and an adapter on the same sites, in both orders. */
static void test_with_ia3(void **state) {
  (void)state;
  const char *a[] = {"--adapter-size", "4", "--ia3-targets", "o_proj,down_proj,v_proj",
                     "--ia3-ff", "none"};
  dt_test_gradcheck("llama", "ia3,adapter", 0, a, 6, 16 + 6);
  dt_test_gradcheck("llama", "adapter,ia3", 0, a, 6, 16 + 6);
  const char *b[] = {"--adapter-size", "4", "--ia3-targets", "attn.c_proj,mlp.c_proj",
                     "--ia3-ff", "attn.c_proj"};
  dt_test_gradcheck("gpt2", "adapter,ia3", 0, b, 6, 16 + 4);
}

static void test_options(void **state) {
  (void)state;
  dt_test_fx f;
  assert_int_equal(dt_test_fx_open(&f, "gpt2", "adapter", 0, NULL, 0), DT_OK);
  assert_int_equal(f.p.n, 16);
  assert_string_equal(f.p.p[0].name, "adapter_0_attn.down.weight");
  assert_int_equal((int)f.p.p[0].shape[0], 64); /* default bottleneck */
  assert_int_equal((int)f.p.p[0].shape[1], 48);
  assert_string_equal(f.p.p[6].name, "adapter_0_mlp.up.weight");
  assert_int_equal((int)f.p.p[6].shape[0], 48);
  assert_int_equal((int)f.p.p[6].shape[1], 64);
  /* down ~ N(0, 1e-3^2), up and biases 0 */
  double s2 = 0;
  for (int64_t j = 0; j < f.p.p[0].numel; j++) s2 += (double)f.p.p[0].data[j] * f.p.p[0].data[j];
  const double sd = sqrt(s2 / (double)f.p.p[0].numel);
  assert_true(sd > 0.8e-3 && sd < 1.2e-3);
  for (int i = 1; i < 4; i++)
    for (int64_t j = 0; j < f.p.p[i].numel; j++) assert_true(f.p.p[i].data[j] == 0.0f);
  dt_test_fx_close(&f);
  const char *a[] = {"--adapter-act", "tanh"};
  assert_int_equal(dt_test_fx_open(&f, "gpt2", "adapter", 0, a, 2), DT_EUSAGE);
  dt_test_fx_close(&f);
  const char *b[] = {"--adapter-size", "0"};
  assert_int_equal(dt_test_fx_open(&f, "gpt2", "adapter", 0, b, 2), DT_EUSAGE);
  dt_test_fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gpt2_relu),
      cmocka_unit_test(test_llama_gelu_recompute),
      cmocka_unit_test(test_with_ia3),
      cmocka_unit_test(test_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
