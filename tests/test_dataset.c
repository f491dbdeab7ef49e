/* Datasets: the HF parity batch, written files, and every validation error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
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

/* The fixture's contents, as read with Python's struct module. */
static const int64_t k_ids[24] = {3,  52, 81, 9,  37, 58, 40, 51, 8,  31, 80, 77,
                                  85, 28, 17, 19, 74, 91, 44, 13, 9,  29, 79, 61};
static const int64_t k_labels[24] = {
    -100, -100, -100, -100, 37, 58,   40,   51,   8,  31, 80,   77,
    -100, -100, -100, -100, 74, 91,   44,   13,   9,  29, -100, -100};

static void test_fixture_batch(void **state) {
  (void)state;
  const char *path = dt_test_fixture("gpt2/batch.safetensors");
  dt_dataset d;
  assert_int_equal(dt_dataset_load(&d, path, 96), DT_OK);
  assert_int_equal(d.n_rows, 2);
  assert_int_equal(d.seq_len, 12);
  assert_string_equal(d.path, path);
  for (int i = 0; i < 24; i++) {
    assert_int_equal(d.input_ids[i], k_ids[i]);
    assert_int_equal(d.labels[i], k_labels[i]);
  }
  /* 8 scored in row 0 (columns 4..11), 6 in row 1 (columns 4..9). */
  assert_int_equal(d.n_scored, 14);
  dt_dataset_free(&d);
  assert_null(d.input_ids);
  /* vocab <= 0 skips the range check */
  assert_int_equal(dt_dataset_load(&d, path, 0), DT_OK);
  dt_dataset_free(&d);
}

static void test_fixture_out_of_range(void **state) {
  (void)state;
  const char *path = dt_test_fixture("gpt2/batch.safetensors");
  dt_dataset d;
  dt_error_clear();
  /* First id >= 50 is 52 at row 0, column 1. */
  assert_int_equal(dt_dataset_load(&d, path, 50), DT_EINPUT);
  dt_test_error_has(path);
  dt_test_error_has("input_ids");
  dt_test_error_has("row 0");
  dt_test_error_has("column 1");
  dt_test_error_has("52");
  dt_test_error_has("vocab 50");
  assert_null(d.input_ids);
  assert_null(d.path);
}

/* Write input_ids (and labels when given) of shape [n,t] with dtype dt. */
static const char *write_ds(const char *name, dt_dtype dt, int ndim,
                            const int64_t *shape, const void *ids,
                            const int64_t *lshape, const void *labels) {
  const char *path = tmp_path(name);
  dt_st_out o[2];
  int n = 0;
  if (ids) {
    o[n] = (dt_st_out){.name = "input_ids", .dtype = dt, .ndim = ndim, .data = ids};
    memcpy(o[n].shape, shape, (size_t)ndim * sizeof *shape);
    n++;
  }
  if (labels) {
    o[n] = (dt_st_out){.name = "labels", .dtype = dt, .ndim = 2, .data = labels};
    memcpy(o[n].shape, lshape, 2 * sizeof *lshape);
    n++;
  }
  assert_int_equal(dt_st_write(path, o, n, NULL, NULL, 0), DT_OK);
  return path;
}

