/* Safetensors: conversions, write/read round trips, hand-built files,
 * corrupt inputs, model folders (single file and sharded). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "safetensors.h"
#include "testutil.h"

static const char *tmp_path(const char *name) {
  static char buf[8][1024];
  static int slot;
  char *p = buf[slot++ % 8];
  snprintf(p, 1024, "%s/%s", dt_test_tmpdir(), name);
  return p;
}

/* Write a file from a header string and raw data; hlen_override != 0 writes
 * that value as the header length instead of strlen(header). */
static void write_raw(const char *path, const char *header, const void *data,
                      size_t data_len, uint64_t hlen_override) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  uint64_t hl = hlen_override ? hlen_override : strlen(header);
  unsigned char lb[8];
  for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(hl >> (8 * i));
  assert_int_equal(fwrite(lb, 1, 8, f), 8);
  assert_int_equal(fwrite(header, 1, strlen(header), f), strlen(header));
  if (data_len) assert_int_equal(fwrite(data, 1, data_len, f), data_len);
  fclose(f);
}

/* ------------------------------------------------------------ conversions */

/* Independent half-precision reference: sign * 2^(e-15) * (1 + m/1024), or
 * m * 2^-24 for subnormals, computed with ldexp in double. */
static double f16_ref(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31) v = m ? NAN : INFINITY;
  else if (e == 0) v = ldexp((double)m, -24);
  else v = ldexp(1024.0 + m, e - 25);
  return s ? -v : v;
}

static void test_f16_known(void **state) {
  (void)state;
  assert_true(dt_f16_to_f32(0x3c00) == 1.0f);
  assert_true(dt_f16_to_f32(0xc000) == -2.0f);
  assert_true(dt_f16_to_f32(0x7bff) == 65504.0f);
  assert_true(dt_f16_to_f32(0x0001) == 5.96046448e-8f);
  assert_true(dt_f16_to_f32(0x03ff) == 6.09755516e-5f); /* largest subnormal */
  assert_true(dt_f16_to_f32(0x0400) == 6.10351562e-5f); /* smallest normal */
  assert_true(dt_f16_to_f32(0x3555) == 0.333251953125f);
  assert_true(dt_f16_to_f32(0x0000) == 0.0f && !signbit(dt_f16_to_f32(0)));
  assert_true(dt_f16_to_f32(0x8000) == 0.0f && signbit(dt_f16_to_f32(0x8000)));
  assert_true(isinf(dt_f16_to_f32(0x7c00)) && dt_f16_to_f32(0x7c00) > 0);
  assert_true(isinf(dt_f16_to_f32(0xfc00)) && dt_f16_to_f32(0xfc00) < 0);
  assert_true(isnan(dt_f16_to_f32(0x7e00)));
  assert_true(isnan(dt_f16_to_f32(0xfc01)));
}

static void test_f16_exhaustive(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 65536; h++) {
    float got = dt_f16_to_f32((uint16_t)h);
    double want = f16_ref((uint16_t)h);
    if (isnan(want)) {
      assert_true(isnan(got));
    } else if ((double)got != want || !signbit(got) != !signbit(want)) {
      fail_msg("f16 0x%04x: got %.9g want %.9g", h, (double)got, want);
    }
  }
}

