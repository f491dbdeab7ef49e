/* IA3 on non-default targets: gradients against finite differences, and
 * option errors.
 *
 * The fixture models are used with random token ids; the IA3 vectors are
 * moved away from 1 so every path matters. Each trainable tensor is checked
 * by a central difference of the loss along its own gradient direction
 * (the derivative there is |g_t|), and the whole table along a random
 * direction. The LLaMA case covers all three code paths: output scaling of
 * fused row blocks (k, v, up, down), input scaling of a whole site through
 * the pre hook (o_proj) and input scaling of a fused row block through the
 * post hook (q_proj, gate_proj); it also runs with --recompute. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "method.h"
#include "rng.h"
#include "testutil.h"

enum { B = 2, T = 12 };

typedef struct {
  dt_options opt;
  dt_model m;
  dt_params p;
  dt_method **ms;
  int nm;
  int32_t ids[B * T];
  double count;
} fx;

static int fx_open(fx *f, const char *family, const char *methods, int recompute,
                   const char *const *args, int nargs) {
  memset(f, 0, sizeof *f);
  dt_optgroup g[2];
  int ng = 0;
  const char *names[2] = {"ia3", "adapter"};
  for (int i = 0; i < 2; i++) {
    const dt_method_ops *ops = dt_method_lookup(names[i]);
    if (ops && ops->options) g[ng++] = *ops->options;
  }
  char *argv[32];
  for (int i = 0; i < nargs; i++) argv[i] = (char *)args[i];
  DT_CALL(dt_options_parse(&f->opt, "test", g, ng, nargs, argv));
  char path[64];
  snprintf(path, sizeof path, "%s/model", family);
  DT_CALL(dt_model_load(&f->m, dt_test_fixture(path), 0, 1));
  DT_CALL(dt_methods_create(methods, &f->opt, &f->m, &f->p, 3, &f->ms, &f->nm));
  DT_CALL(dt_model_set_methods(&f->m, f->ms, f->nm));
  DT_CALL(dt_model_plan(&f->m, B, T, recompute));
  const uint64_t key = dt_rng_key(11, 1);
  for (int i = 0; i < B * T; i++)
    f->ids[i] = (int32_t)(dt_rng_u64(key, (uint64_t)i) % (uint64_t)f->m.cfg.vocab);
  f->count = B * (T - 1);
  return DT_OK;
}

static void fx_close(fx *f) {
  dt_methods_destroy(f->ms, f->nm);
  dt_params_free(&f->p);
  dt_model_free(&f->m);
}

static double loss(fx *f) {
  dt_loss_stats st;
  assert_int_equal(dt_model_forward(&f->m, f->ids, NULL, 0, 1.0, &st, NULL), DT_OK);
  assert_int_equal((int)st.n_scored, (int)f->count);
  return st.loss_sum / f->count;
}

/* Move every parameter: value = base + amp * N(0,1). */
static void perturb(fx *f, double base, double amp) {
  for (int i = 0; i < f->p.n; i++) {
    const uint64_t key = dt_rng_key(99, (uint64_t)i);
    for (int64_t j = 0; j < f->p.p[i].numel; j++)
      f->p.p[i].data[j] = (float)(base + amp * dt_rng_normal(key, (uint64_t)j));
  }
}

/* Central difference along v (per tensor, NULL = 0) vs g . v. */
static void check_dir(fx *f, float **v, const char *what) {
  const double eps = 1e-2;
  double gv = 0, vv = 0;
  for (int i = 0; i < f->p.n; i++)
    if (v[i])
      for (int64_t j = 0; j < f->p.p[i].numel; j++) {
        gv += (double)f->p.p[i].grad[j] * v[i][j];
        vv += (double)v[i][j] * v[i][j];
      }
  assert_true(fabs(vv - 1.0) < 1e-6);
  double lp = 0, lm = 0;
  for (int sgn = 1; sgn >= -1; sgn -= 2) {
    for (int i = 0; i < f->p.n; i++)
      if (v[i])
        for (int64_t j = 0; j < f->p.p[i].numel; j++)
          f->p.p[i].data[j] += (float)(sgn * eps) * v[i][j];
    double l = loss(f);
    if (sgn > 0) lp = l;
    else lm = l;
    for (int i = 0; i < f->p.n; i++)
      if (v[i])
        for (int64_t j = 0; j < f->p.p[i].numel; j++)
          f->p.p[i].data[j] -= (float)(sgn * eps) * v[i][j];
  }
  const double fd = (lp - lm) / (2 * eps);
  /* fp32 loss noise (~1e-7 relative on a loss ~4.6, over 2 eps) plus
   * O(eps^2) truncation */
  const double tol = 1e-3 * fabs(gv) + 3e-6;
  printf("  %-70s g.v % .6e fd % .6e\n", what, gv, fd);
  if (!(fabs(fd - gv) <= tol))
    fail_msg("%s: analytic %.6e vs finite difference %.6e", what, gv, fd);
}

/* Gradient at the current point, then each tensor along its own gradient
 * and everything along a random direction. */
