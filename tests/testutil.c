#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "arch.h"
#include "error.h"
#include "rng.h"

static char g_path[8][4096];
static int g_slot;

static const char *rotate(const char *fmt, const char *a, const char *b) {
  char *p = g_path[g_slot++ % 8];
  snprintf(p, 4096, fmt, a, b);
  return p;
}

const char *dt_test_fixture(const char *rel) {
  return rotate("%s/hf-parity/%s", DT_TESTDATA_DIR, rel);
}

const char *dt_test_data(const char *rel) {
  return rotate("%s/%s", DT_TESTDATA_DIR, rel);
}

uint64_t dt_test_rand_u64(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545f4914f6cdd1dull;
}

float dt_test_rand_pm1(uint64_t *state) {
  return (float)((double)(dt_test_rand_u64(state) >> 11) / 4503599627370496.0 - 1.0);
}

int dt_test_count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

void dt_test_expect(const char *out, const char *needle, const char *what) {
  if (!strstr(out ? out : "", needle))
    fail_msg("%s: output lacks '%s':\n%s", what, needle, out ? out : "");
}

double dt_test_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

const char *dt_test_mount_dir(void) {
  static char dir[64];
  snprintf(dir, sizeof dir, "/dev/shm/dt-mnt-XXXXXX");
  if (!mkdtemp(dir)) fail_msg("mkdtemp %s: cannot make a folder for mounts", dir);
  return dir;
}

void dt_test_unavailable(const char *why) {
  const char *ci = getenv("CI");
  if (ci && !strcmp(ci, "true"))
    fail_msg("cannot run here: %s (CI=true: a component that cannot start is a failure, not a skip)", why);
  printf("SKIPPED: %s\n", why);
  skip();
}

const char *dt_test_tmpdir(void) {
  static char dir[256];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/dt-test-XXXXXX");
    if (!mkdtemp(dir)) return "/tmp";
  }
  return dir;
}

const char *dt_test_tmp(const char *name) {
  static char buf[16][1024];
  static int slot;
  char *p = buf[slot++ % 16];
  snprintf(p, 1024, "%s/%s", dt_test_tmpdir(), name);
  return p;
}

void dt_test_write(const char *path, const char *s) {
  FILE *f = fopen(path, "wb");
  if (!f) fail_msg("cannot write %s", path);
  fputs(s, f);
  if (fclose(f) != 0) fail_msg("cannot write %s", path);
}

const char *dt_test_config_dir(const char *name, const char *json) {
  const char *d = dt_test_tmp(name);
  mkdir(d, 0755);
  char p[1100];
  snprintf(p, sizeof p, "%s/config.json", d);
  dt_test_write(p, json);
  return d;
}

void dt_test_error_has(const char *needle) {
  const char *m = dt_error_message();
  if (!strstr(m, needle)) fail_msg("error message \"%s\" lacks \"%s\"", m, needle);
}

char *dt_test_slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  if (buf) buf[n] = 0;
  fclose(f);
  return buf;
}

int dt_test_run(char **out, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[8400];
  snprintf(full, sizeof full, "( %s ) 2>&1", cmd);
  FILE *p = popen(full, "r");
  if (!p) return -1;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += r;
    if (cap - len < 1024) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
  }
  if (buf) buf[len] = 0;
  int st = pclose(p);
  if (out) *out = buf; else free(buf);
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

/* ------------------------------------------------ gradient-check fixture */

