/* Checkpoints through the command line (docs/checkpoint.md):
 *   - resume equivalence: 2N steps == N steps + --resume for N more, bit for
 *     bit (deltas, AdamW moments, losses, learning rates, gradient norms),
 *     for several methods, schedules, data orders and rank counts, both by
 *     stopping at N and by killing the job while it writes a checkpoint;
 *   - resuming on another rank count agrees to 1e-5;
 *   - a write killed or failing midway leaves the previous checkpoint
 *     readable and is not picked by --resume;
 *   - a corrupted file is refused with a message naming the variable;
 *   - ncdump -h and python3 netCDF4 read the files;
 *   - export of the fixture runs reproduces PEFT's names, shapes and values;
 *   - eval --checkpoint, inspect, --keep, --save-optimizer no, and the
 *     errors for another backbone, other method options and bad usage.
 *
 * usage: test_ckpt_cli MPIRUN... (the launcher; "-np N" is appended) */
#define _GNU_SOURCE /* memmem */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"
#include "clitest.h"
#include "testutil.h"

/* --- helpers (the rest are in clitest.c) -------------------------------- */

static int count_tensors(const char *path) {
  dt_st_file f;
  if (dt_st_open(&f, path)) return -1;
  int n = f.n;
  dt_st_close(&f);
  return n;
}

#define MODEL(fam) "--model %s/" fam "/model --data %s/" fam "/batch.safetensors"

/* --- resume equivalence -------------------------------------------------- */

typedef struct {
  const char *name;
  const char *family;
  int np;
  const char *args; /* method, data order, schedule, ... */
  int steps;        /* 2N */
  int kill_at;      /* 0: stop at N = steps/2 and resume with --steps 2N;
                       else kill rank 0 while it writes ckpt kill_at (--save-every 2) */
} resume_case;

static void run_case(const resume_case *c) {
  const char *tmp = dt_test_tmpdir();
  char *out = NULL, args[8192], env[128] = "";
  char ref[1024], res[1024];
  snprintf(ref, sizeof ref, "%s/%s-ref", tmp, c->name);
  snprintf(res, sizeof res, "%s/%s-res", tmp, c->name);
  const char *fam = c->family;
  /* uninterrupted */
  snprintf(args, sizeof args,
           "train --model %s/%s/model --data %s/%s/batch.safetensors %s --steps %d --out %s "
           "--metrics %s/metrics.jsonl --log-every 1000",
           cli_fix(), fam, cli_fix(), fam, c->args, c->steps, ref, ref);
  cli_must(cli_dt(&out, c->np, NULL, args), out, c->name);
  free(out);
  /* interrupted */
  if (c->kill_at) {
    snprintf(env, sizeof env, "DT_TEST_CHECKPOINT_FAULT=kill:%d:0", c->kill_at);
    snprintf(args, sizeof args,
             "train --model %s/%s/model --data %s/%s/batch.safetensors %s --steps %d --out %s "
             "--metrics %s/metrics.jsonl --log-every 1000 --save-every 2",
             cli_fix(), fam, cli_fix(), fam, c->args, c->steps, res, res);
    int rc = cli_dt(&out, c->np, env, args);
    if (rc == 0) fail_msg("%s: the killed run exited 0:\n%s", c->name, out);
    free(out);
    char p[1200];
    snprintf(p, sizeof p, "%s/ckpt-%010d.nc", res, c->kill_at - 2);
    if (!cli_exists(p)) fail_msg("%s: %s is missing after the kill", c->name, p);
    snprintf(p, sizeof p, "%s/ckpt-%010d.nc", res, c->kill_at);
    if (cli_exists(p)) fail_msg("%s: %s exists although its write was killed", c->name, p);
  } else {
    snprintf(args, sizeof args,
             "train --model %s/%s/model --data %s/%s/batch.safetensors %s --steps %d --out %s "
             "--metrics %s/metrics.jsonl --log-every 1000",
             cli_fix(), fam, cli_fix(), fam, c->args, c->steps / 2, res, res);
    cli_must(cli_dt(&out, c->np, NULL, args), out, c->name);
    free(out);
  }
  snprintf(args, sizeof args,
           "train --model %s/%s/model --data %s/%s/batch.safetensors %s --steps %d --out %s "
           "--metrics %s/metrics.jsonl --log-every 1000 --resume%s",
           cli_fix(), fam, cli_fix(), fam, c->args, c->steps, res, res, c->kill_at ? " --save-every 2" : "");
  int rc = cli_dt(&out, c->np, NULL, args);
  cli_must(rc, out, c->name);
  char want[128];
  snprintf(want, sizeof want, "ckpt-%010d.nc: step %d of %d", c->kill_at ? c->kill_at - 2 : c->steps / 2,
           c->kill_at ? c->kill_at - 2 : c->steps / 2, c->steps);
  if (!strstr(out, want)) fail_msg("%s: the resumed run does not say '%s':\n%s", c->name, want, out);
  free(out);
  char a[1200], b[1200];
  snprintf(a, sizeof a, "%s/deltas.safetensors", ref);
  snprintf(b, sizeof b, "%s/deltas.safetensors", res);
  if (!cli_same_file(a, b)) fail_msg("%s: deltas differ (%s, %s)", c->name, a, b);
  snprintf(a, sizeof a, "%s/metrics.jsonl", ref);
  snprintf(b, sizeof b, "%s/metrics.jsonl", res);
  cli_same_metrics(a, b, c->steps, c->name);
  /* parameters and moments of the final checkpoints, by their checksums */
  snprintf(a, sizeof a, "%s/ckpt-%010d.nc", ref, c->steps);
  snprintf(b, sizeof b, "%s/ckpt-%010d.nc", res, c->steps);
  char *va = cli_variables(a), *vb = cli_variables(b);
  if (!*va || strcmp(va, vb) != 0) fail_msg("%s: final variables differ:\n%s\nvs\n%s", c->name, va, vb);
  free(va);
  free(vb);
}