static void check_grads(fx *f) {
  dt_params_zero_grad(&f->p);
  dt_loss_stats st;
  assert_int_equal(dt_model_forward(&f->m, f->ids, NULL, 1, f->count, &st, NULL), DT_OK);
  assert_int_equal(dt_model_backward(&f->m), DT_OK);
  float **v = calloc((size_t)f->p.n, sizeof(float *));
  float **one = calloc((size_t)f->p.n, sizeof(float *));
  for (int i = 0; i < f->p.n; i++) {
    const dt_param *p = &f->p.p[i];
    double n2 = 0;
    for (int64_t j = 0; j < p->numel; j++) n2 += (double)p->grad[j] * p->grad[j];
    if (!(n2 > 1e-16)) fail_msg("%s: zero gradient", p->name);
    v[i] = malloc(sizeof(float) * p->numel);
    for (int64_t j = 0; j < p->numel; j++) v[i][j] = (float)(p->grad[j] / sqrt(n2));
    one[i] = v[i];
    check_dir(f, one, p->name);
    one[i] = NULL;
  }
  free(one);
  double n2 = 0;
  for (int i = 0; i < f->p.n; i++) {
    const uint64_t key = dt_rng_key(5, (uint64_t)i);
    for (int64_t j = 0; j < f->p.p[i].numel; j++) {
      v[i][j] = (float)dt_rng_normal(key, (uint64_t)j);
      n2 += (double)v[i][j] * v[i][j];
    }
  }
  for (int i = 0; i < f->p.n; i++)
    for (int64_t j = 0; j < f->p.p[i].numel; j++) v[i][j] = (float)(v[i][j] / sqrt(n2));
  check_dir(f, v, "random direction over all tensors");
  for (int i = 0; i < f->p.n; i++) free(v[i]);
  free(v);
}

static void run_case(const char *family, const char *methods, int recompute,
                     const char *const *args, int nargs, int n_tensors) {
  fx f;
  if (fx_open(&f, family, methods, recompute, args, nargs))
    fail_msg("setup: %s", dt_error_message());
  assert_int_equal(f.p.n, n_tensors);
  /* at init (ones) the model is the backbone: loss of method none */
  const double l_init = loss(&f);
  fx base;
  if (fx_open(&base, family, "none", 0, NULL, 0)) fail_msg("setup: %s", dt_error_message());
  const double l_base = loss(&base);
  fx_close(&base);
  assert_true(fabs(l_init - l_base) < 1e-6);
  perturb(&f, 1.0, 0.3);
  check_grads(&f);
  fx_close(&f);
}

static void test_llama_all_paths(void **state) {
  (void)state;
  const char *a[] = {"--ia3-targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                     "--ia3-ff", "q_proj,o_proj,gate_proj"};
  run_case("llama", "ia3", 0, a, 4, 14);
}

static void test_llama_recompute(void **state) {
  (void)state;
  const char *a[] = {"--ia3-targets", "q_proj,v_proj,o_proj,up_proj,down_proj",
                     "--ia3-ff", "q_proj,o_proj,up_proj"};
  run_case("llama", "ia3", 1, a, 4, 10);
}

static void test_gpt2_other_targets(void **state) {
  (void)state;
  const char *a[] = {"--ia3-targets", "attn.c_proj,mlp.c_fc,c_attn", "--ia3-ff", "attn.c_proj"};
  run_case("gpt2", "ia3", 0, a, 4, 6);
}

static void expect_usage(const char *family, const char *const *args, int nargs,
                         const char *needle) {
  fx f;
  int rc = fx_open(&f, family, "ia3", 0, args, nargs);
  assert_int_equal(rc, DT_EUSAGE);
  if (!strstr(dt_error_message(), needle))
    fail_msg("error '%s' does not name '%s'", dt_error_message(), needle);
  fx_close(&f);
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
  fx f;
  assert_int_equal(fx_open(&f, "llama", "ia3", 0, NULL, 0), DT_OK);
  assert_int_equal(f.p.n, 6);
  assert_string_equal(f.p.p[0].name, "base_model.model.model.layers.0.self_attn.k_proj.ia3_l");
  assert_int_equal((int)f.p.p[0].shape[0], 24);
  assert_int_equal((int)f.p.p[0].shape[1], 1);
  assert_string_equal(f.p.p[2].name, "base_model.model.model.layers.0.mlp.down_proj.ia3_l");
  assert_int_equal((int)f.p.p[2].shape[0], 1);
  assert_int_equal((int)f.p.p[2].shape[1], 128);
  fx_close(&f);
  const char *a[] = {"--ia3-targets", "c_attn"};
  assert_int_equal(fx_open(&f, "gpt2", "ia3", 0, a, 2), DT_OK);
  assert_int_equal(f.p.n, 2);
  assert_int_equal((int)f.p.p[0].shape[0], 144);
  fx_close(&f);
  const char *b[] = {"--ia3-ff", "none"};
  assert_int_equal(fx_open(&f, "gpt2", "ia3", 0, b, 2), DT_OK);
  assert_int_equal(f.p.n, 4);
  assert_int_equal((int)f.p.p[1].shape[0], 48); /* mlp.c_proj output [48,1] */
  assert_int_equal((int)f.p.p[1].shape[1], 1);
  fx_close(&f);
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