static void test_bf16(void **state) {
  (void)state;
  assert_true(dt_bf16_to_f32(0x3f80) == 1.0f);
  assert_true(dt_bf16_to_f32(0xc040) == -3.0f);
  assert_true(dt_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));
  assert_int_equal(dt_f32_to_bf16(1.0f), 0x3f80);
  assert_int_equal(dt_f32_to_bf16(-3.0f), 0xc040);
  /* ties to even: 1 + 2^-8 lies halfway between 0x3f80 and 0x3f81 */
  assert_int_equal(dt_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
  assert_int_equal(dt_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
  assert_int_equal(dt_f32_to_bf16(1.0f + ldexpf(1.0f, -8) + ldexpf(1.0f, -20)),
                   0x3f81);
  assert_true(isnan(dt_bf16_to_f32(dt_f32_to_bf16(NAN))));
  assert_int_equal(dt_f32_to_bf16(INFINITY), 0x7f80);
}

static void test_dtype_table(void **state) {
  (void)state;
  const char *names[] = {"F32", "F16", "BF16", "I32", "I64",
                         "F64", "U8",  "I8",   "BOOL"};
  const int sizes[] = {4, 2, 2, 4, 8, 8, 1, 1, 1};
  for (int i = 0; i < DT_DTYPE_COUNT; i++) {
    assert_string_equal(dt_dtype_name((dt_dtype)i), names[i]);
    assert_int_equal(dt_dtype_size((dt_dtype)i), sizes[i]);
  }
}

/* ------------------------------------------------------------ round trip */

static void test_write_read_roundtrip(void **state) {
  (void)state;
  const char *path = tmp_path("rt.safetensors");
  float a[6] = {1.5f, -2.25f, 3.0f, 1e-30f, -0.0f, 65504.5f};
  int64_t b[4] = {0, -100, INT64_C(1) << 40, 7};
  int32_t c[4] = {-1, 2, 2147483647, -2147483647 - 1};
  dt_st_out out[3] = {
      {.name = "w.a", .dtype = DT_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = a},
      {.name = "b", .dtype = DT_DTYPE_I64, .ndim = 1, .shape = {4}, .data = b},
      {.name = "c", .dtype = DT_DTYPE_I32, .ndim = 2, .shape = {2, 2}, .data = c},
  };
  const char *mk[] = {"step", "note"};
  const char *mv[] = {"42", "hello \"world\""};
  assert_int_equal(dt_st_write(path, out, 3, mk, mv, 2), DT_OK);

  /* Raw layout, independently of the reader. */
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  unsigned char raw[4096];
  size_t got = fread(raw, 1, sizeof raw, fp);
  fclose(fp);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
  assert_int_equal(hl % 8, 0);
  assert_int_equal(got, 8 + hl + 24 + 32 + 16);
  assert_true(raw[8] == '{');
  /* trailing padding is spaces, JSON ends with '}' before it */
  size_t k = 8 + hl;
  while (raw[k - 1] == ' ') k--;
  assert_true(raw[k - 1] == '}');
  assert_true(memcmp(raw + 8 + hl, a, 24) == 0);
  assert_true(memcmp(raw + 8 + hl + 24, b, 32) == 0);
  assert_true(memcmp(raw + 8 + hl + 56, c, 16) == 0);
  char hdr[4096];
  memcpy(hdr, raw + 8, hl);
  hdr[hl] = 0;
  assert_non_null(strstr(hdr, "\"w.a\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                              "\"data_offsets\":[0,24]}"));
  assert_non_null(strstr(hdr, "\"data_offsets\":[24,56]"));
  assert_non_null(strstr(hdr, "\"__metadata__\":{\"step\":\"42\""));

  /* No temporary file left behind. */
  DIR *d = opendir(dt_test_tmpdir());
  assert_non_null(d);
  struct dirent *de;
  while ((de = readdir(d)))
    if (strstr(de->d_name, "rt.safetensors.tmp")) fail_msg("left %s", de->d_name);
  closedir(d);

  dt_st_file f;
  assert_int_equal(dt_st_open(&f, path), DT_OK);
  assert_int_equal(f.n, 3);
  assert_int_equal(f.data_start, 8 + hl);
  assert_int_equal(f.file_size, got);
  assert_string_equal(f.t[0].name, "w.a");
  assert_string_equal(f.t[1].name, "b");
  assert_string_equal(f.t[2].name, "c");
  const dt_st_tensor *ta = dt_st_find(&f, "w.a");
  assert_ptr_equal(ta, &f.t[0]);
  assert_int_equal(ta->dtype, DT_DTYPE_F32);
  assert_int_equal(ta->ndim, 2);
  assert_int_equal(ta->shape[0], 2);
  assert_int_equal(ta->shape[1], 3);
  assert_int_equal(ta->numel, 6);
  assert_int_equal(ta->offset, f.data_start);
  assert_int_equal(ta->nbytes, 24);
  assert_int_equal(f.t[1].offset, f.data_start + 24);
  assert_int_equal(f.t[2].offset, f.data_start + 56);
  assert_null(dt_st_find(&f, "nope"));

  float fa[6];
  assert_int_equal(dt_st_read_f32(&f, ta, 0, 6, fa), DT_OK);
  assert_memory_equal(fa, a, sizeof a);
  float part[2];
  assert_int_equal(dt_st_read_f32(&f, ta, 3, 2, part), DT_OK);
  assert_true(part[0] == a[3] && part[1] == a[4]);
  uint16_t hb[6];
  assert_int_equal(dt_st_read_bf16(&f, ta, 0, 6, hb), DT_OK);
  assert_int_equal(hb[0], 0x3fc0); /* 1.5 */
  assert_int_equal(hb[1], 0xc010); /* -2.25 */
  assert_int_equal(hb[4], 0x8000); /* -0 */

  int64_t ib[4], ic[4];
  assert_int_equal(dt_st_read_i64(&f, &f.t[1], 0, 4, ib), DT_OK);
  assert_memory_equal(ib, b, sizeof b);
  assert_int_equal(dt_st_read_i64(&f, &f.t[2], 0, 4, ic), DT_OK);
  for (int i = 0; i < 4; i++) assert_int_equal(ic[i], c[i]);

  /* Integers cannot be read as floats; floats not as integers. */
  dt_error_clear();
  assert_int_equal(dt_st_read_f32(&f, &f.t[1], 0, 4, fa), DT_EINPUT);
  dt_test_error_has("I64");
  dt_test_error_has("'b'");
  dt_test_error_has(path);
  assert_int_equal(dt_st_read_i64(&f, ta, 0, 1, ib), DT_EINPUT);
  dt_test_error_has("F32");
  /* Bounds. */
  assert_int_not_equal(dt_st_read_f32(&f, ta, 5, 2, fa), DT_OK);
  dt_test_error_has("w.a");
  assert_int_not_equal(dt_st_read_f32(&f, ta, -1, 1, fa), DT_OK);
  assert_int_equal(dt_st_read_f32(&f, ta, 6, 0, fa), DT_OK);

  char *v = NULL;
  assert_int_equal(dt_st_get_metadata(&f, "step", &v), DT_OK);
  assert_string_equal(v, "42");
  free(v);
  assert_int_equal(dt_st_get_metadata(&f, "note", &v), DT_OK);
  assert_string_equal(v, "hello \"world\"");
  free(v);
  assert_int_equal(dt_st_get_metadata(&f, "missing", &v), DT_OK);
  assert_null(v);
  dt_st_close(&f);
  assert_int_equal(f.fd, -1);
  assert_null(f.t);
}

static void test_write_no_metadata_empty_tensor(void **state) {
  (void)state;
  const char *path = tmp_path("empty.safetensors");
  float x[2] = {4, 5};
  dt_st_out out[3] = {
      {.name = "z", .dtype = DT_DTYPE_F32, .ndim = 2, .shape = {0, 3}, .data = NULL},
      {.name = "s", .dtype = DT_DTYPE_F32, .ndim = 0, .data = x},
      {.name = "x", .dtype = DT_DTYPE_F32, .ndim = 1, .shape = {2}, .data = x},
  };
  assert_int_equal(dt_st_write(path, out, 3, NULL, NULL, 0), DT_OK);
  char *hdr = dt_test_slurp(path);
  assert_non_null(hdr);
  assert_null(strstr(hdr + 8, "__metadata__"));
  free(hdr);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, path), DT_OK);
  assert_int_equal(f.n, 3);
  assert_int_equal(f.t[0].numel, 0);
  assert_int_equal(f.t[1].ndim, 0);
  assert_int_equal(f.t[1].numel, 1); /* a scalar */
  float y[2];
  assert_int_equal(dt_st_read_f32(&f, &f.t[1], 0, 1, y), DT_OK);
  assert_true(y[0] == 4.0f);
  assert_int_equal(dt_st_read_f32(&f, &f.t[2], 0, 2, y), DT_OK);
  assert_true(y[0] == 4.0f && y[1] == 5.0f);
  dt_st_close(&f);
}

