/* Node-local sharing, through the command line.
 *
 * --share-weights: the data-parallel replicas of a node map one copy of the
 * frozen matrices (MPI-3 shared window, written by one replica, read by the
 * others):
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
 * The saved residual stream (x, x1 of every block: the same on every rank
 * of a tensor group) in one shared window per group, each rank storing its
 * slice of the rows: against --shared-stream no (one copy per rank) the
 * same training bit for bit, with micro-batches (the next pass overwrites
 * the window), and the memory falls by the copies saved.
 *
 * usage: test_share_weights MPIRUN... (the launcher; "-np N" is appended) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

/* Train and keep the output; the run's folder is TMP/name. */
static char *train_env(const char *name, int np, const char *env, const char *args) {
  char cmd[8192], dir[1024], *out = NULL;
  snprintf(dir, sizeof dir, "%s/%s", dt_test_tmpdir(), name);
  snprintf(cmd, sizeof cmd, "train %s --out %s --metrics %s/metrics.jsonl --log-every 1000", args,
           dir, dir);
  cli_must(cli_dt(&out, np, env, cmd), out, cmd);
  return out;
}
static char *train(const char *name, int np, const char *args) {
  return train_env(name, np, NULL, args);
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

/* The options of a run on fixture family fam's model and batch of 2 rows. */
static const char *fixture(char *buf, size_t n, const char *fam, const char *extra) {
  snprintf(buf, n, "--model %s/%s/model --data %s/%s/batch.safetensors --batch-size 2 --lr 1e-3 %s",
           cli_fix(), fam, cli_fix(), fam, extra);
  return buf;
}

static void test_same_training(void **state) {
  (void)state;
  char args[2048];
  /* quantized matrices: the replicas share the codes, scales and double
   * quantization's numbers that one of them wrote */
  yes_no("lora-llama-nf4-tp2", 4, fixture(args, sizeof args, "llama", "--tp 2 --method lora "
         "--weights-dtype nf4"), 4);
  yes_no("lora-gpt2-int8", 2, fixture(args, sizeof args, "gpt2", "--method lora,bitfit "
         "--weights-dtype int8"), 4);
  yes_no("lora-bitfit-gpt2-tp2", 4, fixture(args, sizeof args, "gpt2", "--tp 2 --method lora,bitfit"), 4);
  yes_no("lora-llama", 2, fixture(args, sizeof args, "llama", "--method lora"), 4);
}

/* lastlayer rewrites the last block's matrices: with sharing forced each
 * replica copies them before the first update */
static void test_trained_matrices_private(void **state) {
  (void)state;
  char args[2048];
  yes_no("lastlayer-gpt2", 2, fixture(args, sizeof args, "gpt2", "--method lastlayer"), 4);
  /* auto does not share for a method that rewrites matrices */
  char a[4096];
  snprintf(a, sizeof a, "%s --steps 1", args);
  char *o = train("lastlayer-auto", 2, a);
  if (shared_line(o)) fail_msg("--share-weights auto shared the matrices of lastlayer:\n%s", o);
  free(o);
}

#ifndef DT_SANITIZED /* the memory cases: resident sizes, see main */
static double num_after(const char *out, const char *key) {
  const char *p = strstr(out, key);
  if (!p) fail_msg("no '%s' in:\n%s", key, out);
  return atof(p + strlen(key));
}

/* Runs tag-shared and tag-private of args on 2 ranks: the shared run's
 * frozen matrices are within [lo, hi] MB, and sharing saves at least 80% of
 * one copy of them in the ranks' proportional set size. */
static void memory_saved(const char *tag, const char *args, double lo, double hi) {
  char a[2048], n1[128], n2[128];
  snprintf(n1, sizeof n1, "%s-shared", tag);
  snprintf(n2, sizeof n2, "%s-private", tag);
  snprintf(a, sizeof a, "%s --steps 2 --share-weights yes", args);
  char *o1 = train(n1, 2, a);
  snprintf(a, sizeof a, "%s --steps 2 --share-weights no", args);
  char *o2 = train(n2, 2, a);
  const char *key = "together at the end ";
  const double p1 = num_after(o1, key), p2 = num_after(o2, key);
  const double mats = num_after(o1, "frozen matrices ");
  if (!(mats > lo && mats < hi))
    fail_msg("%s: frozen matrices %.0f MB, expected %.0f-%.0f:\n%s", tag, mats, lo, hi, o1);
  if (!(p2 - p1 >= 0.8 * mats))
    fail_msg("%s: sharing saved %.0f MB of proportional set size (%.0f -> %.0f), less than 80%% of "
             "one copy of the matrices (%.0f MB)", tag, p2 - p1, p2, p1, mats);
  free(o1);
  free(o2);
}

static void test_memory(void **state) {
  (void)state;
  /* 4 blocks of d 512 (about 50 MB of matrices): large against the rest */
  memory_saved("mem", "--model synthetic:gpt2:layers=4,d=512,heads=8,vocab=4096,ctx=128 "
               "--data synthetic:rows=8,len=64 --batch-size 2 --method lora", 40, 60);
}

/* nf4: the codes and scales are the shared matrices (the embedding and the
 * head stay fp32 and shared as above): 8 x 12 d^2 = 100.7M weights, 50 MB
 * of codes and 6 MB of scales, and 4 MB of fp32 embeddings */
static void test_memory_nf4(void **state) {
  (void)state;
  memory_saved("mem-nf4", "--model synthetic:gpt2:layers=8,d=1024,heads=16,vocab=1024,ctx=128 "
               "--data synthetic:rows=8,len=64 --batch-size 2 --method lora --weights-dtype nf4", 50, 70);
}
#endif

/* shared residual stream vs one copy per rank */
static void stream_ab(const char *name, int np, const char *args, int steps) {
  char a[8192], na[256], nb[256];
  snprintf(na, sizeof na, "%s-stream-shared", name);
  snprintf(nb, sizeof nb, "%s-stream-private", name);
  snprintf(a, sizeof a, "%s --steps %d", args, steps);
  free(train_env(na, np, NULL, a));
  snprintf(a, sizeof a, "%s --steps %d --shared-stream no", args, steps);
  free(train_env(nb, np, NULL, a));
  same_runs(na, nb, steps);
}

static void test_shared_stream_same_training(void **state) {
  (void)state;
  char args[2048];
  stream_ab("gpt2-tp2-mb1", 4,
            fixture(args, sizeof args, "gpt2", "--tp 2 --micro-batch 1 --method lora,bitfit"), 3);
  /* IA3 keeps the FFN activation per block (its scale's gradient) */
  stream_ab("llama-tp2-ia3-prefix", 2, fixture(args, sizeof args, "llama", "--tp 2 --method ia3,prefix"), 3);
}

#ifndef DT_SANITIZED
static void test_shared_stream_memory(void **state) {
  (void)state;
  /* 12 blocks of d 512, passes of 1 row x 512 tokens at --tp 2: x and x1
   * of every block are 12 x 2 x 512 x 512 floats a rank (24 MiB), half of
   * which each rank no longer holds */
  const int L = 12, d = 512, n = 512, tp = 2;
  const char *args = "--model synthetic:gpt2:layers=12,d=512,heads=8,vocab=1000,ctx=512 "
                     "--data synthetic:rows=8,len=512 --batch-size 2 --micro-batch 1 --tp 2 "
                     "--method lora --steps 2";
  char *o1 = train_env("stream-mem-shared", tp, NULL, args);
  char a[2048];
  snprintf(a, sizeof a, "%s --shared-stream no", args);
  char *o2 = train_env("stream-mem-private", tp, NULL, a);
  const char *key = "together at the end ";
  const double p1 = num_after(o1, key), p2 = num_after(o2, key);
  const double saved = tp * (double)L * 2 * n * d * 4 * (tp - 1) / tp / 1048576.0;
  printf("the shared residual stream saved %.1f MB (%.0f -> %.0f), expected about %.1f\n", p2 - p1, p2,
         p1, saved);
  /* 0.7: the set sizes move by a few MB from run to run (a CI run of
   * 2026-12-05 measured the private stream's at 357 MB against 362 here,
   * a saving of 19.0); no sharing saves nothing */
  if (!(p2 - p1 >= 0.7 * saved))
    fail_msg("the shared residual stream saved %.1f MB (%.0f -> %.0f), expected about %.1f", p2 - p1,
             p2, p1, saved);
  free(o1);
  free(o2);
}
#endif

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_training),
      cmocka_unit_test(test_trained_matrices_private),
      cmocka_unit_test(test_shared_stream_same_training),
  /* The memory cases measure resident sizes, which the sanitizers' shadow
   * memory and quarantine change (CI, 2026-12-05: the shared stream saved
   * 18.0 MB of the 24 under ASan, with other tests beside it): they run in
   * the normal build (this test is not in asan_covers), as test_plan's do. */
#ifndef DT_SANITIZED
      cmocka_unit_test(test_memory),
      cmocka_unit_test(test_memory_nf4),
      cmocka_unit_test(test_shared_stream_memory),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
