/* Parameter table: canonical names, layouts, safetensors save/load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "params.h"
#include "safetensors.h"
#include "testutil.h"

static void canon_is(const char *in, const char *want) {
  char out[DT_PARAM_NAME_MAX];
  dt_param_canonical(out, sizeof out, in);
  assert_string_equal(out, want);
}

static void test_canonical(void **state) {
  (void)state;
  canon_is("base_model.model.transformer.h.0.attn.c_attn.lora_A.default.weight",
           "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
  canon_is("prompt_encoder.default.embedding.weight",
           "prompt_encoder.embedding.weight");
  canon_is("x.ia3_l.default", "x.ia3_l");
  canon_is("default.x", "x");
  canon_is("a.default.default.b", "a.b");
  canon_is("transformer.wte.weight", "transformer.wte.weight");
  canon_is("defaults.x.nodefault", "defaults.x.nodefault");
  char small[8];
  dt_param_canonical(small, sizeof small, "abc.default.defghijk");
  assert_string_equal(small, "abc.def");
}

static void test_add_find(void **state) {
  (void)state;
  dt_params t = {0};
  float a[6], b[5];
  int64_t sa[2] = {2, 3}, sb[1] = {5};
  assert_int_equal(dt_params_add(&t, "lora", "m.lora_A.default.weight", 2, sa,
                                 a, NULL, 0),
                   DT_OK);
  assert_int_equal(dt_params_add(&t, "bitfit", "m.bias", 1, sb, b, NULL, 0),
                   DT_OK);
  assert_int_equal(t.n, 2);
  assert_int_equal(t.numel, 11);
  assert_int_equal(t.p[0].numel, 6);
  const dt_param *p = dt_params_find(&t, "m.lora_A.weight");
  assert_non_null(p);
  assert_ptr_equal(p->data, a);
  assert_string_equal(p->name, "m.lora_A.default.weight");
  assert_ptr_equal(dt_params_find(&t, "m.default.bias"), &t.p[1]);
  assert_null(dt_params_find(&t, "m.lora_B.weight"));
  /* Duplicate canonical name. */
  dt_error_clear();
  assert_int_equal(dt_params_add(&t, "lora", "m.lora_A.weight", 2, sa, a, NULL, 0),
                   DT_EINTERNAL);
  assert_non_null(strstr(dt_error_message(), "m.lora_A.weight"));
  /* Growth past the first capacity. */
  for (int i = 0; i < 100; i++) {
    char name[32];
    snprintf(name, sizeof name, "p%d", i);
    assert_int_equal(dt_params_add(&t, "x", name, 1, sb, b, NULL, 0), DT_OK);
  }
  assert_int_equal(t.n, 102);
  assert_ptr_equal(dt_params_find(&t, "p77"), &t.p[79]);
  dt_params_free(&t);
  assert_int_equal(t.n, 0);
}

static void test_transposed(void **state) {
  (void)state;
  dt_params t = {0};
  enum { R = 3, C = 5 };
  float store[R * C], ext[R * C], back[R * C];
  int64_t shape[2] = {R, C};
  assert_int_equal(dt_params_add(&t, "full", "w", 2, shape, store, NULL, 1), DT_OK);
  for (int i = 0; i < R * C; i++) ext[i] = (float)(10 * (i / C) + i % C);
  dt_param_from_external(&t.p[0], ext, store);
  /* storage is [C, R]: store[j][i] == ext[i][j] */
  for (int i = 0; i < R; i++)
    for (int j = 0; j < C; j++) assert_true(store[j * R + i] == ext[i * C + j]);
  dt_param_to_external(&t.p[0], store, back);
  assert_memory_equal(back, ext, sizeof ext);
  /* Not transposed: plain copies. */
  t.p[0].transposed = 0;
  dt_param_from_external(&t.p[0], ext, store);
  assert_memory_equal(store, ext, sizeof ext);
  /* Zeroing gradients. */
  float g[R * C];
  for (int i = 0; i < R * C; i++) g[i] = 1.0f;
  t.p[0].grad = g;
  int64_t s1[1] = {4};
  assert_int_equal(dt_params_add(&t, "x", "nograd", 1, s1, back, NULL, 0), DT_OK);
  dt_params_zero_grad(&t);
  for (int i = 0; i < R * C; i++) assert_true(g[i] == 0.0f);
  dt_params_free(&t);
}