static void test_write_failures(void **state) {
  (void)state;
  float x[1] = {1};
  dt_st_out out = {.name = "x", .dtype = DT_DTYPE_F32, .ndim = 1, .shape = {1}, .data = x};
  /* Folder missing. */
  const char *bad = tmp_path("no/such/dir/x.safetensors");
  dt_error_clear();
  assert_int_equal(dt_st_write(bad, &out, 1, NULL, NULL, 0), DT_EIO);
  dt_test_error_has(bad);
  dt_test_error_has(strerror(ENOENT));
  /* Target is a folder: the rename fails and the temporary file goes. */
  const char *dirp = tmp_path("isadir");
  assert_int_equal(mkdir(dirp, 0755), 0);
  assert_int_equal(dt_st_write(dirp, &out, 1, NULL, NULL, 0), DT_EIO);
  dt_test_error_has(dirp);
  char tmpname[1200];
  snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", dirp, (long)getpid());
  assert_int_not_equal(access(tmpname, F_OK), 0);
  /* Overwriting an existing file replaces it. */
  const char *p = tmp_path("over.safetensors");
  assert_int_equal(dt_st_write(p, &out, 1, NULL, NULL, 0), DT_OK);
  float y[3] = {7, 8, 9};
  dt_st_out out2 = {.name = "y", .dtype = DT_DTYPE_F32, .ndim = 1, .shape = {3}, .data = y};
  assert_int_equal(dt_st_write(p, &out2, 1, NULL, NULL, 0), DT_OK);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, p), DT_OK);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.t[0].name, "y");
  dt_st_close(&f);
  /* Duplicate names are refused. */
  dt_st_out dup[2] = {out, out};
  assert_int_not_equal(dt_st_write(p, dup, 2, NULL, NULL, 0), DT_OK);
  dt_test_error_has("'x'");
}