static void test_i32_no_labels(void **state) {
  (void)state;
  int32_t ids[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const int64_t shape[2] = {3, 4};
  const char *p = write_ds("i32.safetensors", DT_DTYPE_I32, 2, shape, ids, NULL, NULL);
  dt_dataset d;
  assert_int_equal(dt_dataset_load(&d, p, 13), DT_OK);
  assert_int_equal(d.n_rows, 3);
  assert_int_equal(d.seq_len, 4);
  assert_memory_equal(d.input_ids, ids, sizeof ids);
  assert_memory_equal(d.labels, ids, sizeof ids); /* labels = input_ids */
  assert_int_equal(d.n_scored, 3 * 3);             /* column 0 never scored */
  dt_dataset_free(&d);
}

static void test_label_column0_not_scored(void **state) {
  (void)state;
  int64_t ids[2 * 3] = {1, 2, 3, 4, 5, 6};
  int64_t lab[2 * 3] = {1, -100, 3, 4, 5, -100};
  const int64_t shape[2] = {2, 3};
  const char *p = write_ds("col0.safetensors", DT_DTYPE_I64, 2, shape, ids, shape, lab);
  dt_dataset d;
  assert_int_equal(dt_dataset_load(&d, p, 7), DT_OK);
  assert_int_equal(d.n_scored, 2); /* (0,2) and (1,1); (0,0),(1,0) excluded */
  assert_int_equal(d.labels[1], -100);
  dt_dataset_free(&d);
}

static void test_errors(void **state) {
  (void)state;
  dt_dataset d;
  const int64_t s23[2] = {2, 3}, s22[2] = {2, 2}, s6[1] = {6}, s21[2] = {2, 1},
                s03[2] = {0, 3};
  int64_t ids[6] = {1, 2, 3, 4, 5, 6};
  float fids[6] = {1, 2, 3, 4, 5, 6};

  /* missing input_ids */
  const char *p = write_ds("noids.safetensors", DT_DTYPE_I64, 2, s23, NULL, s23, ids);
  dt_error_clear();
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has(p);
  dt_test_error_has("input_ids");

  /* ragged: labels [2,2] vs input_ids [2,3] */
  p = write_ds("ragged.safetensors", DT_DTYPE_I64, 2, s23, ids, s22, ids);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has(p);
  dt_test_error_has("labels");
  dt_test_error_has("[2, 2]");
  dt_test_error_has("[2, 3]");

  /* 1-D */
  p = write_ds("oned.safetensors", DT_DTYPE_I64, 1, s6, ids, NULL, NULL);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has("input_ids");
  dt_test_error_has("1 dimensions");

  /* float ids */
  p = write_ds("float.safetensors", DT_DTYPE_F32, 2, s23, fids, NULL, NULL);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has(p);
  dt_test_error_has("F32");
  dt_test_error_has("input_ids");

  /* empty: one column, or no rows */
  p = write_ds("t1.safetensors", DT_DTYPE_I64, 2, s21, ids, NULL, NULL);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has("empty");
  p = write_ds("n0.safetensors", DT_DTYPE_I64, 2, s03, ids, NULL, NULL);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has("empty");

  /* bad label value (-5 at row 1, column 2) */
  int64_t lab[6] = {1, 2, 3, 4, 5, -5};
  p = write_ds("badlab.safetensors", DT_DTYPE_I64, 2, s23, ids, s23, lab);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has(p);
  dt_test_error_has("labels");
  dt_test_error_has("row 1");
  dt_test_error_has("column 2");
  dt_test_error_has("-5");
  /* label == vocab is out of range too */
  int64_t lab2[6] = {1, 2, 10, 4, 5, 6};
  p = write_ds("badlab2.safetensors", DT_DTYPE_I64, 2, s23, ids, s23, lab2);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has("column 2");
  dt_test_error_has("10");

  /* negative id with no vocab bound; id beyond int32 */
  int64_t neg[6] = {1, 2, 3, -1, 5, 6};
  p = write_ds("neg.safetensors", DT_DTYPE_I64, 2, s23, neg, NULL, NULL);
  assert_int_equal(dt_dataset_load(&d, p, 0), DT_EINPUT);
  dt_test_error_has("row 1");
  dt_test_error_has("column 0");
  int64_t big[6] = {1, 2, 3, 4, INT64_C(1) << 33, 6};
  p = write_ds("big.safetensors", DT_DTYPE_I64, 2, s23, big, NULL, NULL);
  assert_int_equal(dt_dataset_load(&d, p, 0), DT_EINPUT);
  dt_test_error_has("8589934592");

  /* no scored label at all */
  int64_t none[6] = {1, -100, -100, 4, -100, -100};
  p = write_ds("none.safetensors", DT_DTYPE_I64, 2, s23, ids, s23, none);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has("no scored");

  /* not a safetensors file */
  p = tmp_path("junk.safetensors");
  FILE *f = fopen(p, "wb");
  fputs("junkjunkjunk", f);
  fclose(f);
  assert_int_equal(dt_dataset_load(&d, p, 10), DT_EINPUT);
  dt_test_error_has(p);
  assert_null(d.input_ids);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fixture_batch),
      cmocka_unit_test(test_fixture_out_of_range),
      cmocka_unit_test(test_i32_no_labels),
      cmocka_unit_test(test_label_column0_not_scored),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
