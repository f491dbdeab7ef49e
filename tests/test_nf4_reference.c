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
 *
 * Double quantization of the block scales (src/quant.h; bitsandbytes'
 * compress_statistics=True) against tests/data/quant/nf4_dq.safetensors
 * (tests/refs/nf4_dq_ref.py, PyTorch: tests/refs/nf4_dq.py):
 *   - the dynamic map, all 256 values: dt_dynamic_map within 2 ulp of the
 *     reference's (torch.linspace's fp32 points differ by an ulp from the
 *     correctly rounded ones deltatune uses; the count of equal values is
 *     printed);
 *   - the block absmax and the offset exactly (and within 1e-6 relative of
 *     torch's float32 mean, bitsandbytes' own);
 *   - the nested absmax exactly, and the 480 8-bit scale codes, equal except
 *     within 1e-6 of a midpoint of the map;
 *   - through a dt_qmat as the model lays it out (dt_qmat_dq_set): the
 *     dequantized scales within 1e-6 of (|scale| + offset) (a zero block's
 *     scale is map[code] * n + offset, near 0, about -offset + offset:
 *     negative in bitsandbytes too), and the dequantized matrix
 *     (fp32 and bf16 tiles) within 1e-6 of the largest scale.
 * usage: test_nf4_reference NF4_FILE DQ_FILE */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bf16.h"
#include "quant.h"
#include "safetensors.h"
#include "testutil.h"

static const char *g_path, *g_dq_path;

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
  assert_int_equal(dt_qmat_init(&q, DT_Q_NF4, rows, cols, NULL, 0, 0, &bytes), 0);
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

static const dt_st_tensor *find_in(const dt_st_file *f, const char *name) {
  const dt_st_tensor *t = dt_st_find(f, name);
  if (!t) fail_msg("%s: no tensor %s", g_dq_path, name);
  return t;
}

static int64_t *read_i64(const dt_st_file *f, const char *name) {
  const dt_st_tensor *t = find_in(f, name);
  int64_t *v = malloc(sizeof(int64_t) * (size_t)t->numel);
  assert_non_null(v);
  assert_int_equal(dt_st_read_i64(f, t, 0, t->numel, v), 0);
  return v;
}

/* the distance of x from the midpoint of the two map values around it */
static float off_midpoint(const float *map, float x) {
  float best = 1e30f;
  for (int i = 0; i + 1 < 256; i++) best = fminf(best, fabsf(x - 0.5f * (map[i] + map[i + 1])));
  return best;
}

