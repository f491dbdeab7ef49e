/* The table of trainable parameters: registration, canonical names, layout
 * conversion, safetensors load and save. */
#include "params.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "safetensors.h"

void dt_param_canonical(char *out, size_t cap, const char *name) {
  if (cap == 0) return;
  size_t o = 0;
  const char *p = name;
  int first = 1;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t len = dot ? (size_t)(dot - p) : strlen(p);
    if (!(len == 7 && strncmp(p, "default", 7) == 0)) {
      if (!first && o + 1 < cap) out[o++] = '.';
      for (size_t i = 0; i < len && o + 1 < cap; i++) out[o++] = p[i];
      first = 0;
    }
    if (!dot) break;
    p = dot + 1;
  }
  out[o] = 0;
}

/* Is name's canonical form canon? A name without "default" in it is its own
 * canonical form: no copy (registering the ~1000 tensors of a large model
 * stays fast). */
static int canonical_is(const char *canon, const char *name) {
  if (!strstr(name, "default")) return strcmp(canon, name) == 0;
  char other[DT_PARAM_NAME_MAX];
  dt_param_canonical(other, sizeof other, name);
  return strcmp(canon, other) == 0;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, cap - o, "[");
  for (int i = 0; i < ndim && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "",
                          (long long)shape[i]);
  if (o < cap) snprintf(buf + o, cap - o, "]");
}

int dt_params_add(dt_params *t, const char *method, const char *name, int ndim,
                  const int64_t *shape, float *data, float *grad,
                  int transposed) {
  DT_CHECK(name && strlen(name) < DT_PARAM_NAME_MAX, DT_EINTERNAL,
           "parameter name '%s' is longer than %d characters",
           name ? name : "(null)", DT_PARAM_NAME_MAX - 1);
  DT_CHECK(ndim >= 1 && ndim <= 4, DT_EINTERNAL,
           "parameter '%s' has %d dimensions (1..4 supported)", name, ndim);
  DT_CHECK(!transposed || ndim == 2, DT_EINTERNAL,
           "parameter '%s' is marked transposed but has %d dimensions", name,
           ndim);
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    DT_CHECK(shape[i] >= 0, DT_EINTERNAL,
             "parameter '%s' has a negative extent %lld in dimension %d", name,
             (long long)shape[i], i);
    numel *= shape[i];
  }
  char canon[DT_PARAM_NAME_MAX];
  dt_param_canonical(canon, sizeof canon, name);
  for (int i = 0; i < t->n; i++) {
    DT_CHECK(!canonical_is(canon, t->p[i].name), DT_EINTERNAL,
             "parameter '%s' (%s) is registered twice (already as '%s' by %s)",
             name, method ? method : "?", t->p[i].name,
             t->p[i].method ? t->p[i].method : "?");
  }
  if (t->n == t->cap) {
    int cap = t->cap ? t->cap * 2 : 16;
    dt_param *np = realloc(t->p, (size_t)cap * sizeof *np);
    DT_CHECK(np, DT_ENOMEM,
             "cannot grow the parameter table to %d entries (adding '%s')", cap,
             name);
    t->p = np;
    t->cap = cap;
  }
  dt_param *p = &t->p[t->n++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ndim = ndim;
  for (int i = 0; i < ndim; i++) p->shape[i] = shape[i];
  p->numel = numel;
  p->data = data;
  p->grad = grad;
  p->transposed = transposed;
  p->method = method;
  p->numel_l = numel;
  p->sync = DT_SYNC_PARTIAL;
  t->numel += numel;
  t->numel_l += numel;
  return DT_OK;
}

int dt_params_add_shard(dt_params *t, const char *method, const char *name, int ndim,
                        const int64_t *shape, float *data, float *grad, int transposed,
                        int64_t numel_l, const dt_param_shard *sh) {
  DT_CALL(dt_params_add(t, method, name, ndim, shape, data, grad, transposed));
  dt_param *p = &t->p[t->n - 1];
  DT_CALL(dt_malloc(&p->shard, sizeof *p->shard, "shard description"));
  *p->shard = *sh;
  t->numel_l += numel_l - p->numel_l;
  p->numel_l = numel_l;
  p->sync = DT_SYNC_SHARD;
  return DT_OK;
}

void dt_params_last_sync(dt_params *t, int sync) {
  if (t->n > 0) t->p[t->n - 1].sync = sync;
}

void dt_params_last_alias(dt_params *t, const char *alias) {
  if (t->n > 0) t->p[t->n - 1].alias = alias;
}