/* ------------------------------------------------------------ hand-built */

static void test_handbuilt_dtypes(void **state) {
  (void)state;
  const char *path = tmp_path("hand.safetensors");
  /* h: F16 [4]; g: BF16 [2]; d: F64 [2]; u: U8 [3]; i: I8 [3]; q: BOOL [1] */
  const char *hdr =
      "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
      "\"g\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]},"
      "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[32,35]},"
      "\"i\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[35,38]},"
      "\"q\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[38,39]},"
      "\"__metadata__\":{\"format\":\"pt\"}}  ";
  unsigned char data[39] = {0};
  uint16_t h[4] = {0x3c00, 0x7bff, 0x0001, 0xc000};
  uint16_t g[2] = {0x3f80, 0xc040};
  double dd[2] = {0.1, -1e300};
  memcpy(data, h, 8);
  memcpy(data + 8, g, 4);
  memcpy(data + 16, dd, 16);
  data[32] = 0; data[33] = 200; data[34] = 255;
  data[35] = 0x80; data[36] = 0xff; data[37] = 5;
  data[38] = 1;
  write_raw(path, hdr, data, sizeof data, 0);

  dt_st_file f;
  assert_int_equal(dt_st_open(&f, path), DT_OK);
  assert_int_equal(f.n, 6);
  assert_string_equal(f.t[0].name, "h");
  assert_string_equal(f.t[5].name, "q");
  float v[4];
  assert_int_equal(dt_st_read_f32(&f, dt_st_find(&f, "h"), 0, 4, v), DT_OK);
  assert_true(v[0] == 1.0f && v[1] == 65504.0f && v[2] == 5.96046448e-8f &&
              v[3] == -2.0f);
  assert_int_equal(dt_st_read_f32(&f, dt_st_find(&f, "g"), 0, 2, v), DT_OK);
  assert_true(v[0] == 1.0f && v[1] == -3.0f);
  assert_int_equal(dt_st_read_f32(&f, dt_st_find(&f, "d"), 0, 2, v), DT_OK);
  assert_true(v[0] == 0.1f && isinf(v[1]) && v[1] < 0);
  uint16_t bb[4];
  assert_int_equal(dt_st_read_bf16(&f, dt_st_find(&f, "g"), 1, 1, bb), DT_OK);
  assert_int_equal(bb[0], 0xc040);
  assert_int_equal(dt_st_read_bf16(&f, dt_st_find(&f, "h"), 0, 4, bb), DT_OK);
  assert_int_equal(bb[0], 0x3f80);
  assert_int_equal(bb[1], dt_f32_to_bf16(65504.0f));
  assert_int_equal(bb[3], 0xc000);
  int64_t iv[3];
  assert_int_equal(dt_st_read_i64(&f, dt_st_find(&f, "u"), 0, 3, iv), DT_OK);
  assert_true(iv[0] == 0 && iv[1] == 200 && iv[2] == 255);
  assert_int_equal(dt_st_read_i64(&f, dt_st_find(&f, "i"), 0, 3, iv), DT_OK);
  assert_true(iv[0] == -128 && iv[1] == -1 && iv[2] == 5);
  dt_error_clear();
  assert_int_equal(dt_st_read_f32(&f, dt_st_find(&f, "u"), 0, 1, v), DT_EINPUT);
  dt_test_error_has("U8");
  assert_int_equal(dt_st_read_i64(&f, dt_st_find(&f, "q"), 0, 1, iv), DT_EINPUT);
  dt_test_error_has("BOOL");
  char *meta = NULL;
  assert_int_equal(dt_st_get_metadata(&f, "format", &meta), DT_OK);
  assert_string_equal(meta, "pt");
  free(meta);
  dt_st_close(&f);
}

