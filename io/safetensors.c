/* Safetensors reading and writing (see safetensors.h).
 *
 * The header is parsed with jansson and validated completely before any data
 * is read: a file that opens is a file whose every tensor lies inside the data
 * block with the size its dtype and shape imply. Reads use pread at absolute
 * offsets, so one open file can serve concurrent readers. The host is assumed
 * little-endian (as the format is); a compile-time check enforces it.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER 100000000ull /* the format's own limit */
#define ST_CHUNK (1u << 20)        /* bounce buffer for conversions, bytes */

static const char *const k_dtype_names[DT_DTYPE_COUNT] = {
    "F32", "F16", "BF16", "I32", "I64", "F64", "U8", "I8", "BOOL"};
static const int k_dtype_sizes[DT_DTYPE_COUNT] = {4, 2, 2, 4, 8, 8, 1, 1, 1};

const char *dt_dtype_name(dt_dtype d) {
  if ((int)d < 0 || d >= DT_DTYPE_COUNT) return "?";
  return k_dtype_names[d];
}

int dt_dtype_size(dt_dtype d) {
  if ((int)d < 0 || d >= DT_DTYPE_COUNT) return 0;
  return k_dtype_sizes[d];
}

static int dtype_from_name(const char *s, dt_dtype *out) {
  for (int i = 0; i < DT_DTYPE_COUNT; i++)
    if (strcmp(s, k_dtype_names[i]) == 0) {
      *out = (dt_dtype)i;
      return 1;
    }
  return 0;
}

float dt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) { /* inf / nan: keep the payload */
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) { /* normal */
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) { /* signed zero */
    bits = sign;
  } else { /* subnormal: man * 2^-24; shift until the leading bit is 0x400 */
    uint32_t k = 0;
    while ((man & 0x400u) == 0) {
      man <<= 1;
      k++;
    }
    /* value = (man / 1024) * 2^(-14 - k): biased exponent 127 - 14 - k */
    bits = sign | ((113u - k) << 23) | ((man & 0x3ffu) << 13);
  }
  union { uint32_t u; float f; } v;
  v.u = bits;
  return v.f;
}

/* ------------------------------------------------------------------ open */

static void tensors_free(dt_st_tensor *t, int n) {
  if (!t) return;
  for (int i = 0; i < n; i++) free(t[i].name);
  free(t);
}

void dt_st_close(dt_st_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  tensors_free(f->t, f->n);
  free(f->path);
  memset(f, 0, sizeof *f);
  f->fd = -1;
}