int dt_test_fx_open(dt_test_fx *f, const char *family, const char *methods,
                    int recompute, const char *const *args, int nargs) {
  memset(f, 0, sizeof *f);
  dt_optgroup g[32];
  int ng = 0;
  for (int i = 0; i < dt_method_count() && ng < 32; i++)
    if (dt_method_at(i)->options) g[ng++] = *dt_method_at(i)->options;
  char *argv[32];
  DT_CHECK(nargs <= 32, DT_EINTERNAL, "test fixture: %d arguments (at most 32)", nargs);
  for (int i = 0; i < nargs; i++) argv[i] = (char *)args[i];
  DT_CALL(dt_options_parse(&f->opt, "test", g, ng, nargs, argv));
  char path[64];
  snprintf(path, sizeof path, "%s/model", family);
  DT_CALL(dt_model_load(&f->m, dt_test_fixture(path), 0, 1, NULL, 0));
  DT_CALL(dt_methods_create(methods, &f->opt, &f->m, &f->p, 3, &f->ms, &f->nm));
  DT_CALL(dt_model_set_methods(&f->m, f->ms, f->nm));
  DT_CALL(dt_model_plan(&f->m, DT_TEST_FX_B, DT_TEST_FX_T, recompute));
  const uint64_t key = dt_rng_key(11, 1);
  for (int i = 0; i < DT_TEST_FX_B * DT_TEST_FX_T; i++)
    f->ids[i] = (int32_t)(dt_rng_u64(key, (uint64_t)i) % (uint64_t)f->m.bb->cfg.vocab);
  f->count = DT_TEST_FX_B * (DT_TEST_FX_T - 1);
  return DT_OK;
}

void dt_test_fx_close(dt_test_fx *f) {
  dt_methods_destroy(f->ms, f->nm);
  dt_params_free(&f->p);
  dt_model_free(&f->m);
}

double dt_test_fx_loss(dt_test_fx *f) {
  dt_loss_stats st;
  assert_int_equal(dt_model_forward(&f->m, f->ids, NULL, 0, 1.0, &st, NULL), DT_OK);
  assert_int_equal((int)st.n_scored, (int)f->count);
  return st.loss_sum / f->count;
}

void dt_test_fx_perturb(dt_test_fx *f, double amp) {
  for (int i = 0; i < f->p.n; i++) {
    const double base = strcmp(f->p.p[i].method, "ia3") == 0 ? 1.0 : 0.0;
    const uint64_t key = dt_rng_key(99, (uint64_t)i);
    for (int64_t j = 0; j < f->p.p[i].numel; j++)
      f->p.p[i].data[j] = (float)(base + amp * dt_rng_normal(key, (uint64_t)j));
  }
}