static void test_resume_lora(void **state) {
  (void)state;
  /* dropout (the method's counter), random rows, 2 replicas */
  const resume_case c = {"lora", "gpt2", 2,
                         "--batch-size 2 --method lora --lora-rank 4 --lora-dropout 0.2 "
                         "--lora-targets c_attn,mlp.c_fc --lr 1e-2 --sample-rows 3",
                         8, 0};
  run_case(&c);
}

static void test_resume_said(void **state) {
  (void)state;
  /* SAID rebuilds W0 + delta from the restored theta; 3 ranks, shuffled */
  const resume_case c = {"said", "llama", 3,
                         "--batch-size 6 --method said --said-dim 24 --lr 1e-2 --shuffle 2", 6,
                         0};
  run_case(&c);
}

static void test_resume_prefix(void **state) {
  (void)state;
  const resume_case c = {"prefix", "llama", 2,
                         "--batch-size 2 --method prefix --prefix-tokens 2 --prefix-hidden 16 "
                         "--lr 1e-2 --weight-decay 0.1",
                         6, 0};
  run_case(&c);
}

static void test_resume_killed_lastlayer(void **state) {
  (void)state;
  /* transposed GPT-2 weights trained in place, cosine schedule with warmup
   * and clipping: the schedule needs --steps 8 all along, so the first run
   * is killed while it writes ckpt 6 and the resume starts from ckpt 4 */
  const resume_case c = {"lastlayer", "gpt2", 1,
                         "--batch-size 2 --method lastlayer --lr 1e-3 --schedule cosine "
                         "--warmup-steps 2 --clip-norm 0.5 --shuffle 5",
                         8, 6};
  run_case(&c);
}

static void test_resume_killed_adapter_bitfit(void **state) {
  (void)state;
  const resume_case c = {"adapter_bitfit", "gpt2", 2,
                         "--batch-size 4 --method adapter,bitfit --adapter-size 4 "
                         "--adapter-init-std 0.1 --lr 1e-2 --schedule linear --warmup-steps 1 "
                         "--sample-rows 9",
                         8, 4};
  run_case(&c);
}

/* --- another rank count --------------------------------------------------- */

static void test_resume_other_ranks(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  const char *common = "--batch-size 2 --method lora --lora-rank 4 --lora-targets c_attn,mlp.c_fc "
                       "--lr 1e-2 --log-every 1000";
  char *out = NULL, args[8192];
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 8 --out %s/xr-ref", cli_fix(), cli_fix(),
           common, tmp);
  cli_must(cli_dt(&out, 2, NULL, args), out, "2 ranks, 8 steps");
  free(out);
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 4 --out %s/xr", cli_fix(), cli_fix(),
           common, tmp);
  cli_must(cli_dt(&out, 2, NULL, args), out, "2 ranks, 4 steps");
  free(out);
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 8 --out %s/xr --resume", cli_fix(),
           cli_fix(), common, tmp);
  cli_must(cli_dt(&out, 1, NULL, args), out, "resumed on 1 rank");
  if (!strstr(out, "written") || !strstr(out, "by 2 rank(s)"))
    fail_msg("the resume does not report the writer's 2 ranks:\n%s", out);
  free(out);
  char a[1200], b[1200];
  snprintf(a, sizeof a, "%s/xr-ref/deltas.safetensors", tmp);
  snprintf(b, sizeof b, "%s/xr/deltas.safetensors", tmp);
  /* the same rows summed on 2 ranks or 1 round apart, and AdamW at lr 1e-2
   * carries that over 8 steps: 3.8e-6 to 1.05e-5 over seeds 1-3 (deltas up
   * to 0.21; 2026-12-06, the loss head's row factors applied after its
   * products; 5.5e-6 to 5.8e-6 before); a resume without the optimizer's
   * moments is 0.38 off */
  const double d = cli_max_diff(a, b);
  if (!(d <= 3e-5)) fail_msg("2 ranks vs 2 then 1 rank: max abs difference %.3e", d);
}