/* Read exactly n bytes at off; a short read at end of file is an error. */
static int pread_full(int fd, const char *path, const char *tensor, void *buf,
                      size_t n, uint64_t off) {
  const char *q = tensor ? " (tensor '" : "";
  const char *nm = tensor ? tensor : "";
  const char *qe = tensor ? "')" : "";
  char *p = buf;
  size_t done = 0;
  while (done < n) {
    size_t want = n - done;
    if (want > (size_t)1 << 30) want = (size_t)1 << 30;
    ssize_t r = pread(fd, p + done, want, (off_t)(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      DT_ERR(DT_EIO, "%s%s%s%s: read of %zu bytes at offset %llu failed: %s",
             path, q, nm, qe, n, (unsigned long long)(off + done),
             strerror(errno));
    }
    if (r == 0)
      DT_ERR(DT_EIO,
             "%s%s%s%s: unexpected end of file reading %zu bytes at offset "
             "%llu (got %zu; file truncated?)",
             path, q, nm, qe, n, (unsigned long long)off, done);
    done += (size_t)r;
  }
  return DT_OK;
}

static int cmp_by_offset(const void *a, const void *b) {
  const dt_st_tensor *x = *(const dt_st_tensor *const *)a;
  const dt_st_tensor *y = *(const dt_st_tensor *const *)b;
  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
  return 0;
}

/* Parse one header entry into *t. data_size is the size of the data block. */
static int parse_entry(const char *path, const char *name, json_t *v,
                       uint64_t data_start, uint64_t data_size,
                       dt_st_tensor *t) {
  DT_CHECK(json_is_object(v), DT_EINPUT,
           "%s: tensor '%s': header entry is not a JSON object", path, name);
  DT_CHECK(name[0] != 0, DT_EINPUT, "%s: a tensor has an empty name", path);

  json_t *jd = json_object_get(v, "dtype");
  DT_CHECK(jd != NULL, DT_EINPUT, "%s: tensor '%s': field dtype is missing",
           path, name);
  DT_CHECK(json_is_string(jd), DT_EINPUT,
           "%s: tensor '%s': field dtype is not a string", path, name);
  if (!dtype_from_name(json_string_value(jd), &t->dtype))
    DT_ERR(DT_EINPUT,
           "%s: tensor '%s': unknown dtype '%s' (supported: F32, F16, BF16, "
           "I32, I64, F64, U8, I8, BOOL)",
           path, name, json_string_value(jd));

  json_t *js = json_object_get(v, "shape");
  DT_CHECK(js != NULL, DT_EINPUT, "%s: tensor '%s': field shape is missing",
           path, name);
  DT_CHECK(json_is_array(js), DT_EINPUT,
           "%s: tensor '%s': field shape is not an array", path, name);
  size_t nd = json_array_size(js);
  DT_CHECK(nd <= DT_ST_MAX_DIMS, DT_EINPUT,
           "%s: tensor '%s': shape has %zu dimensions (at most %d supported)",
           path, name, nd, DT_ST_MAX_DIMS);
  t->ndim = (int)nd;
  int64_t numel = 1;
  for (size_t i = 0; i < nd; i++) {
    json_t *e = json_array_get(js, i);
    DT_CHECK(json_is_integer(e), DT_EINPUT,
             "%s: tensor '%s': shape[%zu] is not an integer", path, name, i);
    json_int_t d = json_integer_value(e);
    DT_CHECK(d >= 0, DT_EINPUT, "%s: tensor '%s': shape[%zu] = %lld is negative",
             path, name, i, (long long)d);
    t->shape[i] = (int64_t)d;
    DT_CHECK(!__builtin_mul_overflow(numel, (int64_t)d, &numel), DT_EINPUT,
             "%s: tensor '%s': shape overflows (dimension %zu = %lld)", path,
             name, i, (long long)d);
  }
  t->numel = numel;
  uint64_t need;
  DT_CHECK(!__builtin_mul_overflow((uint64_t)numel,
                                   (uint64_t)dt_dtype_size(t->dtype), &need),
           DT_EINPUT, "%s: tensor '%s': byte size overflows (%lld elements)",
           path, name, (long long)numel);

  json_t *jo = json_object_get(v, "data_offsets");
  DT_CHECK(jo != NULL, DT_EINPUT,
           "%s: tensor '%s': field data_offsets is missing", path, name);
  DT_CHECK(json_is_array(jo) && json_array_size(jo) == 2, DT_EINPUT,
           "%s: tensor '%s': field data_offsets is not an array [begin, end]",
           path, name);
  json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
  DT_CHECK(json_is_integer(jb) && json_is_integer(je), DT_EINPUT,
           "%s: tensor '%s': data_offsets are not integers", path, name);
  json_int_t b = json_integer_value(jb), e = json_integer_value(je);
  DT_CHECK(b >= 0 && e >= 0, DT_EINPUT,
           "%s: tensor '%s': data_offsets [%lld, %lld] are negative", path,
           name, (long long)b, (long long)e);
  DT_CHECK(b <= e, DT_EINPUT,
           "%s: tensor '%s': data_offsets [%lld, %lld] have begin > end", path,
           name, (long long)b, (long long)e);
  DT_CHECK((uint64_t)e <= data_size, DT_EINPUT,
           "%s: tensor '%s': data_offsets [%lld, %lld] end past the data block "
           "(%llu bytes; file truncated?)",
           path, name, (long long)b, (long long)e,
           (unsigned long long)data_size);
  if ((uint64_t)(e - b) != need) {
    char shp[160] = "";
    size_t k = 0;
    for (int i = 0; i < t->ndim && k + 24 < sizeof shp; i++)
      k += (size_t)snprintf(shp + k, sizeof shp - k, "%s%lld", i ? "," : "",
                            (long long)t->shape[i]);
    DT_ERR(DT_EINPUT,
           "%s: tensor '%s': data_offsets [%lld, %lld] span %lld bytes but "
           "dtype %s shape [%s] needs %llu",
           path, name, (long long)b, (long long)e, (long long)(e - b),
           dt_dtype_name(t->dtype), shp, (unsigned long long)need);
  }
  t->offset = data_start + (uint64_t)b;
  t->nbytes = need;
  return DT_OK;
}

static int parse_header(dt_st_file *f, const char *hdr, size_t len) {
  json_error_t jerr;
  json_t *root = json_loadb(hdr, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    DT_ERR(DT_EINPUT, "%s: header is not valid JSON (%s at byte %d)", f->path,
           jerr.text, jerr.position);
  int rc = DT_OK;
  if (!json_is_object(root)) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: header is not a JSON object", f->path);
    goto done;
  }
  size_t cap = json_object_size(root);
  if ((rc = dt_calloc(&f->t, (cap ? cap : 1) * sizeof *f->t,
                      "safetensors tensor table")) != DT_OK)
    goto done;
  uint64_t data_size = f->file_size - f->data_start;
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    if (strcmp(key, "__metadata__") == 0) {
      if (!json_is_object(val) && !json_is_null(val)) {
        rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                          "%s: __metadata__ is not a JSON object", f->path);
        goto done;
      }
      continue;
    }
    dt_st_tensor *t = &f->t[f->n];
    rc = parse_entry(f->path, key, val, f->data_start, data_size, t);
    if (rc != DT_OK) goto done;
    t->name = strdup(key);
    if (!t->name) {
      rc = dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__,
                        "%s: out of memory for tensor names", f->path);
      goto done;
    }
    f->n++;
  }

  /* Overlaps: sort a view by offset and compare neighbours (empty tensors
   * occupy no bytes and cannot overlap). */
  if (f->n > 1) {
    dt_st_tensor **v = NULL;
    if ((rc = dt_malloc(&v, (size_t)f->n * sizeof *v, "overlap check")) !=
        DT_OK)
      goto done;
    int m = 0;
    for (int i = 0; i < f->n; i++)
      if (f->t[i].nbytes > 0) v[m++] = &f->t[i];
    qsort(v, (size_t)m, sizeof *v, cmp_by_offset);
    for (int i = 1; i < m; i++) {
      const dt_st_tensor *a = v[i - 1], *b = v[i];
      if (b->offset < a->offset + a->nbytes) {
        rc = dt_error_set(
            DT_EINPUT, __FILE__, __LINE__, __func__,
            "%s: tensors '%s' (data_offsets [%llu, %llu]) and '%s' "
            "(data_offsets [%llu, %llu]) overlap",
            f->path, a->name,
            (unsigned long long)(a->offset - f->data_start),
            (unsigned long long)(a->offset - f->data_start + a->nbytes),
            b->name, (unsigned long long)(b->offset - f->data_start),
            (unsigned long long)(b->offset - f->data_start + b->nbytes));
        break;
      }
    }
    free(v);
  }
