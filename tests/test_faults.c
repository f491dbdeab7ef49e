/* Faults (docs/reliability.md, "Faults"): a rank killed mid-run ends the job
 * within 30 s with a non-zero code and the newest checkpoint resumes; a
 * non-finite loss stops with the step number (or is skipped and counted);
 * a read-only or full output folder at checkpoint time is a clear error
 * that leaves the previous checkpoint intact. Every job runs on 2 ranks. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <math.h>

#include "testutil.h"

#define MPIRUN "mpirun -np 2 --oversubscribe"

static char g_tmp[512];  /* this test's folder */
static char g_mnt[512];  /* its folder for mounts (dt_test_mount_dir) */
static char g_bad[600];  /* tests/bad_inputs.py's inputs */

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "%s/faults", dt_test_tmpdir());
  snprintf(g_mnt, sizeof g_mnt, "%s", dt_test_mount_dir());
  snprintf(g_bad, sizeof g_bad, "%s/inputs", g_tmp);
  char *out = NULL;
  int rc = dt_test_run(&out, "mkdir -p %s && python3 %s/tests/bad_inputs.py %s/hf-parity %s",
                       g_tmp, DT_SOURCE_DIR, DT_TESTDATA_DIR, g_bad);
  if (rc) fprintf(stderr, "%s\n", out ? out : "");
  free(out);
  return rc ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  char *out = NULL;
  dt_test_run(&out, "rm -rf %s", g_mnt); /* /dev/shm is memory */
  free(out);
  return 0;
}

/* Newest ckpt-*.nc of dir into path ("" when none); returns its step. */
static long newest_ckpt(const char *dir, char *path, size_t cap) {
  DIR *d = opendir(dir);
  long best = -1;
  path[0] = 0;
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    long step;
    char tail[8];
    if (sscanf(e->d_name, "ckpt-%ld.%3s", &step, tail) == 2 && strcmp(tail, "nc") == 0 &&
        strlen(e->d_name) == strlen("ckpt-0000000000.nc") && step > best) {
      best = step;
      snprintf(path, cap, "%s/%s", dir, e->d_name);
    }
  }
  closedir(d);
  return best;
}

/* pid of the deltatune child of mpirun `parent` whose world rank is `rank` */
static pid_t rank_pid(pid_t parent, int rank) {
  DIR *d = opendir("/proc");
  pid_t found = 0;
  struct dirent *e;
  while (d && !found && (e = readdir(d))) {
    const pid_t pid = (pid_t)atol(e->d_name);
    if (pid <= 0) continue;
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    int ppid = 0;
    char comm[64] = "";
    if (fscanf(f, "%*d (%63[^)]) %*c %d", comm, &ppid) != 2) ppid = 0;
    fclose(f);
    if (ppid != parent || strcmp(comm, "deltatune") != 0) continue;
    snprintf(p, sizeof p, "/proc/%d/environ", (int)pid);
    f = fopen(p, "r");
    if (!f) continue;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    char *env = malloc(1 << 16);
    size_t m = 0;
    if (env) {
      memcpy(env, buf, n);
      m = n;
      while (m < (1u << 16) - 1 && (n = fread(env + m, 1, (1u << 16) - 1 - m, f)) > 0) m += n;
      env[m] = 0;
      char want[64];
      snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
      for (size_t i = 0; i < m; i += strlen(env + i) + 1)
        if (strcmp(env + i, want) == 0) found = pid;
      free(env);
    }
    fclose(f);
  }
  if (d) closedir(d);
  return found;
}

static int alive(pid_t pid) {
  char p[64], st = 0;
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(p, "r");
  if (!f) return 0;
  if (fscanf(f, "%*d (%*[^)]) %c", &st) != 1) st = 0;
  fclose(f);
  return st != 0 && st != 'Z';
}