/* --- interrupted and failed writes ---------------------------------------- */

static void test_interrupted_write(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char *out = NULL, args[8192];
  snprintf(args, sizeof args,
           "train " MODEL("gpt2") " --batch-size 2 --method lora --lora-targets c_attn --steps 8 "
           "--save-every 2 --out %s/int --log-every 1000", cli_fix(), cli_fix(), tmp);
  int rc = cli_dt(&out, 2, "DT_TEST_CHECKPOINT_FAULT=kill:6:1", args);
  if (rc == 0) fail_msg("killed run exited 0:\n%s", out);
  free(out);
  char p[1200];
  snprintf(p, sizeof p, "%s/int/ckpt-0000000004.nc", tmp);
  rc = dt_test_run(&out, "%s inspect %s", DT_BINARY, p);
  cli_must(rc, out, "inspect of the previous checkpoint");
  if (!strstr(out, "complete: yes") || !strstr(out, "variables verified"))
    fail_msg("previous checkpoint not complete and intact:\n%s", out);
  free(out);
  /* the partial file is there under its temporary name, and says so */
  rc = dt_test_run(&out, "ls %s/int/ckpt-0000000006.nc.tmp.*", tmp);
  if (rc != 0) fail_msg("no temporary of the killed write:\n%s", out);
  char partial[1200];
  snprintf(partial, sizeof partial, "%.*s", (int)strcspn(out, "\n"), out);
  free(out);
  rc = dt_test_run(&out, "%s inspect %s", DT_BINARY, partial);
  if (rc == 0 && !strstr(out, "complete: no")) fail_msg("the partial file claims completeness:\n%s", out);
  free(out);
  /* --resume takes the previous one, and the temporary is cleaned up */
  snprintf(args, sizeof args,
           "train " MODEL("gpt2") " --batch-size 2 --method lora --lora-targets c_attn --steps 8 "
           "--save-every 2 --out %s/int --log-every 1000 --resume", cli_fix(), cli_fix(), tmp);
  rc = cli_dt(&out, 2, NULL, args);
  cli_must(rc, out, "resume after the kill");
  if (!strstr(out, "ckpt-0000000004.nc: step 4 of 8")) fail_msg("did not resume from step 4:\n%s", out);
  free(out);
  if (cli_exists(partial)) fail_msg("the temporary %s was not removed", partial);

  /* a failed write (one rank): the job fails, the previous file stays */
  snprintf(args, sizeof args,
           "train " MODEL("gpt2") " --batch-size 2 --method lora --lora-targets c_attn --steps 8 "
           "--save-every 2 --out %s/fail --log-every 1000", cli_fix(), cli_fix(), tmp);
  rc = cli_dt(&out, 2, "DT_TEST_CHECKPOINT_FAULT=error:6:1", args);
  if (rc == 0 || !strstr(out, "simulated write failure"))
    fail_msg("failed write: exit %d:\n%s", rc, out);
  free(out);
  snprintf(p, sizeof p, "%s/fail/ckpt-0000000006.nc", tmp);
  if (cli_exists(p)) fail_msg("%s exists after a failed write", p);
  rc = dt_test_run(&out, "ls %s/fail | grep -c tmp", tmp);
  if (atoi(out ? out : "1") != 0) fail_msg("temporaries left after a failed write: %s", out);
  free(out);
  snprintf(p, sizeof p, "%s/fail/ckpt-0000000004.nc", tmp);
  rc = dt_test_run(&out, "%s inspect %s", DT_BINARY, p);
  cli_must(rc, out, "previous checkpoint after a failed write");
  free(out);
}

/* --- corruption ------------------------------------------------------------ */

