/* Same seed and rank layout -> bitwise identical runs: two runs of LoRA
 * with dropout (its mask stream is keyed by seed and step) and of full
 * fine-tuning on 4 ranks (2 replicas x 2 shards) write byte-identical
 * deltas (LoRA) and identical per-step losses (both). (Every multi-rank run also checks
 * at its end that its replicated deltas are identical on all ranks.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void run_twice(const char *tag, const char *method_args, int with_out) {
  const char *F = dt_test_fixture("gpt2");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", F);
  const char *tmp = dt_test_tmpdir();
  char *out;
  for (int k = 0; k < 2; k++) {
    char outarg[1200] = "";
    if (with_out) snprintf(outarg, sizeof outarg, "--out %s/%s%d", tmp, tag, k);
    int rc = dt_test_run(&out,
                         "mpirun -np 4 --oversubscribe %s train --model %s/model --data "
                         "%s/batch.safetensors --batch-size 2 --steps 4 --lr 1e-2 --tp 2 "
                         "--seed 3 %s %s --metrics %s/%s%d.jsonl",
                         DT_BINARY, dir, dir, method_args, outarg, tmp, tag, k);
    if (rc) fail_msg("run %d exited %d:\n%s", k, rc, out);
    free(out);
  }
  if (with_out) {
    int rc = dt_test_run(&out, "cmp %s/%s0/deltas.safetensors %s/%s1/deltas.safetensors",
                         tmp, tag, tmp, tag);
    if (rc) fail_msg("deltas differ (%s):\n%s", method_args, out);
    free(out);
  }
  /* the losses, step by step, as printed (%.9g) */
  char p0[1200], p1[1200];
  snprintf(p0, sizeof p0, "%s/%s0.jsonl", tmp, tag);
  snprintf(p1, sizeof p1, "%s/%s1.jsonl", tmp, tag);
  char *a = dt_test_slurp(p0), *b = dt_test_slurp(p1);
  assert_non_null(a);
  assert_non_null(b);
  int n = 0;
  for (const char *x = a, *y = b; (x = strstr(x, "\"loss\": ")) && (y = strstr(y, "\"loss\": "));
       x++, y++, n++) {
    const char *xe = strchr(x, ','), *ye = strchr(y, ',');
    assert_true(xe - x == ye - y && memcmp(x, y, (size_t)(xe - x)) == 0);
  }
  assert_int_equal(n, 4);
  free(a);
  free(b);
}

static void test_lora_dropout(void **s) {
  (void)s;
  run_twice("lora", "--method lora --lora-targets c_attn,mlp.c_proj --lora-init random --lora-dropout 0.2", 1);
}

static void test_full(void **s) {
  (void)s;
  run_twice("full", "--method full", 0); /* losses only: sharded checkpoints come later */
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_lora_dropout), cmocka_unit_test(test_full)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