done:
  json_decref(root);
  return rc;
}

int dt_st_open(dt_st_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  f->path = strdup(path);
  if (!f->path) DT_ERR(DT_ENOMEM, "out of memory opening %s", path);
  int rc = DT_OK;
  char *hdr = NULL;
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    rc = dt_error_set(errno == ENOENT ? DT_EINPUT : DT_EIO, __FILE__, __LINE__,
                      __func__, "%s: cannot open: %s", path, strerror(errno));
    goto fail;
  }
  struct stat st;
  if (fstat(f->fd, &st) != 0) {
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__,
                      "%s: cannot stat: %s", path, strerror(errno));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: not a regular file", path);
    goto fail;
  }
  f->file_size = (uint64_t)st.st_size;
  if (f->file_size < 8) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: file is %llu bytes, too short for a safetensors "
                      "header length",
                      path, (unsigned long long)f->file_size);
    goto fail;
  }
  unsigned char lenb[8];
  if ((rc = pread_full(f->fd, path, NULL, lenb, 8, 0)) != DT_OK) goto fail;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenb[i];
  if (hlen == 0 || hlen > ST_MAX_HEADER || hlen > f->file_size - 8) {
    rc = dt_error_set(
        DT_EINPUT, __FILE__, __LINE__, __func__,
        "%s: header length %llu is invalid (%s; file size %llu bytes)", path,
        (unsigned long long)hlen,
        hlen == 0 ? "zero"
        : hlen > ST_MAX_HEADER ? "over the 100000000-byte limit"
                               : "past the end of the file",
        (unsigned long long)f->file_size);
    goto fail;
  }
  f->data_start = 8 + hlen;
  if ((rc = dt_malloc(&hdr, (size_t)hlen, "safetensors header")) != DT_OK)
    goto fail;
  if ((rc = pread_full(f->fd, path, NULL, hdr, (size_t)hlen, 8)) != DT_OK) goto fail;
  if ((rc = parse_header(f, hdr, (size_t)hlen)) != DT_OK) goto fail;
  free(hdr);
  return DT_OK;