static void test_corrupted(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char *out = NULL, args[8192];
  const char *common = "--batch-size 2 --method lora --lora-rank 4 --lora-targets c_attn,mlp.c_fc "
                       "--log-every 1000";
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 3 --out %s/cor --init-from %s/gpt2/lora/init.safetensors",
           cli_fix(), cli_fix(), common, tmp, cli_fix());
  cli_must(cli_dt(&out, 1, NULL, args), out, "train");
  free(out);
  /* find the stored (big-endian) values of one tensor and flip a byte */
  char ckpt[1200], deltas[1200];
  snprintf(ckpt, sizeof ckpt, "%s/cor/ckpt-0000000003.nc", tmp);
  snprintf(deltas, sizeof deltas, "%s/cor/deltas.safetensors", tmp);
  const char *victim = "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight";
  int64_t n = 0;
  float *v = cli_tensor(deltas, victim, &n, NULL, NULL);
  assert_non_null(v);
  unsigned char pat[16];
  for (int k = 0; k < 4; k++) {
    unsigned char b[4];
    memcpy(b, &v[k], 4);
    for (int j = 0; j < 4; j++) pat[4 * k + j] = b[3 - j];
  }
  free(v);
  size_t len = 0;
  char *file = cli_read_bytes(ckpt, &len);
  assert_non_null(file);
  char *at = memmem(file, len, pat, sizeof pat);
  if (!at) fail_msg("the values of %s are not in %s", victim, ckpt);
  at[9] ^= 0x5a;
  assert_int_equal(cli_write_bytes(ckpt, file, len), 0);
  free(file);
  const char *ncname = "base_model_model_transformer_h_1_mlp_c_fc_lora_B_weight";
  int rc = dt_test_run(&out, "%s inspect %s", DT_BINARY, ckpt);
  if (rc != 3 || !strstr(out, ncname) || !strstr(out, "corrupted"))
    fail_msg("inspect of a corrupted file: exit %d:\n%s", rc, out);
  free(out);
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 5 --out %s/cor --resume", cli_fix(),
           cli_fix(), common, tmp);
  rc = cli_dt(&out, 2, NULL, args);
  if (rc != 3 || !strstr(out, ncname) || !strstr(out, "corrupted"))
    fail_msg("resume from a corrupted file: exit %d:\n%s", rc, out);
  free(out);
  snprintf(args, sizeof args, "eval --data %s/gpt2/batch.safetensors --batch-size 2 --checkpoint %s",
           cli_fix(), ckpt);
  rc = cli_dt(&out, 2, NULL, args);
  if (rc != 3 || !strstr(out, ncname)) fail_msg("eval of a corrupted file: exit %d:\n%s", rc, out);
  free(out);
  /* not a checkpoint at all */
  rc = dt_test_run(&out, "%s inspect %s", DT_BINARY, deltas);
  if (rc != 3 || !strstr(out, deltas)) fail_msg("inspect of a safetensors file: exit %d:\n%s", rc, out);
  free(out);
}

/* --- other readers ---------------------------------------------------------- */

static void test_readers(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char *out = NULL, args[8192];
  snprintf(args, sizeof args,
           "train " MODEL("gpt2") " --batch-size 2 --method lora,bitfit --lora-targets c_attn "
           "--steps 2 --out %s/rd --log-every 1000", cli_fix(), cli_fix(), tmp);
  cli_must(cli_dt(&out, 2, NULL, args), out, "train");
  free(out);
  char ckpt[1200];
  snprintf(ckpt, sizeof ckpt, "%s/rd/ckpt-0000000002.nc", tmp);
  int rc = dt_test_run(&out, "ncdump -h %s", ckpt);
  cli_must(rc, out, "ncdump -h");
  const char *need[] = {":format = \"deltatune-checkpoint\"", ":complete = 1", ":step = 2LL",
                        ":methods = \"lora,bitfit\"", ":long_name = ", ":units = \"1\"",
                        ":xxh3 = ", ":backbone_id = ", "__exp_avg_sq("};
  for (size_t k = 0; k < sizeof need / sizeof *need; k++)
    if (!strstr(out, need[k])) fail_msg("ncdump -h lacks '%s':\n%s", need[k], out);
  free(out);
  rc = dt_test_run(&out, "/usr/bin/python3 %s/tests/ckpt_netcdf4.py %s %s/rd/deltas.safetensors",
                   DT_SOURCE_DIR, ckpt, tmp);
  cli_must(rc, out, "python3 netCDF4");
  free(out);
}

/* --- export ------------------------------------------------------------------ */

static json_t *load_json(const char *path) {
  json_error_t e;
  json_t *j = json_load_file(path, 0, &e);
  if (!j) fail_msg("%s: %s", path, e.text);
  return j;
}

static int json_has_string(json_t *arr, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return 1;
  return 0;
}

/* Train a gpt2 fixture run (5 steps, lr 1e-2, its init) and export it. */
static void fixture_export(const char *fixture, const char *args, const char *format,
                           char *dir, size_t cap) {
  const char *tmp = dt_test_tmpdir();
  char *out = NULL, a[8192];
  snprintf(a, sizeof a,
           "train " MODEL("gpt2") " --batch-size 2 --steps 5 --lr 1e-2 %s --init-from "
           "%s/gpt2/%s/init.safetensors --out %s/ex-%s --log-every 1000",
           cli_fix(), cli_fix(), args, cli_fix(), fixture, tmp, fixture);
  cli_must(cli_dt(&out, 1, NULL, a), out, fixture);
  free(out);
  snprintf(dir, cap, "%s/ex-%s/%s", tmp, fixture, format);
  int rc = dt_test_run(&out, "%s export --checkpoint %s/ex-%s/ckpt-0000000005.nc --format %s --out %s",
                       DT_BINARY, tmp, fixture, format, dir);
  cli_must(rc, out, "export");
  free(out);
}

