/* bitsandbytes' 4-bit safetensors layout into a quantized matrix (bnb4.h). */
#include "bnb4.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define QS_KEY ".quant_state.bitsandbytes__"

static const dt_st_tensor *find_sub(const dt_st_set *set, const char *name, const char *suffix,
                                    const dt_st_file **f) {
  char nm[512];
  snprintf(nm, sizeof nm, "%s%s", name, suffix);
  return dt_st_set_find(set, nm, f);
}

int dt_bnb4_in(const dt_st_set *set, const char *name) {
  const dt_st_file *f;
  return find_sub(set, name, QS_KEY "nf4", &f) || find_sub(set, name, QS_KEY "fp4", &f);
}

/* A tensor NAME+suffix of dtype dt and numel n, else DT_EINPUT. */
static int need(const dt_st_set *set, const char *name, const char *suffix, dt_dtype dt, int64_t n,
                const dt_st_tensor **t, const dt_st_file **f) {
  *t = find_sub(set, name, suffix, f);
  DT_CHECK(*t, DT_EINPUT, "%s: tensor '%s%s' is missing (bitsandbytes 4-bit layout of '%s')",
           set->dir, name, suffix, name);
  DT_CHECK((*t)->dtype == dt && (*t)->numel == n, DT_EINPUT,
           "%s: tensor '%s%s' is %s with %lld values; expected %s with %lld", (*f)->path, name, suffix,
           dt_dtype_name((*t)->dtype), (long long)(*t)->numel, dt_dtype_name(dt), (long long)n);
  return DT_OK;
}

/* The float32 values of NAME+suffix (n), within tol relative (+ 1e-30) of ref. */
static int need_values(const dt_st_set *set, const char *name, const char *suffix, const float *ref,
                       int n, float tol) {
  const dt_st_tensor *t;
  const dt_st_file *f;
  DT_CALL(need(set, name, suffix, DT_DTYPE_F32, n, &t, &f));
  float v[256];
  DT_CALL(dt_st_read_f32(f, t, 0, n, v));
  for (int i = 0; i < n; i++)
    DT_CHECK(fabsf(v[i] - ref[i]) <= tol * fabsf(ref[i]) + 1e-30f, DT_EINPUT,
             "%s: tensor '%s%s' value %d is %.9g; expected %.9g (src/quant.h)", f->path, name, suffix,
             i, v[i], ref[i]);
  return DT_OK;
}

/* The quant state's JSON fields. */
static int check_state(const dt_st_set *set, const char *name, int64_t rows, int64_t cols,
                       float *offset) {
  const dt_st_file *f;
  const dt_st_tensor *t = find_sub(set, name, QS_KEY "nf4", &f);
  if (!t) {
    t = find_sub(set, name, QS_KEY "fp4", &f);
    DT_CHECK(!t, DT_EINPUT, "%s: tensor '%s" QS_KEY "fp4': quant_state field quant_type is fp4; "
             "only nf4 is read", f->path, name);
    DT_ERR(DT_EINPUT, "%s: no quant state of tensor '%s'", set->dir, name);
  }
  DT_CHECK(t->dtype == DT_DTYPE_U8 && t->numel > 0 && t->numel < 65536, DT_EINPUT,
           "%s: tensor '%s" QS_KEY "nf4' is %s with %lld values; expected U8 JSON bytes", f->path, name,
           dt_dtype_name(t->dtype), (long long)t->numel);
  int64_t *raw = NULL;
  char *txt = NULL;
  int rc = dt_malloc(&raw, sizeof(int64_t) * (size_t)t->numel, "bitsandbytes quant state");
  if (rc == DT_OK) rc = dt_malloc(&txt, (size_t)t->numel + 1, "bitsandbytes quant state");
  if (rc == DT_OK) rc = dt_st_read_i64(f, t, 0, t->numel, raw);
  json_t *j = NULL;
  if (rc == DT_OK) {
    for (int64_t i = 0; i < t->numel; i++) txt[i] = (char)raw[i];
    txt[t->numel] = 0;
    json_error_t je;
    j = json_loads(txt, 0, &je);
    if (!j || !json_is_object(j))
      rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                        "%s: tensor '%s" QS_KEY "nf4': not a JSON object (%s)", f->path, name,
                        j ? "another JSON value" : je.text);
  }
  free(raw);
  free(txt);
  if (rc) {
    json_decref(j);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  const char *where = f->path;
#define FIELD_ERR(field, ...)                                                                     \
  do {                                                                                            \
    char v_[256];                                                                                 \
    snprintf(v_, sizeof v_, __VA_ARGS__);                                                         \
    json_decref(j);                                                                               \
    DT_ERR(DT_EINPUT, "%s: tensor '%s" QS_KEY "nf4': quant_state field %s is %s", where, name,    \
           field, v_);                                                                            \
  } while (0)
  json_t *qt = json_object_get(j, "quant_type"), *bs = json_object_get(j, "blocksize"),
         *sh = json_object_get(j, "shape"), *nbs = json_object_get(j, "nested_blocksize"),
         *off = json_object_get(j, "nested_offset");
  if (!json_is_string(qt) || strcmp(json_string_value(qt), "nf4"))
    FIELD_ERR("quant_type", "%s; only nf4 is read", json_is_string(qt) ? json_string_value(qt) : "missing");
  if (!json_is_integer(bs) || json_integer_value(bs) != DT_NF4_BLOCK)
    FIELD_ERR("blocksize", "%lld; expected %d (deltatune's nf4 blocks)",
              json_is_integer(bs) ? (long long)json_integer_value(bs) : -1LL, DT_NF4_BLOCK);
  if (!json_is_array(sh) || json_array_size(sh) != 2 || !json_is_integer(json_array_get(sh, 0)) ||
      !json_is_integer(json_array_get(sh, 1)) || json_integer_value(json_array_get(sh, 0)) != rows ||
      json_integer_value(json_array_get(sh, 1)) != cols) {
    char *s = json_dumps(sh ? sh : json_null(), JSON_COMPACT);
    char v[128];
    snprintf(v, sizeof v, "%s", s ? s : "?");
    free(s);
    FIELD_ERR("shape", "%s; config.json implies [%lld,%lld] ([out, in])", v, (long long)rows,
              (long long)cols);
  }
  if (cols % DT_NF4_BLOCK)
    FIELD_ERR("shape", "[%lld,%lld]: rows of %lld columns, not a multiple of %d, put blocks across rows, "
              "which deltatune's per-row blocks cannot hold", (long long)rows, (long long)cols,
              (long long)cols, DT_NF4_BLOCK);
  if (!nbs && !off) FIELD_ERR("nested_blocksize", "missing: only double-quantized scales are read");
  if (!json_is_integer(nbs) || json_integer_value(nbs) != DT_NF4_DQ_BLOCK)
    FIELD_ERR("nested_blocksize", "%lld; expected %d",
              json_is_integer(nbs) ? (long long)json_integer_value(nbs) : -1LL, DT_NF4_DQ_BLOCK);
  if (!json_is_number(off) || !isfinite(json_number_value(off)))
    FIELD_ERR("nested_offset", "%s", off ? "not a finite number" : "missing");
  *offset = (float)json_number_value(off);
#undef FIELD_ERR
  json_decref(j);
  return DT_OK;
}