/* Run python on the file and return its output (malloc'd). */
static char *py(const char *path, const char *code) {
  char *out = NULL;
  int rc = dt_test_run(
      &out,
      "/usr/bin/python3 -c 'import sys, json, struct, numpy as np\n"
      "f = open(sys.argv[1], \"rb\"); n = struct.unpack(\"<Q\", f.read(8))[0]\n"
      "h = json.loads(f.read(n)); d = f.read()\n"
      "def T(k):\n"
      "  e = h[k]; b, q = e[\"data_offsets\"]\n"
      "  assert e[\"dtype\"] == \"F32\"\n"
      "  return np.frombuffer(d[b:q], dtype=\"<f4\").reshape(e[\"shape\"])\n"
      "%s' '%s'",
      code, path);
  if (rc != 0) fail_msg("python failed (%d): %s", rc, out ? out : "");
  return out;
}

static void test_save_load(void **state) {
  (void)state;
  enum { R = 3, C = 5, N = 7 };
  float w[R * C], b[N], gw[R * C], gb[N];
  for (int i = 0; i < R * C; i++) w[i] = 0.5f * (float)i - 1.0f, gw[i] = (float)i;
  for (int i = 0; i < N; i++) b[i] = 0.25f * (float)i, gb[i] = -(float)i;
  int64_t sw[2] = {R, C}, sb[1] = {N};
  dt_params t = {0};
  assert_int_equal(dt_params_add(&t, "full", "h.0.attn.c_attn.weight", 2, sw, w,
                                 gw, 1),
                   DT_OK);
  assert_int_equal(dt_params_add(&t, "bitfit", "h.0.attn.c_attn.bias", 1, sb, b,
                                 gb, 0),
                   DT_OK);
  char path[512], gpath[512];
  snprintf(path, sizeof path, "%s/params.safetensors", dt_test_tmpdir());
  snprintf(gpath, sizeof gpath, "%s/grads.safetensors", dt_test_tmpdir());
  assert_int_equal(dt_params_save(&t, path, 0), DT_OK);
  assert_int_equal(dt_params_save(&t, gpath, 1), DT_OK);

  /* Independent reader: the file holds the external [R, C] layout. */
  char *out = py(path,
                 "w = T(\"h.0.attn.c_attn.weight\"); b = T(\"h.0.attn.c_attn.bias\")\n"
                 "print(sorted(h.keys()), list(w.shape), list(b.shape))\n"
                 "print(\"%r %r %r\" % (float(w[1, 2]), float(w[2, 4]), float(b[6])))");
  float want12 = w[2 * R + 1], want24 = w[4 * R + 2]; /* storage [C, R] */
  double v12, v24, vb6;
  const char *l2 = strchr(out, '\n');
  assert_non_null(l2);
  assert_non_null(strstr(out, "'h.0.attn.c_attn.bias', 'h.0.attn.c_attn.weight'"));
  assert_non_null(strstr(out, "[3, 5] [7]"));
  assert_int_equal(sscanf(l2 + 1, "%lf %lf %lf", &v12, &v24, &vb6), 3);
  assert_true(v12 == (double)want12);
  assert_true(v24 == (double)want24);
  assert_true(vb6 == (double)b[6]);
  free(out);

  /* Load into a second table registered under PEFT-style names. */
  float w2[R * C], b2[N];
  memset(w2, 0, sizeof w2);
  memset(b2, 0, sizeof b2);
  dt_params u = {0};
  assert_int_equal(dt_params_add(&u, "full", "h.0.attn.c_attn.default.weight", 2,
                                 sw, w2, NULL, 1),
                   DT_OK);
  assert_int_equal(dt_params_add(&u, "bitfit", "h.0.attn.c_attn.bias", 1, sb, b2,
                                 NULL, 0),
                   DT_OK);
  dt_error_clear();
  int rc = dt_params_load(&u, path);
  if (rc) fail_msg("load: %s", dt_error_message());
  assert_memory_equal(w2, w, sizeof w);
  assert_memory_equal(b2, b, sizeof b);

  /* Gradients file, loaded as data; spaces around names tolerated. */
  char both[1100];
  memset(w2, 0, sizeof w2);
  snprintf(both, sizeof both, " %s ", gpath);
  assert_int_equal(dt_params_load(&u, both), DT_OK);
  assert_memory_equal(w2, gw, sizeof gw);
  assert_memory_equal(b2, gb, sizeof gb);
  /* Both files hold every tensor: ambiguous. */
  snprintf(both, sizeof both, "%s,%s", gpath, path);
  dt_error_clear();
  assert_int_equal(dt_params_load(&u, both), DT_EINPUT);
  assert_non_null(strstr(dt_error_message(), "h.0.attn.c_attn.default.weight"));
  assert_non_null(strstr(dt_error_message(), "two tensors"));
  assert_non_null(strstr(dt_error_message(), gpath));
  dt_params_free(&u);

  /* Parameters spread over two files. */
  char wpath[512], bpath[512];
  snprintf(wpath, sizeof wpath, "%s/w.safetensors", dt_test_tmpdir());
  snprintf(bpath, sizeof bpath, "%s/b.safetensors", dt_test_tmpdir());
  dt_params tw = {0}, tb = {0};
  assert_int_equal(dt_params_add(&tw, "full", "h.0.attn.c_attn.weight", 2, sw, w,
                                 gw, 1), DT_OK);
  assert_int_equal(dt_params_add(&tb, "bitfit", "h.0.attn.c_attn.bias", 1, sb, b,
                                 gb, 0), DT_OK);
  assert_int_equal(dt_params_save(&tw, wpath, 0), DT_OK);
  assert_int_equal(dt_params_save(&tb, bpath, 1), DT_OK);
  dt_params_free(&tw);
  dt_params_free(&tb);
  assert_int_equal(dt_params_add(&u, "full", "h.0.attn.c_attn.weight", 2, sw, w2,
                                 NULL, 1), DT_OK);
  assert_int_equal(dt_params_add(&u, "bitfit", "h.0.attn.c_attn.bias", 1, sb, b2,
                                 NULL, 0), DT_OK);
  snprintf(both, sizeof both, "%s,%s", wpath, bpath);
  memset(w2, 0, sizeof w2);
  memset(b2, 0, sizeof b2);
  rc = dt_params_load(&u, both);
  if (rc) fail_msg("load two files: %s", dt_error_message());
  assert_memory_equal(w2, w, sizeof w);
  assert_memory_equal(b2, gb, sizeof gb);
  dt_params_free(&u);

  /* Errors: missing tensor, wrong shape, nothing matching. */
  dt_params m = {0};
  float extra[4];
  int64_t s4[1] = {4};
  assert_int_equal(dt_params_add(&m, "full", "h.0.attn.c_attn.weight", 2, sw, w2,
                                 NULL, 1),
                   DT_OK);
  assert_int_equal(dt_params_add(&m, "lora", "h.0.extra.weight", 1, s4, extra,
                                 NULL, 0),
                   DT_OK);
  dt_error_clear();
  assert_int_equal(dt_params_load(&m, path), DT_EINPUT);
  assert_non_null(strstr(dt_error_message(), "h.0.extra.weight"));
  assert_non_null(strstr(dt_error_message(), path));
  dt_params_free(&m);

  dt_params s = {0};
  int64_t wrong[1] = {6};
  assert_int_equal(dt_params_add(&s, "bitfit", "h.0.attn.c_attn.bias", 1, wrong,
                                 b2, NULL, 0),
                   DT_OK);
  dt_error_clear();
  assert_int_equal(dt_params_load(&s, path), DT_EINPUT);
  const char *msg = dt_error_message();
  if (!strstr(msg, "h.0.attn.c_attn.bias") || !strstr(msg, "[7]") ||
      !strstr(msg, "[6]") || !strstr(msg, path))
    fail_msg("shape error lacks details: %s", msg);
  dt_params_free(&s);

  dt_params z = {0};
  assert_int_equal(dt_params_add(&z, "lora", "other.weight", 1, s4, extra, NULL, 0),
                   DT_OK);
  dt_error_clear();
  assert_int_equal(dt_params_load(&z, path), DT_EINPUT);
  assert_non_null(strstr(dt_error_message(), "none of"));
  assert_non_null(strstr(dt_error_message(), "other.weight"));
  /* A file that does not exist. */
  assert_int_not_equal(dt_params_load(&z, "/nonexistent/x.safetensors"), DT_OK);
  dt_params_free(&z);
  dt_params_free(&t);
}

