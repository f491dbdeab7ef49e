/* SAID through the command line: fresh init (theta 0, lam 1), the eval path
 * with an imported projection, one projection for every rank count, and the
 * errors for bad targets, bf16 weights and bad projection files.
 *
 * usage: test_said MPIRUN... (the launcher for the 2-rank case) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "testutil.h"

static char g_mpirun[1024];

static char g_fix[512]; /* tests/data/hf-parity */

static float *read_all(const char *path, const char *name, int64_t *n) {
  dt_st_file f;
  if (dt_st_open(&f, path)) return NULL;
  const dt_st_tensor *t = name ? dt_st_find(&f, name) : &f.t[0];
  float *v = NULL;
  if (t) {
    v = malloc(sizeof(float) * (t->numel ? t->numel : 1));
    *n = t->numel;
    if (dt_st_read_f32(&f, t, 0, t->numel, v)) {
      free(v);
      v = NULL;
    }
  }
  dt_st_close(&f);
  return v;
}

static double *losses(const char *path, int *n) {
  char *s = dt_test_slurp(path);
  double *v = calloc(64, sizeof(double));
  *n = 0;
  for (char *p = s; p && (p = strstr(p, "\"loss\": ")) && *n < 64; p += 8)
    v[(*n)++] = atof(p + 8);
  free(s);
  return v;
}

/* Fresh init: theta = 0 and lam = 1 (the paper's), written by --steps 0. */
static void test_fresh_init(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char *out = NULL;
  int rc = dt_test_run(&out,
                       "%s train --model %s/llama/model --data %s/llama/batch.safetensors "
                       "--batch-size 2 --steps 0 --method said --said-dim 40 --out %s/fresh",
                       DT_BINARY, g_fix, g_fix, tmp);
  if (rc) fail_msg("exit %d:\n%s", rc, out);
  free(out);
  char p[1200];
  snprintf(p, sizeof p, "%s/fresh/deltas.safetensors", tmp);
  int64_t nt = 0, nl = 0;
  float *theta = read_all(p, "theta", &nt), *lam = read_all(p, "lam", &nl);
  assert_non_null(theta);
  assert_non_null(lam);
  assert_int_equal(nt, 40);
  assert_int_equal(nl, 14); /* 7 matrices x 2 layers */
  for (int64_t i = 0; i < nt; i++) assert_true(theta[i] == 0.0f);
  for (int64_t i = 0; i < nl; i++) assert_true(lam[i] == 1.0f);
  free(theta);
  free(lam);
}

/* eval (no gradient buffers) with the fixture's init and projection gives
 * the fixture's first logits. */
static void test_eval_imported(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  const char *fams[2] = {"gpt2", "llama"};
  for (int k = 0; k < 2; k++) {
    const char *fam = fams[k];
    char *out = NULL;
    int rc = dt_test_run(
        &out,
        "%s eval --model %s/%s/model --data %s/%s/batch.safetensors --batch-size 2 "
        "--method said --said-dim 24 --init-from %s/%s/said/init.safetensors,"
        "%s/%s/said/projection.safetensors --dump-logits %s/eval_%s.safetensors",
        DT_BINARY, g_fix, fam, g_fix, fam, g_fix, fam, g_fix, fam, tmp, fam);
    if (rc) fail_msg("%s: exit %d:\n%s", fam, rc, out);
    free(out);
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/eval_%s.safetensors", tmp, fam);
    snprintf(b, sizeof b, "%s/%s/said/logits0.safetensors", g_fix, fam);
    int64_t na = 0, nb = 0;
    float *x = read_all(a, NULL, &na), *y = read_all(b, NULL, &nb);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(na, nb);
    double mx = 0;
    for (int64_t i = 0; i < na; i++) mx = fmax(mx, fabs((double)x[i] - y[i]));
    if (!(mx <= 1e-4)) fail_msg("%s: eval logits max abs error %.3e", fam, mx);
    free(x);
    free(y);
  }
}

/* A generated projection is the same on every rank and for every rank
 * count: 2 ranks (one row each) follow the 1-rank losses; and it trains. */