static void test_export_lora(void **state) {
  (void)state;
  char dir[1200], p[1300], ref[1200];
  fixture_export("lora", "--method lora --lora-rank 4 --lora-alpha 8 --lora-targets c_attn,mlp.c_fc",
                 "peft", dir, sizeof dir);
  snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
  snprintf(ref, sizeof ref, "%s/gpt2/lora/final.safetensors", cli_fix());
  /* the fixture's names (without ".default"), shapes and values */
  assert_int_equal(count_tensors(p), count_tensors(ref));
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, p), 0);
  for (int k = 0; k < f.n; k++) {
    if (strstr(f.t[k].name, ".default")) fail_msg("exported name %s keeps .default", f.t[k].name);
    if (strncmp(f.t[k].name, "base_model.model.transformer.h.", 31) != 0)
      fail_msg("exported name %s is not PEFT's", f.t[k].name);
  }
  dt_st_close(&f);
  const double d = cli_max_diff(ref, p);
  if (!(d <= 1e-5)) fail_msg("exported LoRA vs PEFT's final: max abs difference %.3e", d);
  snprintf(p, sizeof p, "%s/adapter_config.json", dir);
  json_t *c = load_json(p);
  assert_int_equal(json_integer_value(json_object_get(c, "r")), 4);
  assert_int_equal(json_integer_value(json_object_get(c, "lora_alpha")), 8);
  assert_string_equal(json_string_value(json_object_get(c, "peft_type")), "LORA");
  assert_string_equal(json_string_value(json_object_get(c, "task_type")), "CAUSAL_LM");
  assert_string_equal(json_string_value(json_object_get(c, "bias")), "none");
  assert_true(json_is_true(json_object_get(c, "fan_in_fan_out")));
  assert_true(json_is_true(json_object_get(c, "inference_mode")));
  assert_true(json_is_false(json_object_get(c, "use_rslora")));
  json_t *t = json_object_get(c, "target_modules");
  assert_true(json_array_size(t) == 2 && json_has_string(t, "attn.c_attn") &&
              json_has_string(t, "mlp.c_fc"));
  assert_non_null(strstr(json_string_value(json_object_get(c, "base_model_name_or_path")),
                         "gpt2/model"));
  json_decref(c);
}

static void test_export_ia3_prompt_prefix(void **state) {
  (void)state;
  char dir[1200], p[1300], ref[1200];
  /* IA3: names, shapes ([out,1] / [1,in]) and values */
  fixture_export("ia3", "--method ia3 --ia3-targets c_attn,mlp.c_proj --ia3-ff mlp.c_proj", "peft",
                 dir, sizeof dir);
  snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
  snprintf(ref, sizeof ref, "%s/gpt2/ia3/final.safetensors", cli_fix());
  assert_int_equal(count_tensors(p), count_tensors(ref));
  double d = cli_max_diff(ref, p);
  if (!(d <= 1e-5)) fail_msg("IA3: max abs difference %.3e", d);
  snprintf(p, sizeof p, "%s/adapter_config.json", dir);
  json_t *c = load_json(p);
  assert_string_equal(json_string_value(json_object_get(c, "peft_type")), "IA3");
  json_t *ff = json_object_get(c, "feedforward_modules");
  assert_true(json_array_size(ff) == 1 && json_has_string(ff, "mlp.c_proj"));
  assert_int_equal(json_array_size(json_object_get(c, "target_modules")), 2);
  json_decref(c);

  /* prompt tuning: prompt_embeddings [3, 48] */
  fixture_export("prompt", "--method prompt --prompt-tokens 3", "peft", dir, sizeof dir);
  snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
  snprintf(ref, sizeof ref, "%s/gpt2/prompt/final.safetensors", cli_fix());
  int64_t n1 = 0, n2 = 0, s1[8];
  int nd = 0;
  float *x = cli_tensor(p, "prompt_embeddings", &n1, &nd, s1);
  float *y = cli_tensor(ref, "prompt_encoder.embedding.weight", &n2, NULL, NULL);
  assert_non_null(x);
  assert_non_null(y);
  assert_true(nd == 2 && s1[0] == 3 && s1[1] == 48 && n1 == n2);
  d = 0;
  for (int64_t j = 0; j < n1; j++) d = fmax(d, fabs((double)x[j] - y[j]));
  if (!(d <= 1e-5)) fail_msg("prompt: max abs difference %.3e", d);
  free(x);
  free(y);
  snprintf(p, sizeof p, "%s/adapter_config.json", dir);
  c = load_json(p);
  assert_string_equal(json_string_value(json_object_get(c, "peft_type")), "PROMPT_TUNING");
  assert_int_equal(json_integer_value(json_object_get(c, "num_virtual_tokens")), 3);
  assert_int_equal(json_integer_value(json_object_get(c, "token_dim")), 48);
  json_decref(c);

  /* prefix tuning with the MLP: PEFT saves the MLP's output [3, 2*2*48] */
  fixture_export("prefix_proj", "--method prefix --prefix-tokens 3 --prefix-hidden 32", "peft", dir,
                 sizeof dir);
  snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
  snprintf(ref, sizeof ref, "%s/gpt2/prefix_proj/final.safetensors", cli_fix());
  x = cli_tensor(p, "prompt_embeddings", &n1, &nd, s1);
  assert_non_null(x);
  assert_true(nd == 2 && s1[0] == 3 && s1[1] == 192);
  int64_t ne, nw0, nb0, nw2, nb2;
  float *e = cli_tensor(ref, "prompt_encoder.embedding.weight", &ne, NULL, NULL);
  float *w0 = cli_tensor(ref, "prompt_encoder.transform.0.weight", &nw0, NULL, NULL);
  float *b0 = cli_tensor(ref, "prompt_encoder.transform.0.bias", &nb0, NULL, NULL);
  float *w2 = cli_tensor(ref, "prompt_encoder.transform.2.weight", &nw2, NULL, NULL);
  float *b2 = cli_tensor(ref, "prompt_encoder.transform.2.bias", &nb2, NULL, NULL);
  assert_true(e && w0 && b0 && w2 && b2);
  d = 0;
  for (int r = 0; r < 3; r++) {
    double a[32];
    for (int h = 0; h < 32; h++) {
      double s = b0[h];
      for (int j = 0; j < 48; j++) s += (double)e[r * 48 + j] * w0[h * 48 + j];
      a[h] = tanh(s);
    }
    for (int o = 0; o < 192; o++) {
      double s = b2[o];
      for (int h = 0; h < 32; h++) s += a[h] * w2[o * 32 + h];
      d = fmax(d, fabs(s - x[r * 192 + o]));
    }
  }
  if (!(d <= 5e-5)) fail_msg("prefix (MLP): max abs difference %.3e from PEFT's table", d);
  free(x);
  free(e);
  free(w0);
  free(b0);
  free(w2);
  free(b2);
  snprintf(p, sizeof p, "%s/adapter_config.json", dir);
  c = load_json(p);
  assert_string_equal(json_string_value(json_object_get(c, "peft_type")), "PREFIX_TUNING");
  assert_true(json_is_true(json_object_get(c, "prefix_projection")));
  assert_int_equal(json_integer_value(json_object_get(c, "token_dim")), 48);
  assert_int_equal(json_integer_value(json_object_get(c, "num_layers")), 2);
  json_decref(c);
}