/* Conversions that span several internal read chunks. */
static void test_large_conversion(void **state) {
  (void)state;
  const char *path = tmp_path("large.safetensors");
  const int n = 1500000;
  uint16_t *h = malloc((size_t)n * 2);
  assert_non_null(h);
  for (int i = 0; i < n; i++) h[i] = (uint16_t)(i * 7919u);
  char hdr[256];
  snprintf(hdr, sizeof hdr,
           "{\"x\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[0,%d]}}",
           n, 2 * n);
  write_raw(path, hdr, h, (size_t)n * 2, 0);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, path), DT_OK);
  float *v = malloc((size_t)n * 4);
  assert_non_null(v);
  assert_int_equal(dt_st_read_f32(&f, &f.t[0], 0, n, v), DT_OK);
  for (int i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &v[i], 4);
    if (bits != (uint32_t)h[i] << 16) fail_msg("element %d differs", i);
  }
  uint16_t *back = malloc((size_t)n * 2);
  assert_int_equal(dt_st_read_bf16(&f, &f.t[0], 100, n - 100, back), DT_OK);
  assert_memory_equal(back, h + 100, (size_t)(n - 100) * 2);
  free(back);
  free(v);
  free(h);
  dt_st_close(&f);
}

/* The GPT-2 fixture written by Hugging Face; expected values were read with
 * Python's json/struct modules. */
static void test_hf_fixture(void **state) {
  (void)state;
  const char *path = dt_test_fixture("gpt2/model/model.safetensors");
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, path), DT_OK);
  assert_int_equal(f.n, 28);
  const dt_st_tensor *t = dt_st_find(&f, "transformer.h.0.attn.c_attn.weight");
  assert_non_null(t);
  assert_int_equal(t->dtype, DT_DTYPE_F32);
  assert_int_equal(t->ndim, 2);
  assert_int_equal(t->shape[0], 48);
  assert_int_equal(t->shape[1], 144);
  assert_int_equal(t->offset, f.data_start + 576);
  assert_int_equal(t->nbytes, 28224 - 576);
  t = dt_st_find(&f, "transformer.h.0.attn.c_proj.bias");
  assert_non_null(t);
  assert_int_equal(t->offset, f.data_start + 28224);
  assert_int_equal(t->numel, 48);
  char *m = NULL;
  assert_int_equal(dt_st_get_metadata(&f, "format", &m), DT_OK);
  assert_string_equal(m, "pt");
  free(m);
  dt_st_close(&f);
}

/* ------------------------------------------------------------ corrupt */

typedef struct {
  const char *label;
  const char *header;
  size_t data_len;
  uint64_t hlen_override;
  const char *must1, *must2;
} bad_case;

