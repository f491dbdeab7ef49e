/* --share-weights: the data-parallel replicas of a node map one copy of the
 * frozen matrices (MPI-3 shared window, written by one replica, read by the
 * others), through the command line:
 *   - the same training bit for bit with and without sharing: metrics and
 *     deltas of LoRA + BitFit (private biases) on 4 ranks --tp 2 (2
 *     replicas of 2 tensor ranks, the HF loader's path) and of LoRA on 2
 *     ranks --tp 1 (LLaMA);
 *   - a method that trains backbone matrices with sharing forced (yes: the
 *     trained matrices get private copies) trains as without it;
 *   - the memory: the ranks' proportional set size falls by at least 80% of
 *     one copy of the frozen matrices, and the summary says so only when
 *     the matrices are shared.
 *
 * usage: test_share_weights MPIRUN... (the launcher; "-np N" is appended) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

/* Train and keep the output; the run's folder is TMP/name. */
static char *train(const char *name, int np, const char *args) {
  char cmd[8192], dir[1024], *out = NULL;
  snprintf(dir, sizeof dir, "%s/%s", dt_test_tmpdir(), name);
  snprintf(cmd, sizeof cmd, "train %s --out %s --metrics %s/metrics.jsonl --log-every 1000", args,
           dir, dir);
  cli_must(cli_dt(&out, np, NULL, cmd), out, cmd);
  return out;
}

/* a and b (run names) trained the same: metrics and deltas equal */
static void same_runs(const char *a, const char *b, int steps) {
  char p[1200], q[1200];
  snprintf(p, sizeof p, "%s/%s/metrics.jsonl", dt_test_tmpdir(), a);
  snprintf(q, sizeof q, "%s/%s/metrics.jsonl", dt_test_tmpdir(), b);
  cli_same_metrics(p, q, steps, a);
  snprintf(p, sizeof p, "%s/%s/deltas.safetensors", dt_test_tmpdir(), a);
  snprintf(q, sizeof q, "%s/%s/deltas.safetensors", dt_test_tmpdir(), b);
  if (!cli_same_file(p, q)) fail_msg("%s vs %s: deltas differ (%s, %s)", a, b, p, q);
}

static const char *shared_line(const char *out) { return strstr(out, "one copy per node for"); }

/* yes vs no of one configuration; the shared run must say it shared */
static void yes_no(const char *name, int np, const char *args, int steps) {
  char a[8192], na[256], nb[256];
  snprintf(na, sizeof na, "%s-shared", name);
  snprintf(nb, sizeof nb, "%s-private", name);
  snprintf(a, sizeof a, "%s --steps %d --share-weights yes", args, steps);
  char *o1 = train(na, np, a);
  snprintf(a, sizeof a, "%s --steps %d --share-weights no", args, steps);
  char *o2 = train(nb, np, a);
  if (!shared_line(o1)) fail_msg("%s: --share-weights yes did not share:\n%s", name, o1);
  if (shared_line(o2)) fail_msg("%s: --share-weights no shared:\n%s", name, o2);
  same_runs(na, nb, steps);
  free(o1);
  free(o2);
}

static void test_same_training(void **state) {
  (void)state;
  char args[2048];
  snprintf(args, sizeof args,
           "--model %s/gpt2/model --data %s/gpt2/batch.safetensors --batch-size 2 --tp 2 "
           "--method lora,bitfit --lr 1e-3", cli_fix(), cli_fix());
  yes_no("lora-bitfit-gpt2-tp2", 4, args, 4);
  snprintf(args, sizeof args,
           "--model %s/llama/model --data %s/llama/batch.safetensors --batch-size 2 "
           "--method lora --lr 1e-3", cli_fix(), cli_fix());
  yes_no("lora-llama", 2, args, 4);
}

/* lastlayer rewrites the last block's matrices: with sharing forced each
 * replica copies them before the first update */
static void test_trained_matrices_private(void **state) {
  (void)state;
  char args[2048];
  snprintf(args, sizeof args,
           "--model %s/gpt2/model --data %s/gpt2/batch.safetensors --batch-size 2 "
           "--method lastlayer --lr 1e-3", cli_fix(), cli_fix());
  yes_no("lastlayer-gpt2", 2, args, 4);
  /* auto does not share for a method that rewrites matrices */
  char a[4096];
  snprintf(a, sizeof a, "%s --steps 1", args);
  char *o = train("lastlayer-auto", 2, a);
  if (shared_line(o)) fail_msg("--share-weights auto shared the matrices of lastlayer:\n%s", o);
  free(o);
}

static double num_after(const char *out, const char *key) {
  const char *p = strstr(out, key);
  if (!p) fail_msg("no '%s' in:\n%s", key, out);
  return atof(p + strlen(key));
}

static void test_memory(void **state) {
  (void)state;
  /* 4 blocks of d 512 (about 50 MB of matrices): large against the rest */
  const char *args = "--model synthetic:gpt2:layers=4,d=512,heads=8,vocab=4096,ctx=128 "
                     "--data synthetic:rows=8,len=64 --batch-size 2 --method lora";
  char a[2048];
  snprintf(a, sizeof a, "%s --steps 2 --share-weights yes", args);
  char *o1 = train("mem-shared", 2, a);
  snprintf(a, sizeof a, "%s --steps 2 --share-weights no", args);
  char *o2 = train("mem-private", 2, a);
  const char *key = "together at the end ";
  const double p1 = num_after(o1, key), p2 = num_after(o2, key);
  const double mats = num_after(o1, "frozen matrices ");
  if (!(mats > 40 && mats < 60)) fail_msg("frozen matrices %.0f MB, expected about 50:\n%s", mats, o1);
  if (!(p2 - p1 >= 0.8 * mats))
    fail_msg("sharing saved %.0f MB of proportional set size (%.0f -> %.0f), less than 80%% of "
             "one copy of the matrices (%.0f MB)", p2 - p1, p2, p1, mats);
  free(o1);
  free(o2);
}

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_training),
      cmocka_unit_test(test_trained_matrices_private),
      cmocka_unit_test(test_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
