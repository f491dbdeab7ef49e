/* Machine constants for `deltatune plan`: defaults, the JSON file, and the
 * calibration run (see machine.h, docs/plan.md). */
#include "machine.h"
#include "timer.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cblas.h>

#include "agree.h"
#include "blas_info.h"
#include "dist.h"
#include "error.h"
#include "gemm_bf16.h"
#include "memstat.h"
#include "model.h"

void dt_machine_defaults(dt_machine *mc) {
  memset(mc, 0, sizeof *mc);
  /* the 2-core development machine (AMD EPYC, OpenBLAS Zen kernel, one
   * thread) and, for communication, the 16-core machine of
   * docs/performance.md; docs/plan.md lists them */
  mc->sgemm_gflops = 48.0;
  mc->engine_fraction = 0.72;
  mc->shm_sum_latency_s = 20e-6;
  mc->shm_sum_bytes_per_s = 4e9;
  mc->allreduce_latency_s = 20e-6;
  mc->allreduce_bytes_per_s = 0.6e9;
  mc->allreduce_scratch = 0.5; /* Open MPI 4.1, 2 and 4 ranks on one node */
  mc->stream_bytes_per_s = 5e9;
  mc->baseline_rss_bytes = 20e6;
  mc->blas_bytes_per_row = 1024; /* OpenBLAS 0.3.21 Zen: 256 floats (GEMM_Q) per row */
  mc->blas_buffer_bytes = 128.0 * (1 << 20);
  snprintf(mc->source, sizeof mc->source, "built-in defaults (run deltatune plan --calibrate)");
}

int dt_machine_default_path(char *buf, size_t cap) {
  const char *home = getenv("HOME");
  DT_CHECK(home && *home, DT_EUSAGE,
           "HOME is not set: give the machine constants file with --machine FILE");
  snprintf(buf, cap, "%s/.cache/deltatune/machine.json", home);
  return DT_OK;
}

static const struct {
  const char *key;
  size_t off;
  int positive; /* 0: may be 0 */
} k_fields[] = {
    {"sgemm_gflops", offsetof(dt_machine, sgemm_gflops), 1},
    {"engine_fraction", offsetof(dt_machine, engine_fraction), 1},
    {"bf16_gflops", offsetof(dt_machine, bf16_gflops), 0},
    {"engine_fraction_bf16", offsetof(dt_machine, engine_fraction_bf16), 0},
    {"shm_sum_latency_s", offsetof(dt_machine, shm_sum_latency_s), 0},
    {"shm_sum_bytes_per_s", offsetof(dt_machine, shm_sum_bytes_per_s), 1},
    {"allreduce_latency_s", offsetof(dt_machine, allreduce_latency_s), 0},
    {"allreduce_bytes_per_s", offsetof(dt_machine, allreduce_bytes_per_s), 1},
    {"allreduce_scratch", offsetof(dt_machine, allreduce_scratch), 0},
    {"stream_bytes_per_s", offsetof(dt_machine, stream_bytes_per_s), 1},
    {"baseline_rss_bytes", offsetof(dt_machine, baseline_rss_bytes), 0},
    {"blas_bytes_per_row", offsetof(dt_machine, blas_bytes_per_row), 0},
    {"blas_buffer_bytes", offsetof(dt_machine, blas_buffer_bytes), 0},
};
#define N_FIELDS (int)(sizeof k_fields / sizeof k_fields[0])

/* The measured curves: "NAME": [[floats, seconds], ...], the floats
 * increasing. A file without them (written before they were measured) keeps
 * the straight line of the two constants. */
static const struct {
  const char *key;
  size_t off;
} k_curves[] = {
    {"shm_sum_curve", offsetof(dt_machine, shm_sum_curve)},
    {"allreduce_curve", offsetof(dt_machine, allreduce_curve)},
};