fail:
  free(hdr);
  dt_st_close(f);
  return dt_error_trace(rc, __FILE__, __LINE__, __func__);
}

const dt_st_tensor *dt_st_find(const dt_st_file *f, const char *name) {
  if (!f || !name) return NULL;
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
  return NULL;
}

int dt_st_get_metadata(const dt_st_file *f, const char *key, char **value) {
  *value = NULL;
  uint64_t hlen = f->data_start - 8;
  char *hdr = NULL;
  DT_CALL(dt_malloc(&hdr, (size_t)hlen, "safetensors header"));
  int rc = pread_full(f->fd, f->path, NULL, hdr, (size_t)hlen, 8);
  if (rc != DT_OK) {
    free(hdr);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  json_error_t jerr;
  json_t *root = json_loadb(hdr, (size_t)hlen, 0, &jerr);
  free(hdr);
  if (!root)
    DT_ERR(DT_EINPUT, "%s: header is not valid JSON (%s)", f->path, jerr.text);
  json_t *m = json_object_get(root, "__metadata__");
  json_t *v = json_is_object(m) ? json_object_get(m, key) : NULL;
  if (v && !json_is_string(v)) {
    json_decref(root);
    DT_ERR(DT_EINPUT, "%s: __metadata__ field '%s' is not a string", f->path,
           key);
  }
  if (v) {
    *value = strdup(json_string_value(v));
    if (!*value) {
      json_decref(root);
      DT_ERR(DT_ENOMEM, "%s: out of memory reading metadata '%s'", f->path,
             key);
    }
  }
  json_decref(root);
  return DT_OK;
}

/* ------------------------------------------------------------------ reads */

static int check_range(const dt_st_file *f, const dt_st_tensor *t,
                       int64_t elem_off, int64_t count) {
  DT_CHECK(elem_off >= 0 && count >= 0 && elem_off <= t->numel &&
               count <= t->numel - elem_off,
           DT_EINTERNAL,
           "%s: tensor '%s': read of %lld elements at element %lld is outside "
           "its %lld elements",
           f->path, t->name, (long long)count, (long long)elem_off,
           (long long)t->numel);
  return DT_OK;
}

/* Read count elements (any dtype) at elem_off, in chunks of at most
 * ST_CHUNK bytes, calling conv(src, n, dst_index) for each chunk. */
typedef void (*conv_fn)(const void *src, int64_t n, void *dst, int64_t at);

static int read_chunks(const dt_st_file *f, const dt_st_tensor *t,
                       int64_t elem_off, int64_t count, conv_fn conv,
                       void *dst) {
  int es = dt_dtype_size(t->dtype);
  int64_t per = ST_CHUNK / es;
  size_t bytes = (size_t)((count < per ? count : per) * es);
  void *buf = NULL;
  DT_CALL(dt_malloc(&buf, bytes, "read buffer"));
  for (int64_t i = 0; i < count; i += per) {
    int64_t n = count - i < per ? count - i : per;
    int rc = pread_full(f->fd, f->path, t->name, buf, (size_t)(n * es),
                        t->offset + (uint64_t)((elem_off + i) * es));
    if (rc != DT_OK) {
      free(buf);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
    conv(buf, n, dst, i);
  }
  free(buf);
  return DT_OK;
}

static void f16_to_f32(const void *s, int64_t n, void *d, int64_t at) {
  const uint16_t *src = s;
  float *dst = (float *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = dt_f16_to_f32(src[i]);
}
static void bf16_to_f32(const void *s, int64_t n, void *d, int64_t at) {
  const uint16_t *src = s;
  float *dst = (float *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = dt_bf16_to_f32(src[i]);
}
static void f64_to_f32(const void *s, int64_t n, void *d, int64_t at) {
  const double *src = s;
  float *dst = (float *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i];
}
static void f32_to_bf16(const void *s, int64_t n, void *d, int64_t at) {
  const float *src = s;
  uint16_t *dst = (uint16_t *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = dt_f32_to_bf16(src[i]);
}
static void f16_to_bf16(const void *s, int64_t n, void *d, int64_t at) {
  const uint16_t *src = s;
  uint16_t *dst = (uint16_t *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = dt_f32_to_bf16(dt_f16_to_f32(src[i]));
}
static void f64_to_bf16(const void *s, int64_t n, void *d, int64_t at) {
  const double *src = s;
  uint16_t *dst = (uint16_t *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = dt_f32_to_bf16((float)src[i]);
}
static void i32_to_i64(const void *s, int64_t n, void *d, int64_t at) {
  const int32_t *src = s;
  int64_t *dst = (int64_t *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}
static void u8_to_i64(const void *s, int64_t n, void *d, int64_t at) {
  const uint8_t *src = s;
  int64_t *dst = (int64_t *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}
static void i8_to_i64(const void *s, int64_t n, void *d, int64_t at) {
  const int8_t *src = s;
  int64_t *dst = (int64_t *)d + at;
  for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

/* Same dtype in and out: read straight into the destination. */
static int read_direct(const dt_st_file *f, const dt_st_tensor *t,
                       int64_t elem_off, int64_t count, void *dst) {
  int es = dt_dtype_size(t->dtype);
  DT_CALL(pread_full(f->fd, f->path, t->name, dst, (size_t)(count * es),
                     t->offset + (uint64_t)(elem_off * es)));
  return DT_OK;
}

/* How a source dtype becomes the target type: conv NULL = the same type,
 * read straight into the destination. */
typedef struct {
  dt_dtype from;
  conv_fn conv;
} st_source;

/* Read count elements at elem_off into dst from any of the n sources; kind
 * names the target type in the error for any other dtype, which lists the
 * accepted ones. */
static int read_as(const dt_st_file *f, const dt_st_tensor *t, int64_t elem_off,
                   int64_t count, void *dst, const st_source *src, int n,
                   const char *kind) {
  DT_CALL(check_range(f, t, elem_off, count));
  if (count == 0) return DT_OK;
  for (int i = 0; i < n; i++) {
    if (t->dtype != src[i].from) continue;
    if (src[i].conv)
      DT_CALL(read_chunks(f, t, elem_off, count, src[i].conv, dst));
    else
      DT_CALL(read_direct(f, t, elem_off, count, dst));
    return DT_OK;
  }
  char expected[64] = ""; /* "F32, F16, BF16 or F64" */
  for (int i = 0, used = 0; i < n && used < (int)sizeof expected; i++)
    used += snprintf(expected + used, sizeof expected - (size_t)used, "%s%s",
                     i == 0 ? "" : i == n - 1 ? " or " : ", ",
                     dt_dtype_name(src[i].from));
  DT_ERR(DT_EINPUT,
         "%s: tensor '%s': dtype %s cannot be read as %s (expected %s)",
         f->path, t->name, dt_dtype_name(t->dtype), kind, expected);
}

int dt_st_read_f32(const dt_st_file *f, const dt_st_tensor *t, int64_t elem_off,
                   int64_t count, float *dst) {
  static const st_source src[] = {{DT_DTYPE_F32, NULL},
                                  {DT_DTYPE_F16, f16_to_f32},
                                  {DT_DTYPE_BF16, bf16_to_f32},
                                  {DT_DTYPE_F64, f64_to_f32}};
  DT_CALL(read_as(f, t, elem_off, count, dst, src,
                  (int)(sizeof src / sizeof *src), "floating point"));
  return DT_OK;
}

int dt_st_read_bf16(const dt_st_file *f, const dt_st_tensor *t,
                    int64_t elem_off, int64_t count, uint16_t *dst) {
  static const st_source src[] = {{DT_DTYPE_F32, f32_to_bf16},
                                  {DT_DTYPE_F16, f16_to_bf16},
                                  {DT_DTYPE_BF16, NULL},
                                  {DT_DTYPE_F64, f64_to_bf16}};
  DT_CALL(read_as(f, t, elem_off, count, dst, src,
                  (int)(sizeof src / sizeof *src), "floating point"));
  return DT_OK;
}

int dt_st_read_i64(const dt_st_file *f, const dt_st_tensor *t, int64_t elem_off,
                   int64_t count, int64_t *dst) {
  static const st_source src[] = {{DT_DTYPE_I32, i32_to_i64},
                                  {DT_DTYPE_I64, NULL},
                                  {DT_DTYPE_U8, u8_to_i64},
                                  {DT_DTYPE_I8, i8_to_i64}};
  DT_CALL(read_as(f, t, elem_off, count, dst, src,
                  (int)(sizeof src / sizeof *src), "integers"));
  return DT_OK;
}

/* ------------------------------------------------------------------ sets */

static int path_join(char **out, const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  DT_CALL(dt_malloc(out, n, "path"));
  snprintf(*out, n, "%s/%s", dir, name);
  return DT_OK;
}

static int file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

void dt_st_set_close(dt_st_set *s) {
  if (!s) return;
  for (int i = 0; i < s->n_files; i++) dt_st_close(&s->files[i]);
  free(s->files);
  free(s->dir);
  memset(s, 0, sizeof *s);
}

static int set_open_index(dt_st_set *s, const char *index_path) {
  json_error_t jerr;
  json_t *root = json_load_file(index_path, 0, &jerr);
  if (!root)
    DT_ERR(DT_EINPUT, "%s: not valid JSON (%s at line %d)", index_path,
           jerr.text, jerr.line);
  int rc = DT_OK;
  char *p = NULL;
  json_t *wm = json_object_get(root, "weight_map");
  if (!json_is_object(wm)) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: field weight_map is %s", index_path,
                      wm ? "not an object" : "missing");
    goto done;
  }
  size_t cap = json_object_size(wm);
  if (cap == 0) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: weight_map is empty", index_path);
    goto done;
  }
  if ((rc = dt_calloc(&s->files, cap * sizeof *s->files, "shard table")) !=
      DT_OK)
    goto done;
  const char *name;
  json_t *v;
  /* Distinct shards, in order of first mention. */
  json_object_foreach(wm, name, v) {
    if (!json_is_string(v)) {
      rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                        "%s: weight_map entry '%s' is not a file name",
                        index_path, name);
      goto done;
    }
    const char *shard = json_string_value(v);
    if (shard[0] == 0 || shard[0] == '/' || strstr(shard, "..")) {
      rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                        "%s: weight_map entry '%s' names shard '%s', which is "
                        "not a file name inside %s",
                        index_path, name, shard, s->dir);
      goto done;
    }
    if ((rc = path_join(&p, s->dir, shard)) != DT_OK) goto done;
    int seen = 0;
    for (int i = 0; i < s->n_files && !seen; i++)
      seen = strcmp(s->files[i].path, p) == 0;
    if (!seen) {
      if (!file_exists(p)) {
        rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                          "%s: shard '%s' (of tensor '%s') does not exist: %s",
                          index_path, shard, name, p);
        goto done;
      }
      if ((rc = dt_st_open(&s->files[s->n_files], p)) != DT_OK) {
        char msg[1536];
        snprintf(msg, sizeof msg, "%s", dt_error_message());
        dt_error_set(rc, __FILE__, __LINE__, __func__, "%s (shard listed in %s)",
                     msg, index_path);
        goto done;
      }
      s->n_files++;
    }
    free(p);
    p = NULL;
  }
  /* Every tensor of the map must be in its shard. */
  json_object_foreach(wm, name, v) {
    const char *shard = json_string_value(v);
    if ((rc = path_join(&p, s->dir, shard)) != DT_OK) goto done;
    const dt_st_file *sf = NULL;
    for (int i = 0; i < s->n_files && !sf; i++)
      if (strcmp(s->files[i].path, p) == 0) sf = &s->files[i];
    if (!sf || !dt_st_find(sf, name)) {
      rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                        "%s: tensor '%s' is mapped to shard '%s' but is not "
                        "in it",
                        index_path, name, shard);
      goto done;
    }
    free(p);
    p = NULL;
  }
done:
  free(p);
  json_decref(root);
  return rc;
}

int dt_st_set_open(dt_st_set *s, const char *dir) {
  memset(s, 0, sizeof *s);
  s->dir = strdup(dir);
  if (!s->dir) DT_ERR(DT_ENOMEM, "out of memory opening %s", dir);
  char *idx = NULL, *single = NULL;
  int rc = path_join(&idx, dir, "model.safetensors.index.json");
  if (rc == DT_OK) rc = path_join(&single, dir, "model.safetensors");
  if (rc != DT_OK) goto fail;
  if (file_exists(idx)) {
    rc = set_open_index(s, idx);
  } else if (file_exists(single)) {
    rc = dt_calloc(&s->files, sizeof *s->files, "shard table");
    if (rc == DT_OK) rc = dt_st_open(&s->files[0], single);
    if (rc == DT_OK) s->n_files = 1;
  } else {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: no model.safetensors or "
                      "model.safetensors.index.json in this folder",
                      dir);
  }
  if (rc != DT_OK) goto fail;
  free(idx);
  free(single);
  return DT_OK;
fail:
  free(idx);
  free(single);
  dt_st_set_close(s);
  return dt_error_trace(rc, __FILE__, __LINE__, __func__);
}

const dt_st_tensor *dt_st_set_find(const dt_st_set *s, const char *name,
                                   const dt_st_file **file) {
  if (file) *file = NULL;
  if (!s) return NULL;
  for (int i = 0; i < s->n_files; i++) {
    const dt_st_tensor *t = dt_st_find(&s->files[i], name);
    if (t) {
      if (file) *file = &s->files[i];
      return t;
    }
  }
  return NULL;
}

uint64_t dt_st_set_bytes(const dt_st_set *s) {
  uint64_t b = 0;
  for (int i = 0; s && i < s->n_files; i++) b += s->files[i].file_size;
  return b;
}

/* ------------------------------------------------------------------ write */

static int write_full(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    size_t want = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
    ssize_t w = write(fd, p, want);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Build the padded header; *out is malloc'd, *out_len a multiple of 8. */
static int build_header(const char *path, const dt_st_out *tensors, int n,
                        const char *const *mk, const char *const *mv,
                        int n_meta, char **out, size_t *out_len) {
  json_t *root = json_object();
  if (!root) DT_ERR(DT_ENOMEM, "%s: out of memory building header", path);
  int rc = DT_OK;
  char *s = NULL;
  if (n_meta > 0) {
    json_t *m = json_object();
    if (!m || json_object_set_new(root, "__metadata__", m) != 0) goto oom;
    for (int i = 0; i < n_meta; i++) {
      if (!mk || !mv || !mk[i] || !mv[i]) {
        rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                          "%s: metadata entry %d has a NULL key or value",
                          path, i);
        goto done;
      }
      json_t *sv = json_string(mv[i]);
      if (!sv) {
        rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                          "%s: metadata '%s' is not valid UTF-8", path, mk[i]);
        goto done;
      }
      if (json_object_set_new(m, mk[i], sv) != 0) goto oom;
    }
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const dt_st_out *t = &tensors[i];
    const char *nm = t->name ? t->name : "(null)";
    int es = dt_dtype_size(t->dtype);
    if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0 ||
        es == 0 || t->ndim < 0 || t->ndim > DT_ST_MAX_DIMS) {
      rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                        "%s: tensor %d '%s': invalid name, dtype (%d) or ndim "
                        "(%d)",
                        path, i, nm, (int)t->dtype, t->ndim);
      goto done;
    }
    if (json_object_get(root, t->name)) {
      rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                        "%s: tensor '%s' given twice", path, t->name);
      goto done;
    }
    json_t *shape = json_array();
    if (!shape) goto oom;
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
      if (t->shape[d] < 0) {
        json_decref(shape);
        rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                          "%s: tensor '%s': shape[%d] = %lld is negative", path,
                          nm, d, (long long)t->shape[d]);
        goto done;
      }
      numel *= (uint64_t)t->shape[d];
      json_array_append_new(shape, json_integer(t->shape[d]));
    }
    if (numel > 0 && !t->data) {
      json_decref(shape);
      rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                        "%s: tensor '%s' has no data", path, nm);
      goto done;
    }
    uint64_t end = off + numel * (uint64_t)es;
    json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype",
                          dt_dtype_name(t->dtype), "shape", shape,
                          "data_offsets", (json_int_t)off, (json_int_t)end);
    if (!e || json_object_set_new(root, t->name, e) != 0) goto oom;
    off = end;
  }
  s = json_dumps(root, JSON_COMPACT);
  if (!s) goto oom;
  size_t len = strlen(s);
  size_t padded = (len + 7) / 8 * 8;
  char *buf = realloc(s, padded + 1);
  if (!buf) goto oom;
  s = NULL;
  memset(buf + len, ' ', padded - len);
  buf[padded] = 0;
  *out = buf;
  *out_len = padded;
  goto done;
