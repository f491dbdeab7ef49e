/* Tokenized datasets (see dataset.h). */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"
#include "rng.h"
#include "safetensors.h"

#define ROWS_PER_CHUNK_BYTES (4u << 20)

static int check_shape(const dt_st_file *f, const dt_st_tensor *t) {
  DT_CHECK(t->dtype == DT_DTYPE_I32 || t->dtype == DT_DTYPE_I64 ||
               t->dtype == DT_DTYPE_U8 || t->dtype == DT_DTYPE_I8,
           DT_EINPUT,
           "%s: tensor '%s' has dtype %s; token ids must be an integer dtype "
           "(I64, I32, U8 or I8)",
           f->path, t->name, dt_dtype_name(t->dtype));
  DT_CHECK(t->ndim == 2, DT_EINPUT,
           "%s: tensor '%s' has %d dimensions; expected 2 ([rows, seq_len])",
           f->path, t->name, t->ndim);
  return DT_OK;
}

/* The error of a value outside the ids (labels: or -100). */
static int bad_value(const dt_st_file *f, const dt_st_tensor *t, int is_labels, int vocab,
                     int64_t i, int64_t x) {
  const int64_t T = t->shape[1], row = i / T, col = i % T;
  if (vocab > 0)
    DT_ERR(DT_EINPUT,
           "%s: tensor '%s' row %lld column %lld: value %lld is outside "
           "[0, %d) (vocab %d)%s",
           f->path, t->name, (long long)row, (long long)col, (long long)x, vocab, vocab,
           is_labels ? " and is not -100" : "");
  DT_ERR(DT_EINPUT,
         "%s: tensor '%s' row %lld column %lld: value %lld is not a "
         "valid token id%s",
         f->path, t->name, (long long)row, (long long)col, (long long)x,
         is_labels ? " or -100" : "");
}

/* Check the I32 values of t, mapped at p. */
static int check_ids(const dt_st_file *f, const dt_st_tensor *t, int is_labels, int vocab,
                     const int32_t *p) {
  const int64_t hi = vocab > 0 ? vocab : INT32_MAX;
  for (int64_t i = 0; i < t->numel; i++) {
    const int64_t x = p[i];
    if ((x < 0 || x >= hi) && !(is_labels && x == -100))
      return bad_value(f, t, is_labels, vocab, i, x);
  }
  return DT_OK;
}

/* Read tensor t ([N,T]) into dst as int32, checking every value.
 * is_labels: -100 allowed. vocab <= 0: no upper bound. */
static int read_ids(const dt_st_file *f, const dt_st_tensor *t, int is_labels,
                    int vocab, int32_t *dst) {
  int64_t N = t->shape[0], T = t->shape[1];
  int64_t rows = ROWS_PER_CHUNK_BYTES / (8 * T);
  if (rows < 1) rows = 1;
  if (rows > N) rows = N;
  int64_t *buf = NULL;
  DT_CALL(dt_malloc(&buf, (size_t)(rows * T) * sizeof *buf, "dataset buffer"));
  int64_t hi = vocab > 0 ? vocab : INT32_MAX;
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    int64_t nr = N - r0 < rows ? N - r0 : rows;
    int rc = dt_st_read_i64(f, t, r0 * T, nr * T, buf);
    if (rc != DT_OK) {
      free(buf);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
    for (int64_t i = 0; i < nr * T; i++) {
      int64_t x = buf[i];
      if ((x < 0 || x >= hi) && !(is_labels && x == -100)) {
        free(buf);
        return bad_value(f, t, is_labels, vocab, r0 * T + i, x);
      }
      dst[r0 * T + i] = (int32_t)x;
    }
  }
  free(buf);
  return DT_OK;
}

void dt_dataset_free(dt_dataset *d) {
  if (!d) return;
  free(d->path);
  if (d->map) {
    munmap(d->map, d->map_len);
  } else {
    free(d->input_ids);
    free(d->labels);
  }
  memset(d, 0, sizeof *d);
}

