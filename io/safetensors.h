/* Safetensors files: validated headers, reads at tensor offsets, writes.
 *
 * Format: 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {...}},
 * then the data block. Offsets are relative to the data block.
 */
#ifndef DT_SAFETENSORS_H
#define DT_SAFETENSORS_H

#include "bf16.h" /* the tensors' bf16 <-> f32 conversions */

#include <stdint.h>

typedef enum {
  DT_DTYPE_F32 = 0,
  DT_DTYPE_F16,
  DT_DTYPE_BF16,
  DT_DTYPE_I32,
  DT_DTYPE_I64,
  DT_DTYPE_F64,
  DT_DTYPE_U8,
  DT_DTYPE_I8,
  DT_DTYPE_BOOL,
  DT_DTYPE_COUNT
} dt_dtype;

const char *dt_dtype_name(dt_dtype d);      /* "F32", "BF16", ... */
int dt_dtype_size(dt_dtype d);              /* bytes per element */

#define DT_ST_MAX_DIMS 8

typedef struct {
  char *name;
  dt_dtype dtype;
  int ndim;
  int64_t shape[DT_ST_MAX_DIMS];
  int64_t numel;
  uint64_t offset; /* absolute byte offset of the first element in the file */
  uint64_t nbytes;
} dt_st_tensor;

typedef struct {
  char *path;
  int fd;
  uint64_t file_size;
  uint64_t data_start; /* 8 + header length */
  int n;
  dt_st_tensor *t; /* n entries, in header order */
} dt_st_file;

/* Open and validate a file: header length sane and inside the file, JSON
 * valid, every dtype known, shapes non-negative, offsets inside the data
 * block, end-begin == numel*dtype size, no overlaps. Errors name the file and
 * the tensor. */
int dt_st_open(dt_st_file *f, const char *path);
void dt_st_close(dt_st_file *f);
const dt_st_tensor *dt_st_find(const dt_st_file *f, const char *name);
/* The __metadata__ string stored under key: *value is malloc'd (free it), or
 * NULL when the file has no such key. Re-reads the header. */
int dt_st_get_metadata(const dt_st_file *f, const char *key, char **value);

/* Read count elements starting at element elem_off of tensor t, converting
 * F32/F16/BF16/F64 to float. Uses pread at the tensor's offset. */
int dt_st_read_f32(const dt_st_file *f, const dt_st_tensor *t, int64_t elem_off,
                   int64_t count, float *dst);
/* Same, keeping bf16 bits (F32 is rounded to nearest even, F16 converted). */
int dt_st_read_bf16(const dt_st_file *f, const dt_st_tensor *t,
                    int64_t elem_off, int64_t count, uint16_t *dst);
/* Integer tensors (I32/I64/U8/I8) to int64. */
int dt_st_read_i64(const dt_st_file *f, const dt_st_tensor *t, int64_t elem_off,
                   int64_t count, int64_t *dst);

/* A model folder: model.safetensors, or model.safetensors.index.json with
 * its weight_map and shards. */
typedef struct {
  char *dir;
  int n_files;
  dt_st_file *files;
} dt_st_set;

int dt_st_set_open(dt_st_set *s, const char *dir);
void dt_st_set_close(dt_st_set *s);
/* Find a tensor by name in any file of the set; *file receives its file.
 * Returns NULL when absent. */
const dt_st_tensor *dt_st_set_find(const dt_st_set *s, const char *name,
                                   const dt_st_file **file);
/* Total bytes of all files (for identity and planning). */
uint64_t dt_st_set_bytes(const dt_st_set *s);

/* Writing: F32 or I64 tensors given as contiguous host arrays. The file is
 * written to PATH.tmp.<pid> and renamed over path when complete. Metadata
 * (string key/values) is optional (n_meta may be 0). */
typedef struct {
  const char *name;
  dt_dtype dtype; /* DT_DTYPE_F32, DT_DTYPE_I64 or DT_DTYPE_I32 */
  int ndim;
  int64_t shape[DT_ST_MAX_DIMS];
  const void *data;
} dt_st_out;

int dt_st_write(const char *path, const dt_st_out *tensors, int n,
                const char *const *meta_keys, const char *const *meta_values,
                int n_meta);

float dt_f16_to_f32(uint16_t h);

#endif