int dt_bnb4_open(dt_bnb4 *b, const dt_st_set *set, const char *name, int64_t rows, int64_t cols) {
  memset(b, 0, sizeof *b);
  b->rows = rows;
  b->cols = cols;
  DT_CALL(check_state(set, name, rows, cols, &b->offset));
  const int64_t n = rows * cols, nblk = n / DT_NF4_BLOCK;
  DT_CALL(need(set, name, "", DT_DTYPE_U8, (n + 1) / 2, &b->codes, &b->f));
  DT_CALL(need(set, name, ".absmax", DT_DTYPE_U8, nblk, &b->scodes, &b->fs));
  DT_CALL(need_values(set, name, ".quant_map", dt_nf4_code, 16, 1e-6f));
  float map[256];
  dt_dynamic_map(map);
  DT_CALL(need_values(set, name, ".nested_quant_map", map, 256, 2.5e-7f));
  const dt_st_tensor *t;
  const dt_st_file *f;
  b->nnest = (int64_t)dt_nf4_dq_nested((size_t)nblk);
  DT_CALL(need(set, name, ".nested_absmax", DT_DTYPE_F32, b->nnest, &t, &f));
  DT_CALL(dt_malloc(&b->nabs, sizeof(float) * (size_t)(b->nnest ? b->nnest : 1), "nested absmax"));
  DT_CALL(dt_st_read_f32(f, t, 0, b->nnest, b->nabs));
  return DT_OK;
}

void dt_bnb4_close(dt_bnb4 *b) {
  free(b->nabs);
  memset(b, 0, sizeof *b);
}

int dt_bnb4_load(const dt_bnb4 *b, dt_qmat *q, int g, const int *lrows, const int64_t *grows,
                 int nr, const dt_segs *cols_global) {
  const int64_t gb = b->cols / DT_NF4_BLOCK, n = b->rows * gb;
  const size_t rbytes = ((size_t)q->cols + 1) / 2;
  uint8_t *codes = NULL;
  int64_t *tmp = NULL;
  const int64_t ntmp = (b->cols / 2 + 1 > gb ? b->cols / 2 + 1 : gb);
  int rc = dt_calloc(&codes, (size_t)(n ? n : 1), "block scale codes");
  if (rc == DT_OK) rc = dt_malloc(&tmp, sizeof(int64_t) * (size_t)ntmp, "bitsandbytes row");
  dt_segs all;
  if (rc == DT_OK && !cols_global) {
    dt_segs_full(&all, q->cols, 0);
    cols_global = &all;
  }
  for (int i = 0; rc == DT_OK && i < nr; i++) {
    const int64_t gr = grows[i];
    /* the row's scale codes */
    rc = dt_st_read_i64(b->fs, b->scodes, gr * gb, gb, tmp);
    for (int64_t k = 0; rc == DT_OK && k < gb; k++) codes[gr * gb + k] = (uint8_t)tmp[k];
    /* the codes of each segment of local columns: the bytes that hold them */
    uint8_t *dr = q->data + (size_t)lrows[i] * rbytes;
    if (rc == DT_OK) memset(dr, 0, rbytes);
    for (int s = 0; rc == DT_OK && s < cols_global->n; s++) {
      const dt_seg *sg = dt_segs_at(cols_global, s);
      if (sg->len <= 0) continue;
      const int64_t e0 = gr * b->cols + sg->g0, e1 = e0 + sg->len; /* flat elements */
      const int64_t b0 = e0 / 2, nb = (e1 + 1) / 2 - b0;
      rc = dt_st_read_i64(b->f, b->codes, b0, nb, tmp);
      for (int t = 0; rc == DT_OK && t < sg->len; t++) {
        const int64_t e = e0 + t;
        const int c = (int)((uint8_t)tmp[e / 2 - b0] >> ((e & 1) ? 0 : 4)) & 15, j = sg->l0 + t;
        dr[j >> 1] |= (j & 1) ? (uint8_t)c : (uint8_t)(c << 4);
      }
    }
  }
  if (rc == DT_OK) rc = dt_qmat_dq_set(q, g, lrows, grows, nr, (int)gb, codes, b->nabs, b->nnest, b->offset);
  free(codes);
  free(tmp);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