/* Visit the owned elements: local index li <-> full storage index fi. */
#define FOR_OWNED(p, BODY)                                                       \
  do {                                                                           \
    const dt_param_shard *sh_ = (p)->shard;                                      \
    for (int s_ = 0; s_ < sh_->segs.n; s_++) {                                   \
      const dt_seg *g_ = dt_segs_at(&sh_->segs, s_);                             \
      if (sh_->shard_dim == 0) {                                                 \
        for (int64_t r_ = 0; r_ < g_->len; r_++)                                 \
          for (int64_t c_ = 0; c_ < sh_->cols; c_++) {                           \
            const int64_t li = (g_->l0 - sh_->first_l0 + r_) * sh_->cols + c_;   \
            const int64_t fi = (g_->g0 + r_) * sh_->cols + c_;                   \
            BODY;                                                                \
          }                                                                      \
      } else {                                                                   \
        for (int64_t r_ = 0; r_ < sh_->rows; r_++)                               \
          for (int64_t c_ = 0; c_ < g_->len; c_++) {                             \
            const int64_t li = r_ * sh_->local_cols + g_->l0 + c_;               \
            const int64_t fi = r_ * sh_->cols + g_->g0 + c_;                     \
            BODY;                                                                \
          }                                                                      \
      }                                                                          \
    }                                                                            \
  } while (0)

void dt_param_full_to_local(const dt_param *p, const float *full, float *local) {
  if (!p->shard) {
    memcpy(local, full, sizeof(float) * (size_t)p->numel);
    return;
  }
  FOR_OWNED(p, local[li] = full[fi]);
}

void dt_param_local_to_full(const dt_param *p, const float *local, float *full) {
  if (!p->shard) {
    memcpy(full, local, sizeof(float) * (size_t)p->numel);
    return;
  }
  FOR_OWNED(p, full[fi] = local[li]);
}

void dt_params_free(dt_params *t) {
  for (int i = 0; i < t->n; i++) free(t->p[i].shard);
  free(t->p);
  t->p = NULL;
  t->n = t->cap = 0;
  t->numel = 0;
}

const dt_param *dt_params_find(const dt_params *t, const char *name) {
  char canon[DT_PARAM_NAME_MAX];
  dt_param_canonical(canon, sizeof canon, name);
  for (int i = 0; i < t->n; i++)
    if (canonical_is(canon, t->p[i].name)) return &t->p[i];
  return NULL;
}

void dt_params_zero_grad(dt_params *t) {
  for (int i = 0; i < t->n; i++)
    if (t->p[i].grad)
      memset(t->p[i].grad, 0, (size_t)t->p[i].numel_l * sizeof(float));
}

void dt_param_to_external(const dt_param *p, const float *src, float *dst) {
  if (p->transposed && p->ndim == 2) {
    /* storage [s1, s0] -> external [s0, s1] */
    int64_t s0 = p->shape[0], s1 = p->shape[1];
    for (int64_t i = 0; i < s0; i++)
      for (int64_t j = 0; j < s1; j++) dst[i * s1 + j] = src[j * s0 + i];
  } else {
    memcpy(dst, src, (size_t)p->numel * sizeof(float));
  }
}

void dt_param_from_external(const dt_param *p, const float *src, float *dst) {
  if (p->transposed && p->ndim == 2) {
    int64_t s0 = p->shape[0], s1 = p->shape[1];
    for (int64_t j = 0; j < s1; j++)
      for (int64_t i = 0; i < s0; i++) dst[j * s0 + i] = src[i * s1 + j];
  } else {
    memcpy(dst, src, (size_t)p->numel * sizeof(float));
  }
}

/* One tensor of the loaded files, under its canonical name. */
typedef struct {
  char canon[DT_PARAM_NAME_MAX];
  int file;
  const dt_st_tensor *t;
} st_entry;

static int entry_cmp(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  int c = strcmp(x->canon, y->canon);
  if (c) return c;
  return x->file - y->file;
}