static void test_export_safetensors(void **state) {
  (void)state;
  char dir[1200], p[1300], ref[1200];
  /* adapters have no PEFT form: refused for peft, exported as safetensors */
  const char *tmp = dt_test_tmpdir();
  fixture_export("adapter", "--method adapter --adapter-size 8", "safetensors", dir, sizeof dir);
  char *out = NULL;
  int rc = dt_test_run(&out, "%s export --checkpoint %s/ex-adapter/ckpt-0000000005.nc --out %s/x",
                       DT_BINARY, tmp, tmp);
  if (rc != 2 || !strstr(out, "--format safetensors")) fail_msg("peft export of adapters: exit %d:\n%s", rc, out);
  free(out);
  snprintf(p, sizeof p, "%s/deltas.safetensors", dir);
  snprintf(ref, sizeof ref, "%s/gpt2/adapter/final.safetensors", cli_fix());
  assert_int_equal(count_tensors(p), count_tensors(ref));
  const double d = cli_max_diff(ref, p);
  if (!(d <= 1e-5)) fail_msg("adapter export: max abs difference %.3e", d);
  snprintf(p, sizeof p, "%s/deltatune_config.json", dir);
  json_t *c = load_json(p);
  assert_string_equal(json_string_value(json_object_get(c, "methods")), "adapter");
  assert_string_equal(json_string_value(json_object_get(c, "format")), "deltatune-deltas");
  assert_int_equal(json_array_size(json_object_get(c, "tensors")), 16);
  assert_string_equal(json_string_value(json_object_get(json_object_get(c, "options"), "adapter-size")), "8");
  json_decref(c);
}

/* --- eval, inspect, options ----------------------------------------------------- */