static int load_curve(json_t *r, const char *path, const char *key, dt_comm_curve *c) {
  json_t *a = json_object_get(r, key);
  memset(c, 0, sizeof *c);
  if (!a) return DT_OK;
  const size_t n = json_is_array(a) ? json_array_size(a) : 0;
  DT_CHECK(n >= 2 && n <= DT_COMM_POINTS, DT_EINPUT,
           "%s: field %s must be an array of 2 to %d [floats, seconds] pairs; rerun deltatune "
           "plan --calibrate", path, key, DT_COMM_POINTS);
  for (size_t i = 0; i < n; i++) {
    json_t *p = json_array_get(a, i);
    json_t *x = json_array_get(p, 0), *y = json_array_get(p, 1);
    const double f = json_number_value(x), t = json_number_value(y);
    DT_CHECK(json_is_array(p) && json_array_size(p) == 2 && json_is_number(x) && json_is_number(y),
             DT_EINPUT, "%s: field %s, entry %zu: expected [floats, seconds]", path, key, i);
    DT_CHECK(f >= 1 && f <= 1e15 && (i == 0 || f > c->floats[i - 1]), DT_EINPUT,
             "%s: field %s, entry %zu: floats %g must be at least 1 and larger than the entry "
             "before", path, key, i, f);
    DT_CHECK(t > 0 && t < 1e6, DT_EINPUT, "%s: field %s, entry %zu: seconds %g must be positive",
             path, key, i, t);
    c->floats[i] = f;
    c->seconds[i] = t;
  }
  c->n = (int)n;
  return DT_OK;
}

static json_t *curve_json(const dt_comm_curve *c) {
  json_t *a = json_array();
  for (int i = 0; i < c->n; i++) {
    json_t *p = json_array();
    json_array_append_new(p, json_real(c->floats[i]));
    json_array_append_new(p, json_real(c->seconds[i]));
    json_array_append_new(a, p);
  }
  return a;
}

/* t(n) on the measured curve: the band's straight line, the first point's
 * time below it, the last band's bandwidth above it (bw where that band
 * does not rise). */
static double curve_time(const dt_comm_curve *c, double n, double bw) {
  if (n <= c->floats[0]) return c->seconds[0];
  int i = 1;
  while (i < c->n - 1 && n > c->floats[i]) i++;
  const double slope = (c->seconds[i] - c->seconds[i - 1]) / (c->floats[i] - c->floats[i - 1]);
  if (n > c->floats[i]) /* past the last point */
    return c->seconds[i] + (n - c->floats[i]) * (slope > 0 ? slope : 4.0 / bw);
  return c->seconds[i - 1] + (n - c->floats[i - 1]) * slope;
}

double dt_machine_shm_sum_time(const dt_machine *mc, double n) {
  if (mc->shm_sum_curve.n >= 2) return curve_time(&mc->shm_sum_curve, n, mc->shm_sum_bytes_per_s);
  return mc->shm_sum_latency_s + 4.0 * n / mc->shm_sum_bytes_per_s;
}

double dt_machine_allreduce_time(const dt_machine *mc, double n) {
  if (mc->allreduce_curve.n >= 2)
    return curve_time(&mc->allreduce_curve, n, mc->allreduce_bytes_per_s);
  return mc->allreduce_latency_s + 4.0 * n / mc->allreduce_bytes_per_s;
}

int dt_machine_load(dt_machine *mc, const char *path, int *found) {
  dt_machine_defaults(mc);
  *found = 0;
  struct stat sb;
  if (stat(path, &sb) != 0) return DT_OK;
  json_error_t je;
  json_t *r = json_load_file(path, 0, &je);
  DT_CHECK(r, DT_EINPUT, "%s: not valid JSON (line %d: %s); rerun deltatune plan --calibrate",
           path, je.line, je.text);
  int rc = DT_OK;
  if (!json_is_object(r))
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: expected a JSON object of machine constants", path);
  for (int i = 0; rc == DT_OK && i < N_FIELDS; i++) {
    json_t *v = json_object_get(r, k_fields[i].key);
    if (!v) continue; /* keeps the default */
    const double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= 0) || x > 1e30 || (x == 0 && k_fields[i].positive))
      rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                        "%s: field %s must be a %s number", path, k_fields[i].key,
                        k_fields[i].positive ? "positive" : "non-negative");
    else
      *(double *)((char *)mc + k_fields[i].off) = x;
  }
  for (int c = 0; rc == DT_OK && c < 2; c++)
    rc = load_curve(r, path, k_curves[c].key, (dt_comm_curve *)((char *)mc + k_curves[c].off));
  json_t *v = json_object_get(r, "ranks");
  if (rc == DT_OK && json_is_integer(v)) mc->ranks = (int)json_integer_value(v);
  v = json_object_get(r, "blas_core");
  if (rc == DT_OK && json_is_string(v))
    snprintf(mc->blas_core, sizeof mc->blas_core, "%s", json_string_value(v));
  v = json_object_get(r, "calibrated");
  if (rc == DT_OK && json_is_string(v))
    snprintf(mc->when, sizeof mc->when, "%s", json_string_value(v));
  json_decref(r);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  snprintf(mc->source, sizeof mc->source, "%s", path);
  *found = 1;
  return DT_OK;
}