int dt_params_load(dt_params *t, const char *files_csv) {
  int rc = DT_OK;
  int n_files = 0, n_open = 0;
  char *list = NULL;
  dt_st_file *files = NULL;
  char **paths = NULL;
  st_entry *idx = NULL;
  const st_entry **match = NULL;
  float *tmp = NULL;

  DT_CHECK(files_csv && files_csv[0], DT_EUSAGE,
           "no safetensors file given to load %d parameters from", t->n);
  size_t csv_len = strlen(files_csv);
  DT_CALL(dt_malloc(&list, csv_len + 1, "the list of parameter files"));
  memcpy(list, files_csv, csv_len + 1);
  int cap_files = 1;
  for (const char *c = files_csv; *c; c++) cap_files += *c == ',';
  rc = dt_calloc(&paths, (size_t)cap_files * sizeof *paths, "file names");
  if (rc) goto out;
  rc = dt_calloc(&files, (size_t)cap_files * sizeof *files, "file handles");
  if (rc) goto out;
  for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ') tok++;
    size_t l = strlen(tok);
    while (l && tok[l - 1] == ' ') tok[--l] = 0;
    if (l) paths[n_files++] = tok;
  }
  if (n_files == 0) {
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "no safetensors file named in '%s'", files_csv);
    goto out;
  }
  for (n_open = 0; n_open < n_files; n_open++) {
    rc = dt_st_open(&files[n_open], paths[n_open]);
    if (rc) {
      rc = dt_error_trace(rc, __FILE__, __LINE__, __func__);
      goto out;
    }
  }

  /* Index every tensor of every file by canonical name. */
  size_t n_idx = 0;
  for (int f = 0; f < n_files; f++) n_idx += (size_t)files[f].n;
  rc = dt_calloc(&idx, (n_idx ? n_idx : 1) * sizeof *idx, "the tensor index");
  if (rc) goto out;
  n_idx = 0;
  for (int f = 0; f < n_files; f++)
    for (int k = 0; k < files[f].n; k++) {
      st_entry *e = &idx[n_idx++];
      dt_param_canonical(e->canon, sizeof e->canon, files[f].t[k].name);
      e->file = f;
      e->t = &files[f].t[k];
    }
  qsort(idx, n_idx, sizeof *idx, entry_cmp);

  /* Match and check every parameter before changing any data. */
  rc = dt_calloc(&match, (size_t)(t->n ? t->n : 1) * sizeof *match,
                 "the parameter matches");
  if (rc) goto out;
  int n_found = 0, n_missing = 0, first_missing = -1;
  int64_t max_numel = 1;
  for (int i = 0; i < t->n; i++) {
    const dt_param *p = &t->p[i];
    st_entry key;
    size_t lo = 0;
    /* its name, else its alias (transformers 5's module name) */
    for (int a = 0; a < 2; a++) {
      const char *nm = a ? p->alias : p->name;
      if (!nm) break;
      dt_param_canonical(key.canon, sizeof key.canon, nm);
      key.file = -1;
      /* First entry with this canonical name (file indices are >= 0). */
      size_t hi = n_idx;
      lo = 0;
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (entry_cmp(&idx[mid], &key) < 0) lo = mid + 1; else hi = mid;
      }
      if (lo < n_idx && strcmp(idx[lo].canon, key.canon) == 0) break;
    }
    if (lo < n_idx && strcmp(idx[lo].canon, key.canon) == 0) {
      const st_entry *e = &idx[lo];
      if (lo + 1 < n_idx && strcmp(idx[lo + 1].canon, key.canon) == 0) {
        const st_entry *e2 = &idx[lo + 1];
        rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                          "parameter '%s' matches two tensors: '%s' in %s and "
                          "'%s' in %s",
                          p->name, e->t->name, paths[e->file], e2->t->name,
                          paths[e2->file]);
        goto out;
      }
      match[i] = e;
      n_found++;
      if (p->numel > max_numel) max_numel = p->numel;
    } else {
      if (first_missing < 0) first_missing = i;
      n_missing++;
    }
  }
  if (t->n > 0 && n_found == 0) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "none of the %d parameters was found in %s (%zu tensors; "
                      "expected e.g. '%s', the files hold e.g. '%s')",
                      t->n, files_csv, n_idx, t->p[0].name,
                      n_idx ? idx[0].t->name : "nothing");
    goto out;
  }
  if (n_missing) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "parameter '%s' (%s) not found in %s (%d of %d "
                      "parameters missing, %d found)",
                      t->p[first_missing].name,
                      t->p[first_missing].method ? t->p[first_missing].method
                                                 : "?",
                      files_csv, n_missing, t->n, n_found);
    goto out;
  }
  for (int i = 0; i < t->n; i++) {
    const dt_param *p = &t->p[i];
    const dt_st_tensor *st = match[i]->t;
    int same = st->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = st->shape[d] == p->shape[d];
    if (!same) {
      char want[128], have[128];
      shape_str(want, sizeof want, p->ndim, p->shape);
      shape_str(have, sizeof have, st->ndim, st->shape);
      rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                        "%s: tensor '%s' has shape %s, expected %s (parameter "
                        "'%s')",
                        paths[match[i]->file], st->name, have, want, p->name);
      goto out;
    }
    if (!p->data) {
      rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                        "parameter '%s' has no storage to load into", p->name);
      goto out;
    }
  }

  rc = dt_malloc(&tmp, (size_t)max_numel * sizeof(float), "a parameter buffer");
  if (rc) goto out;
  for (int i = 0; i < t->n; i++) {
    const dt_param *p = &t->p[i];
    rc = dt_st_read_f32(&files[match[i]->file], match[i]->t, 0, p->numel, tmp);
    if (rc) {
      rc = dt_error_trace(rc, __FILE__, __LINE__, __func__);
      goto out;
    }
    if (p->shard) {
      float *full = malloc(sizeof(float) * (size_t)p->numel);
      if (!full) {
        rc = dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__,
                          "cannot allocate %lld floats to load '%s'", (long long)p->numel, p->name);
        goto out;
      }
      dt_param_from_external(p, tmp, full);
      dt_param_full_to_local(p, full, p->data);
      free(full);
    } else {
      dt_param_from_external(p, tmp, p->data);
    }
  }