/* kill -9 of rank 1 after its first checkpoint: mpirun ends the job. */
static void test_kill_rank(void **state) {
  (void)state;
  char dir[700], log[700], cmd[4096];
  snprintf(dir, sizeof dir, "%s/kill", g_tmp);
  snprintf(log, sizeof log, "%s/kill.log", g_tmp);
  const char *model = "synthetic:gpt2:layers=2,d=64,heads=2,vocab=256,ctx=32";
  const char *data = "synthetic:rows=32,len=32";
  snprintf(cmd, sizeof cmd,
           "exec " MPIRUN " %s train --model %s --data %s --batch-size 4 --steps 400 "
           "--save-every 10 --log-every 1 --out %s > %s 2>&1",
           DT_BINARY, model, data, dir, log);
  const pid_t mpirun = fork();
  assert_true(mpirun >= 0);
  if (mpirun == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  /* wait for a checkpoint and a few more steps */
  char ck[1024];
  const double t0 = dt_test_now();
  int status = 0, done = 0;
  while (dt_test_now() - t0 < 120) {
    if (waitpid(mpirun, &status, WNOHANG) == mpirun) {
      done = 1;
      break;
    }
    char *out = dt_test_slurp(log);
    const int steps = out ? dt_test_count(out, "\nstep ") : 0;
    free(out);
    if (newest_ckpt(dir, ck, sizeof ck) >= 10 && steps >= 13) break;
    usleep(20000);
  }
  if (done) {
    char *out = dt_test_slurp(log);
    fail_msg("the job ended (status %d) before the kill:\n%s", status, out);
  }
  const pid_t victim = rank_pid(mpirun, 1), other = rank_pid(mpirun, 0);
  if (!victim || !other) {
    kill(mpirun, SIGKILL);
    waitpid(mpirun, &status, 0);
    fail_msg("no deltatune rank 1 / rank 0 under mpirun %d", (int)mpirun);
  }
  const double t_kill = dt_test_now();
  assert_int_equal(kill(victim, SIGKILL), 0);
  while (waitpid(mpirun, &status, WNOHANG) != mpirun && dt_test_now() - t_kill < 60) usleep(10000);
  const double ended = dt_test_now() - t_kill;
  if (ended >= 60) {
    kill(mpirun, SIGKILL);
    waitpid(mpirun, &status, 0);
  }
  char *out = dt_test_slurp(log);
  printf("kill -9 of rank 1 (pid %d) at %.1f s into the run: mpirun ended %.2f s later, "
         "exit status %d\n", (int)victim, t_kill - t0, ended,
         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  if (ended >= 30) fail_msg("the job took %.1f s to end after the kill:\n%s", ended, out);
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 0)
    fail_msg("mpirun ended with status %d, expected a non-zero exit:\n%s", status, out);
  free(out);
  for (int i = 0; i < 100 && alive(other); i++) usleep(50000);
  if (alive(other)) fail_msg("rank 0 (pid %d) still runs after the job ended", (int)other);
  /* the newest checkpoint is complete, intact and resumes */
  const long step = newest_ckpt(dir, ck, sizeof ck);
  assert_true(step >= 10);
  char *o2 = NULL;
  int rc = dt_test_run(&o2, "%s inspect %s", DT_BINARY, ck);
  if (rc != 0) fail_msg("inspect %s: exit %d\n%s", ck, rc, o2);
  free(o2);
  rc = dt_test_run(&o2, MPIRUN " %s train --model %s --data %s --batch-size 4 --steps %ld "
                   "--save-every 10 --out %s --resume", DT_BINARY, model, data, step + 5, dir);
  if (rc != 0) fail_msg("--resume after the kill: exit %d\n%s", rc, o2);
  dt_test_expect(o2, "resume: ", "--resume after the kill");
  free(o2);
}

/* A backbone whose embedding row of token 95 is inf (bad_inputs.py): the
 * batch of step 3 holds that token. */
#define NAN_RUN MPIRUN " %s train --model %s/nan_model --data %s/nan_step2.safetensors " \
                "--batch-size 2 --log-every 1 "

static void test_nan_stop(void **state) {
  (void)state;
  char dir[700];
  snprintf(dir, sizeof dir, "%s/nan", g_tmp);
  char *out = NULL;
  int rc = dt_test_run(&out, NAN_RUN "--steps 6 --save-every 1 --out %s", DT_BINARY, g_bad,
                       g_bad, dir);
  if (rc != 6) fail_msg("exit %d, expected 6 (numerical):\n%s", rc, out);
  if (dt_test_count(out, "deltatune: error") != 1) fail_msg("expected one error line:\n%s", out);
  dt_test_expect(out, "step 3/6: the loss is NaN", "--nan-policy stop");
  dt_test_expect(out, "the last good checkpoint is", "--nan-policy stop");
  dt_test_expect(out, "ckpt-0000000002.nc (step 2)", "--nan-policy stop");
  free(out);
  char ck[1024];
  assert_int_equal(newest_ckpt(dir, ck, sizeof ck), 2);
  rc = dt_test_run(&out, "%s inspect %s", DT_BINARY, ck);
  if (rc != 0) fail_msg("inspect %s: exit %d\n%s", ck, rc, out);
  free(out);
  /* it resumes; skipping the bad batch, the run completes */
  rc = dt_test_run(&out, NAN_RUN "--steps 6 --save-every 1 --out %s --resume --nan-policy skip",
                   DT_BINARY, g_bad, g_bad, dir);
  if (rc != 0) fail_msg("--resume --nan-policy skip: exit %d\n%s", rc, out);
  dt_test_expect(out, "resume: ", "--resume");
  dt_test_expect(out, "summary: 1 of 4 steps skipped", "--resume --nan-policy skip");
  free(out);
}

/* A run of NAN_RUN with extra options and --metrics FILE (in the test's
 * folder, named name); its exit code, its output in *out. */
static int nan_run(char **out, const char *extra, const char *name, char *metrics, size_t n) {
  snprintf(metrics, n, "%s/%s", g_tmp, name);
  return dt_test_run(out, NAN_RUN "%s --metrics %s", DT_BINARY, g_bad, g_bad, extra, metrics);
}

/* --comm-lockstep moves no data, so its losses are not the model's: a
 * non-finite one must not end the timing run (a 13B shape's did, under
 * --nan-policy stop), nor make the later steps run on NaN deltas (a 13B
 * lockstep run's did). The same batches that
 * stop test_nan_stop run all 6 steps (none counted as skipped), the
 * metrics show the NaN step, its update is not applied, and the later
 * losses are finite. */
static void test_nan_lockstep(void **state) {
  (void)state;
  char metrics[700], *out = NULL;
  int rc = nan_run(&out, "--steps 6 --comm-lockstep yes", "nan-lockstep.jsonl", metrics,
                   sizeof metrics);
  if (rc != 0) fail_msg("--comm-lockstep with a NaN loss: exit %d (want 0)\n%s", rc, out);
  if (dt_test_count(out, "deltatune: error") != 0) fail_msg("an error line:\n%s", out);
  dt_test_expect(out, "summary: 6 steps", "--comm-lockstep");
  dt_test_expect(out, "summary: --comm-lockstep: every sum was a barrier", "--comm-lockstep");
  if (strstr(out, "update skipped")) fail_msg("--comm-lockstep printed a skipped update:\n%s", out);
  free(out);
  char *m = dt_test_slurp(metrics);
  assert_non_null(m);
  /* the non-finite update is not applied: only the data's NaN step is null
   * (an applied NaN update would make every later one null) */
  assert_int_equal(dt_test_count(m, "\"loss\": null"), 1);
  assert_int_equal(dt_test_count(m, "\"skipped\": true"), 0);
  dt_test_expect(m, "{\"step\": 5, \"loss\": ", "metrics");
  if (strstr(m, "{\"step\": 5, \"loss\": null")) fail_msg("step 5's loss is null:\n%s", m);
  free(m);
}

static void test_nan_skip(void **state) {
  (void)state;
  char metrics[700], *out = NULL;
  int rc = nan_run(&out, "--steps 8 --nan-policy skip", "nan.jsonl", metrics, sizeof metrics);
  if (rc != 0) fail_msg("exit %d:\n%s", rc, out);
  dt_test_expect(out, "step      3/8  loss NaN", "--nan-policy skip");
  dt_test_expect(out, "update skipped (1 consecutive, 2 in all", "--nan-policy skip");
  dt_test_expect(out, "summary: 2 of 8 steps skipped", "--nan-policy skip");
  free(out);
  char *m = dt_test_slurp(metrics);
  assert_non_null(m);
  assert_int_equal(dt_test_count(m, "\"skipped\": true"), 2);
  assert_int_equal(dt_test_count(m, "\"loss\": null"), 2);
  dt_test_expect(m, "{\"step\": 2, \"loss\": null", "metrics");
  dt_test_expect(m, "\"step\": 7,", "metrics");
  dt_test_expect(m, "\"skipped_steps\": 2}", "metrics");
  free(m);
  /* consecutive non-finite steps: --nan-max-skips */
  rc = dt_test_run(&out,
                   MPIRUN " %s train --model %s/nan_model --data %s/nan_steps23.safetensors "
                   "--batch-size 2 --steps 8 --nan-policy skip --nan-max-skips 2", DT_BINARY,
                   g_bad, g_bad);
  if (rc != 6) fail_msg("--nan-max-skips 2: exit %d, expected 6:\n%s", rc, out);
  if (dt_test_count(out, "deltatune: error") != 1) fail_msg("expected one error line:\n%s", out);
  dt_test_expect(out, "step 4/8: the loss is NaN", "--nan-max-skips");
  dt_test_expect(out, "2 consecutive steps not finite (--nan-max-skips 2)", "--nan-max-skips");
  free(out);
}

/* A task file under g_tmp/<name>.ini: task "poisoned" (ia3 on the data
 * whose step-3 rows hold the inf token, bad_steps steps, metrics
 * <name>_bad.jsonl) and task "clean" (lora on clean rows, good_steps steps,
 * extra keys, metrics <name>_good.jsonl). */
static void nan_sweep_ini(const char *name, int bad_steps, int good_steps, const char *extra,
                          char *ini, char *bad, char *good) {
  snprintf(ini, 700, "%s/%s.ini", g_tmp, name);
  snprintf(good, 700, "%s/%s_good.jsonl", g_tmp, name);
  snprintf(bad, 700, "%s/%s_bad.jsonl", g_tmp, name);
  FILE *f = fopen(ini, "w");
  assert_non_null(f);
  fprintf(f,
          "[task poisoned]\nmethod = ia3\ndata = %s/nan_step2.safetensors\nbatch-size = 2\n"
          "steps = %d\nmetrics = %s\n\n"
          "[task clean]\nmethod = lora\ndata = %s/llama/batch.safetensors\nbatch-size = 2\n"
          "steps = %d\n%smetrics = %s\n",
          g_bad, bad_steps, bad, DT_TESTDATA_DIR "/hf-parity", good_steps, extra, good);
  fclose(f);
}

/* A sweep where one task's loss turns NaN (its step-3 rows hold the inf
 * token): that task is reported and dropped at that step, the other task
 * (clean rows) runs all its steps on the same backbone, and the sweep exits
 * non-zero because a task failed. */
static void test_sweep_nan(void **state) {
  (void)state;
  char ini[700], good[700], bad[700];
  nan_sweep_ini("nan_sweep", 4, 5, "", ini, bad, good);
  char *out = NULL;
  int rc = dt_test_run(&out, MPIRUN " %s sweep --model %s/nan_model --tasks %s --log-every 1",
                       DT_BINARY, g_bad, ini);
  if (rc != 3) fail_msg("exit %d; a failed task must make the sweep exit 3 at the end:\n%s", rc, out);
  dt_test_expect(out, "1 task(s) of the sweep failed", "sweep with a NaN task");
  dt_test_expect(out, "task poisoned: FAILED", "sweep with a NaN task");
  dt_test_expect(out, "the loss is not finite at step 3/4", "sweep with a NaN task");
  dt_test_expect(out, "task clean: done after 5 steps", "sweep with a NaN task");
  free(out);
  char *m = dt_test_slurp(good);
  assert_non_null(m);
  dt_test_expect(m, "{\"step\": 4,", "the clean task's metrics");
  if (strstr(m, "null") || strstr(m, "nan")) fail_msg("the clean task saw a non-finite value:\n%s", m);
  free(m);
}

/* The JSON objects of a metrics file, one per line (jansson reads them). */
static int metrics_objects(const char *path, json_t **v, int max) {
  char *s = dt_test_slurp(path);
  if (!s) fail_msg("cannot read %s", path);
  int n = 0;
  for (char *save = NULL, *ln = strtok_r(s, "\n", &save); ln && n < max;
       ln = strtok_r(NULL, "\n", &save)) {
    json_error_t e;
    v[n] = json_loads(ln, 0, &e);
    if (!v[n]) fail_msg("%s: line %d is not JSON (%s): %s", path, n + 1, e.text, ln);
    n++;
  }
  free(s);
  return n;
}

/* The sweep's --nan-policy skip: the poisoned task skips the updates of its
 * non-finite steps as train does and finishes; its metrics lines have the
 * fields of train's (plus its name as "task") and, step by step, the values
 * of `train` on the same data and method (one trainer, src/trainer.c). */
static void test_sweep_nan_skip(void **state) {
  (void)state;
  char ini[700], good[700], bad[700], alone[700];
  nan_sweep_ini("nan_skip_sweep", 8, 3, "nan-policy = stop\n", ini, bad, good);
  snprintf(alone, sizeof alone, "%s/nan_skip_alone.jsonl", g_tmp);
  char *out = NULL;
  int rc = dt_test_run(&out, MPIRUN " %s sweep --model %s/nan_model --tasks %s --log-every 1 "
                       "--nan-policy skip", DT_BINARY, g_bad, ini);
  if (rc != 0) fail_msg("sweep --nan-policy skip: exit %d:\n%s", rc, out);
  dt_test_expect(out, "poisoned: step      3/8  loss NaN", "sweep --nan-policy skip");
  dt_test_expect(out, "update skipped (1 consecutive, 2 in all", "sweep --nan-policy skip");
  dt_test_expect(out, "task poisoned: done after 8 steps", "sweep --nan-policy skip");
  dt_test_expect(out, "task clean: done after 3 steps", "sweep --nan-policy skip");
  free(out);
  /* the same task alone */
  rc = dt_test_run(&out, NAN_RUN "--method ia3 --steps 8 --nan-policy skip --metrics %s",
                   DT_BINARY, g_bad, g_bad, alone);
  if (rc != 0) fail_msg("train alone: exit %d:\n%s", rc, out);
  free(out);
  json_t *a[16], *b[16];
  const int na = metrics_objects(alone, a, 16), nb = metrics_objects(bad, b, 16);
  if (na != 8 || nb != 8) fail_msg("%d metrics lines of train, %d of the sweep task (8 steps)", na, nb);
  for (int k = 0; k < na; k++) {
    /* the same fields, in the same order; the sweep's add "task" last */
    if (json_object_size(b[k]) != json_object_size(a[k]) + 1)
      fail_msg("step %d: %zu fields in the sweep's line, %zu in train's", k,
               json_object_size(b[k]), json_object_size(a[k]));
    const char *key;
    json_t *val;
    json_object_foreach(a[k], key, val) {
      json_t *w = json_object_get(b[k], key);
      if (!w) fail_msg("step %d: the sweep's metrics line lacks train's field %s", k, key);
      /* %.6g writes a whole number without a point: integer and real are
       * both a number here */
      if (json_is_number(w) != json_is_number(val) ||
          (!json_is_number(w) && json_typeof(w) != json_typeof(val)))
        fail_msg("step %d: field %s has another JSON type in the sweep", k, key);
    }
    if (!json_is_string(json_object_get(b[k], "task")) ||
        strcmp(json_string_value(json_object_get(b[k], "task")), "poisoned"))
      fail_msg("step %d: the sweep's line does not name its task", k);
    /* and the same numbers */
    static const char *const same[] = {"step", "loss", "lr", "grad_norm", "scored_tokens",
                                       "skipped_steps"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
      json_t *x = json_object_get(a[k], same[i]), *y = json_object_get(b[k], same[i]);
      if (json_is_null(x) && json_is_null(y)) continue;
      const double dx = json_number_value(x), dy = json_number_value(y);
      if (!(fabs(dx - dy) <= 1e-5 * (1 + fabs(dx))))
        fail_msg("step %d: %s %.9g in train, %.9g in the sweep", k, same[i], dx, dy);
    }
    json_decref(a[k]);
    json_decref(b[k]);
  }
  /* --nan-policy stop (the clean task's own key is stop as well) */
  rc = dt_test_run(&out, MPIRUN " %s sweep --model %s/nan_model --tasks %s --nan-policy stop",
                   DT_BINARY, g_bad, ini);
  if (rc != 3) fail_msg("sweep --nan-policy stop: exit %d, expected 3:\n%s", rc, out);
  dt_test_expect(out, "the loss is not finite at step 3/8", "sweep --nan-policy stop");
  free(out);
  /* --nan-max-skips belongs to skip, in a sweep as in train */
  rc = dt_test_run(&out, MPIRUN " %s sweep --model %s/nan_model --tasks %s --nan-max-skips 2",
                   DT_BINARY, g_bad, ini);
  if (rc != 2) fail_msg("sweep --nan-max-skips without skip: exit %d, expected 2:\n%s", rc, out);
  dt_test_expect(out, "--nan-max-skips 2 applies to --nan-policy skip", "sweep --nan-max-skips");
  free(out);

}

/* A real divergence: AdamW's decoupled decay with lr * weight_decay = 100
 * multiplies the deltas by -99 every step until the loss overflows. */
static void test_nan_divergence(void **state) {
  (void)state;
  char *out = NULL;
  const char *G = dt_test_fixture("gpt2");
  int rc = dt_test_run(&out, MPIRUN " %s train --model %s/model --data %s/batch.safetensors "
                       "--batch-size 2 --steps 200 --lr 10 --weight-decay 10", DT_BINARY, G, G);
  if (rc != 6) fail_msg("exit %d, expected 6:\n%s", rc, out);
  if (dt_test_count(out, "deltatune: error") != 1) fail_msg("expected one error line:\n%s", out);
  dt_test_expect(out, "/200: the loss is ", "divergence");
  dt_test_expect(out, "(--nan-policy stop)", "divergence");
  free(out);
}

/* One rank's read of a quantized matrix's tensor fails while loading under
 * --tp 2 (test hook DT_TEST_LOAD_FAULT=RANK:TENSOR): the group agrees its
 * scales right after, so the other rank must not wait there. Both exit with
 * the read's code (4) and one error line, within the 60 s the job has (it
 * hung before the load's agreement). Each rank in turn, and the fixture's
 * last tensor, read after every quantized matrix (the final agreement). */
static void test_load_fault_tp(void **state) {
  (void)state;
  const char *L = dt_test_fixture("llama");
  /* 20: the head, read after every block; fp32: no agreement while loading */
  const char *cases[][2] = {{"1:3", "nf4"}, {"0:3", "nf4"}, {"1:20", "nf4"}, {"1:3", "fp32"}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    char *out = NULL;
    const time_t t0 = time(NULL);
    int rc = dt_test_run(&out, "DT_TEST_LOAD_FAULT=%s timeout 60 " MPIRUN " %s train --model %s/model "
                         "--data %s/batch.safetensors --batch-size 2 --steps 1 --method lora "
                         "--weights-dtype %s --tp 2", cases[k][0], DT_BINARY, L, L, cases[k][1]);
    if (rc != 4) fail_msg("DT_TEST_LOAD_FAULT=%s, %s: exit %d after %lds, expected 4:\n%s", cases[k][0],
                          cases[k][1], rc, (long)(time(NULL) - t0), out);
    if (dt_test_count(out, "deltatune: error") != 1) fail_msg("expected one error line:\n%s", out);
    dt_test_expect(out, "(test hook DT_TEST_LOAD_FAULT=", "load fault");
    free(out);
  }
}

/* Can this machine make a private mount namespace with a tmpfs? */
static int can_mount(char *why, size_t cap) {
  char *out = NULL;
  int rc = dt_test_run(&out, DT_TEST_PRIVATE_NS " sh -c 'mount -t tmpfs -o size=64k tmpfs %s && "
                       "mount -o remount,ro %s'", g_mnt, g_mnt);
  if (rc != 0) snprintf(why, cap, "no private mount namespace here (tests/private_ns.sh / mount: %.200s)",
                        out ? out : "");
  free(out);
  return rc == 0;
}

#define GPT2_RUN MPIRUN " %s train --model %s/model --data %s/batch.safetensors --batch-size 2 "

static void test_readonly_out(void **state) {
  (void)state;
  char why[512];
  if (!can_mount(why, sizeof why)) dt_test_unavailable(why);
  char dir[700];
  snprintf(dir, sizeof dir, "%s/ro", g_mnt);
  const char *G = dt_test_fixture("gpt2");
  char *out = NULL;
  int rc = dt_test_run(&out, GPT2_RUN "--steps 4 --save-every 2 --out %s", DT_BINARY, G, G, dir);
  if (rc != 0) fail_msg("first run: exit %d\n%s", rc, out);
  free(out);
  /* the folder becomes read-only (a read-only bind mount: root ignores
   * mode bits) and the run resumes: its lock file cannot be made, so it
   * stops before training, naming the folder */
  rc = dt_test_run(&out, DT_TEST_PRIVATE_NS " sh -c 'mount --bind %s %s && mount -o remount,bind,ro %s "
                   "&& exec " GPT2_RUN "--steps 8 --save-every 2 --out %s --resume'",
                   dir, dir, dir, DT_BINARY, G, G, dir);
  if (rc != 4) fail_msg("read-only --out: exit %d, expected 4 (I/O):\n%s", rc, out);
  if (dt_test_count(out, "deltatune: error") != 1) fail_msg("expected one error line:\n%s", out);
  dt_test_expect(out, ".deltatune.lock: Read-only file system", "read-only --out");
  if (strstr(out, "step ")) fail_msg("read-only --out: it trained:\n%s", out);
  free(out);
  char ck[1024];
  assert_int_equal(newest_ckpt(dir, ck, sizeof ck), 4);
  rc = dt_test_run(&out, "%s inspect %s && ls %s", DT_BINARY, ck, dir);
  if (rc != 0) fail_msg("inspect %s: exit %d\n%s", ck, rc, out);
  if (strstr(out, ".tmp.")) fail_msg("a temporary file was left in %s:\n%s", dir, out);
  free(out);
}

static void test_disk_full(void **state) {
  (void)state;
  char why[512];
  if (!can_mount(why, sizeof why)) dt_test_unavailable(why);
  char mnt[700];
  snprintf(mnt, sizeof mnt, "%s/full", g_mnt);
  const char *G = dt_test_fixture("gpt2");
  char *out = NULL;
  /* a 256 KiB tmpfs: the first run's checkpoint fits, then the disk is
   * filled and the resumed run cannot write its own; all inside one
   * private mount namespace (the tmpfs goes with it) */
  int rc = dt_test_run(&out,
                       "mkdir -p %s && " DT_TEST_PRIVATE_NS " sh -c 'mount -t tmpfs -o size=256k tmpfs %s "
                       "&& " GPT2_RUN "--steps 2 --out %s/D > /dev/null 2>&1 && "
                       "(dd if=/dev/zero of=%s/fill bs=1k 2>/dev/null; true) && "
                       GPT2_RUN "--steps 4 --out %s/D --resume; echo \"train exit $?\"; "
                       "echo files: $(ls %s/D); %s inspect %s/D/ckpt-0000000002.nc; "
                       "echo \"inspect exit $?\"'",
                       mnt, mnt, DT_BINARY, G, G, mnt, mnt, DT_BINARY, G, G, mnt, mnt,
                       DT_BINARY, mnt);
  if (rc != 0) fail_msg("the disk-full script failed (%d):\n%s", rc, out);
  dt_test_expect(out, "train exit 4", "disk full");
  if (dt_test_count(out, "deltatune: error") != 1) fail_msg("expected one error line:\n%s", out);
  dt_test_expect(out, "ckpt-0000000004.nc", "disk full");
  dt_test_expect(out, "reserving the 36864 bytes of its variables: No space left on device", "disk full");
  dt_test_expect(out, "inspect exit 0", "disk full: the previous checkpoint");
  dt_test_expect(out, "files: ckpt-0000000002.nc deltas.safetensors\n",
         "disk full: no partial checkpoint left");
  free(out);
}

/* --resume with a damaged newest checkpoint (4 KiB of its variables read
 * as zeros: what a write lost by the file system leaves) and an intact
 * older one: the run says which it skipped and why, sets it aside (kept,
 * never deleted, not even by --keep), continues from the older one and ends
 * with the deltas of an uninterrupted run, byte for byte. Before this, the
 * run stopped on the damaged file (exit 3). */
static void test_resume_skips_damaged(void **state) {
  (void)state;
  const char *G = dt_test_fixture("gpt2");
  char dir[700], ref[700], ck4[800];
  snprintf(dir, sizeof dir, "%s/skip", g_tmp);
  snprintf(ref, sizeof ref, "%s/skipref", g_tmp);
  snprintf(ck4, sizeof ck4, "%s/ckpt-0000000004.nc", dir);
  char *out = NULL;
  int rc = dt_test_run(&out, "rm -rf %s %s && " GPT2_RUN "--steps 6 --out %s && " GPT2_RUN
                       "--steps 4 --save-every 2 --keep 0 --out %s && "
                       "dd if=/dev/zero of=%s bs=4096 seek=4 count=1 conv=notrunc 2>&1",
                       dir, ref, DT_BINARY, G, G, ref, DT_BINARY, G, G, dir, ck4);
  if (rc != 0) fail_msg("preparing: exit %d\n%s", rc, out);
  free(out);
  rc = dt_test_run(&out, GPT2_RUN "--steps 6 --save-every 2 --keep 1 --out %s --resume",
                   DT_BINARY, G, G, dir);
  if (rc != 0) fail_msg("--resume past a damaged checkpoint: exit %d, expected 0:\n%s", rc, out);
  char want[2000];
  snprintf(want, sizeof want, "resume: skipped %s: %s: variable ", ck4, ck4);
  dt_test_expect(out, want, "skipped");
  dt_test_expect(out, "is corrupted: its values hash to xxh3", "skipped");
  snprintf(want, sizeof want, "kept as %s.unreadable", ck4);
  dt_test_expect(out, want, "skipped");
  snprintf(want, sizeof want, "resume: %s/ckpt-0000000002.nc: step 2 of 6", dir);
  dt_test_expect(out, want, "resumed from the intact one");
  free(out);
  /* the damaged file is kept; every file with a final name is intact; the
   * deltas are the uninterrupted run's */
  rc = dt_test_run(&out, "cd %s && ls && for f in ckpt-*.nc; do %s inspect $f > /dev/null || "
                   "echo \"BAD $f\"; done && cmp deltas.safetensors %s/deltas.safetensors && "
                   "echo same", dir, DT_BINARY, ref);
  if (rc != 0 || strstr(out, "BAD ")) fail_msg("after the resume (exit %d):\n%s", rc, out);
  dt_test_expect(out, "ckpt-0000000004.nc.unreadable\n", "the damaged checkpoint is kept");
  dt_test_expect(out, "ckpt-0000000006.nc\n", "the final checkpoint");
  dt_test_expect(out, "same", "deltas identical to the uninterrupted run");
  free(out);
  /* a folder whose only checkpoint is damaged: an error, nothing moved */
  rc = dt_test_run(&out, "rm -rf %s/one && mkdir %s/one && cp %s.unreadable "
                   "%s/one/ckpt-0000000004.nc && " GPT2_RUN "--steps 6 --out %s/one --resume; "
                   "echo \"exit $?\"; ls %s/one", g_tmp, g_tmp, ck4, g_tmp, DT_BINARY, G, G,
                   g_tmp, g_tmp);
  dt_test_expect(out, "exit 3", "only a damaged checkpoint");
  dt_test_expect(out, "no checkpoint of", "only a damaged checkpoint");
  dt_test_expect(out, "1 tried, all kept", "only a damaged checkpoint");
  dt_test_expect(out, "ckpt-0000000004.nc\n", "only a damaged checkpoint: kept in place");
  free(out);
}

/* The disk fills up between two --save-every checkpoints (a 96 KiB tmpfs:
 * the lock file and one checkpoint fit, not a second one beside it): exit 4
 * naming "No space left on device", the previous checkpoint intact and no
 * other file with a final name; with space again, --resume finishes with the
 * uninterrupted run's deltas. */
static void test_disk_starved(void **state) {
  (void)state;
  char why[512];
  if (!can_mount(why, sizeof why)) dt_test_unavailable(why);
  char mnt[700], ref[700];
  snprintf(mnt, sizeof mnt, "%s/starved", g_mnt);
  snprintf(ref, sizeof ref, "%s/starvedref", g_tmp);
  const char *G = dt_test_fixture("gpt2");
  char *out = NULL;
  int rc = dt_test_run(&out, "rm -rf %s && " GPT2_RUN "--steps 5 --out %s > /dev/null 2>&1",
                       ref, DT_BINARY, G, G, ref);
  if (rc != 0) fail_msg("reference run: exit %d\n%s", rc, out);
  free(out);
  rc = dt_test_run(&out,
                   "mkdir -p %s && " DT_TEST_PRIVATE_NS " sh -c 'mount -t tmpfs -o size=96k tmpfs %s && "
                   GPT2_RUN "--steps 5 --save-every 1 --keep 1 --out %s/D; echo \"train exit $?\"; "
                   "echo files: $(ls %s/D); for f in %s/D/ckpt-*.nc; do %s inspect $f > /dev/null "
                   "|| echo \"BAD $f\"; done; mount -o remount,size=1m %s && "
                   GPT2_RUN "--steps 5 --save-every 1 --keep 1 --out %s/D --resume > /dev/null; "
                   "echo \"resume exit $?\"; cmp %s/D/deltas.safetensors %s/deltas.safetensors "
                   "&& echo same'",
                   mnt, mnt, DT_BINARY, G, G, mnt, mnt, mnt, DT_BINARY, mnt, DT_BINARY, G, G, mnt,
                   mnt, ref);
  if (rc != 0) fail_msg("the disk-starved script failed (%d):\n%s", rc, out);
  dt_test_expect(out, "train exit 4", "disk starved");
  if (dt_test_count(out, "deltatune: error") != 1) fail_msg("expected one error line:\n%s", out);
  dt_test_expect(out, "ckpt-0000000002.nc was not replaced", "disk starved");
  dt_test_expect(out, "No space left on device", "disk starved");
  dt_test_expect(out, "files: ckpt-0000000001.nc\n", "disk starved: the previous checkpoint only");
  if (strstr(out, "BAD ")) fail_msg("a checkpoint with a final name fails inspect:\n%s", out);
  dt_test_expect(out, "resume exit 0", "disk starved: resumed");
  dt_test_expect(out, "same", "disk starved: deltas of the uninterrupted run");
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kill_rank),     cmocka_unit_test(test_nan_stop),
      cmocka_unit_test(test_nan_skip),      cmocka_unit_test(test_nan_divergence),
      cmocka_unit_test(test_nan_lockstep),
      cmocka_unit_test(test_sweep_nan),
      cmocka_unit_test(test_sweep_nan_skip),
      cmocka_unit_test(test_readonly_out),  cmocka_unit_test(test_disk_full),
      cmocka_unit_test(test_resume_skips_damaged), cmocka_unit_test(test_disk_starved),
      cmocka_unit_test(test_load_fault_tp)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