/* mkdir -p of the folder holding path. */
static int make_parent(const char *path) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return DT_OK;
  *slash = 0;
  for (char *p = dir + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(dir, 0755);
      *p = '/';
    }
  DT_CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, DT_EIO, "cannot create the folder %s: %s",
           dir, strerror(errno));
  return DT_OK;
}

int dt_machine_save(const dt_machine *mc, const char *path) {
  DT_CALL(make_parent(path));
  json_t *r = json_object();
  for (int i = 0; i < N_FIELDS; i++)
    json_object_set_new(r, k_fields[i].key,
                        json_real(*(const double *)((const char *)mc + k_fields[i].off)));
  for (int c = 0; c < 2; c++) {
    const dt_comm_curve *cv = (const dt_comm_curve *)((const char *)mc + k_curves[c].off);
    if (cv->n >= 2) json_object_set_new(r, k_curves[c].key, curve_json(cv));
  }
  json_object_set_new(r, "ranks", json_integer(mc->ranks));
  json_object_set_new(r, "blas_core", json_string(mc->blas_core));
  json_object_set_new(r, "calibrated", json_string(mc->when));
  json_object_set_new(r, "written_by", json_string("deltatune plan --calibrate " DT_VERSION));
  const int bad = json_dump_file(r, path, JSON_INDENT(2) | JSON_SORT_KEYS);
  json_decref(r);
  DT_CHECK(bad == 0, DT_EIO, "cannot write the machine constants to %s", path);
  return DT_OK;
}

/* --- calibration --------------------------------------------------------- */

/* The resident set now and its peak, in bytes (base/memstat.h). */
static double rss_bytes(void) { return dt_rss_mb() * 1048576.0; }
static double peak_bytes(void) { return dt_peak_rss_mb() * 1048576.0; }

/* MPI_Allreduce's transient memory per byte of message: the rise of the
 * peak resident set over one all-reduce of 64 MiB (large enough that the
 * peak before it is the current size). */
static double allreduce_scratch(void) {
  const size_t n = (size_t)16 << 20;
  float *b = malloc(n * sizeof(float));
  if (!b) return 0.0;
  for (size_t i = 0; i < n; i++) b[i] = 1.0f;
  const double h0 = peak_bytes();
  MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  const double h1 = peak_bytes();
  free(b);
  return (h1 - h0) / (4.0 * (double)n);
}

/* One timed call of op(d, buf, n) after DT_CALIB_GAP_S of work on the rank
 * (cap floats of buf rewritten, over and over) and a barrier, as a run's
 * sums follow its computation: on a busy machine a rank that computed is
 * more often descheduled inside the sum than one that only communicated,
 * and back to back calls measured a half to a fifth of the same sums in a
 * run on the loaded 2-core machine (docs/testing.md, "The plan across
 * nodes"). Seconds, or -1 when op failed. */
#define DT_CALIB_GAP_S 10e-3
static double timed_call(int (*op)(dt_dist *, float *, size_t), dt_dist *d, float *buf, size_t n,
                         size_t cap) {
  const double g0 = dt_now();
  for (unsigned k = 0; dt_now() - g0 < DT_CALIB_GAP_S; k++)
    for (size_t j = 0; j < cap; j++) buf[j] = (float)((j + k) & 7);
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = dt_now();
  if (op(d, buf, n)) return -1.0;
  return dt_now() - t0;
}