static void test_lora_fixture(void **state) {
  (void)state;
  const char *file = dt_test_fixture("gpt2/lora/init.safetensors");
  static const char *mods[2] = {"attn.c_attn", "mlp.c_fc"};
  static const int64_t outs[2] = {144, 192};
  dt_params t = {0};
  float *bufs[8];
  char names[8][DT_PARAM_NAME_MAX];
  int k = 0;
  for (int layer = 0; layer < 2; layer++)
    for (int m = 0; m < 2; m++)
      for (int ab = 0; ab < 2; ab++) {
        int64_t shape[2] = {ab ? outs[m] : 4, ab ? 4 : 48};
        snprintf(names[k], sizeof names[k],
                 "base_model.model.transformer.h.%d.%s.lora_%c.weight", layer,
                 mods[m], ab ? 'B' : 'A');
        bufs[k] = calloc((size_t)(shape[0] * shape[1]), sizeof(float));
        assert_int_equal(dt_params_add(&t, "lora", names[k], 2, shape, bufs[k],
                                       NULL, 0),
                         DT_OK);
        k++;
      }
  dt_error_clear();
  int rc = dt_params_load(&t, file);
  if (rc) fail_msg("load: %s", dt_error_message());

  /* Expected values from numpy reading the same file. */
  char *out = py(file,
                 "for k in sorted(h):\n"
                 "  if k == \"__metadata__\": continue\n"
                 "  a = T(k).astype(np.float64)\n"
                 "  print(k.replace(\".default\", \"\"), repr(float(a.sum())), "
                 "repr(float(abs(a).sum())), repr(float(a[1, 2])), "
                 "repr(float(a[-1, -1])))");
  int lines = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    char name[DT_PARAM_NAME_MAX];
    double sum, asum, v12, vlast;
    assert_int_equal(sscanf(line, "%159s %lf %lf %lf %lf", name, &sum, &asum,
                            &v12, &vlast),
                     5);
    const dt_param *p = dt_params_find(&t, name);
    if (!p) fail_msg("python lists %s, not in the table", name);
    double s = 0, as = 0;
    for (int64_t i = 0; i < p->numel; i++) s += p->data[i], as += fabs(p->data[i]);
    assert_true(fabs(s - sum) <= 1e-9 * (1 + asum));
    assert_true(fabs(as - asum) <= 1e-9 * (1 + asum));
    assert_true((double)p->data[1 * p->shape[1] + 2] == v12);
    assert_true((double)p->data[p->numel - 1] == vlast);
    lines++;
  }
  assert_int_equal(lines, 8);
  free(out);
  /* lora_A is random (not all zero): the comparison above is meaningful. */
  double as = 0;
  for (int i = 0; i < 4 * 48; i++) as += fabs(t.p[0].data[i]);
  assert_true(as > 0);
  for (int i = 0; i < 8; i++) free(bufs[i]);
  dt_params_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_canonical),
      cmocka_unit_test(test_add_find),
      cmocka_unit_test(test_transposed),
      cmocka_unit_test(test_save_load),
      cmocka_unit_test(test_lora_fixture),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
