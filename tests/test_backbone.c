/* Methods that train backbone tensors in place (bitfit, lastlayer, full):
 * which tensors are registered, where they point, and the errors. The
 * fixture cases themselves are covered by the parity tests; this covers
 * the options and families the fixtures do not (--last-layers k > 1,
 * --last-layers-head, bf16 weights, method combinations). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "method.h"
#include "model.h"
#include "options.h"
#include "params.h"
#include "testutil.h"

typedef struct {
  dt_model m;
  dt_params p;
  dt_method **ms;
  int n;
  int rc;
} setup;

/* Load a fixture model and create the methods with the given lastlayer
 * options (argv style, NULL-terminated). */
static void make(setup *s, const char *family, int bf16, const char *methods,
                 const char **args) {
  memset(s, 0, sizeof *s);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/model", dt_test_fixture(family));
  assert_int_equal(dt_model_load(&s->m, dir, bf16, 1, NULL, 0), DT_OK);
  const dt_method_ops *ll = dt_method_lookup("lastlayer");
  assert_non_null(ll);
  static dt_options o;
  int argc = 0;
  char *argv[16];
  while (args && args[argc]) {
    argv[argc] = (char *)args[argc];
    argc++;
  }
  assert_int_equal(dt_options_parse(&o, "train", ll->options, 1, argc, argv), DT_OK);
  dt_error_clear();
  s->rc = dt_methods_create(methods, &o, &s->m, &s->p, 1, &s->ms, &s->n);
}

static void done(setup *s) {
  dt_methods_destroy(s->ms, s->n);
  dt_params_free(&s->p);
  dt_model_free(&s->m);
}

static int has(const setup *s, const char *name) { return dt_params_find(&s->p, name) != NULL; }

static void test_bitfit(void **state) {
  (void)state;
  setup s;
  /* biases are fp32 even with bf16 matrices: bitfit works on bf16 weights */
  make(&s, "gpt2", 1, "bitfit", NULL);
  assert_int_equal(s.rc, DT_OK);
  assert_int_equal(s.p.n, 13);
  assert_int_equal(s.p.numel, 1104);
  assert_true(has(&s, "transformer.h.0.ln_1.bias"));
  assert_true(has(&s, "transformer.h.1.mlp.c_proj.bias"));
  assert_true(has(&s, "transformer.ln_f.bias"));
  assert_false(has(&s, "transformer.ln_f.weight"));
  /* points into the backbone */
  assert_ptr_equal(dt_params_find(&s.p, "transformer.ln_f.bias")->data, s.m.bb->lnf_b.v);
  assert_ptr_equal(dt_params_find(&s.p, "transformer.ln_f.bias")->grad, s.m.bb->lnf_b.grad);
  done(&s);

  make(&s, "llama", 0, "bitfit", NULL);
  assert_int_equal(s.rc, DT_EUSAGE);
  assert_non_null(strstr(dt_error_message(), "--method bitfit: this LLaMA-family model"));
  assert_non_null(strstr(dt_error_message(), "has no bias terms; nothing to train"));
  done(&s);
}

static void test_lastlayer_default(void **state) {
  (void)state;
  setup s;
  make(&s, "llama", 0, "lastlayer", NULL);
  assert_int_equal(s.rc, DT_OK);
  assert_int_equal(s.p.n, 9);
  assert_int_equal(s.p.numel, 25440);
  for (int i = 0; i < s.p.n; i++)
    assert_int_equal(strncmp(s.p.p[i].name, "model.layers.1.", 15), 0);
  /* k_proj: a row block of the fused q|k|v matrix, not transposed */
  const dt_param *k = dt_params_find(&s.p, "model.layers.1.self_attn.k_proj.weight");
  assert_non_null(k);
  const dt_config *c = &s.m.bb->cfg;
  const dt_mat *qkv = &s.m.bb->layers[1].lin[DT_SITE_QKV];
  assert_ptr_equal(k->data, qkv->w + (size_t)dt_cfg_q_dim(c) * c->d_model);
  assert_ptr_equal(k->grad, qkv->grad + (size_t)dt_cfg_q_dim(c) * c->d_model);
  assert_int_equal(k->transposed, 0);
  assert_int_equal(k->shape[0], dt_cfg_kv_dim(c));
  assert_null(s.m.bb->layers[0].lin[DT_SITE_QKV].grad); /* block 0 stays frozen */
  done(&s);

  make(&s, "gpt2", 0, "lastlayer", NULL);
  assert_int_equal(s.rc, DT_OK);
  assert_int_equal(s.p.n, 12);
  assert_int_equal(s.p.numel, 28272);
  const dt_param *a = dt_params_find(&s.p, "transformer.h.1.attn.c_attn.weight");
  assert_non_null(a);
  assert_int_equal(a->transposed, 1); /* Conv1D: HF [in,out], storage [out,in] */
  assert_int_equal(a->shape[0], s.m.bb->cfg.d_model);
  assert_int_equal(a->shape[1], dt_cfg_qkv_dim(&s.m.bb->cfg));
  assert_ptr_equal(a->data, s.m.bb->layers[1].lin[DT_SITE_QKV].w);
  done(&s);
}