/* latency + 4 n / bandwidth through two sizes. */
static void fit(double n1, double t1, double n2, double t2, double *lat, double *bw) {
  const double slope = (t2 - t1) / (4.0 * (n2 - n1));
  if (slope > 0) *bw = 1.0 / slope;
  const double l = t1 - 4.0 * n1 / *bw;
  *lat = l > 1e-7 ? l : 1e-7;
}

/* Non-decreasing least-squares fit of y (weights w) in place: pool
 * adjacent violators. A larger sum is not cheaper; a dip between sizes is
 * noise, and pooling averages it with its neighbours instead of letting one
 * slow size raise every larger one. */
static void monotone(double *y, const double *w, int n) {
  double v[DT_COMM_POINTS], wt[DT_COMM_POINTS];
  int len[DT_COMM_POINTS], k = 0;
  for (int i = 0; i < n; i++) {
    v[k] = y[i], wt[k] = w[i], len[k] = 1;
    while (k > 0 && v[k - 1] > v[k]) {
      v[k - 1] = (v[k - 1] * wt[k - 1] + v[k] * wt[k]) / (wt[k - 1] + wt[k]);
      wt[k - 1] += wt[k];
      len[k - 1] += len[k];
      k--;
    }
    k++;
  }
  for (int b = 0, i = 0; b < k; b++)
    for (int j = 0; j < len[b]; j++) y[i++] = v[b];
}

/* A block's tensor-group sum as training makes it: the part in the rank's
 * slot, the result read in the window (src/forward.c), no copies. */
static int block_sum(dt_dist *d, float *buf, size_t n) {
  float *part = NULL;
  const float *sum = NULL;
  DT_CALL(dt_tp_sum_part(d, buf, n, &part));
  return dt_tp_sum_view(d, buf, part, n, NULL, 0, &sum);
}

/* Time op at sizes from `from` floats to 2^20 (buf holds nmax) into c:
 * the mean of one call over the calls and the ranks (not the median: a
 * run's communication time is the sum of its calls, the slow tail
 * included), made non-decreasing; and the two constants through its first
 * and last points (what a reader of the constants alone uses). The sizes
 * take turns, one call each per cycle, so that a burst of other work on the
 * machine weighs on all of them alike instead of bending the curve; the
 * cycles fill about 4 x secs (at least 30; the count agreed from the
 * slowest rank's first cycle). Returns DT_OK or an MPI error. */
static int measure_curve(int (*op)(dt_dist *, float *, size_t), dt_dist *d, float *buf,
                         size_t nmax, size_t from, double secs, dt_comm_curve *c, double *lat,
                         double *bw) {
  static const size_t sizes[] = {1, 1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 17, 1 << 18, 1 << 20};
  double sum[DT_COMM_POINTS] = {0}, w[DT_COMM_POINTS];
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
    if (sizes[i] >= from) c->floats[c->n++] = (double)sizes[i];
  for (int i = 0; i < c->n; i++) /* warm-up (allocates the shared window) */
    if (op(d, buf, (size_t)c->floats[i]))
      return dt_error_trace(DT_EMPI, __FILE__, __LINE__, __func__);
  long cycles = 1;
  for (long k = 0; k < cycles; k++) {
    const double c0 = dt_now();
    for (int i = 0; i < c->n; i++) {
      const double t = timed_call(op, d, buf, (size_t)c->floats[i], nmax);
      if (t < 0) return dt_error_trace(DT_EMPI, __FILE__, __LINE__, __func__);
      sum[i] += t;
    }
    if (k == 0) {
      double per = dt_now() - c0;
      MPI_Allreduce(MPI_IN_PLACE, &per, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      const double want = 4.0 * secs / per;
      cycles = want < 30 ? 30 : want > 1e5 ? 100000 : (long)want;
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, sum, c->n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  for (int i = 0; i < c->n; i++) {
    c->seconds[i] = sum[i] / ((double)cycles * d->size);
    w[i] = 1.0;
  }
  monotone(c->seconds, w, c->n);
  fit(c->floats[0], c->seconds[0], c->floats[c->n - 1], c->seconds[c->n - 1], lat, bw);
  return DT_OK;
}

/* Bytes per second of y = a x + y over 2 x 32 MiB (12 bytes moved per
 * element), best of 3. */
static double stream_rate(void) {
  const size_t n = (size_t)8 << 20;
  float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
  double best = 1e30;
  if (x && y) {
    for (size_t i = 0; i < n; i++) x[i] = y[i] = (float)(1 + (i & 7));
    for (int k = 0; k < 4; k++) {
      const double t0 = dt_now();
      for (size_t i = 0; i < n; i++) y[i] += 1.0001f * x[i];
      const double t = dt_now() - t0;
      if (k > 0 && t < best) best = t;
    }
  }
  const double v = x && y ? (double)y[n / 2] : 0.0;
  free(x);
  free(y);
  return v != 0.0 && best < 1e30 ? 12.0 * (double)n / best : 0.0;
}

/* OpenBLAS packs a panel of every row of a GEMM's (row-major) output
 * matrix into its buffer: the resident bytes per row, from a GEMM of 16384
 * rows against the baseline's 1024 (already counted there). */
static double blas_row_bytes(void) {
  const int M = 16384, N = 512, K = 1024;
  float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)K * N);
  float *c = malloc(sizeof(float) * (size_t)M * N);
  double per = 0;
  if (a && b && c) {
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i & 3);
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i & 1);
    for (size_t i = 0; i < (size_t)M * N; i++) c[i] = (float)(i & 1); /* resident before */
    const double r0 = rss_bytes();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 1.0f, c, N);
    per = (rss_bytes() - r0) / (M - 1024) + 0.0 * c[7];
  }
  free(a);
  free(b);
  free(c);
  return per;
}

