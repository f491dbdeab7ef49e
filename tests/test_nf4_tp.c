/* nf4's double-quantized block scales under tensor parallelism: the
 * statistics of every HF tensor are those of the whole tensor, whatever the
 * split (src/quant.h), so LoRA on an nf4 backbone trains the same on 2
 * ranks with --tp 2 as on 1 rank.
 *
 * The HF fixtures' matrices are too small for that to be a strong check (one
 * block of scales per row, one nested block of 256 per tensor), so this runs
 * a seeded synthetic LLaMA (2 layers, d 512, 8 heads / 2 kv, ffn 1000,
 * vocab 96) on the LLaMA fixture's batch: q_proj has 4096 block scales (16
 * nested blocks), gate_proj and up_proj 8000 each with the rank boundary
 * (row 500) inside nested block 15, and the row-parallel down_proj rows of
 * 1000 columns (16 blocks, the last 40 wide) split at column 500, inside
 * block 7, which both ranks share. 3 steps of LoRA (q_proj, v_proj,
 * down_proj; B random so every gradient is non-zero) on 1 rank and on 2:
 *   - every step's loss within 1e-6 (measured 5e-8 to 1.8e-7),
 *   - the step-0 gradients within 1e-5 relative L2 (measured 7e-7 to 8.2e-7);
 * with each rank's statistics of its own part only (the maximum over the
 * tensor group left out) the first loss moved by 1.3e-3.
 *
 * A bitsandbytes 4-bit folder (`*-bnb-4bit`, src/bnb4.h) loads as the same
 * nf4 matrices deltatune makes itself from the float32 weights.
 *
 * tests/data/bnb4 (tests/refs/make_bnb4_folder.py): a small LLaMA (d 64,
 * ffn 128, 2 layers) in float32 (model/) and with every block linear in
 * bitsandbytes' layout (bnb/), quantized by tests/refs/nf4_dq.py (PyTorch,
 * not deltatune). LoRA (random B, so every gradient is non-zero), 3 steps on
 * the LLaMA fixture's batch, --weights-dtype nf4:
 *   - bnb/ on 1 rank against model/ on 1 rank: the same losses as printed
 *     (%.9g) and byte-identical step-0 gradient files: the codes, scale
 *     codes, nested absmax and offsets read equal the ones deltatune
 *     computes (any one differing moves the gradients);
 *   - bnb/ on 2 ranks --tp 2 (each rank reads its rows of q|k|v and
 *     gate|up, its columns of o_proj and down_proj) against model/ on 1
 *     rank: losses within 1e-6, gradients within 1e-5 relative L2 (the
 *     tensor-group sums add in another order).
 * The same for a GPT-2 (d 64, ffn 256; gpt2-model/, gpt2-bnb/) whose Conv1D
 * weights transformers quantizes on their transpose (c_attn's q|k|v rows
 * split by heads under --tp 2), LoRA on c_attn, attn.c_proj and mlp.c_proj.
 * The damaged quant states are test_bad_input's bnb4_* cases.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MODEL "synthetic:llama:layers=2,d=512,heads=8,kv_heads=2,ffn=1000,vocab=96,ctx=64"

/* Train 3 steps of LoRA on --model `model` (launch: "" or an mpirun prefix,
 * extra: layout options): losses into loss[3], the step-0 gradients into
 * TMP/TAG-g.safetensors. */
static void run(const char *launch, const char *model, const char *fam, const char *extra,
                const char *tag, double *loss) {
  const char *tmp = dt_test_tmpdir(), *fx = dt_test_fixture(fam);
  char *out = NULL;
  const int rc = dt_test_run(&out,
                             "%s %s train --model %s --data %s/batch.safetensors --batch-size 2 "
                             "--steps 3 --lr 1e-2 --weights-dtype nf4 --method lora --lora-init random "
                             "--lora-targets %s --seed 5 --metrics %s/%s.jsonl "
                             "--dump-grads %s/%s-g.safetensors %s",
                             launch, DT_BINARY, model, fx,
                             strcmp(fam, "gpt2") ? "q_proj,v_proj,down_proj" : "c_attn,attn.c_proj,mlp.c_proj",
                             tmp, tag, tmp, tag, extra);
  if (rc != 0) fail_msg("%s: deltatune exited %d:\n%s", tag, rc, out ? out : "");
  free(out);
  char p[1200];
  snprintf(p, sizeof p, "%s/%s.jsonl", tmp, tag);
  int n = 0;
  double *l = dt_test_read_losses(p, &n);
  assert_non_null(l);
  assert_int_equal(n, 3);
  for (int k = 0; k < 3; k++) loss[k] = l[k];
  free(l);
}