static void test_lastlayer_options(void **state) {
  (void)state;
  setup s;
  /* both blocks + head; tied GPT-2 head = the token embedding; wpe stays frozen */
  const char *gpt2_args[] = {"--last-layers", "2", "--last-layers-head", "yes", NULL};
  make(&s, "gpt2", 0, "lastlayer", gpt2_args);
  assert_int_equal(s.rc, DT_OK);
  assert_int_equal(s.p.n, 27);
  assert_true(has(&s, "transformer.h.0.ln_1.weight"));
  assert_true(has(&s, "transformer.ln_f.weight"));
  assert_true(has(&s, "transformer.ln_f.bias"));
  assert_true(has(&s, "transformer.wte.weight"));
  assert_false(has(&s, "transformer.wpe.weight"));
  assert_int_equal(s.p.numel, 64320 - (int64_t)s.m.bb->cfg.n_ctx * s.m.bb->cfg.d_model);
  done(&s);

  /* untied LLaMA head: model.norm + lm_head, not the embedding */
  const char *llama_args[] = {"--last-layers-head", "yes", NULL};
  make(&s, "llama", 0, "lastlayer", llama_args);
  assert_int_equal(s.rc, DT_OK);
  assert_int_equal(s.p.n, 11);
  assert_true(has(&s, "model.norm.weight"));
  assert_true(has(&s, "lm_head.weight"));
  assert_false(has(&s, "model.embed_tokens.weight"));
  assert_false(has(&s, "model.layers.0.input_layernorm.weight"));
  assert_ptr_equal(dt_params_find(&s.p, "lm_head.weight")->data, s.m.bb->lm_head.w);
  done(&s);

  const char *too_many[] = {"--last-layers", "3", NULL};
  make(&s, "llama", 0, "lastlayer", too_many);
  assert_int_equal(s.rc, DT_EUSAGE);
  assert_non_null(strstr(dt_error_message(), "--last-layers 3"));
  assert_non_null(strstr(dt_error_message(), "only 2 layers"));
  done(&s);

  /* matrices cannot be trained in bf16 storage */
  make(&s, "gpt2", 1, "lastlayer", NULL);
  assert_int_equal(s.rc, DT_EUSAGE);
  assert_non_null(strstr(dt_error_message(), "--weights-dtype fp32"));
  done(&s);
}

static void test_full(void **state) {
  (void)state;
  setup s;
  make(&s, "gpt2", 0, "full", NULL);
  assert_int_equal(s.rc, DT_OK);
  assert_int_equal(s.p.n, 28); /* the tied lm_head is transformer.wte.weight */
  assert_int_equal(s.p.numel, dt_model_param_count(&s.m));
  assert_false(has(&s, "lm_head.weight"));
  done(&s);

  make(&s, "llama", 0, "full", NULL);
  assert_int_equal(s.rc, DT_OK);
  assert_int_equal(s.p.n, 21);
  assert_int_equal(s.p.numel, dt_model_param_count(&s.m));
  assert_true(has(&s, "lm_head.weight"));
  done(&s);

  make(&s, "llama", 1, "full", NULL);
  assert_int_equal(s.rc, DT_EUSAGE);
  assert_non_null(strstr(dt_error_message(), "--weights-dtype fp32"));
  done(&s);

  /* two methods training the same backbone tensor */
  make(&s, "gpt2", 0, "full,bitfit", NULL);
  assert_int_equal(s.rc, DT_EUSAGE);
  assert_non_null(strstr(dt_error_message(), "'full' and 'bitfit' both train"));
  done(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bitfit),
      cmocka_unit_test(test_lastlayer_default),
      cmocka_unit_test(test_lastlayer_options),
      cmocka_unit_test(test_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