/* Central difference along v (per tensor, NULL = 0) vs g . v. */
static void check_dir(dt_test_fx *f, float **v, const char *what) {
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
    double l = dt_test_fx_loss(f);
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

void dt_test_fx_check_grads(dt_test_fx *f) {
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

void dt_test_gradcheck(const char *family, const char *methods, int recompute,
                       const char *const *args, int nargs, int n_tensors) {
  dt_test_fx f;
  if (dt_test_fx_open(&f, family, methods, recompute, args, nargs))
    fail_msg("setup: %s", dt_error_message());
  assert_int_equal(f.p.n, n_tensors);
  /* the fresh init leaves the model unchanged: loss of method none */
  const double l_init = dt_test_fx_loss(&f);
  dt_test_fx base;
  if (dt_test_fx_open(&base, family, "none", 0, NULL, 0))
    fail_msg("setup: %s", dt_error_message());
  const double l_base = dt_test_fx_loss(&base);
  dt_test_fx_close(&base);
  assert_true(fabs(l_init - l_base) < 1e-6);
  dt_test_fx_perturb(&f, 0.3);
  dt_test_fx_check_grads(&f);
  dt_test_fx_close(&f);
}

/* --- metrics and tensor files --------------------------------------------- */

double *dt_test_read_losses(const char *path, int *n) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  double *v = calloc(64, sizeof(double));
  char line[4096];
  int k = 0;
  while (k < 64 && fgets(line, sizeof line, f)) {
    json_error_t e;
    json_t *o = json_loads(line, 0, &e);
    if (!o) continue;
    json_t *step = json_object_get(o, "step"), *loss = json_object_get(o, "loss");
    if (json_is_integer(step) && json_integer_value(step) == k && json_is_number(loss))
      v[k++] = json_number_value(loss);
    json_decref(o);
  }
  fclose(f);
  *n = k;
  return v;
}

float *dt_test_read_tensor(const dt_st_file *f, const dt_st_tensor *t) {
  float *v = malloc(sizeof(float) * (t->numel ? t->numel : 1));
  if (dt_st_read_f32(f, t, 0, t->numel, v)) {
    free(v);
    return NULL;
  }
  return v;
}

/* The files' name of a tensor that transformers 5 names `name` in its
 * modules (a row's alias in io/arch.c: GPT-NeoX's lm_head.weight is
 * embed_out.weight in the files and in deltatune's dumps), or NULL. */
static const char *file_name_of_alias(const char *name) {
  for (int a = 1;; a++) {
    const dt_arch_desc *A = dt_arch_get((dt_arch)a);
    if (!A) return NULL;
    for (int i = 0; i < A->n_tensors; i++)
      if (A->tensors[i].alias && !strcmp(A->tensors[i].alias, name)) return A->tensors[i].name;
  }
}

double dt_test_compare_tensors(const char *got_path, const char *ref_path, double tol,
                          const char *what) {
  dt_st_file got, ref;
  assert_int_equal(dt_st_open(&got, got_path), 0);
  assert_int_equal(dt_st_open(&ref, ref_path), 0);
  int matched = 0;
  double worst = 0;
  /* The whole reference's norm: a tensor whose reference is below 1e-7 of
   * it is zero up to rounding (OPT's key biases: a shift of every key moves
   * every score of a query alike, which softmax ignores), and its relative
   * error compares two roundings; it is held to 1e-7 of the whole instead. */
  double whole = 0;
  for (int i = 0; i < ref.n && tol > 0; i++) {
    float *b = dt_test_read_tensor(&ref, &ref.t[i]);
    assert_non_null(b);
    for (int64_t k = 0; k < ref.t[i].numel; k++) whole += (double)b[k] * b[k];
    free(b);
  }
  whole = sqrt(whole);
  for (int i = 0; i < ref.n; i++) {
    char cr[256];
    dt_param_canonical(cr, sizeof cr, ref.t[i].name);
    const dt_st_tensor *g = NULL;
    for (int j = 0; j < got.n && !g; j++) {
      char cg[256];
      dt_param_canonical(cg, sizeof cg, got.t[j].name);
      if (!strcmp(cg, cr)) g = &got.t[j];
    }
    const char *file_name = g ? NULL : file_name_of_alias(ref.t[i].name);
    for (int j = 0; j < got.n && !g && file_name; j++)
      if (!strcmp(got.t[j].name, file_name)) g = &got.t[j];
    if (!g) fail_msg("%s: tensor %s missing from %s", what, ref.t[i].name, got_path);
    assert_int_equal(g->numel, ref.t[i].numel);
    assert_int_equal(g->ndim, ref.t[i].ndim);
    for (int d = 0; d < g->ndim; d++) assert_int_equal(g->shape[d], ref.t[i].shape[d]);
    float *a = dt_test_read_tensor(&got, g), *b = dt_test_read_tensor(&ref, &ref.t[i]);
    assert_non_null(a);
    assert_non_null(b);
    double num = 0, den = 0;
    for (int64_t k = 0; k < g->numel; k++) {
      num += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
      den += (double)b[k] * b[k];
    }
    if (tol > 0 && sqrt(den) < 1e-7 * whole) {
      if (!(sqrt(num) <= 1e-7 * whole))
        fail_msg("%s: %s is zero up to rounding in the reference (L2 %.1e of the whole's %.1e) "
                 "but differs from it by %.3e", what, ref.t[i].name, sqrt(den), whole, sqrt(num));
    } else {
      const double rel = sqrt(num) / (sqrt(den) + 1e-30);
      if (rel > worst) worst = rel;
      if (!(rel <= tol))
        fail_msg("%s: %s relative L2 error %.3e > %.1e", what, ref.t[i].name, rel, tol);
    }
    free(a);
    free(b);
    matched++;
  }
  assert_int_equal(got.n, ref.n); /* no extra tensors */
  assert_true(matched > 0 || ref.n == 0);
  dt_st_close(&got);
  dt_st_close(&ref);
  return worst;
}
