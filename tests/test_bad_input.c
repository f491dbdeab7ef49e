/* Bad input at every entry point (docs/reliability.md, "Bad input"): each
 * case builds a damaged input in a temporary folder (tests/bad_inputs.py,
 * damaged copies of the tests/data/hf-parity files), runs deltatune on 2
 * ranks and asserts the exit code (2 usage, 3 input), exactly one error
 * line, the message naming the file and the field or value, and a wall time
 * under 10 s: inputs are checked before the backbone is built (the cases on
 * synthetic:gpt2-xl would take minutes otherwise). The table of
 * docs/reliability.md lists every case with the same exit code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define MPIRUN "mpirun -np 2 --oversubscribe"
#define LIMIT_S 10.0

typedef struct {
  const char *id;
  const char *args; /* @G gpt2 fixture, @L llama fixture, @T the inputs, @C a checkpoint folder,
                       @Q tests/data/bnb4 */
  int code;
  const char *needle[3];
} bad_case;

#define TRAIN "train "
#define GPT2 "--model @G/model --data @G/batch.safetensors "
#define XL "--model synthetic:gpt2-xl --data synthetic:rows=8,len=8 "
#define CKPT "ckpt-0000000002.nc"
#define BNB(dir) "--model @Q/" dir " --data @L/batch.safetensors "
/* on gpt2-xl: the task file is checked before the backbone is built */
#define SWEEP "sweep --model synthetic:gpt2-xl --tasks "

