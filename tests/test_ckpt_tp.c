/* Checkpoints of tensors sharded by tensor parallelism, through the command
 * line (docs/checkpoint.md): backbone tensors trained by full, lastlayer and
 * bitfit at 4 ranks --tp 2 (2 replicas of 2 tensor ranks):
 *   - round trip: the checkpoint's variables are the whole tensors, equal to
 *     deltas.safetensors; eval --checkpoint on another layout gives the
 *     same loss as eval --init-from the deltas;
 *   - resume on the same layout: 2N steps == N + --resume N, bit for bit
 *     (deltas, metrics, final checkpoint), also after a kill during a
 *     checkpoint write;
 *   - a checkpoint written at --tp 2 resumed at 1 rank (--tp 1) and at 3
 *     ranks --tp 3 agrees with the uninterrupted --tp 2 run to 1e-5.
 *
 * usage: test_ckpt_tp MPIRUN... (the launcher; "-np N" is appended) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

#define MODEL(fam) "--model %s/" fam "/model --data %s/" fam "/batch.safetensors"

static void train(const char *fam, int np, int tp, const char *method_args, int steps,
                  const char *out_dir, const char *extra, const char *env) {
  char args[8192], *out = NULL;
  snprintf(args, sizeof args,
           "train --model %s/%s/model --data %s/%s/batch.safetensors --batch-size 2 %s "
           "--tp %d --steps %d --out %s --metrics %s/metrics.jsonl --log-every 1000 %s",
           cli_fix(), fam, cli_fix(), fam, method_args, tp, steps, out_dir, out_dir,
           extra ? extra : "");
  int rc = cli_dt(&out, np, env, args);
  if (!env) cli_must(rc, out, args);
  free(out);
}

/* The loss line of deltatune eval. */
static double eval_loss(int np, const char *args) {
  char *out = NULL;
  int rc = cli_dt(&out, np, NULL, args);
  cli_must(rc, out, args);
  const char *l = strstr(out, "\nloss ");
  if (!l) fail_msg("no loss line in:\n%s", out);
  const double v = atof(l + 6);
  free(out);
  return v;
}

/* 2N uninterrupted vs N + resume (or killed while writing ckpt kill_at
 * with --save-every 2, resumed from kill_at - 2), both at np ranks --tp tp. */
static void resume_same_layout(const char *name, const char *fam, int np, int tp,
                               const char *margs, int steps, int kill_at) {
  const char *tmp = dt_test_tmpdir();
  char ref[1024], res[1024], a[1200], b[1200], env[64];
  snprintf(ref, sizeof ref, "%s/%s-ref", tmp, name);
  snprintf(res, sizeof res, "%s/%s-res", tmp, name);
  train(fam, np, tp, margs, steps, ref, NULL, NULL);
  if (kill_at) {
    snprintf(env, sizeof env, "DT_TEST_CHECKPOINT_FAULT=kill:%d:1", kill_at);
    train(fam, np, tp, margs, steps, res, "--save-every 2", env);
    snprintf(a, sizeof a, "%s/ckpt-%010d.nc", res, kill_at);
    if (cli_exists(a)) fail_msg("%s: %s exists although its write was killed", name, a);
    train(fam, np, tp, margs, steps, res, "--save-every 2 --resume", NULL);
  } else {
    train(fam, np, tp, margs, steps / 2, res, NULL, NULL);
    train(fam, np, tp, margs, steps, res, "--resume", NULL);
  }
  snprintf(a, sizeof a, "%s/deltas.safetensors", ref);
  snprintf(b, sizeof b, "%s/deltas.safetensors", res);
  if (!cli_same_file(a, b)) fail_msg("%s: deltas differ (%s, %s)", name, a, b);
  snprintf(a, sizeof a, "%s/metrics.jsonl", ref);
  snprintf(b, sizeof b, "%s/metrics.jsonl", res);
  cli_same_metrics(a, b, steps, name);
  snprintf(a, sizeof a, "%s/ckpt-%010d.nc", ref, steps);
  snprintf(b, sizeof b, "%s/ckpt-%010d.nc", res, steps);
  char *va = cli_variables(a), *vb = cli_variables(b);
  if (!*va || strcmp(va, vb) != 0)
    fail_msg("%s: final variables differ:\n%s\nvs\n%s", name, va, vb);
  free(va);
  free(vb);
}

