/* The family descriptors (io/arch.c) are consistent with themselves: a new
 * family's table entry that leaves a gap or an overlap in a fused product,
 * or a module that matches no tensor, fails here before any parity test. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "hf_config.h"
#include "testutil.h"

/* A config of each family, with q, kv and ffn all different (GQA for the
 * families that have it), so that a wrong size name shows. */
static void config_of(dt_config *c, const dt_arch_desc *A) {
  char spec[256];
  if (A->grouped_kv)
    snprintf(spec, sizeof spec, "synthetic:%s:layers=2,d=64,heads=8,kv_heads=2,ffn=96,vocab=50,ctx=32",
             A->name);
  else
    snprintf(spec, sizeof spec, "synthetic:%s:layers=2,d=64,heads=8,ffn=96,vocab=50,ctx=32", A->name);
  if (dt_synthetic_config_parse(c, spec) != DT_OK) fail_msg("%s: %s", spec, dt_error_message());
  assert_ptr_equal(dt_cfg_arch(c), A);
}

static int site_width(const dt_config *c, dt_site s) {
  switch (s) {
    case DT_SITE_QKV: return dt_cfg_qkv_dim(c);
    case DT_SITE_FC: return dt_cfg_fc_dim(c);
    default: return c->d_model;
  }
}

/* rows [lo, hi) of every site are covered exactly once (in any order: OPT's
 * files hold k, v, q) */
static void check_tiling(const char *fam, const char *what, dt_site s, int width, int *lo,
                         int *hi, int n) {
  for (int i = 1; i < n; i++) /* by lo */
    for (int j = i; j > 0 && lo[j] < lo[j - 1]; j--) {
      const int l = lo[j], h = hi[j];
      lo[j] = lo[j - 1], hi[j] = hi[j - 1];
      lo[j - 1] = l, hi[j - 1] = h;
    }
  int at = 0;
  for (int i = 0; i < n; i++) {
    if (lo[i] != at) fail_msg("%s: %s of site %d: a piece starts at %d, expected %d", fam, what, s, lo[i], at);
    at = hi[i];
  }
  if (at != width) fail_msg("%s: %s of site %d cover %d of %d rows", fam, what, s, at, width);
}

static void test_descriptors(void **st) {
  (void)st;
  /* every value the enum may hold (the ids need not be consecutive);
   * GPT-NeoX's 6, Gemma-2's 8, BLOOM's 9 and Falcon's 10, the last id this
   * test knows to exist, all in the table */
  int seen = 0;
  for (int a = 1; a < 64; a++) {
    const dt_arch_desc *A = dt_arch_get((dt_arch)a);
    if (!A) continue;
    seen += a == DT_ARCH_GPT_NEOX || a == DT_ARCH_GEMMA2 || a == DT_ARCH_BLOOM ||
            a == DT_ARCH_FALCON;
    assert_ptr_equal(dt_arch_by_name(A->name), A);
    dt_config c;
    config_of(&c, A);
    assert_true(A->n_modules > 0 && A->n_modules <= DT_ARCH_MAX_MODULES);
    assert_true(A->n_tensors > 0 && A->n_tensors <= DT_ARCH_MAX_TENSORS);
    for (dt_site s = 0; s < DT_N_SITES; s++) {
      int lo[DT_ARCH_MAX_TENSORS], hi[DT_ARCH_MAX_TENSORS], n = 0;
      /* the modules of the site tile its output */
      for (int i = 0; i < A->n_modules; i++) {
        const dt_arch_module *m = &A->modules[i];
        if (m->site != s) continue;
        lo[n] = dt_cfg_dim(&c, m->row0);
        hi[n] = lo[n] + dt_cfg_dim(&c, m->out);
        if (m->whole != (lo[n] == 0 && hi[n] == site_width(&c, s)))
          fail_msg("%s: module %s: whole = %d disagrees with its rows", A->name, m->name, m->whole);
        n++;
      }
      check_tiling(A->name, "the modules", s, site_width(&c, s), lo, hi, n);
      /* the matrices of the site tile it too, each as many rows as it says */
      n = 0;
      for (int i = 0; i < A->n_tensors; i++) {
        const dt_arch_tensor *t = &A->tensors[i];
        if (t->slot != DT_SLOT_LIN || t->site != s) continue;
        const int rows = dt_cfg_dim(&c, t->rows), sw = site_width(&c, s);
        lo[n] = dt_cfg_dim(&c, t->lo);
        hi[n] = dt_cfg_dim(&c, t->hi);
        /* row-split sites: [lo,hi) are rows; column-split ones: columns */
        const int span = t->shard == DT_SHARD_ATT_COLS || t->shard == DT_SHARD_FFN_COLS
                             ? dt_cfg_dim(&c, t->cols) : rows;
        if (hi[n] - lo[n] != span)
          fail_msg("%s: %s covers [%d,%d), its shape says %d", A->name, t->name, lo[n], hi[n], span);
        if (t->shard == DT_SHARD_ATT_COLS || t->shard == DT_SHARD_FFN_COLS) {
          if (rows != sw) fail_msg("%s: %s has %d rows, the site %d", A->name, t->name, rows, sw);
          lo[n] = 0, hi[n] = sw;
        }
        n++;
      }
      check_tiling(A->name, "the matrices", s, site_width(&c, s), lo, hi, n);
      /* every module name is the block part of a tensor name */
      for (int i = 0; i < A->n_modules; i++) {
        if (A->modules[i].site != s) continue;
        int found = 0;
        for (int j = 0; j < A->n_tensors; j++) {
          char want[128];
          snprintf(want, sizeof want, "%s.%%d.%s.weight", A->module_prefix, A->modules[i].name);
          found |= !strcmp(A->tensors[j].name, want);
        }
        if (!found) fail_msg("%s: module %s has no tensor %s.%%d.%s.weight", A->name,
                             A->modules[i].name, A->module_prefix, A->modules[i].name);
      }
    }
    /* PEFT's default targets are modules of the family */
    const char *lists[] = {A->lora_targets, A->ia3_targets, A->ia3_ff};
    for (int k = 0; k < 3; k++) {
      char buf[256];
      snprintf(buf, sizeof buf, "%s", lists[k]);
      for (char *sv, *t = strtok_r(buf, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
        int hit = 0;
        for (int i = 0; i < A->n_modules; i++) {
          size_t lm = strlen(A->modules[i].name), lt = strlen(t);
          hit |= lm >= lt && !strcmp(A->modules[i].name + lm - lt, t);
        }
        if (!hit) fail_msg("%s: default target %s is no module of the family", A->name, t);
      }
    }
    /* the learned-position table exists exactly when the family has one */
    int wpe = 0;
    for (int i = 0; i < A->n_tensors; i++) wpe |= A->tensors[i].slot == DT_SLOT_WPE;
    assert_int_equal(wpe, A->pos == DT_POS_LEARNED);
  }
  assert_int_equal(seen, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_descriptors)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