static const bad_case k_cases[] = {
    /* model folder */
    {"model_missing", TRAIN "--model @T/nope --data @G/batch.safetensors", 3,
     {"@T/nope/config.json", "cannot open"}},
    {"model_no_config", TRAIN "--model @T/no_config --data @G/batch.safetensors", 3,
     {"@T/no_config/config.json", "cannot open model config"}},
    {"model_bad_json", TRAIN "--model @T/bad_json --data @G/batch.safetensors", 3,
     {"@T/bad_json/config.json", "not valid JSON", "line 5"}},
    {"model_unknown_arch", TRAIN "--model @T/unknown_arch --data @G/batch.safetensors", 3,
     {"@T/unknown_arch/config.json", "model_type = \"bert\"", "supported: gpt2, llama"}},
    {"model_missing_field", TRAIN "--model @T/no_layers --data @G/batch.safetensors", 3,
     {"@T/no_layers/config.json", "n_layer is missing"}},
    {"model_field_type", TRAIN "--model @T/heads_text --data @G/batch.safetensors", 3,
     {"@T/heads_text/config.json", "n_head must be an integer", "\"four\""}},
    {"model_heads", TRAIN "--model @T/heads_indivisible --data @G/batch.safetensors", 3,
     {"@T/heads_indivisible/config.json", "n_head", "d_model"}},
    {"model_activation", TRAIN "--model @T/act_unsupported --data @G/batch.safetensors", 3,
     {"@T/act_unsupported/config.json", "activation_function = \"relu\""}},
    {"model_no_weights", TRAIN "--model @T/no_weights --data @G/batch.safetensors", 3,
     {"@T/no_weights", "no model.safetensors"}},
    {"model_missing_tensor", TRAIN "--model @T/missing_tensor --data @G/batch.safetensors", 3,
     {"@T/missing_tensor", "'transformer.h.1.mlp.c_fc.weight' is missing"}},
    {"model_shape", TRAIN "--model @T/shape_mismatch --data @G/batch.safetensors", 3,
     {"@T/shape_mismatch/model.safetensors", "transformer.h.1.mlp.c_fc.weight",
      "shape [192,48], config.json implies [48,192]"}},
    {"model_dtype", TRAIN "--model @T/dtype_mismatch --data @G/batch.safetensors", 3,
     {"@T/dtype_mismatch/model.safetensors", "transformer.h.0.attn.c_proj.weight",
      "dtype I32; expected F32, BF16 or F16"}},
    {"model_truncated", TRAIN "--model @T/truncated --data @G/batch.safetensors", 3,
     {"@T/truncated/model.safetensors", "end past the data block", "file truncated?"}},
    {"model_offsets", TRAIN "--model @T/offsets_outside --data @G/batch.safetensors", 3,
     {"@T/offsets_outside/model.safetensors", "'transformer.wte.weight'",
      "end past the data block"}},
    {"model_overlap", TRAIN "--model @T/overlap --data @G/batch.safetensors", 3,
     {"@T/overlap/model.safetensors", "transformer.h.0.ln_1.weight", "overlap"}},
    {"model_corrupt_header", TRAIN "--model @T/corrupt_header --data @G/batch.safetensors", 3,
     {"@T/corrupt_header/model.safetensors", "header is not valid JSON", "at byte"}},
    {"model_header_length", TRAIN "--model @T/absurd_header_len --data @G/batch.safetensors", 3,
     {"@T/absurd_header_len/model.safetensors", "header length 4611686018427387904",
      "100000000-byte limit"}},
    {"model_short_file", TRAIN "--model @T/short_file --data @G/batch.safetensors", 3,
     {"@T/short_file/model.safetensors", "3 bytes, too short"}},
    {"model_synthetic", TRAIN "--model synthetic:gpt2:layers=0 --data @G/batch.safetensors", 2,
     {"synthetic:gpt2:layers=0", "'layers'", "positive integer"}},
    /* data files */
    {"data_missing", TRAIN "--model @G/model --data @T/nope.safetensors", 3,
     {"@T/nope.safetensors", "cannot open"}},
    {"data_dtype", TRAIN "--model @G/model --data @T/data_float.safetensors", 3,
     {"@T/data_float.safetensors", "'input_ids' has dtype F32", "integer dtype"}},
    {"data_vocab", TRAIN "--model @G/model --data @T/data_vocab.safetensors", 3,
     {"@T/data_vocab.safetensors", "row 1 column 5: value 96", "[0, 96) (vocab 96)"}},
    {"data_negative", TRAIN "--model @G/model --data @T/data_negative.safetensors", 3,
     {"@T/data_negative.safetensors", "row 0 column 3: value -7"}},
    {"data_empty", TRAIN "--model @G/model --data @T/data_empty.safetensors", 3,
     {"@T/data_empty.safetensors", "empty", "[0, 12]"}},
    {"data_ragged", TRAIN "--model @G/model --data @T/data_ragged.safetensors", 3,
     {"@T/data_ragged.safetensors", "'labels' has shape [2, 11]", "'input_ids' has [2, 12]"}},
    {"data_rank", TRAIN "--model @G/model --data @T/data_1d.safetensors", 3,
     {"@T/data_1d.safetensors", "'input_ids' has 1 dimensions", "expected 2"}},
    {"data_no_ids", TRAIN "--model @G/model --data @T/data_no_ids.safetensors", 3,
     {"@T/data_no_ids.safetensors", "'input_ids' is missing"}},
    {"data_unscored", TRAIN "--model @G/model --data @T/data_unscored.safetensors", 3,
     {"@T/data_unscored.safetensors", "no scored position"}},
    {"data_truncated", TRAIN "--model @G/model --data @T/data_truncated.safetensors", 3,
     {"@T/data_truncated.safetensors", "'input_ids'", "file truncated?"}},
    /* options */
    {"opt_range", TRAIN GPT2 "--lr 20", 2, {"--lr", "20"}},
    {"opt_unknown", TRAIN GPT2 "--lora-rnak 3", 2, {"--lora-rnak", "--lora-rank"}},
    {"opt_tp", TRAIN GPT2 "--tp 3", 2, {"--tp 3 does not divide the 2 ranks"}},
    {"opt_matmul_dtype", TRAIN GPT2 "--matmul-dtype bf16", 2,
     {"--matmul-dtype bf16 multiplies bf16 weights", "--weights-dtype fp32"}},
    {"opt_quant_full", TRAIN GPT2 "--method full --weights-dtype int8", 2,
     {"is trained by the chosen method", "--weights-dtype fp32", "int8 or nf4"}},
    {"opt_quant_ia3_ff", TRAIN "--model @L/model --data @L/batch.safetensors --method ia3 "
     "--ia3-targets q_proj,v_proj --ia3-ff q_proj --weights-dtype nf4", 2,
     {"--ia3-ff self_attn.q_proj on a quantized backbone (--weights-dtype nf4)",
      "leave it out of --ia3-ff"}},
    {"opt_quant_pxgemm", TRAIN GPT2 "--tp 2 --tp-gemm pxgemm --weights-dtype int8", 2,
     {"--tp-gemm pxgemm", "--weights-dtype int8", "--tp-gemm local"}},
    /* bitsandbytes 4-bit folders (src/bnb4.h; tests/data/bnb4, made by
     * tests/refs/make_bnb4_folder.py) with one quant_state damaged */
    {"bnb4_blocksize", TRAIN BNB("bad_blocksize") "--weights-dtype nf4 --method lora", 3,
     {"@Q/bad_blocksize/model.safetensors", "self_attn.q_proj.weight.quant_state.bitsandbytes__nf4",
      "field blocksize is 128; expected 64"}},
    {"bnb4_fp4", TRAIN BNB("bad_fp4") "--weights-dtype nf4 --method lora", 3,
     {"@Q/bad_fp4/model.safetensors", "self_attn.q_proj.weight.quant_state.bitsandbytes__fp4",
      "field quant_type is fp4; only nf4 is read"}},
    {"bnb4_shape", TRAIN BNB("bad_shape") "--weights-dtype nf4 --method lora", 3,
     {"@Q/bad_shape/model.safetensors", "self_attn.q_proj.weight.quant_state.bitsandbytes__nf4",
      "field shape is [64,128]; config.json implies [64,64]"}},
    {"bnb4_weights_dtype", TRAIN BNB("bnb") "--method lora", 3,
     {"@Q/bnb", "'model.layers.0.self_attn.q_proj.weight' is stored 4-bit by bitsandbytes",
      "--weights-dtype nf4"}},
    {"opt_tp_heads_rows", TRAIN GPT2 "--tp 2 --tp-heads rows --method full", 2,
     {"--tp-heads rows", "trains backbone tensors", "--tp-heads whole or auto"}},
    {"opt_share_weights", TRAIN GPT2 "--share-weights maybe", 2,
     {"--share-weights", "auto|yes|no", "'maybe'"}},
    {"opt_batch", TRAIN GPT2 "--batch-size 3", 2, {"--batch-size 3", "2 data-parallel"}},
    {"opt_absent_method", TRAIN GPT2 "--method bitfit --lora-rank 4", 2,
     {"--lora-rank", "'lora', which is not selected", "--method bitfit"}},
    {"opt_lora_targets", TRAIN GPT2 "--lora-targets q_proj", 2,
     {"--lora-targets", "'q_proj' matches no module", "attn.c_attn"}},
    {"opt_ia3_targets", TRAIN GPT2 "--method ia3 --ia3-targets gate_proj", 2,
     {"--ia3-targets", "'gate_proj' matches no module"}},
    {"opt_needs_out", TRAIN GPT2 "--save-every 5", 2, {"--save-every needs --out"}},
    {"opt_nan_skips", TRAIN GPT2 "--nan-max-skips 3", 2,
     {"--nan-max-skips 3", "--nan-policy skip"}},
    {"opt_exclusive", TRAIN GPT2 "--shuffle 1 --sample-rows 2", 2,
     {"--shuffle and --sample-rows"}},
    {"opt_init_missing", TRAIN GPT2 "--init-from @T/nope.safetensors", 3,
     {"@T/nope.safetensors", "cannot open"}},
    {"opt_init_shape", TRAIN GPT2 "--init-from @T/init_shape.safetensors", 3,
     {"@T/init_shape.safetensors", "lora_A", "has shape [4, 48], expected [8, 48]"}},
    /* checked before the backbone is built: gpt2-xl takes minutes to make */
    {"early_data", TRAIN "--model synthetic:gpt2-xl --data @T/data_float.safetensors", 3,
     {"@T/data_float.safetensors", "dtype F32"}},
    {"early_targets", TRAIN XL "--lora-targets q_proj", 2, {"'q_proj' matches no module"}},
    {"early_init", TRAIN XL "--init-from @T/truncated/model.safetensors", 3,
     {"@T/truncated/model.safetensors", "file truncated?"}},
    {"early_batch", TRAIN XL "--batch-size 3", 2, {"--batch-size 3"}},
    {"early_out", TRAIN XL "--keep 2", 2, {"--keep needs --out"}},
    {"early_method", TRAIN XL "--method lorra", 2, {"--method: unknown method 'lorra'"}},
    /* an input only one rank cannot use (MPMD: rank 0 :: rank 1): the ranks
     * agree, rank 0 reports rank 1's error, nobody waits */
    {"one_rank_data", TRAIN GPT2 ":: " TRAIN "--model @G/model --data @T/data_vocab.safetensors", 3,
     {"@T/data_vocab.safetensors", "row 1 column 5: value 96"}},
    {"one_rank_init", TRAIN GPT2 ":: " TRAIN GPT2 "--init-from @T/init_shape.safetensors", 3,
     {"@T/init_shape.safetensors", "has shape [4, 48], expected [8, 48]"}},
    /* checkpoints */
    {"ckpt_backbone",
     "eval --model @L/model --data @L/batch.safetensors --checkpoint @C/" CKPT, 2,
     {"@C/" CKPT, "another backbone"}},
    {"ckpt_missing", "eval --data @G/batch.safetensors --checkpoint @T/nope.nc", 3,
     {"@T/nope.nc", "cannot open"}},
    {"ckpt_truncated", "inspect @T/ck_truncated.nc", 3,
     {"@T/ck_truncated.nc", "truncated or corrupted", "ends at byte"}},
    {"ckpt_tampered", "inspect @T/ck_tampered.nc", 3,
     {"@T/ck_tampered.nc", "corrupted", "hash"}},
    {"ckpt_resume_truncated", TRAIN GPT2 "--batch-size 2 --steps 4 --resume --out @T/ckr", 3,
     {"@T/ckr/" CKPT, "truncated or corrupted"}},
    {"ckpt_header", "inspect @T/ck_header.nc", 3,
     {"@T/ck_header.nc", "the NetCDF header is corrupted or truncated", "bad global attribute list"}},
    {"ckpt_resume_tampered", TRAIN GPT2 "--batch-size 2 --steps 4 --resume --out @T/ckt", 3,
     {"@T/ckt/" CKPT, "is corrupted", "hash"}},
    {"ckpt_eval_truncated", "eval --data @G/batch.safetensors --checkpoint @T/ck_truncated.nc", 3,
     {"@T/ck_truncated.nc", "truncated or corrupted"}},
    {"ckpt_eval_tampered", "eval --data @G/batch.safetensors --checkpoint @T/ck_tampered.nc", 3,
     {"@T/ck_tampered.nc", "is corrupted", "hash"}},
    {"ckpt_init_from", TRAIN GPT2 "--init-from @T/ck_tampered.nc", 3,
     {"--init-from @T/ck_tampered.nc", "not safetensors", "--resume"}},
    /* the checkpoint of --resume / --checkpoint is checked before the
     * backbone is built: gpt2-xl would take minutes */
    {"early_resume_truncated", TRAIN XL "--resume --out @T/ckr", 3,
     {"@T/ckr/" CKPT, "truncated or corrupted"}},
    {"early_resume_tampered", TRAIN XL "--resume --out @T/ckt", 3,
     {"@T/ckt/" CKPT, "is corrupted"}},
    {"early_resume_backbone", TRAIN XL "--resume --out @C", 2,
     {"@C/" CKPT, "another backbone"}},
    {"early_eval_tampered", "eval " XL "--checkpoint @T/ck_tampered.nc", 3,
     {"@T/ck_tampered.nc", "is corrupted"}},
    /* sweep task files (on gpt2-xl: checked before the backbone is built) */
    {"task_empty", SWEEP "@T/task_empty.ini", 3,
     {"@T/task_empty.ini", "no [task NAME] section"}},
    {"task_unknown_key", SWEEP "@T/task_unknown_key.ini", 2,
     {"@T/task_unknown_key.ini [task a]", "unknown option '--lora-rnak'", "'--lora-rank'"}},
    {"task_bad_value", SWEEP "@T/task_bad_value.ini", 2,
     {"@T/task_bad_value.ini [task a]", "--lr", "'20'"}},
    {"task_duplicate", SWEEP "@T/task_duplicate.ini", 3,
     {"@T/task_duplicate.ini: line 7", "task 'a' is defined twice (first at line 1)"}},
    {"task_indented", SWEEP "@T/task_indented.ini", 3,
     {"@T/task_indented.ini: line 4", "the line is indented"}},
    {"task_no_data", SWEEP "@T/task_no_data.ini", 2,
     {"@T/task_no_data.ini [task a]", "'data' is required"}},
    {"task_absent_method", SWEEP "@T/task_absent_method.ini", 2,
     {"@T/task_absent_method.ini: line 4", "key 'lora-rank'",
      "method 'lora', which this task does not select (method = bitfit)"}},
    {"task_missing", SWEEP "@T/nope.ini", 3, {"@T/nope.ini", "cannot open the task file"}},
    {"ckpt_resume_method", TRAIN GPT2 "--batch-size 2 --steps 4 --resume --out @C --method bitfit",
     2,
     {"@C/" CKPT, "--method lora", "--method bitfit"}},
};
#define N_CASES (int)(sizeof k_cases / sizeof k_cases[0])