static void test_corrupt_inputs(void **state) {
  (void)state;
  const bad_case cases[] = {
      {"len0", "{}", 0, UINT64_MAX, "header length", "0"},
      {"lenhuge", "{}", 16, UINT64_C(1) << 40, "header length", "1099511627776"},
      {"lenpast", "{}", 16, 1000, "header length", "1000"},
      {"badjson", "{\"a\":{\"dtype\":\"F32\",", 8, 0, "JSON", NULL},
      {"notobj", "[1,2]", 8, 0, "not a JSON object", NULL},
      {"outside", "{\"wte\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
       8, 0, "'wte'", "data_offsets"},
      {"mismatch", "{\"wpe\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}",
       16, 0, "'wpe'", "needs 12"},
      {"dtype", "{\"lm\":{\"dtype\":\"F8_E4M3\",\"shape\":[3],\"data_offsets\":[0,3]}}",
       8, 0, "'lm'", "F8_E4M3"},
      {"negshape", "{\"ln\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}",
       8, 0, "'ln'", "shape"},
      {"ndim", "{\"nd\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
       "\"data_offsets\":[0,1]}}", 8, 0, "'nd'", "9 dimensions"},
      {"beginend", "{\"be\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}",
       8, 0, "'be'", "begin > end"},
      {"nodtype", "{\"nd2\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 8, 0,
       "'nd2'", "dtype"},
      {"nooffsets", "{\"no\":{\"dtype\":\"F32\",\"shape\":[1]}}", 8, 0, "'no'",
       "data_offsets"},
      {"overlap", "{\"p\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
       "\"q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
       16, 0, "'p'", "'q'"},
      {"dupkey", "{\"r\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"r\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       16, 0, "JSON", NULL},
  };
  unsigned char zeros[64] = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case *c = &cases[i];
    char name[64];
    snprintf(name, sizeof name, "bad-%s.safetensors", c->label);
    const char *path = tmp_path(name);
    write_raw(path, c->header, zeros, c->data_len,
              c->hlen_override == UINT64_MAX ? 0 : c->hlen_override);
    if (c->hlen_override == UINT64_MAX) { /* write a zero length */
      FILE *fp = fopen(path, "r+b");
      assert_non_null(fp);
      assert_int_equal(fwrite(zeros, 1, 8, fp), 8);
      fclose(fp);
    }
    dt_st_file f;
    dt_error_clear();
    int rc = dt_st_open(&f, path);
    if (rc != DT_EINPUT) fail_msg("case %s: rc %d (%s)", c->label, rc, dt_error_message());
    dt_test_error_has(path);
    if (c->must1) dt_test_error_has(c->must1);
    if (c->must2) dt_test_error_has(c->must2);
    assert_int_equal(f.fd, -1); /* cleaned up */
    assert_null(f.t);
  }
  /* Too short for a length; missing file. */
  const char *shortp = tmp_path("short.safetensors");
  FILE *fp = fopen(shortp, "wb");
  fwrite("abc", 1, 3, fp);
  fclose(fp);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, shortp), DT_EINPUT);
  dt_test_error_has(shortp);
  const char *missing = tmp_path("missing.safetensors");
  assert_int_not_equal(dt_st_open(&f, missing), DT_OK);
  dt_test_error_has(missing);
}

static void test_truncated_after_open(void **state) {
  (void)state;
  const char *path = tmp_path("trunc.safetensors");
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  dt_st_out out = {.name = "emb", .dtype = DT_DTYPE_F32, .ndim = 1, .shape = {8}, .data = x};
  assert_int_equal(dt_st_write(path, &out, 1, NULL, NULL, 0), DT_OK);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, path), DT_OK);
  assert_int_equal(truncate(path, (off_t)(f.data_start + 10)), 0);
  float y[8];
  dt_error_clear();
  assert_int_equal(dt_st_read_f32(&f, &f.t[0], 0, 8, y), DT_EIO);
  dt_test_error_has(path);
  dt_test_error_has("emb");
  dt_test_error_has("end of file");
  /* The part still present reads fine. */
  assert_int_equal(dt_st_read_f32(&f, &f.t[0], 0, 2, y), DT_OK);
  assert_true(y[0] == 1 && y[1] == 2);
  dt_st_close(&f);
  /* Reopening the truncated file fails at open, naming the tensor. */
  assert_int_equal(dt_st_open(&f, path), DT_EINPUT);
  dt_test_error_has("emb");
  dt_test_error_has(path);
}

/* ------------------------------------------------------------ sets */