static void test_eval_checkpoint(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char *out = NULL, args[8192];
  snprintf(args, sizeof args,
           "train " MODEL("gpt2") " --batch-size 2 --method lora --lora-rank 4 --lora-alpha 8 "
           "--lora-targets c_attn,mlp.c_fc --lr 1e-2 --steps 3 --out %s/ev --log-every 1000",
           cli_fix(), cli_fix(), tmp);
  cli_must(cli_dt(&out, 2, NULL, args), out, "train");
  free(out);
  /* the method and its options come from the file */
  snprintf(args, sizeof args, "eval --data %s/gpt2/batch.safetensors --batch-size 2 --checkpoint %s/ev/ckpt-0000000003.nc",
           cli_fix(), tmp);
  cli_must(cli_dt(&out, 2, NULL, args), out, "eval --checkpoint");
  char *a = strstr(out, "loss ");
  char la[64] = "";
  if (a) snprintf(la, sizeof la, "%.*s", (int)strcspn(a, "\n"), a);
  if (!strstr(out, "eval: deltas of")) fail_msg("eval does not name the checkpoint:\n%s", out);
  free(out);
  snprintf(args, sizeof args,
           "eval " MODEL("gpt2") " --batch-size 2 --method lora --lora-rank 4 --lora-alpha 8 "
           "--lora-targets c_attn,mlp.c_fc --init-from %s/ev/deltas.safetensors", cli_fix(), cli_fix(), tmp);
  cli_must(cli_dt(&out, 2, NULL, args), out, "eval --init-from");
  char *b = strstr(out, "loss ");
  char lb[64] = "";
  if (b) snprintf(lb, sizeof lb, "%.*s", (int)strcspn(b, "\n"), b);
  free(out);
  if (!la[0] || strcmp(la, lb) != 0) fail_msg("eval --checkpoint '%s', --init-from '%s'", la, lb);
  /* a method option that differs from the file's */
  snprintf(args, sizeof args, "eval --data %s/gpt2/batch.safetensors --batch-size 2 --lora-rank 8 --checkpoint %s/ev/ckpt-0000000003.nc",
           cli_fix(), tmp);
  int rc = cli_dt(&out, 2, NULL, args);
  if (rc != 2 || !strstr(out, "--lora-rank 4") || !strstr(out, "--lora-rank 8"))
    fail_msg("eval with another --lora-rank: exit %d:\n%s", rc, out);
  free(out);
  /* another backbone: the same folder with a changed config.json */
  rc = dt_test_run(&out, "rm -rf %s/other && cp -r %s/gpt2/model %s/other && sed -i 's/\"initializer_range\": 0.02/\"initializer_range\": 0.03/' %s/other/config.json",
                   tmp, cli_fix(), tmp, tmp);
  cli_must(rc, out, "copy the model");
  free(out);
  snprintf(args, sizeof args, "eval --model %s/other --data %s/gpt2/batch.safetensors --batch-size 2 --checkpoint %s/ev/ckpt-0000000003.nc",
           tmp, cli_fix(), tmp);
  rc = cli_dt(&out, 2, NULL, args);
  if (rc != 2 || !strstr(out, "config.json differs")) fail_msg("eval on another backbone: exit %d:\n%s", rc, out);
  free(out);
}