static char g_tmp[512], g_ck[600];

/* s with @G @L @T @C @Q replaced */
static void expand(char *out, size_t cap, const char *s) {
  char gpt2[1024], llama[1024];
  snprintf(gpt2, sizeof gpt2, "%s", dt_test_fixture("gpt2"));
  snprintf(llama, sizeof llama, "%s", dt_test_fixture("llama"));
  size_t o = 0;
  for (const char *p = s; *p && o + 1 < cap; p++) {
    const char *rep = NULL;
    if (p[0] == '@' && p[1] == 'G') rep = gpt2;
    else if (p[0] == '@' && p[1] == 'L') rep = llama;
    else if (p[0] == '@' && p[1] == 'T') rep = g_tmp;
    else if (p[0] == '@' && p[1] == 'C') rep = g_ck;
    else if (p[0] == '@' && p[1] == 'Q') rep = DT_TESTDATA_DIR "/bnb4";
    if (rep) {
      o += (size_t)snprintf(out + o, cap - o, "%s", rep);
      if (o >= cap) o = cap - 1;
      p++;
    } else {
      out[o++] = *p;
    }
  }
  out[o] = 0;
}

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "%s/bad", dt_test_tmpdir());
  snprintf(g_ck, sizeof g_ck, "%s/ck", g_tmp);
  char *out = NULL;
  int rc = dt_test_run(&out, "python3 %s/tests/bad_inputs.py %s/hf-parity %s", DT_SOURCE_DIR,
                       DT_TESTDATA_DIR, g_tmp);
  if (rc != 0) {
    fprintf(stderr, "bad_inputs.py failed:\n%s\n", out ? out : "");
    free(out);
    return -1;
  }
  free(out);
  /* a checkpoint, a truncated and a tampered copy, and a folder whose newest
   * checkpoint is truncated (then one whose newest is tampered) */
  const char *G = dt_test_fixture("gpt2");
  rc = dt_test_run(&out,
                   MPIRUN " %s train --model %s/model --data %s/batch.safetensors --batch-size 2 "
                   "--steps 2 --out %s && cp %s/" CKPT " %s/ck_truncated.nc && "
                   "cp %s/" CKPT " %s/ck_tampered.nc && mkdir -p %s/ckr && "
                   "cp %s/" CKPT " %s/ckr/ && python3 -c \"import os,sys\n"
                   "for p in sys.argv[1:3]: os.truncate(p, os.path.getsize(p) // 2)\n"
                   "p = sys.argv[3]; b = bytearray(open(p, 'rb').read()); b[-100] ^= 0xff\n"
                   "open(p, 'wb').write(b)\" %s/ck_truncated.nc %s/ckr/" CKPT " %s/ck_tampered.nc",
                   DT_BINARY, G, G, g_ck, g_ck, g_tmp, g_ck, g_tmp, g_tmp, g_ck, g_tmp, g_tmp,
                   g_tmp, g_tmp);
  if (rc == 0) { /* and a folder whose newest checkpoint is tampered */
    free(out);
    out = NULL;
    rc = dt_test_run(&out, "mkdir -p %s/ckt && cp %s/ck_tampered.nc %s/ckt/" CKPT, g_tmp, g_tmp,
                     g_tmp);
  }
  if (rc == 0) { /* and one whose first global attribute claims 2^50 characters */
    free(out);
    out = NULL;
    rc = dt_test_run(&out,
                     "python3 -c \"import sys\n"
                     "b = bytearray(open(sys.argv[1], 'rb').read()); i = b.find(b'title')\n"
                     "assert i > 0 and b[i + 8:i + 12] == (2).to_bytes(4, 'big')\n"
                     "b[i + 12:i + 20] = (1 << 50).to_bytes(8, 'big')\n"
                     "open(sys.argv[2], 'wb').write(b)\" %s/" CKPT " %s/ck_header.nc",
                     g_ck, g_tmp);
  }
  if (rc != 0) {
    fprintf(stderr, "making the checkpoints failed:\n%s\n", out ? out : "");
    free(out);
    return -1;
  }
  free(out);
  return 0;
}