oom:
  rc = dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__,
                    "%s: out of memory building header", path);
done:
  free(s);
  json_decref(root);
  return rc;
}

int dt_st_write(const char *path, const dt_st_out *tensors, int n,
                const char *const *meta_keys, const char *const *meta_values,
                int n_meta) {
  char *hdr = NULL;
  size_t hlen = 0;
  DT_CALL(build_header(path, tensors, n, meta_keys, meta_values, n_meta, &hdr,
                       &hlen));
  size_t tl = strlen(path) + 32;
  char *tmp = NULL;
  int rc = dt_malloc(&tmp, tl, "temporary path");
  if (rc != DT_OK) {
    free(hdr);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());

  const char *what = "open";
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) goto fail;
  unsigned char lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  what = "write";
  if (write_full(fd, lenb, 8) != 0 || write_full(fd, hdr, hlen) != 0) goto fail;
  for (int i = 0; i < n; i++) {
    uint64_t numel = 1;
    for (int d = 0; d < tensors[i].ndim; d++) numel *= (uint64_t)tensors[i].shape[d];
    size_t bytes = (size_t)(numel * (uint64_t)dt_dtype_size(tensors[i].dtype));
    if (bytes && write_full(fd, tensors[i].data, bytes) != 0) goto fail;
  }
  what = "fsync";
  if (fsync(fd) != 0) goto fail;
  what = "close";
  {
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) goto fail;
  }
  what = "rename";
  if (rename(tmp, path) != 0) goto fail;
  /* Make the rename durable too (best effort). */
  {
    char *dir = strdup(path);
    if (dir) {
      char *slash = strrchr(dir, '/');
      const char *d = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
      int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
      }
      free(dir);
    }
  }
  free(tmp);
  free(hdr);
  return DT_OK;
fail: {
  int e = errno;
  if (fd >= 0) close(fd);
  unlink(tmp);
  free(hdr);
  dt_error_set(DT_EIO, __FILE__, __LINE__, __func__,
               "%s: cannot write safetensors file (%s of %s failed: %s)", path,
               what, tmp, strerror(e));
  free(tmp);
  return DT_EIO;
}
}
