/* --tp-heads: key/value groups that do not divide over --tp (mpi/shard.h),
 * through the command line, against the same training on one rank.
 *   - 3 LLaMA heads on --tp 2: the left-over group is held by both ranks,
 *     each attending with part of the query rows; LoRA on q, v and the
 *     row-parallel o_proj, prefix key/values and IA3 on k, v together.
 *   - 5 GPT-2 heads on --tp 4: one group held by all 4 ranks beside their
 *     whole ones, through the fused c_attn and LoRA on attn.c_proj.
 *   Every delta after 3 steps within 2e-5 of one rank's, with the groups
 *   split by rows (auto) and whole.
 *   - --tp-heads rows where it cannot work (a method that trains backbone
 *     tensors, --tp-gemm pxgemm, left-over groups that do not divide --tp)
 *     is refused naming the option, exit 2.
 *
 * usage: test_split_heads MPIRUN... (the launcher; "-np N" is appended) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static const char *LLAMA = "synthetic:llama:layers=2,d=96,heads=3,ffn=160,vocab=300,ctx=64";
static const char *GPT2 = "synthetic:gpt2:layers=2,d=80,heads=5,vocab=300,ctx=64";

/* Train run `name` (3 steps, deltas in TMP/name/deltas.safetensors). */
static void train(const char *name, const char *model, int np, const char *extra) {
  char cmd[8192], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "train --model %s --data synthetic:rows=4,len=48 --batch-size 2 --steps 3 --lr 1e-2 "
           "--log-every 1000 --out %s/%s %s",
           model, dt_test_tmpdir(), name, extra);
  cli_must(cli_dt(&out, np, NULL, cmd), out, cmd);
  free(out);
}

/* Train `name` on np ranks with the layout options and the methods m, and
 * compare its deltas with those of the one-rank run `one`. */
static void against_one_rank(const char *one, const char *name, const char *model, int np,
                             const char *layout, const char *m) {
  char x[512];
  snprintf(x, sizeof x, "%s %s", layout, m);
  train(name, model, np, x);
  char a[1200], b[1200];
  snprintf(a, sizeof a, "%s/%s/deltas.safetensors", dt_test_tmpdir(), one);
  snprintf(b, sizeof b, "%s/%s/deltas.safetensors", dt_test_tmpdir(), name);
  const double d = cli_max_diff(a, b);
  print_message("%s %s: largest difference to one rank %.3g\n", model, layout, d);
  if (!(d <= 2e-5))
    fail_msg("%s %s: deltas differ from one rank's by %g (> 2e-5)", model, layout, d);
}

static void test_llama_three_heads(void **state) {
  (void)state;
  const char *m = "--method lora,prefix,ia3 --lora-targets q_proj,v_proj,o_proj --prefix-tokens 3";
  train("l1", LLAMA, 1, m);
  against_one_rank("l1", "l2rows", LLAMA, 2, "--tp 2", m);
  against_one_rank("l1", "l2whole", LLAMA, 2, "--tp 2 --tp-heads whole", m);
}

static void test_gpt2_five_heads(void **state) {
  (void)state;
  const char *m = "--method lora --lora-targets c_attn,attn.c_proj";
  train("g1", GPT2, 1, m);
  against_one_rank("g1", "g4rows", GPT2, 4, "--tp 4 --tp-heads rows", m);
}

static void refused(int np, const char *extra, const char *why) {
  char cmd[4096], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "train --model %s --data synthetic:rows=4,len=48 --batch-size 2 --steps 1 --tp %d "
           "--tp-heads rows %s",
           LLAMA, np, extra);
  const int rc = cli_dt(&out, np, NULL, cmd);
  if (rc != 2 || !strstr(out, "--tp-heads rows") || !strstr(out, why))
    fail_msg("%s: exit %d (want 2, usage), output:\n%s", cmd, rc, out);
  free(out);
}

static void test_rows_refused(void **state) {
  (void)state;
  refused(2, "--method full", "trains backbone tensors");
  refused(2, "--method bitfit", "trains backbone tensors");
  refused(2, "--method lora --tp-gemm pxgemm", "pxgemm");
  /* 3 groups over 4 ranks leave 3, which cannot share 4 ranks evenly */
  refused(4, "--method lora", "leaves 3, which do not share 4 ranks evenly");
}

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_llama_three_heads),
      cmocka_unit_test(test_gpt2_five_heads),
      cmocka_unit_test(test_rows_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