static int load(dt_dataset *d, dt_st_file *f, const char *path, int vocab) {
  const dt_st_tensor *ids = dt_st_find(f, "input_ids");
  DT_CHECK(ids != NULL, DT_EINPUT,
           "%s: tensor 'input_ids' is missing (a dataset needs input_ids "
           "[rows, seq_len] and optionally labels)",
           path);
  const dt_st_tensor *lab = dt_st_find(f, "labels");
  DT_CALL(check_shape(f, ids));
  if (lab) {
    DT_CALL(check_shape(f, lab));
    DT_CHECK(lab->shape[0] == ids->shape[0] && lab->shape[1] == ids->shape[1],
             DT_EINPUT,
             "%s: tensor 'labels' has shape [%lld, %lld] but 'input_ids' has "
             "[%lld, %lld]",
             path, (long long)lab->shape[0], (long long)lab->shape[1],
             (long long)ids->shape[0], (long long)ids->shape[1]);
  }
  int64_t N = ids->shape[0], T = ids->shape[1];
  DT_CHECK(N >= 1 && T >= 2, DT_EINPUT,
           "%s: dataset is empty: tensor 'input_ids' has shape [%lld, %lld] "
           "(need at least 1 row of at least 2 tokens)",
           path, (long long)N, (long long)T);
  DT_CHECK(T <= INT32_MAX, DT_EINPUT,
           "%s: tensor 'input_ids' has seq_len %lld, too long", path,
           (long long)T);
  d->path = strdup(path);
  DT_CHECK(d->path != NULL, DT_ENOMEM, "out of memory loading %s", path);
  d->n_rows = N;
  d->seq_len = (int)T;
  size_t bytes = (size_t)(N * T) * sizeof(int32_t);
  const int one = 1;
  const int mappable = *(const char *)&one == 1 && ids->dtype == DT_DTYPE_I32 && lab &&
                       lab->dtype == DT_DTYPE_I32 && ids->offset % 4 == 0 && lab->offset % 4 == 0;
  void *m = mappable ? mmap(NULL, f->file_size, PROT_READ, MAP_SHARED, f->fd, 0) : MAP_FAILED;
  if (m != MAP_FAILED) { /* little-endian I32, aligned: read in place */
    d->map = m;
    d->map_len = f->file_size;
    d->input_ids = (int32_t *)((char *)m + ids->offset);
    d->labels = (int32_t *)((char *)m + lab->offset);
    DT_CALL(check_ids(f, ids, 0, vocab, d->input_ids));
    DT_CALL(check_ids(f, lab, 1, vocab, d->labels));
  } else {
    DT_CALL(dt_malloc(&d->input_ids, bytes, "dataset input_ids"));
    DT_CALL(dt_malloc(&d->labels, bytes, "dataset labels"));
    DT_CALL(read_ids(f, ids, 0, vocab, d->input_ids));
    if (lab)
      DT_CALL(read_ids(f, lab, 1, vocab, d->labels));
    else
      memcpy(d->labels, d->input_ids, bytes);
  }
  int64_t scored = 0;
  for (int64_t b = 0; b < N; b++)
    for (int64_t t = 1; t < T; t++) scored += d->labels[b * T + t] != -100;
  d->n_scored = scored;
  DT_CHECK(scored > 0, DT_EINPUT,
           "%s: tensor 'labels' has no scored position (every label after "
           "column 0 is -100)",
           path);
  return DT_OK;
}

/* "synthetic:rows=N,len=T[,seed=S]": uniform random tokens, every
 * position scored (for benchmarks and scaling studies). */
static int synthetic(dt_dataset *d, const char *spec, int vocab) {
  long rows = 64, len = 512, seed = 1;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", spec + strlen("synthetic:"));
  char *save = NULL;
  for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '='), *end = NULL;
    DT_CHECK(eq, DT_EUSAGE, "--data %s: expected key=value, got '%s' (keys: rows, len, seed)", spec, kv);
    *eq = 0;
    long v = strtol(eq + 1, &end, 10);
    DT_CHECK(end && !*end && v >= 0, DT_EUSAGE,
             "--data %s: '%s' needs a non-negative integer, got '%s'", spec, kv, eq + 1);
    if (!strcmp(kv, "rows")) rows = v;
    else if (!strcmp(kv, "len")) len = v;
    else if (!strcmp(kv, "seed")) seed = v;
    else DT_ERR(DT_EUSAGE, "--data %s: unknown key '%s' (keys: rows, len, seed)", spec, kv);
  }
  DT_CHECK(rows >= 1 && len >= 2 && rows * len <= (1L << 31), DT_EUSAGE,
           "--data %s: need rows >= 1 and len >= 2 (and rows*len < 2^31)", spec);
  DT_CHECK(vocab > 0, DT_EUSAGE, "--data %s: synthetic data needs a model vocabulary", spec);
  d->n_rows = rows;
  d->seq_len = (int)len;
  DT_CALL(dt_malloc(&d->path, strlen(spec) + 1, "dataset path"));
  strcpy(d->path, spec);
  DT_CALL(dt_malloc(&d->input_ids, sizeof(int32_t) * rows * len, "synthetic tokens"));
  DT_CALL(dt_malloc(&d->labels, sizeof(int32_t) * rows * len, "synthetic labels"));
  const uint64_t key = dt_rng_key((uint64_t)seed, 0xda7a);
  for (long i = 0; i < rows * len; i++)
    d->input_ids[i] = d->labels[i] = (int32_t)(dt_rng_u64(key, (uint64_t)i) % (uint64_t)vocab);
  d->n_scored = rows * (len - 1);
  return DT_OK;
}

int dt_dataset_load(dt_dataset *d, const char *path, int vocab) {
  memset(d, 0, sizeof *d);
  if (strncmp(path, "synthetic:", 10) == 0) {
    int rc = synthetic(d, path, vocab);
    if (rc != DT_OK) {
      dt_dataset_free(d);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
    return DT_OK;
  }
  dt_st_file f;
  DT_CALL(dt_st_open(&f, path));
  int rc = load(d, &f, path, vocab);
  dt_st_close(&f);
  if (rc != DT_OK) {
    dt_dataset_free(d);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  return DT_OK;
}