static void test_ranks(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char *out = NULL;
  const char *args = "--batch-size 2 --steps 4 --lr 1e-2 --method said --said-dim 32 "
                     "--said-targets c_attn,mlp.c_fc --seed 5";
  int rc = dt_test_run(&out,
                       "%s train --model %s/gpt2/model --data %s/gpt2/batch.safetensors %s "
                       "--metrics %s/r1.jsonl",
                       DT_BINARY, g_fix, g_fix, args, tmp);
  if (rc) fail_msg("1 rank: exit %d:\n%s", rc, out);
  free(out);
  rc = dt_test_run(&out,
                   "%s -np 2 %s train --model %s/gpt2/model --data %s/gpt2/batch.safetensors "
                   "%s --metrics %s/r2.jsonl",
                   g_mpirun, DT_BINARY, g_fix, g_fix, args, tmp);
  if (rc) fail_msg("2 ranks: exit %d:\n%s", rc, out);
  free(out);
  char p1[1200], p2[1200];
  snprintf(p1, sizeof p1, "%s/r1.jsonl", tmp);
  snprintf(p2, sizeof p2, "%s/r2.jsonl", tmp);
  int n1, n2;
  double *a = losses(p1, &n1), *b = losses(p2, &n2);
  assert_int_equal(n1, 4);
  assert_int_equal(n2, 4);
  for (int k = 0; k < 4; k++)
    if (!(fabs(a[k] - b[k]) <= 2e-6))
      fail_msg("step %d: 1 rank %.9f, 2 ranks %.9f", k, a[k], b[k]);
  if (!(a[3] < a[0] - 1e-4)) fail_msg("loss did not fall: %.6f -> %.6f", a[0], a[3]);
  free(a);
  free(b);
}

static void expect_error(const char *cmd_args, int code, const char *needle1,
                         const char *needle2) {
  char *out = NULL;
  int rc = dt_test_run(&out, "%s %s", DT_BINARY, cmd_args);
  if (rc != code || !out || !strstr(out, needle1) || (needle2 && !strstr(out, needle2)))
    fail_msg("expected exit %d mentioning '%s'%s%s, got %d:\n%s", code, needle1,
             needle2 ? " and " : "", needle2 ? needle2 : "", rc, out ? out : "");
  free(out);
}

static void test_usage_errors(void **state) {
  (void)state;
  char a[4096];
  snprintf(a, sizeof a,
           "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors --method said "
           "--said-targets c_attn,nope",
           g_fix, g_fix);
  expect_error(a, 2, "'nope'", "--said-targets");
  snprintf(a, sizeof a,
           "train --model %s/llama/model --data %s/llama/batch.safetensors --method said "
           "--said-targets c_attn",
           g_fix, g_fix);
  expect_error(a, 2, "'c_attn'", "q_proj");
  snprintf(a, sizeof a,
           "train --model %s/llama/model --data %s/llama/batch.safetensors --method said "
           "--weights-dtype bf16",
           g_fix, g_fix);
  expect_error(a, 2, "fp32", NULL);
  /* the fixture projection has 14 tensors; only 2 are projected here */
  snprintf(a, sizeof a,
           "train --model %s/llama/model --data %s/llama/batch.safetensors --method said "
           "--said-dim 24 --said-targets q_proj --init-from %s/llama/said/init.safetensors,"
           "%s/llama/said/projection.safetensors",
           g_fix, g_fix, g_fix, g_fix);
  expect_error(a, 3, "--said-targets", "projection.safetensors");
  /* a method training the same weights would lose its updates */
  char *list = NULL;
  dt_test_run(&list, "%s methods", DT_BINARY);
  if (list && strstr(list, "lastlayer")) {
    snprintf(a, sizeof a,
             "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors --method "
             "lastlayer,said",
             g_fix, g_fix);
    expect_error(a, 2, "lastlayer", "rewrites");
  } else {
    printf("note: method lastlayer is not built; combination check skipped\n");
  }
  free(list);
}

/* Projection files: a wrong shape, a Pi that is no permutation, a float Pi,
 * a missing part. GPT-2 with --said-targets transformer.h.0.attn.c_proj:
 * one tensor of 48*48 = 2304 elements, LL = 4096. */
