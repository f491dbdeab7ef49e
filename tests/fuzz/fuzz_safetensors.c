/* libFuzzer: the bytes as a safetensors file. dt_st_open validates the
 * header (length, JSON, dtypes, shapes, offsets, overlaps); every tensor of
 * a file that opens is then read whole through the converting readers, and
 * the metadata looked up. Nothing may crash, leak or read out of bounds. */
#include "error.h"
#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("t.safetensors", data, size);
  dt_st_file f;
  if (dt_st_open(&f, path) != DT_OK) {
    dt_error_clear();
    return 0;
  }
  for (int i = 0; i < f.n; i++) {
    const dt_st_tensor *t = &f.t[i];
    if (t->numel > (1 << 20)) continue; /* the bytes are in the file: bounded */
    const int64_t n = t->numel ? t->numel : 1;
    float *x = malloc(sizeof(float) * (size_t)n);
    int64_t *y = malloc(sizeof(int64_t) * (size_t)n);
    uint16_t *z = malloc(sizeof(uint16_t) * (size_t)n);
    if (x && y && z) {
      (void)dt_st_read_f32(&f, t, 0, t->numel, x);
      (void)dt_st_read_i64(&f, t, 0, t->numel, y);
      (void)dt_st_read_bf16(&f, t, 0, t->numel, z);
      if (t->numel > 1) (void)dt_st_read_f32(&f, t, t->numel / 2, t->numel - t->numel / 2, x);
    }
    free(x);
    free(y);
    free(z);
    if (dt_st_find(&f, t->name) == NULL) abort(); /* every listed tensor is found */
  }
  char *v = NULL;
  (void)dt_st_get_metadata(&f, "format", &v);
  free(v);
  dt_st_close(&f);
  dt_error_clear();
  return 0;
}