/* GFLOP/s of the bf16 products (src/gemm_bf16.c) on an n x n x n product
 * with the weights as stored ([out, in], read transposed), best of 3 after a
 * warm-up; 0 when it cannot run. */
static double bf16_rate(int n) {
  const size_t nn = (size_t)n * n;
  float *a = malloc(nn * sizeof(float)), *c = malloc(nn * sizeof(float));
  uint16_t *b16 = malloc(nn * sizeof(uint16_t)), *a16 = malloc(nn * sizeof(uint16_t));
  double best = 1e30;
  if (a && c && b16 && a16) {
    for (size_t i = 0; i < nn; i++) {
      a[i] = (float)(i % 7) * 0.1f;
      c[i] = (float)(i % 5) * 0.1f;
    }
    dt_f32_to_bf16_n(b16, c, nn);
    for (int r = 0; r <= 3 && best > 0; r++) {
      const double t0 = dt_now();
      if (dt_gemm_bf16(c, a, b16, n, n, n, 1, 0.0f, a16) != DT_OK) best = 0;
      const double t = dt_now() - t0;
      if (r > 0 && best > 0 && t < best) best = t;
    }
  } else {
    best = 0;
  }
  free(a), free(c), free(b16), free(a16);
  return best > 0 && best < 1e30 ? 2.0 * n * (double)n * n / best * 1e-9 : 0.0;
}

/* One training step's model FLOP/s on a small synthetic backbone, every
 * rank alone (no communication), against sgemm_gflops; bf16: bf16 weights
 * and products, against bf16_gflops. */
static int engine_rate(double *gflops, int bf16) {
  dt_model m;
  const int B = 1, T = 256;
  int rc = dt_model_load(&m, "synthetic:gpt2:layers=2,d=1024,heads=16,ffn=4096,vocab=8192,ctx=256",
                         bf16, 7, NULL, 0);
  m.matmul_bf16 = bf16;
  if (!rc) rc = dt_model_plan(&m, B, T, 0);
  int32_t ids[B * T];
  for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 2654435761u) % 8192u);
  double best = 1e30;
  for (int k = 0; rc == DT_OK && k < 3; k++) {
    dt_loss_stats st;
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = dt_now();
    rc = dt_model_forward(&m, ids, NULL, 1, (double)(B * (T - 1)), &st, NULL);
    if (!rc) rc = dt_model_backward(&m);
    const double t = dt_now() - t0;
    if (k > 0 && t < best) best = t; /* step 0 warms up */
  }
  if (!rc) *gflops = dt_model_step_flops(&m, T, (double)B * T, (double)B * (T - 1)) / best * 1e-9;
  dt_model_free(&m);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