static void test_resume_checks(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char *out = NULL, args[8192];
  const char *common = "--batch-size 2 --method lora --lora-targets c_attn --log-every 1000";
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 5 --save-every 1 --keep 2 --out %s/rc",
           cli_fix(), cli_fix(), common, tmp);
  cli_must(cli_dt(&out, 2, NULL, args), out, "train");
  free(out);
  /* --keep 2 */
  int rc = dt_test_run(&out, "ls %s/rc | tr '\\n' ' '", tmp);
  if (strcmp(out, "ckpt-0000000004.nc ckpt-0000000005.nc deltas.safetensors ") != 0)
    fail_msg("--keep 2 left: %s", out);
  free(out);
  /* inspect: what and how big; the header is small */
  rc = dt_test_run(&out, "%s inspect %s/rc/ckpt-0000000005.nc", DT_BINARY, tmp);
  cli_must(rc, out, "inspect");
  const char *need[] = {"complete: yes", "methods: lora", "step: 5 of 5", "parameters: 4 tensors",
                        "optimizer: AdamW", "backbone: hf ", "config.json ", "model.safetensors ",
                        "rank layout: 2 rank(s)", "counters lora: 5", "*--lora-targets=c_attn",
                        "variables verified"};
  for (size_t k = 0; k < sizeof need / sizeof *need; k++)
    if (!strstr(out, need[k])) fail_msg("inspect lacks '%s':\n%s", need[k], out);
  long long fb = 0, vb = 0, hb = 0;
  const char *f = strstr(out, "file: ");
  if (!f || sscanf(f, "file: %lld bytes (variables %lld, header %lld)", &fb, &vb, &hb) != 3)
    fail_msg("no file line:\n%s", out);
  if (vb != 3072 * 4 * 3 || hb <= 0 || hb >= 65536 || fb != vb + hb)
    fail_msg("sizes: file %lld, variables %lld, header %lld", fb, vb, hb);
  free(out);
  /* the method's options must match */
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --lora-alpha 4 --steps 8 --out %s/rc --resume",
           cli_fix(), cli_fix(), common, tmp);
  rc = cli_dt(&out, 2, NULL, args);
  if (rc != 2 || !strstr(out, "--lora-alpha 16") || !strstr(out, "--lora-alpha 4"))
    fail_msg("resume with another --lora-alpha: exit %d:\n%s", rc, out);
  free(out);
  /* another backbone */
  rc = dt_test_run(&out, "rm -rf %s/other2 && cp -r %s/gpt2/model %s/other2 && sed -i 's/\"initializer_range\": 0.02/\"initializer_range\": 0.03/' %s/other2/config.json",
                   tmp, cli_fix(), tmp, tmp);
  free(out);
  snprintf(args, sizeof args, "train --model %s/other2 --data %s/gpt2/batch.safetensors %s --steps 8 --out %s/rc --resume",
           tmp, cli_fix(), common, tmp);
  rc = cli_dt(&out, 2, NULL, args);
  if (rc != 2 || !strstr(out, "config.json differs")) fail_msg("resume on another backbone: exit %d:\n%s", rc, out);
  free(out);
  /* --steps counts from the start: below the checkpoint's step is an error */
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 3 --out %s/rc --resume", cli_fix(),
           cli_fix(), common, tmp);
  rc = cli_dt(&out, 2, NULL, args);
  if (rc != 2 || !strstr(out, "past --steps 3")) fail_msg("resume past --steps: exit %d:\n%s", rc, out);
  free(out);
  /* at --steps already: nothing to do, nothing rewritten */
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 5 --out %s/rc --resume", cli_fix(),
           cli_fix(), common, tmp);
  cli_must(cli_dt(&out, 2, NULL, args), out, "resume at the end");
  free(out);
  /* --resume and friends need --out */
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 5 --resume", cli_fix(), cli_fix(), common);
  rc = cli_dt(&out, 2, NULL, args);
  if (rc != 2 || !strstr(out, "--resume needs --out")) fail_msg("--resume without --out: exit %d:\n%s", rc, out);
  free(out);
  /* --save-optimizer no: a third of the variables; resuming says so */
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 2 --save-optimizer no --out %s/noopt",
           cli_fix(), cli_fix(), common, tmp);
  cli_must(cli_dt(&out, 1, NULL, args), out, "--save-optimizer no");
  free(out);
  rc = dt_test_run(&out, "%s inspect %s/noopt/ckpt-0000000002.nc", DT_BINARY, tmp);
  cli_must(rc, out, "inspect");
  if (!strstr(out, "optimizer: not stored") || !strstr(out, "variables 12288,"))
    fail_msg("--save-optimizer no:\n%s", out);
  free(out);
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 3 --save-optimizer no --out %s/noopt --resume",
           cli_fix(), cli_fix(), common, tmp);
  rc = cli_dt(&out, 1, NULL, args);
  cli_must(rc, out, "resume without moments");
  if (!strstr(out, "restarts from zero moments")) fail_msg("no note about the moments:\n%s", out);
  free(out);
  /* a fresh run into a folder of an earlier run's checkpoints: it says so,
   * and as it saves, the earlier run's later steps go (--resume would pick
   * them otherwise) */
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 2 --out %s/rc", cli_fix(), cli_fix(),
           common, tmp);
  rc = cli_dt(&out, 1, NULL, args);
  cli_must(rc, out, "a fresh run over an earlier one");
  if (!strstr(out, "holds checkpoints of an earlier run") || !strstr(out, "removed "))
    fail_msg("no notes about the earlier run's checkpoints:\n%s", out);
  free(out);
  rc = dt_test_run(&out, "ls %s/rc | tr '\\n' ' '", tmp);
  if (strcmp(out, "ckpt-0000000002.nc deltas.safetensors ") != 0)
    fail_msg("after a fresh run over an earlier one: %s", out);
  free(out);
  /* --resume with an empty folder starts at step 0 */
  snprintf(args, sizeof args, "train " MODEL("gpt2") " %s --steps 1 --out %s/fresh --resume", cli_fix(),
           cli_fix(), common, tmp);
  rc = cli_dt(&out, 1, NULL, args);
  cli_must(rc, out, "resume into an empty folder");
  if (!strstr(out, "starting at step 0")) fail_msg("no note about starting fresh:\n%s", out);
  free(out);
}

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resume_lora),
      cmocka_unit_test(test_resume_said),
      cmocka_unit_test(test_resume_prefix),
      cmocka_unit_test(test_resume_killed_lastlayer),
      cmocka_unit_test(test_resume_killed_adapter_bitfit),
      cmocka_unit_test(test_resume_other_ranks),
      cmocka_unit_test(test_interrupted_write),
      cmocka_unit_test(test_corrupted),
      cmocka_unit_test(test_readers),
      cmocka_unit_test(test_export_lora),
      cmocka_unit_test(test_export_ia3_prompt_prefix),
      cmocka_unit_test(test_export_safetensors),
      cmocka_unit_test(test_eval_checkpoint),
      cmocka_unit_test(test_resume_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