static void test_double_quant_against_reference(void **state) {
  (void)state;
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, g_dq_path), 0);
  const dt_st_tensor *tw = find_in(&f, "w");
  const int rows = (int)tw->shape[0], cols = (int)tw->shape[1];
  const int nb = cols / DT_NF4_BLOCK, n = rows * nb;
  float *w = dt_test_read_tensor(&f, tw), *rmap = dt_test_read_tensor(&f, find_in(&f, "map")),
        *ramax = dt_test_read_tensor(&f, find_in(&f, "absmax")),
        *roff = dt_test_read_tensor(&f, find_in(&f, "offset")),
        *rofft = dt_test_read_tensor(&f, find_in(&f, "offset_torch")),
        *rnabs = dt_test_read_tensor(&f, find_in(&f, "nabs")),
        *rscale = dt_test_read_tensor(&f, find_in(&f, "scale")),
        *rdeq = dt_test_read_tensor(&f, find_in(&f, "deq"));
  int64_t *rscodes = read_i64(&f, "scodes"), *rindex = read_i64(&f, "index");
  assert_int_equal(find_in(&f, "scodes")->numel, n);
  assert_int_equal(find_in(&f, "nabs")->numel, (int64_t)dt_nf4_dq_nested((size_t)n));

  /* the map */
  float map[256];
  dt_dynamic_map(map);
  int same = 0;
  for (int i = 0; i < 256; i++) {
    if (map[i] == rmap[i]) {
      same++;
      continue;
    }
    if (!(fabsf(map[i] - rmap[i]) <= 2.0f * 1.1920929e-7f * fabsf(rmap[i])))
      fail_msg("dynamic map %d: deltatune %.9g, reference %.9g", i, map[i], rmap[i]);
  }
  assert_true(map[0] < 0 && map[255] == 1.0f);
  for (int i = 1; i < 256; i++) assert_true(map[i] > map[i - 1]);

  /* the matrix through the model's path: absmax, double quantization, codes */
  dt_qmat q;
  int64_t bytes = 0, bytes1 = 0;
  assert_int_equal(dt_qmat_init(&q, DT_Q_NF4, rows, cols, NULL, n, 0, &bytes), 0);
  dt_qmat q1; /* fp32 scales: double quantization takes fewer bytes */
  assert_int_equal(dt_qmat_init(&q1, DT_Q_NF4, rows, cols, NULL, 0, 1, &bytes1), 0);
  assert_true(bytes < bytes1);
  float *amax = malloc(sizeof(float) * (size_t)n), *nabs = malloc(sizeof(float) * 8);
  uint8_t *codes = malloc((size_t)n);
  int *lrows = malloc(sizeof(int) * (size_t)rows);
  int64_t *grows = malloc(sizeof(int64_t) * (size_t)rows);
  assert_non_null(amax);
  assert_non_null(nabs);
  assert_non_null(codes);
  assert_non_null(lrows);
  assert_non_null(grows);
  dt_qmat_local_absmax(&q, w, amax);
  for (int i = 0; i < n; i++)
    if (amax[i] != ramax[i]) fail_msg("block %d: absmax %.9g, reference %.9g", i, amax[i], ramax[i]);
  float off;
  dt_nf4_double_quant(amax, (size_t)n, &off, codes, nabs);
  if (off != roff[0]) fail_msg("offset %.9g, reference %.9g", off, roff[0]);
  assert_true(fabsf(off - rofft[0]) <= 1e-6f * off);
  for (size_t k = 0; k < dt_nf4_dq_nested((size_t)n); k++)
    if (nabs[k] != rnabs[k]) fail_msg("nested absmax %zu: %.9g, reference %.9g", k, nabs[k], rnabs[k]);
  int ties = 0;
  for (int i = 0; i < n; i++) {
    if (codes[i] == rscodes[i]) continue;
    const float x = (amax[i] - off) * (1.0f / nabs[i / DT_NF4_DQ_BLOCK]);
    if (labs((long)codes[i] - (long)rscodes[i]) != 1 || off_midpoint(rmap, x) > 1e-6f)
      fail_msg("scale %d = %.9g of its nested absmax: code %d, reference %d", i, x, codes[i],
               (int)rscodes[i]);
    ties++;
  }
  assert_true(ties < 4);
  for (int r = 0; r < rows; r++) lrows[r] = r, grows[r] = r;
  assert_int_equal(dt_qmat_dq_set(&q, 0, lrows, grows, rows, nb, codes, nabs,
                                  (int64_t)dt_nf4_dq_nested((size_t)n), off), 0);
  dt_qmat_quantize(&q, w, amax);
  float smax = 0;
  for (int i = 0; i < n; i++) {
    const float s = dt_qmat_block_scale(&q, i / nb, i % nb);
    /* map[code] * n moves by the map's ulp; near zero (a zero block: about
     * -offset + offset) that is relative to the offset */
    if (!(fabsf(s - rscale[i]) <= 1e-6f * (fabsf(rscale[i]) + off)))
      fail_msg("scale %d: %.9g, reference %.9g", i, s, rscale[i]);
    smax = fmaxf(smax, fabsf(s));
  }
  int diff_codes = 0;
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) {
      const uint8_t b = q.data[(size_t)r * (cols / 2) + c / 2];
      diff_codes += ((c & 1) ? (b & 15) : (b >> 4)) != rindex[(size_t)r * cols + c];
    }
  assert_true(diff_codes < 4); /* midpoints only, as the single-level test */
  float *tile = malloc(sizeof(float) * (size_t)rows * cols);
  uint16_t *t16 = malloc(sizeof(uint16_t) * (size_t)rows * cols);
  assert_non_null(tile);
  assert_non_null(t16);
  dt_qmat_dequant_rows(&q, 0, rows, tile);
  dt_qmat_dequant_bf16(&q, 0, rows, t16);
  double worst = 0, worst16 = 0;
  for (size_t i = 0; i < (size_t)rows * cols; i++) {
    if (rindex[i] != ((q.data[i / 2] >> ((i & 1) ? 0 : 4)) & 15)) continue;
    worst = fmax(worst, fabs(tile[i] - rdeq[i]));
    worst16 = fmax(worst16, fabs(dt_bf16_to_f32(t16[i]) - tile[i]) / (fabs(tile[i]) + 1e-30));
  }
  if (!(worst <= 1e-6 * smax)) fail_msg("dequantized matrix: %.3g from the reference", worst);
  assert_true(worst16 <= 1.0 / 256); /* bf16: the fp32 value rounded */
  printf("nf4 double quantization: map %d/256 equal (the rest within 2 ulp), offset %.9g, %d scale "
         "codes (%d on a midpoint), %d nested absmax equal; dequantized within %.2g (%d of %d codes "
         "differ on a midpoint)\n",
         same, off, n, ties, (int)dt_nf4_dq_nested((size_t)n), worst, diff_codes, rows * cols);
  dt_qmat_free(&q);
  free(w), free(rmap), free(ramax), free(roff), free(rofft), free(rnabs), free(rscale), free(rdeq);
  free(rscodes), free(rindex), free(amax), free(nabs), free(codes), free(lrows), free(grows);
  free(tile), free(t16);
  dt_st_close(&f);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test_nf4_reference NF4_FILE DQ_FILE\n");
    return 2;
  }
  g_path = argv[1];
  g_dq_path = argv[2];
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_nf4_against_reference),
                                     cmocka_unit_test(test_double_quant_against_reference)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
