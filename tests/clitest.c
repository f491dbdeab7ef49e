/* Helpers of the command-line tests (see clitest.h). */
#include "clitest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "params.h"
#include "safetensors.h"

static char g_mpirun[1024];
static char g_fix[512];

void cli_init(int argc, char **argv) {
  size_t o = 0;
  for (int i = 1; i < argc && o < sizeof g_mpirun - 1; i++)
    o += (size_t)snprintf(g_mpirun + o, sizeof g_mpirun - o, "%s%s", i > 1 ? " " : "", argv[i]);
  if (!g_mpirun[0]) snprintf(g_mpirun, sizeof g_mpirun, "mpirun --oversubscribe");
  snprintf(g_fix, sizeof g_fix, "%s", dt_test_fixture(""));
  size_t l = strlen(g_fix);
  if (l && g_fix[l - 1] == '/') g_fix[l - 1] = 0;
}

const char *cli_fix(void) { return g_fix; }
const char *cli_mpirun(void) { return g_mpirun; }

int cli_dt(char **out, int np, const char *env, const char *args) {
  return dt_test_run(out, "%s %s -np %d %s %s", env ? env : "", g_mpirun, np, DT_BINARY, args);
}

void cli_must(int rc, char *out, const char *what) {
  if (rc != 0) fail_msg("%s: exit %d:\n%s", what, rc, out ? out : "");
}

int cli_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

char *cli_read_bytes(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (len) *len = (size_t)n;
  return b;
}

int cli_write_bytes(const char *path, const char *b, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(b, 1, len, f);
  return (fclose(f) == 0 && w == len) ? 0 : -1;
}

int cli_same_file(const char *a, const char *b) {
  size_t la = 0, lb = 0;
  char *x = cli_read_bytes(a, &la), *y = cli_read_bytes(b, &lb);
  int same = x && y && la == lb && memcmp(x, y, la) == 0;
  free(x);
  free(y);
  return same;
}

float *cli_tensor(const char *path, const char *name, int64_t *n, int *ndim, int64_t *shape) {
  dt_st_file f;
  if (dt_st_open(&f, path)) return NULL;
  float *v = NULL;
  for (int k = 0; k < f.n; k++) {
    char a[256], b[256];
    dt_param_canonical(a, sizeof a, f.t[k].name);
    dt_param_canonical(b, sizeof b, name);
    if (strcmp(a, b) != 0) continue;
    const dt_st_tensor *t = &f.t[k];
    v = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    *n = t->numel;
    if (ndim) *ndim = t->ndim;
    for (int d = 0; shape && d < t->ndim; d++) shape[d] = t->shape[d];
    if (dt_st_read_f32(&f, t, 0, t->numel, v)) {
      free(v);
      v = NULL;
    }
    break;
  }
  dt_st_close(&f);
  return v;
}

double cli_max_diff(const char *a, const char *b) {
  dt_st_file fa;
  if (dt_st_open(&fa, a)) fail_msg("cannot open %s", a);
  double mx = 0;
  for (int k = 0; k < fa.n; k++) {
    int64_t na = 0, nb = 0, sa[8], sb[8];
    int da = 0, db = 0;
    float *x = cli_tensor(a, fa.t[k].name, &na, &da, sa),
          *y = cli_tensor(b, fa.t[k].name, &nb, &db, sb);
    if (!x || !y) fail_msg("%s: tensor %s is not in %s", a, fa.t[k].name, b);
    if (da != db || na != nb) fail_msg("%s: tensor %s has another shape in %s", a, fa.t[k].name, b);
    for (int d = 0; d < da; d++)
      if (sa[d] != sb[d]) fail_msg("%s: tensor %s has another shape in %s", a, fa.t[k].name, b);
    for (int64_t j = 0; j < na; j++) {
      const double e = fabs((double)x[j] - y[j]);
      if (!(e <= mx)) mx = isnan(e) ? INFINITY : e;
    }
    free(x);
    free(y);
  }
  dt_st_close(&fa);
  return mx;
}

static void field(const char *line, const char *key, char *out) {
  const char *p = strstr(line, key);
  out[0] = 0;
  if (!p) return;
  p += strlen(key);
  size_t n = strcspn(p, ",}");
  snprintf(out, 32, "%.*s", (int)(n < 31 ? n : 31), p);
}

void cli_read_metrics(const char *path, cli_metrics *m) {
  memset(m, 0, sizeof *m);
  char *s = dt_test_slurp(path);
  if (!s) fail_msg("cannot read %s", path);
  for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
    int step = -1;
    if (sscanf(line, "{\"step\": %d", &step) != 1 || step < 0 || step >= 256) continue;
    field(line, "\"loss\": ", m->v[step][0]);
    field(line, "\"lr\": ", m->v[step][1]);
    field(line, "\"grad_norm\": ", m->v[step][2]);
    m->count[step]++;
    if (m->n_records < 1024) m->order[m->n_records++] = step;
    if (step + 1 > m->n) m->n = step + 1;
  }
  free(s);
}

void cli_same_metrics(const char *a, const char *b, int steps, const char *what) {
  cli_metrics *x = malloc(sizeof *x), *y = malloc(sizeof *y);
  assert_non_null(x);
  assert_non_null(y);
  cli_read_metrics(a, x);
  cli_read_metrics(b, y);
  if (x->n != steps || y->n != steps)
    fail_msg("%s: %d and %d steps, %d expected", what, x->n, y->n, steps);
  static const char *const names[3] = {"loss", "lr", "grad_norm"};
  for (int s = 0; s < steps; s++)
    for (int k = 0; k < 3; k++)
      if (!x->v[s][k][0] || strcmp(x->v[s][k], y->v[s][k]) != 0)
        fail_msg("%s: step %d %s: %s in %s, %s in %s", what, s, names[k], x->v[s][k], a,
                 y->v[s][k], b);
  free(x);
  free(y);
}

char *cli_variables(const char *ckpt) {
  char *out = NULL;
  int rc = dt_test_run(&out, "%s inspect %s --variables", DT_BINARY, ckpt);
  cli_must(rc, out, ckpt);
  char *v = strstr(out, "variables:\n");
  char *r = strdup(v ? v : "");
  char *end = strstr(r, "checksums:");
  if (end) *end = 0;
  free(out);
  return r;
}