static void test_cases(void **state) {
  (void)state;
  int failed = 0;
  double worst = 0;
  const char *worst_id = "";
  for (int i = 0; i < N_CASES; i++) {
    const bad_case *k = &k_cases[i];
    char args[4096], cmd[8192];
    expand(args, sizeof args, k->args);
    char *second = strstr(args, ":: ");
    if (second) { /* rank 0's arguments :: rank 1's */
      *second = 0;
      snprintf(cmd, sizeof cmd, "mpirun --oversubscribe -np 1 %s %s : -np 1 %s %s", DT_BINARY,
               args, DT_BINARY, second + 3);
    } else {
      snprintf(cmd, sizeof cmd, MPIRUN " %s %s", DT_BINARY, args);
    }
    char *out = NULL;
    const double t0 = dt_test_now();
    const int rc = dt_test_run(&out, "%s", cmd);
    const double dt = dt_test_now() - t0;
    if (dt > worst) {
      worst = dt;
      worst_id = k->id;
    }
    char why[512] = "";
    if (rc != k->code) snprintf(why, sizeof why, "exit %d, expected %d", rc, k->code);
    else if (dt_test_count(out ? out : "", "deltatune: error") != 1)
      snprintf(why, sizeof why, "%d error lines, expected exactly one",
               dt_test_count(out ? out : "", "deltatune: error"));
    else if (dt > LIMIT_S)
      snprintf(why, sizeof why, "took %.1f s, more than %.0f s", dt, LIMIT_S);
    for (int n = 0; !why[0] && n < 3 && k->needle[n]; n++) {
      char nd[2048];
      expand(nd, sizeof nd, k->needle[n]);
      if (!strstr(out ? out : "", nd)) snprintf(why, sizeof why, "message lacks '%.400s'", nd);
    }
    if (why[0]) {
      failed++;
      fprintf(stderr, "case %s: %s\n  $ %s\n%s\n", k->id, why, cmd, out ? out : "");
    } else {
      const char *line = strstr(out, "deltatune: error");
      const char *end = line ? strchr(line, '\n') : NULL;
      printf("ok %-24s exit %d  %.1fs  %.*s\n", k->id, rc, dt,
             line ? (int)(end ? end - line : (long)strlen(line)) : 0, line ? line : "");
    }
    free(out);
  }
  printf("%d cases, %d failed; slowest %s %.1f s\n", N_CASES, failed, worst_id, worst);
  if (failed) fail_msg("%d of %d bad-input cases failed", failed, N_CASES);
}

/* docs/reliability.md lists every case, with the same exit code. */
static void test_docs_table(void **state) {
  (void)state;
  char path[1024];
  snprintf(path, sizeof path, "%s/docs/reliability.md", DT_SOURCE_DIR);
  char *doc = dt_test_slurp(path);
  assert_non_null(doc);
  for (int i = 0; i < N_CASES; i++) {
    char key[128];
    snprintf(key, sizeof key, "| `%s` |", k_cases[i].id);
    const char *row = strstr(doc, key);
    if (!row) fail_msg("docs/reliability.md has no row for case %s", k_cases[i].id);
    const char *eol = strchr(row, '\n');
    char code[16];
    snprintf(code, sizeof code, "| %d |", k_cases[i].code);
    const char *c = strstr(row, code);
    if (!c || (eol && c > eol))
      fail_msg("docs/reliability.md: the row of %s does not give exit code %d", k_cases[i].id,
               k_cases[i].code);
  }
  free(doc);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_docs_table),
                                     cmocka_unit_test_setup(test_cases, setup)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
