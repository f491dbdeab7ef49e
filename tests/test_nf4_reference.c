/* deltatune's NF4 quantizer (src/quant.h) against an independent NF4
 * quantizer in Python (tests/data/quant/nf4_peft.safetensors, made by
 * tests/refs/nf4_peft_ref.py; its metadata "source" names the quantizer:
 * PEFT's NormalFloat quantizer where the script finds one, else the code
 * book computed from normal quantiles as bitsandbytes' create_normal_map
 * publishes it, with scipy; tests/data/quant/README.md says which made the
 * checked-in file):
 *   - the code book: dt_nf4_code (bitsandbytes' published values) equals
 *     the computed 16 values within 1e-6 (computing them from normal
 *     quantiles moves them by about 1e-7 from the published ones);
 *   - the block scales: one per 64 columns of a row (here 5 whole blocks
 *     of a 320-wide row), each the block's absmax, exactly;
 *   - the codes of all 15,360 elements: equal, except where the value
 *     over its absmax lies within 1e-6 of the midpoint of two adjacent
 *     codes (a rounding of x/s against x*(1/s) decides those);
 *   - the packing: two codes a byte, the first in the high nibble, as
 *     bitsandbytes stores them (kQuantizeBlockwise: the even element
 *     shifted left by 4); the file's "index" is unpacked from the Python
 *     quantizer's bytes, which hold the first in the low nibble (PEFT's).
 * usage: test_nf4_reference FILE */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "quant.h"
#include "safetensors.h"
#include "testutil.h"

static const char *g_path;

static const dt_st_tensor *must_find(const dt_st_file *f, const char *name) {
  const dt_st_tensor *t = dt_st_find(f, name);
  if (!t) fail_msg("%s: no tensor %s", g_path, name);
  return t;
}

static void test_nf4_against_reference(void **state) {
  (void)state;
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, g_path), 0);
  const dt_st_tensor *tw = must_find(&f, "w"), *tc = must_find(&f, "code"),
                     *ti = must_find(&f, "index"), *ta = must_find(&f, "absmax");
  assert_int_equal(tw->ndim, 2);
  const int rows = (int)tw->shape[0], cols = (int)tw->shape[1];
  assert_int_equal(tc->numel, 16);
  assert_int_equal(ti->numel, (int64_t)rows * cols);
  assert_int_equal(cols % DT_NF4_BLOCK, 0);
  assert_int_equal(ta->numel, (int64_t)rows * cols / DT_NF4_BLOCK);
  float *w = dt_test_read_tensor(&f, tw), *code = dt_test_read_tensor(&f, tc),
        *amax = dt_test_read_tensor(&f, ta);
  int64_t *index = malloc(sizeof(int64_t) * (size_t)ti->numel);
  assert_non_null(w);
  assert_non_null(code);
  assert_non_null(amax);
  assert_non_null(index);
  assert_int_equal(dt_st_read_i64(&f, ti, 0, ti->numel, index), 0);

  for (int i = 0; i < 16; i++)
    if (fabsf(dt_nf4_code[i] - code[i]) > 1e-6f)
      fail_msg("code %d: deltatune %.9g, reference %.9g", i, dt_nf4_code[i], code[i]);

  dt_qmat q;
  int64_t bytes = 0;
  assert_int_equal(dt_qmat_init(&q, DT_Q_NF4, rows, cols, NULL, 0, &bytes), 0);
  assert_int_equal(q.nb, cols / DT_NF4_BLOCK);
  dt_qmat_quantize(&q, w, NULL);
  for (int i = 0; i < rows * q.nb; i++)
    if (q.scale[i] != amax[i])
      fail_msg("block %d: absmax %.9g, reference %.9g", i, q.scale[i], amax[i]);
  int ties = 0;
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      const uint8_t b = q.data[(size_t)r * (cols / 2) + c / 2];
      const int mine = (c & 1) ? (b & 15) : (b >> 4);
      const int64_t ref = index[(size_t)r * cols + c];
      if (mine == ref) continue;
      const float x = w[(size_t)r * cols + c] / amax[r * q.nb + c / DT_NF4_BLOCK];
      const int lo = mine < ref ? mine : (int)ref;
      if (labs(mine - (long)ref) != 1 || fabsf(x - 0.5f * (code[lo] + code[lo + 1])) > 1e-6f)
        fail_msg("element (%d, %d) = %.9g of absmax: code %d, reference %d", r, c, x, mine,
                 (int)ref);
      ties++;
    }
  printf("nf4: %d codes, %d scales equal the reference's; %d elements on a midpoint\n", rows * cols,
         rows * q.nb, ties);
  assert_true(ties < 4);
  dt_qmat_free(&q);
  free(w);
  free(code);
  free(amax);
  free(index);
  dt_st_close(&f);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_nf4_reference FILE\n");
    return 2;
  }
  g_path = argv[1];
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_nf4_against_reference)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