/* Round trip: what the sharded run wrote is the whole tensors. */
static void test_roundtrip_full(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char dir[1024], args[8192], p[1200], q[1200], *out = NULL;
  snprintf(dir, sizeof dir, "%s/rt-full", tmp);
  train("gpt2", 4, 2, "--method full --lr 1e-3", 3, dir, NULL, NULL);
  snprintf(p, sizeof p, "%s/ckpt-0000000003.nc", dir);
  int rc = dt_test_run(&out, "%s inspect %s", DT_BINARY, p);
  cli_must(rc, out, "inspect");
  if (!strstr(out, "variables verified") || !strstr(out, "2 data-parallel x 2 tensor-parallel") ||
      !strstr(out, "sharded over each tensor group"))
    fail_msg("inspect of the --tp 2 checkpoint:\n%s", out);
  free(out);
  /* every parameter variable equals the deltas written at the end */
  snprintf(args, sizeof args, "export --checkpoint %s --format safetensors --out %s/x", p, dir);
  rc = cli_dt(&out, 3, NULL, args);
  cli_must(rc, out, "export");
  free(out);
  snprintf(p, sizeof p, "%s/deltas.safetensors", dir);
  snprintf(q, sizeof q, "%s/x/deltas.safetensors", dir);
  double d = cli_max_diff(p, q), d2 = cli_max_diff(q, p);
  if (d != 0 || d2 != 0) fail_msg("checkpoint vs deltas.safetensors: %.3e / %.3e", d, d2);
  /* evaluated on three layouts */
  snprintf(args, sizeof args,
           "eval " MODEL("gpt2") " --batch-size 2 --method full --init-from %s/deltas.safetensors",
           cli_fix(), cli_fix(), dir);
  const double l0 = eval_loss(1, args);
  snprintf(args, sizeof args,
           "eval --data %s/gpt2/batch.safetensors --batch-size 2 --checkpoint %s/ckpt-0000000003.nc "
           "--tp 2", cli_fix(), dir);
  const double l1 = eval_loss(4, args);
  snprintf(args, sizeof args,
           "eval --data %s/gpt2/batch.safetensors --batch-size 2 --checkpoint %s/ckpt-0000000003.nc "
           "--tp 3", cli_fix(), dir);
  const double l2 = eval_loss(3, args);
  if (!(fabs(l0 - l1) <= 1e-6 && fabs(l0 - l2) <= 1e-6))
    fail_msg("eval losses: --init-from %.9f, --checkpoint at --tp 2 %.9f, at --tp 3 %.9f", l0,
             l1, l2);
}

static void test_resume_full_gpt2(void **state) {
  (void)state;
  resume_same_layout("full-gpt2", "gpt2", 4, 2, "--method full --lr 1e-3 --shuffle 3", 6, 0);
}

static void test_resume_lastlayer_llama_killed(void **state) {
  (void)state;
  /* the write of ckpt 4 is killed on rank 1 (tp rank 1 of the first
   * group); the resume starts from ckpt 2 */
  resume_same_layout("lastlayer-llama", "llama", 4, 2,
                     "--method lastlayer --lr 1e-3 --schedule cosine --warmup-steps 1", 6, 4);
}

static void test_resume_lastlayer_bitfit_gpt2(void **state) {
  (void)state;
  resume_same_layout("lastlayer-gpt2", "gpt2", 4, 2, "--method lastlayer --lr 1e-3", 4, 0);
  resume_same_layout("bitfit-gpt2", "gpt2", 4, 2, "--method bitfit --lr 1e-2", 4, 0);
}

/* Written at --tp 2, resumed at --tp 1 and at 3 ranks --tp 3. */
static void cross_layout(const char *name, const char *fam, const char *margs) {
  const char *tmp = dt_test_tmpdir();
  char ref[1024], a1[1024], a3[1024], p[1200], q[1200], *out = NULL;
  snprintf(ref, sizeof ref, "%s/%s-xref", tmp, name);
  snprintf(a1, sizeof a1, "%s/%s-x1", tmp, name);
  snprintf(a3, sizeof a3, "%s/%s-x3", tmp, name);
  train(fam, 4, 2, margs, 6, ref, NULL, NULL);
  train(fam, 4, 2, margs, 3, a1, NULL, NULL);
  int rc = dt_test_run(&out, "cp -r %s %s", a1, a3);
  cli_must(rc, out, "cp");
  free(out);
  train(fam, 1, 1, margs, 6, a1, "--resume", NULL);
  train(fam, 3, 3, margs, 6, a3, "--resume", NULL);
  snprintf(p, sizeof p, "%s/deltas.safetensors", ref);
  for (int k = 0; k < 2; k++) {
    snprintf(q, sizeof q, "%s/deltas.safetensors", k ? a3 : a1);
    const double d = cli_max_diff(p, q);
    if (!(d <= 1e-5))
      fail_msg("%s: --tp 2 throughout vs resumed at %s: max abs difference %.3e", name,
               k ? "3 ranks --tp 3" : "--tp 1", d);
  }
}

static void test_cross_layout(void **state) {
  (void)state;
  cross_layout("full-gpt2", "gpt2", "--method full --lr 1e-3");
  cross_layout("lastlayer-llama", "llama", "--method lastlayer --lr 1e-3");
}

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_full),
      cmocka_unit_test(test_resume_full_gpt2),
      cmocka_unit_test(test_resume_lastlayer_llama_killed),
      cmocka_unit_test(test_resume_lastlayer_bitfit_gpt2),
      cmocka_unit_test(test_cross_layout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
