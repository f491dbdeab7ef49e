/* Output collisions (docs/reliability.md, "Mistakes"; src/outpaths.c,
 * io/outlock.c): two tasks of a sweep writing to the same folder or metrics
 * file, spelled differently ('./', '//', a symbolic link, absolute), are
 * refused before anything is trained; a second run on a folder that a run
 * holds is refused naming that run's host and pid; the lock of a run that is
 * gone is taken over. Every job runs on 2 ranks. Today's code (before the
 * locks) trained both tasks into the same folder and exited 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MPIRUN "mpirun -np 2 --oversubscribe"

static char g_tmp[512];

/* seconds a refusal may take: 20, times 4 under the sanitizers (as the
 * tests' time limits) */
static double limit_s(void) { return getenv("ASAN_OPTIONS") ? 80.0 : 20.0; }

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "%s/outputs", dt_test_tmpdir());
  char *out = NULL;
  int rc = dt_test_run(&out, "rm -rf %s && mkdir -p %s", g_tmp, g_tmp);
  free(out);
  return rc ? -1 : 0;
}

/* A two-task sweep file in g_tmp/NAME.ini whose tasks have the keys ka / kb
 * (one "key = value" line each, or ""). */
static void task_file(const char *name, const char *ka, const char *kb) {
  char path[700], *G = strdup(dt_test_fixture("gpt2"));
  snprintf(path, sizeof path, "%s/%s.ini", g_tmp, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "[task a]\ndata = %s/batch.safetensors\nsteps = 2\nbatch-size = 2\n%s\n\n"
          "[task b]\ndata = %s/batch.safetensors\nsteps = 2\nbatch-size = 2\nmethod = bitfit\n"
          "%s\n", G, ka, G, kb);
  fclose(f);
  free(G);
}

/* Run the sweep of NAME.ini from g_tmp: exit 2, one error line naming the
 * file, both tasks and the fields, in under 20 s; nothing trained. */
static void refused(const char *name, const char *frag1, const char *frag2) {
  char *out = NULL;
  const double t0 = dt_test_now();
  int rc = dt_test_run(&out, "cd %s && " MPIRUN " %s sweep --model %s/model --tasks %s.ini",
                       g_tmp, DT_BINARY, dt_test_fixture("gpt2"), name);
  const double dt = dt_test_now() - t0;
  if (rc != 2) fail_msg("%s: exit %d, expected 2 (the outputs collide):\n%s", name, rc, out);
  if (dt_test_count(out, "deltatune: error") != 1) fail_msg("%s: expected one error line:\n%s", name, out);
  char file[64];
  snprintf(file, sizeof file, "%s.ini: [task a]", name);
  dt_test_expect(out, file, name);
  dt_test_expect(out, "[task b]", name);
  dt_test_expect(out, frag1, name);
  dt_test_expect(out, frag2, name);
  dt_test_expect(out, "are the same path", name);
  if (strstr(out, "step ") || strstr(out, "done")) fail_msg("%s: something trained:\n%s", name, out);
  if (dt > limit_s()) fail_msg("%s: took %.1f s", name, dt);
  printf("%s: refused in %.1f s\n", name, dt);
  free(out);
}

static void test_sweep_same_out(void **state) {
  (void)state;
  char abs[900], *out = NULL;
  task_file("dot", "out = ./o1", "out = o1//");
  refused("dot", "out = './o1'", "out = 'o1//'");
  snprintf(abs, sizeof abs, "out = %s/o2", g_tmp);
  task_file("abs", "out = o2/../o2", abs);
  refused("abs", "out = 'o2/../o2'", abs + 6);
  /* a symbolic link to an existing folder */
  assert_int_equal(dt_test_run(&out, "cd %s && mkdir -p real && ln -sfn real link", g_tmp), 0);
  free(out);
  task_file("link", "out = real", "out = link/");
  refused("link", "out = 'real'", "out = 'link/'");
  /* nothing was written into the folders */
  assert_int_equal(dt_test_run(&out, "cd %s && ls -A real; ls -A o1 o2 2>/dev/null; true", g_tmp), 0);
  if (strstr(out, "ckpt-") || strstr(out, "deltas")) fail_msg("files written:\n%s", out);
  free(out);
}

static void test_sweep_same_metrics(void **state) {
  (void)state;
  task_file("metrics", "metrics = m.jsonl", "metrics = ./m.jsonl");
  refused("metrics", "metrics = 'm.jsonl'", "metrics = './m.jsonl'");
  /* one task's metrics file is the other's out folder */
  task_file("cross", "out = x", "metrics = x");
  refused("cross", "out = 'x'", "metrics = 'x'");
  /* distinct outputs still run */
  task_file("fine", "out = fa\nmetrics = fa.jsonl", "out = fb\nmetrics = fb.jsonl");
  char *out = NULL;
  int rc = dt_test_run(&out, "cd %s && " MPIRUN " %s sweep --model %s/model --tasks fine.ini",
                       g_tmp, DT_BINARY, dt_test_fixture("gpt2"));
  if (rc != 0) fail_msg("distinct outputs: exit %d\n%s", rc, out);
  free(out);
  rc = dt_test_run(&out, "cd %s && ls -A fa fb", g_tmp);
  dt_test_expect(out, "ckpt-0000000002.nc", "distinct outputs");
  if (strstr(out, ".deltatune.lock")) fail_msg("a lock file was left:\n%s", out);
  free(out);
}