out:
  free(tmp);
  free(match);
  free(idx);
  for (int f = 0; f < n_open; f++) dt_st_close(&files[f]);
  free(files);
  free(paths);
  free(list);
  return rc;
}

int dt_params_save(const dt_params *t, const char *path, int which) {
  return dt_params_save_reduced(t, path, which, NULL);
}

int dt_params_save_reduced(const dt_params *t, const char *path, int which,
                           const dt_params_reduce *red) {
  int rc = DT_OK;
  DT_CHECK(which == 0 || which == 1, DT_EINTERNAL,
           "dt_params_save: which must be 0 (data) or 1 (grad), got %d", which);
  for (int i = 0; i < t->n; i++) {
    const float *src = which ? t->p[i].grad : t->p[i].data;
    DT_CHECK(src, DT_EINTERNAL, "parameter '%s' has no %s to save to %s",
             t->p[i].name, which ? "gradient" : "storage", path);
  }
  dt_st_out *outs = NULL;
  float *buf = NULL;
  int64_t total = 0;
  for (int i = 0; i < t->n; i++) total += t->p[i].numel;
  DT_CALL(dt_calloc(&outs, (size_t)(t->n ? t->n : 1) * sizeof *outs,
                    "the tensor list"));
  rc = dt_malloc(&buf, (size_t)(total ? total : 1) * sizeof(float),
                 "the parameters in external layout");
  if (rc) {
    free(outs);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  int64_t off = 0;
  float *full = NULL;
  for (int i = 0; rc == DT_OK && i < t->n; i++)
    if (t->p[i].shard && !full) {
      int64_t mx = 1;
      for (int k = 0; k < t->n; k++) mx = t->p[k].numel > mx ? t->p[k].numel : mx;
      rc = dt_malloc(&full, sizeof(float) * (size_t)mx, "a gathered parameter");
    }
  for (int i = 0; rc == DT_OK && i < t->n; i++) {
    const dt_param *p = &t->p[i];
    const float *src = which ? p->grad : p->data;
    if (p->shard) {
      /* assemble the tensor from the shards of the tensor group */
      memset(full, 0, sizeof(float) * (size_t)p->numel);
      dt_param_local_to_full(p, src, full);
      if (red) rc = red->tp_sum(red->ctx, full, (size_t)p->numel);
      src = full;
    }
    dt_param_to_external(p, src, buf + off);
    outs[i].name = p->name;
    outs[i].dtype = DT_DTYPE_F32;
    outs[i].ndim = p->ndim;
    for (int d = 0; d < p->ndim; d++) outs[i].shape[d] = p->shape[d];
    outs[i].data = buf + off;
    off += p->numel;
  }
  static const char *const keys[] = {"format"};
  static const char *const vals[] = {"pt"};
  if (rc == DT_OK && (!red || red->rank == 0)) rc = dt_st_write(path, outs, t->n, keys, vals, 1);
  if (red) {
    int ok = rc == DT_OK, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, red->world);
    if (rc == DT_OK && !all) rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__,
                                               "writing %s failed on rank 0", path);
  }
  free(full);
  free(buf);
  free(outs);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
