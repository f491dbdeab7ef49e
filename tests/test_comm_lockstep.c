/* --comm-lockstep, through the command line: every sum, maximum and
 * all-reduce of the ranks becomes a barrier of its group, so a step costs
 * the machine's lockstep limit (bench/floors.sh, docs/performance.md).
 *   - One rank (nothing to communicate): the same training bit for bit with
 *     and without it, so the option changes nothing but the communication.
 *   - 4 ranks --tp 2 (2 replicas): no data moves, so the first loss is no
 *     longer the model's (it differs from the same run without the option,
 *     which equals the one-rank loss), the summary says so, and all of the
 *     communication time is waiting at barriers.
 *   - With --out it is refused before anything is loaded (its deltas would be
 *     wrong: the replicas' copies even differ).
 *
 * usage: test_comm_lockstep MPIRUN... (the launcher; "-np N" is appended) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static const char *LOCKSTEP_LINE = "summary: --comm-lockstep: every sum was a barrier";

/* Train run `name` of the gpt2 fixture with extra options; its output. */
static char *train(const char *name, int np, const char *extra) {
  char cmd[8192], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors --batch-size 2 --lr 1e-3 "
           "--method lora --steps 3 --log-every 1000 --metrics %s/%s.jsonl %s",
           cli_fix(), cli_fix(), dt_test_tmpdir(), name, extra);
  cli_must(cli_dt(&out, np, NULL, cmd), out, cmd);
  return out;
}

static void metrics_of(const char *name, cli_metrics *m) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s.jsonl", dt_test_tmpdir(), name);
  cli_read_metrics(p, m);
}

static void test_one_rank_unchanged(void **state) {
  (void)state;
  char *a = train("one-plain", 1, "--comm-lockstep no");
  char *b = train("one-lockstep", 1, "--comm-lockstep yes");
  char p[1200], q[1200];
  snprintf(p, sizeof p, "%s/one-plain.jsonl", dt_test_tmpdir());
  snprintf(q, sizeof q, "%s/one-lockstep.jsonl", dt_test_tmpdir());
  cli_same_metrics(p, q, 3, "--comm-lockstep on one rank");
  if (!strstr(b, LOCKSTEP_LINE)) fail_msg("the summary does not say --comm-lockstep:\n%s", b);
  if (strstr(a, LOCKSTEP_LINE)) fail_msg("a run without --comm-lockstep says it:\n%s", a);
  free(a);
  free(b);
}

/* "communication over the ranks A-Bs, of which waiting ... C-Ds" */
static void comm_and_wait(const char *out, double cw[4]) {
  const char *p = strstr(out, "summary: communication over the ranks ");
  if (!p) fail_msg("no communication spread in:\n%s", out);
  if (sscanf(p, "summary: communication over the ranks %lf-%lfs", &cw[0], &cw[1]) != 2)
    fail_msg("cannot read the communication spread: %.120s", p);
  const char *w = strstr(p, "for the group's last rank ");
  if (!w || sscanf(w, "for the group's last rank %lf-%lfs", &cw[2], &cw[3]) != 2)
    fail_msg("cannot read the waiting spread: %.160s", p);
}

static void test_no_data_moves(void **state) {
  (void)state;
  char *one = train("ref-one", 1, "");
  char *a = train("tp2-plain", 4, "--tp 2");
  char *b = train("tp2-lockstep", 4, "--tp 2 --comm-lockstep yes");
  cli_metrics m1, ma, mb;
  metrics_of("ref-one", &m1);
  metrics_of("tp2-plain", &ma);
  metrics_of("tp2-lockstep", &mb);
  const double l1 = atof(m1.v[0][0]), la = atof(ma.v[0][0]), lb = atof(mb.v[0][0]);
  /* the sums carry the data: without them the first forward is another one */
  if (fabs(la - l1) > 1e-4) fail_msg("--tp 2 first loss %.6f, one rank %.6f", la, l1);
  if (!(fabs(lb - l1) > 1e-3))
    fail_msg("--comm-lockstep moved data: first loss %.6f, the model's %.6f", lb, l1);
  if (!strstr(b, LOCKSTEP_LINE)) fail_msg("the summary does not say --comm-lockstep:\n%s", b);
  double cw[4];
  comm_and_wait(b, cw);
  /* all communication is waiting at the barriers (printed to the ms) */
  if (fabs(cw[0] - cw[2]) > 0.0015 || fabs(cw[1] - cw[3]) > 0.0015)
    fail_msg("--comm-lockstep: communication %.3f-%.3fs but waiting %.3f-%.3fs", cw[0], cw[1],
             cw[2], cw[3]);
  free(one);
  free(a);
  free(b);
}

static void test_refuses_out(void **state) {
  (void)state;
  char cmd[4096], *out = NULL;
  snprintf(cmd, sizeof cmd,
           "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors --method lora --steps 1 "
           "--comm-lockstep yes --out %s/refused",
           cli_fix(), cli_fix(), dt_test_tmpdir());
  const int rc = cli_dt(&out, 2, NULL, cmd);
  if (rc != 2 || !strstr(out, "--comm-lockstep moves no data"))
    fail_msg("--comm-lockstep with --out: exit %d (want 2, usage), output:\n%s", rc, out);
  char p[1200];
  snprintf(p, sizeof p, "%s/refused", dt_test_tmpdir());
  if (cli_exists(p)) fail_msg("--comm-lockstep with --out made %s", p);
  free(out);
}

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_rank_unchanged),
      cmocka_unit_test(test_no_data_moves),
      cmocka_unit_test(test_refuses_out),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