/* The pid named in DIR/.deltatune.lock, or 0. */
static long lock_pid(const char *dir) {
  char p[800];
  snprintf(p, sizeof p, "%s/.deltatune.lock", dir);
  char *s = dt_test_slurp(p);
  long pid = 0;
  if (s && sscanf(s, "%*s %ld", &pid) != 1) pid = 0;
  free(s);
  return pid;
}

static void test_second_run_refused(void **state) {
  (void)state;
  char dir[700], host[256] = "";
  snprintf(dir, sizeof dir, "%s/busy", g_tmp);
  gethostname(host, sizeof host - 1);
  const char *G = dt_test_fixture("gpt2");
  /* a long run holds the folder */
  char cmd[4096];
  snprintf(cmd, sizeof cmd, MPIRUN " %s train --model %s/model --data %s/batch.safetensors "
           "--batch-size 2 --steps 100000 --out %s > %s/busy.log 2>&1", DT_BINARY, G, G, dir,
           g_tmp);
  pid_t job = fork();
  assert_true(job >= 0);
  if (job == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  long holder = 0;
  for (int i = 0; i < 600 && !holder; i++) {
    usleep(50000);
    holder = lock_pid(dir);
  }
  if (!holder) {
    kill(-job, SIGKILL);
    waitpid(job, NULL, 0);
    fail_msg("the first run did not take its lock");
  }
  char want[400], *out = NULL;
  snprintf(want, sizeof want, "is in use by another deltatune run (host %s, pid %ld", host, holder);
  /* train on the same folder spelled otherwise, and a sweep task on it */
  double t0 = dt_test_now();
  int rc = dt_test_run(&out, "cd %s && " MPIRUN " %s train --model %s/model --data "
                       "%s/batch.safetensors --batch-size 2 --steps 4 --out ./busy/", g_tmp,
                       DT_BINARY, G, G);
  double dt = dt_test_now() - t0;
  int ok = rc == 2 && dt_test_count(out, "deltatune: error") == 1 && strstr(out, want) &&
           strstr(out, "--out ./busy/") && dt < limit_s();
  char *out2 = NULL;
  task_file("busy", "out = busy", "out = other");
  int rc2 = dt_test_run(&out2, "cd %s && " MPIRUN " %s sweep --model %s/model --tasks busy.ini",
                        g_tmp, DT_BINARY, G);
  int ok2 = rc2 == 2 && strstr(out2, want) && strstr(out2, "busy.ini [task a] out");
  kill((pid_t)holder, SIGKILL); /* rank 0, then the job: the lock file stays, stale */
  usleep(200000);
  kill(-job, SIGKILL);
  waitpid(job, NULL, 0);
  if (!ok) fail_msg("second train: exit %d in %.1f s, expected 2 and '%s':\n%s", rc, dt, want, out);
  if (!ok2) fail_msg("sweep on a held folder: exit %d, expected 2 and '%s':\n%s", rc2, want, out2);
  printf("second run refused in %.1f s\n", dt);
  free(out);
  free(out2);
  /* the killed run's lock is stale: the next run takes it over */
  assert_int_equal(lock_pid(dir), holder);
  rc = dt_test_run(&out, MPIRUN " %s train --model %s/model --data %s/batch.safetensors "
                   "--batch-size 2 --steps 4 --out %s --resume", DT_BINARY, G, G, dir);
  if (rc != 0) fail_msg("after the holder was killed: exit %d\n%s", rc, out);
  char stale[400];
  snprintf(stale, sizeof stale, "took over the stale lock of a run that is gone (host %s, pid %ld",
           host, holder);
  dt_test_expect(out, stale, "stale lock");
  free(out);
  assert_int_equal(lock_pid(dir), 0); /* released at exit */
  /* a lock file naming a dead pid of this host, written by hand */
  char p[800];
  snprintf(p, sizeof p, "%s/.deltatune.lock", dir);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fprintf(f, "%s 2147483 1700000000\n", host);
  fclose(f);
  rc = dt_test_run(&out, MPIRUN " %s train --model %s/model --data %s/batch.safetensors "
                   "--batch-size 2 --steps 6 --out %s --resume", DT_BINARY, G, G, dir);
  if (rc != 0) fail_msg("stale lock file: exit %d\n%s", rc, out);
  dt_test_expect(out, "pid 2147483", "stale lock file");
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_sweep_same_out),
                                     cmocka_unit_test(test_sweep_same_metrics),
                                     cmocka_unit_test(test_second_run_refused)};
  return cmocka_run_group_tests(tests, setup, NULL);
}