static void test_tp2_equals_one_rank(void **s) {
  (void)s;
  double l1[3], l2[3], worst = 0;
  run("", MODEL, "llama", "", "r1", l1);
  run(DT_TEST_MPIRUN " -np 2", MODEL, "llama", "--tp 2", "r2", l2);
  for (int k = 0; k < 3; k++) {
    if (!(fabs(l2[k] - l1[k]) <= 1e-6))
      fail_msg("step %d: loss %.9f on 2 ranks --tp 2, %.9f on 1", k, l2[k], l1[k]);
    worst = fmax(worst, fabs(l2[k] - l1[k]));
  }
  char g1[1200], g2[1200];
  snprintf(g1, sizeof g1, "%s/r1-g.safetensors", dt_test_tmpdir());
  snprintf(g2, sizeof g2, "%s/r2-g.safetensors", dt_test_tmpdir());
  const double e = dt_test_compare_tensors(g2, g1, 1e-5, "nf4 LoRA gradients, --tp 2 vs 1 rank");
  printf("# nf4 double quantization, --tp 2 vs 1 rank: losses within %.2e, step-0 gradients %.2e "
         "relative L2\n", worst, e);
}

/* FAM's folders: llama: model/ and bnb/, gpt2: gpt2-model/ and gpt2-bnb/ */
static void check_bnb4(const char *fam) {
  const char *tmp = dt_test_tmpdir();
  double own[3], bnb[3], tp[3], worst = 0;
  const char *pre = strcmp(fam, "gpt2") ? "" : "gpt2-";
  char own_dir[1024], bnb_dir[1024], t_own[32], t_bnb[32], t_tp[32];
  snprintf(own_dir, sizeof own_dir, "%s/bnb4/%smodel", DT_TESTDATA_DIR, pre);
  snprintf(bnb_dir, sizeof bnb_dir, "%s/bnb4/%sbnb", DT_TESTDATA_DIR, pre);
  snprintf(t_own, sizeof t_own, "%s-own", fam);
  snprintf(t_bnb, sizeof t_bnb, "%s-bnb", fam);
  snprintf(t_tp, sizeof t_tp, "%s-tp", fam);
  run("", own_dir, fam, "", t_own, own);
  run("", bnb_dir, fam, "", t_bnb, bnb);
  run(DT_TEST_MPIRUN " -np 2", bnb_dir, fam, "--tp 2", t_tp, tp);
  for (int k = 0; k < 3; k++) {
    char a[64], b[64];
    snprintf(a, sizeof a, "%.9g", own[k]);
    snprintf(b, sizeof b, "%.9g", bnb[k]);
    if (strcmp(a, b)) fail_msg("step %d: loss %s from the bnb folder, %s quantized by deltatune", k, b, a);
    if (!(fabs(tp[k] - own[k]) <= 1e-6))
      fail_msg("step %d: loss %.9f from the bnb folder on 2 ranks --tp 2, %.9f on 1", k, tp[k], own[k]);
    worst = fmax(worst, fabs(tp[k] - own[k]));
  }
  char *out = NULL;
  int rc = dt_test_run(&out, "cmp %s/%s-g.safetensors %s/%s-g.safetensors", tmp, t_own, tmp, t_bnb);
  if (rc) fail_msg("step-0 gradients differ between the bnb folder and deltatune's own nf4:\n%s", out);
  free(out);
  char g1[1200], g2[1200];
  snprintf(g1, sizeof g1, "%s/%s-g.safetensors", tmp, t_own);
  snprintf(g2, sizeof g2, "%s/%s-g.safetensors", tmp, t_tp);
  const double e = dt_test_compare_tensors(g2, g1, 1e-5, "bnb folder --tp 2 vs 1 rank");
  printf("# %s bnb-4bit folder: losses and gradients identical to deltatune's own nf4; --tp 2: "
         "losses within %.2e, gradients %.2e relative L2\n", fam, worst, e);
}

static void test_bnb4_llama(void **s) { (void)s; check_bnb4("llama"); }
static void test_bnb4_gpt2(void **s) { (void)s; check_bnb4("gpt2"); }

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_tp2_equals_one_rank),
                                     cmocka_unit_test(test_bnb4_llama),
                                     cmocka_unit_test(test_bnb4_gpt2)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