int dt_machine_calibrate(dt_machine *mc, double sum_seconds) {
  dt_machine_defaults(mc);
  int size, rank;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  mc->ranks = size;
  snprintf(mc->blas_core, sizeof mc->blas_core, "%s", dt_blas_core());
  time_t tnow = time(NULL);
  struct tm tmv;
  gmtime_r(&tnow, &tmv);
  strftime(mc->when, sizeof mc->when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  dt_dist d;
  DT_CALL(dt_dist_init(&d, size));
  /* sgemm with every rank busy: the slowest rank sets the pace */
  MPI_Barrier(MPI_COMM_WORLD);
  double g = dt_blas_sgemm_gflops(1024);
  MPI_Allreduce(MPI_IN_PLACE, &g, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  DT_CHECK(g > 0, DT_ENOMEM, "calibration: the sgemm test could not allocate its matrices");
  mc->sgemm_gflops = g;
  /* the baseline: the process with MPI and the rank layout started and
   * OpenBLAS's buffers touched by a large sgemm (its matrices freed again),
   * before any model memory */
  double base = rss_bytes();
  MPI_Allreduce(MPI_IN_PLACE, &base, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  mc->baseline_rss_bytes = base;
  if (size > 1) {
    double sc = allreduce_scratch();
    MPI_Allreduce(MPI_IN_PLACE, &sc, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    mc->allreduce_scratch = sc > 0 ? sc : 0.0;
  }
  double bpr = blas_row_bytes();
  MPI_Allreduce(MPI_IN_PLACE, &bpr, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (bpr > 0) mc->blas_bytes_per_row = bpr;
  MPI_Barrier(MPI_COMM_WORLD);
  double sb = stream_rate();
  MPI_Allreduce(MPI_IN_PLACE, &sb, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  if (sb > 0) mc->stream_bytes_per_s = sb;
  double eg = 0;
  int rc = engine_rate(&eg, 0);
  MPI_Allreduce(MPI_IN_PLACE, &eg, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  if (rc == DT_OK && eg > 0) mc->engine_fraction = eg / g;
  /* the bf16 products, where the machine has them (the same on every rank
   * of one machine type; agreed so that all skip or all measure) */
  const char *impl = NULL;
  mc->bf16_gflops = mc->engine_fraction_bf16 = 0;
  if (rc == DT_OK && dt_agree(dt_gemm_bf16_probe(&impl), MPI_COMM_WORLD) == DT_OK) {
    MPI_Barrier(MPI_COMM_WORLD);
    double gb = bf16_rate(1024);
    MPI_Allreduce(MPI_IN_PLACE, &gb, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    double eb = 0;
    rc = gb > 0 ? engine_rate(&eb, 1) : DT_OK;
    MPI_Allreduce(MPI_IN_PLACE, &eb, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    if (rc == DT_OK && gb > 0 && eb > 0) {
      mc->bf16_gflops = gb;
      mc->engine_fraction_bf16 = eb / gb;
    }
  } else {
    dt_error_clear();
  }
  /* communication over all ranks as one tensor group: the shared-memory
   * sums when the ranks share a node, MPI_Allreduce always (across nodes
   * the group's sums are MPI_Allreduce) */
  const size_t nmax = (size_t)1 << 20;
  float *buf = NULL;
  if (rc == DT_OK && size > 1) rc = dt_calloc(&buf, sizeof(float) * nmax, "calibration buffer");
  if (rc == DT_OK && size > 1 && d.shm_ok)
    rc = measure_curve(block_sum, &d, buf, nmax, DT_SHM_SUM_MIN, sum_seconds,
                       &mc->shm_sum_curve, &mc->shm_sum_latency_s, &mc->shm_sum_bytes_per_s);
  if (rc == DT_OK && size > 1)
    rc = measure_curve(dt_world_sum, &d, buf, nmax, 1, sum_seconds, &mc->allreduce_curve,
                       &mc->allreduce_latency_s, &mc->allreduce_bytes_per_s);
  free(buf);
  dt_dist_free(&d);
  (void)rank;
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