static void write_f32(const char *path, const char *name, int n, float base) {
  float v[16];
  for (int i = 0; i < n; i++) v[i] = base + (float)i;
  dt_st_out o = {.name = name, .dtype = DT_DTYPE_F32, .ndim = 1, .shape = {n}, .data = v};
  assert_int_equal(dt_st_write(path, &o, 1, NULL, NULL, 0), DT_OK);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_set_single_and_sharded(void **state) {
  (void)state;
  char dir[1024], p[1200];
  /* single */
  snprintf(dir, sizeof dir, "%s/single", dt_test_tmpdir());
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  write_f32(p, "a", 4, 0);
  dt_st_set s;
  assert_int_equal(dt_st_set_open(&s, dir), DT_OK);
  assert_int_equal(s.n_files, 1);
  const dt_st_file *which = NULL;
  const dt_st_tensor *t = dt_st_set_find(&s, "a", &which);
  assert_non_null(t);
  assert_ptr_equal(which, &s.files[0]);
  assert_null(dt_st_set_find(&s, "b", &which));
  assert_null(which);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(dt_st_set_bytes(&s), (uint64_t)st.st_size);
  dt_st_set_close(&s);

  /* sharded */
  snprintf(dir, sizeof dir, "%s/sharded", dt_test_tmpdir());
  assert_int_equal(mkdir(dir, 0755), 0);
  snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
  write_f32(p, "x", 3, 10);
  struct stat s1, s2;
  assert_int_equal(stat(p, &s1), 0);
  snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
  write_f32(p, "y", 5, 20);
  assert_int_equal(stat(p, &s2), 0);
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  write_text(p,
             "{\"metadata\":{\"total_size\":32},\"weight_map\":{"
             "\"x\":\"model-00001-of-00002.safetensors\","
             "\"y\":\"model-00002-of-00002.safetensors\"}}");
  assert_int_equal(dt_st_set_open(&s, dir), DT_OK);
  assert_int_equal(s.n_files, 2);
  t = dt_st_set_find(&s, "y", &which);
  assert_non_null(t);
  assert_ptr_equal(which, &s.files[1]);
  float v[5];
  assert_int_equal(dt_st_read_f32(which, t, 0, 5, v), DT_OK);
  assert_true(v[0] == 20 && v[4] == 24);
  t = dt_st_set_find(&s, "x", &which);
  assert_non_null(t);
  assert_ptr_equal(which, &s.files[0]);
  assert_int_equal(dt_st_set_bytes(&s), (uint64_t)(s1.st_size + s2.st_size));
  dt_st_set_close(&s);

  /* index naming a missing shard */
  write_text(p,
             "{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\","
             "\"y\":\"model-00003-of-00002.safetensors\"}}");
  dt_error_clear();
  assert_int_equal(dt_st_set_open(&s, dir), DT_EINPUT);
  dt_test_error_has(p);
  dt_test_error_has("model-00003-of-00002.safetensors");
  assert_int_equal(s.n_files, 0);

  /* index mapping a tensor to the wrong shard */
  write_text(p,
             "{\"weight_map\":{\"x\":\"model-00002-of-00002.safetensors\","
             "\"y\":\"model-00002-of-00002.safetensors\"}}");
  assert_int_equal(dt_st_set_open(&s, dir), DT_EINPUT);
  dt_test_error_has("'x'");

  /* index that is not JSON */
  write_text(p, "{weight_map");
  assert_int_equal(dt_st_set_open(&s, dir), DT_EINPUT);
  dt_test_error_has(p);

  /* neither file */
  snprintf(dir, sizeof dir, "%s/emptydir", dt_test_tmpdir());
  assert_int_equal(mkdir(dir, 0755), 0);
  assert_int_equal(dt_st_set_open(&s, dir), DT_EINPUT);
  dt_test_error_has(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_f16_known),
      cmocka_unit_test(test_f16_exhaustive),
      cmocka_unit_test(test_bf16),
      cmocka_unit_test(test_dtype_table),
      cmocka_unit_test(test_write_read_roundtrip),
      cmocka_unit_test(test_write_no_metadata_empty_tensor),
      cmocka_unit_test(test_write_failures),
      cmocka_unit_test(test_handbuilt_dtypes),
      cmocka_unit_test(test_large_conversion),
      cmocka_unit_test(test_hf_fixture),
      cmocka_unit_test(test_corrupt_inputs),
      cmocka_unit_test(test_truncated_after_open),
      cmocka_unit_test(test_set_single_and_sharded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