static void write_proj(const char *path, int64_t nG, const char *pi_kind, int with_b) {
  const int64_t LL = 4096;
  float *B = malloc(sizeof(float) * LL), *G = malloc(sizeof(float) * nG);
  int64_t *Pi = malloc(sizeof(int64_t) * LL);
  float *Pf = malloc(sizeof(float) * LL);
  for (int64_t k = 0; k < LL; k++) {
    B[k] = (k % 3) ? 1.0f : -1.0f;
    Pi[k] = (k * 7) % LL; /* 7 is odd: a permutation */
    Pf[k] = (float)Pi[k];
  }
  for (int64_t k = 0; k < nG; k++) G[k] = 0.5f + (float)(k % 5);
  if (!strcmp(pi_kind, "dup")) Pi[10] = Pi[11];
  dt_st_out t[3];
  int n = 0;
  if (with_b) t[n++] = (dt_st_out){"said.0.B", DT_DTYPE_F32, 1, {LL}, B};
  t[n++] = (dt_st_out){"said.0.G", DT_DTYPE_F32, 1, {nG}, G};
  if (!strcmp(pi_kind, "float"))
    t[n++] = (dt_st_out){"said.0.Pi", DT_DTYPE_F32, 1, {LL}, Pf};
  else
    t[n++] = (dt_st_out){"said.0.Pi", DT_DTYPE_I64, 1, {LL}, Pi};
  assert_int_equal(dt_st_write(path, t, n, NULL, NULL, 0), 0);
  free(B);
  free(G);
  free(Pi);
  free(Pf);
}

static void test_projection_files(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char p[1200], a[4096];
  const char *base = "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors "
                     "--batch-size 2 --steps 2 --method said --said-dim 8 "
                     "--said-targets transformer.h.0.attn.c_proj --said-projection %s";
  snprintf(p, sizeof p, "%s/proj_ok.safetensors", tmp);
  write_proj(p, 4096, "int", 1);
  snprintf(a, sizeof a, base, g_fix, g_fix, p);
  char *out = NULL;
  int rc = dt_test_run(&out, "%s %s", DT_BINARY, a);
  if (rc) fail_msg("a valid projection file was refused (%d):\n%s", rc, out);
  assert_non_null(strstr(out, "proj_ok.safetensors")); /* describe names the source */
  free(out);
  snprintf(p, sizeof p, "%s/proj_shape.safetensors", tmp);
  write_proj(p, 4000, "int", 1);
  snprintf(a, sizeof a, base, g_fix, g_fix, p);
  expect_error(a, 3, "proj_shape.safetensors", "said.0.G");
  snprintf(p, sizeof p, "%s/proj_dup.safetensors", tmp);
  write_proj(p, 4096, "dup", 1);
  snprintf(a, sizeof a, base, g_fix, g_fix, p);
  expect_error(a, 3, "said.0.Pi", "permutation");
  snprintf(p, sizeof p, "%s/proj_float.safetensors", tmp);
  write_proj(p, 4096, "float", 1);
  snprintf(a, sizeof a, base, g_fix, g_fix, p);
  expect_error(a, 3, "said.0.Pi", "I64");
  snprintf(p, sizeof p, "%s/proj_nob.safetensors", tmp);
  write_proj(p, 4096, "int", 0);
  snprintf(a, sizeof a, base, g_fix, g_fix, p);
  expect_error(a, 3, "said.0.B", "missing");
  /* two sources of the projection */
  snprintf(a, sizeof a,
           "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors --method said "
           "--said-dim 24 --said-projection %s/gpt2/said/projection.safetensors "
           "--init-from %s/gpt2/said/init.safetensors,%s/gpt2/said/projection.safetensors",
           g_fix, g_fix, g_fix, g_fix, g_fix);
  expect_error(a, 2, "both", "give one");
  /* a file without said.* tensors */
  snprintf(a, sizeof a,
           "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors --method said "
           "--said-projection %s/gpt2/said/init.safetensors",
           g_fix, g_fix, g_fix);
  expect_error(a, 3, "--said-projection", "no said.");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_said MPIRUN [launcher options...]\n");
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    strcat(g_mpirun, i > 1 ? " " : "");
    strncat(g_mpirun, argv[i], sizeof g_mpirun - strlen(g_mpirun) - 2);
  }
  snprintf(g_fix, sizeof g_fix, "%s", dt_test_fixture(""));
  size_t l = strlen(g_fix);
  if (l && g_fix[l - 1] == '/') g_fix[l - 1] = 0;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fresh_init),     cmocka_unit_test(test_eval_imported),
      cmocka_unit_test(test_ranks),          cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_projection_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
