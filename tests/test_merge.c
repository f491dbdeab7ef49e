/* deltatune merge (docs/checkpoint.md): the merged Hugging Face folder
 * alone gives the logits of backbone + deltas (eval --dump-logits of both,
 * within 1e-4), for LoRA (GPT-2 Conv1D layout and the fused c_attn; LLaMA
 * q/k/v, gate/up row blocks and down_proj) and IA3 (output and input
 * scaling), composed methods, full fine-tuning written at --tp 2, and a
 * sharded backbone (shards + index in, shards + index out, untouched
 * tensors keep their bytes and dtype), and the families built on LLaMA's
 * block (Qwen2's q/k/v biases scaled by IA3 and trained by BitFit, Mistral
 * with a window of 4 from --tp 2), OPT and GPT-NeoX. Methods that cannot be merged,
 * another backbone and a non-empty --out are refused.
 *
 * usage: test_merge MPIRUN... (the launcher; "-np N" is appended) */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clitest.h"
#include "safetensors.h"

/* Largest |a - b| of the logits in two --dump-logits files. */
static double logits_diff(const char *a, const char *b) {
  int64_t na = 0, nb = 0;
  float *x = cli_tensor(a, "logits", &na, NULL, NULL), *y = cli_tensor(b, "logits", &nb, NULL, NULL);
  if (!x || !y || na != nb || na == 0) fail_msg("logits of %s and %s", a, b);
  double d = 0;
  for (int64_t j = 0; j < na; j++) {
    const double e = fabs((double)x[j] - y[j]);
    if (!(e <= d)) d = isnan(e) ? INFINITY : e;
  }
  free(x);
  free(y);
  return d;
}

/* Train `margs` for 3 steps on model (np ranks, --tp tp), merge, and compare
 * the merged model's logits with backbone + deltas. */
static void merge_case(const char *name, const char *fam, const char *model, int np, int tp,
                       const char *margs) {
  const char *tmp = dt_test_tmpdir(), *fix = cli_fix();
  char args[8192], dir[1024], merged[1024], ld[1200], lm[1200], lb[1200], *out = NULL;
  snprintf(dir, sizeof dir, "%s/%s", tmp, name);
  snprintf(merged, sizeof merged, "%s/%s-merged", tmp, name);
  snprintf(args, sizeof args,
           "train --model %s --data %s/%s/batch.safetensors --batch-size 2 --steps 3 --lr 1e-2 "
           "--tp %d --out %s --log-every 1000 %s", model, fix, fam, tp, dir, margs);
  cli_must(cli_dt(&out, np, NULL, args), out, args);
  free(out);
  snprintf(ld, sizeof ld, "%s/delta-logits.safetensors", dir);
  snprintf(lm, sizeof lm, "%s/merged-logits.safetensors", dir);
  snprintf(lb, sizeof lb, "%s/base-logits.safetensors", dir);
  snprintf(args, sizeof args,
           "eval --data %s/%s/batch.safetensors --checkpoint %s/ckpt-0000000003.nc "
           "--dump-logits %s", fix, fam, dir, ld);
  cli_must(cli_dt(&out, 1, NULL, args), out, args);
  free(out);
  snprintf(args, sizeof args, "merge --checkpoint %s/ckpt-0000000003.nc --out %s", dir, merged);
  cli_must(cli_dt(&out, 2, NULL, args), out, args);
  if (!strstr(out, "tensors changed")) fail_msg("%s: merge says:\n%s", name, out);
  free(out);
  snprintf(args, sizeof args,
           "eval --model %s --data %s/%s/batch.safetensors --method none --dump-logits %s",
           merged, fix, fam, lm);
  cli_must(cli_dt(&out, 1, NULL, args), out, args);
  free(out);
  snprintf(args, sizeof args,
           "eval --model %s --data %s/%s/batch.safetensors --method none --dump-logits %s", model,
           fix, fam, lb);
  cli_must(cli_dt(&out, 1, NULL, args), out, args);
  free(out);
  const double d = logits_diff(lm, ld), moved = logits_diff(lb, ld);
  printf("%s: merged vs backbone + deltas %.3e (the deltas move the logits by %.3e)\n", name, d,
         moved);
  if (!(d <= 1e-4)) fail_msg("%s: merged logits differ from backbone + deltas by %.3e", name, d);
  if (!(moved > 1e-3)) fail_msg("%s: the deltas hardly change the logits (%.3e)", name, moved);
  char p[1200];
  snprintf(p, sizeof p, "%s/config.json", merged);
  if (!cli_exists(p)) fail_msg("%s: no config.json in %s", name, merged);
}

static void model_of(char *buf, size_t cap, const char *fam) {
  snprintf(buf, cap, "%s/%s/model", cli_fix(), fam);
}

static void test_lora_gpt2(void **state) {
  (void)state;
  char m[1024];
  model_of(m, sizeof m, "gpt2");
  merge_case("lora-gpt2", "gpt2", m, 2, 1,
             "--method lora --lora-rank 4 --lora-alpha 8 --lora-init random "
             "--lora-targets c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj");
}

static void test_lora_llama(void **state) {
  (void)state;
  char m[1024];
  model_of(m, sizeof m, "llama");
  merge_case("lora-llama", "llama", m, 2, 1,
             "--method lora --lora-rank 4 --lora-init random --lora-rslora "
             "--lora-targets q_proj,k_proj,v_proj,gate_proj,up_proj,down_proj");
}

static void test_ia3(void **state) {
  (void)state;
  char m[1024];
  model_of(m, sizeof m, "gpt2");
  merge_case("ia3-gpt2", "gpt2", m, 1, 1,
             "--method ia3 --ia3-targets c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj "
             "--ia3-ff mlp.c_fc,mlp.c_proj");
  model_of(m, sizeof m, "llama");
  merge_case("ia3-llama", "llama", m, 1, 1,
             "--method ia3 --ia3-targets q_proj,k_proj,v_proj,up_proj,down_proj "
             "--ia3-ff up_proj,down_proj");
}

static void test_composed_and_full(void **state) {
  (void)state;
  char m[1024];
  model_of(m, sizeof m, "gpt2");
  /* post hooks in method order over a trained bias, then the pre hook */
  merge_case("lora-ia3-bitfit-gpt2", "gpt2", m, 1, 1,
             "--method lora,ia3,bitfit --lora-init random --lora-targets c_attn,mlp.c_proj "
             "--ia3-targets c_attn,mlp.c_proj");
  model_of(m, sizeof m, "llama");
  merge_case("ia3-lora-lastlayer-llama", "llama", m, 1, 1,
             "--method ia3,lora,lastlayer --lora-init random --lora-targets gate_proj,down_proj "
             "--ia3-targets k_proj,gate_proj,down_proj --ia3-ff gate_proj,down_proj");
  /* full fine-tuning checkpointed from --tp 2 shards */
  merge_case("full-llama-tp2", "llama", m, 4, 2, "--method full");
}

/* Qwen2 (tests/data/families/qwen2: q/k/v biases, which IA3's output
 * scaling of k_proj and v_proj scales too and BitFit trains) and Mistral
 * (window 4), on the LLaMA fixture's batch. */
static void test_families(void **state) {
  (void)state;
  char m[1024];
  snprintf(m, sizeof m, "%s/../families/qwen2/model", cli_fix());
  merge_case("lora-ia3-qwen2-tp2", "llama", m, 2, 2,
             "--method lora,ia3 --lora-init random "
             "--lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
  merge_case("bitfit-qwen2", "llama", m, 1, 1, "--method bitfit");
  snprintf(m, sizeof m, "%s/../families/mistral/model", cli_fix());
  merge_case("full-mistral-tp2", "llama", m, 2, 2, "--method full");
  /* OPT: separate q/k/v with biases (IA3 scales q_proj's and k_proj's), fc2 */
  snprintf(m, sizeof m, "%s/../families/opt/model", cli_fix());
  merge_case("lora-ia3-opt-tp2", "gpt2", m, 2, 2,
             "--method lora,ia3 --lora-init random "
             "--lora-targets q_proj,k_proj,v_proj,out_proj,fc1,fc2");
  /* GPT-NeoX: the per-head query_key_value rows (LoRA's B and IA3's scales
   * of weight and bias in the file's order) from 2 shards; full from 3
   * uneven shards (4 heads) writes whole heads back in place */
  snprintf(m, sizeof m, "%s/../families/neox/model", cli_fix());
  merge_case("lora-ia3-neox-tp2", "gpt2", m, 2, 2,
             "--method lora,ia3 --lora-init random "
             "--lora-targets query_key_value,dense,dense_h_to_4h,dense_4h_to_h");
  snprintf(m, sizeof m, "%s/../families/neox_seq/model", cli_fix());
  merge_case("full-neox-seq-tp3", "gpt2", m, 3, 3, "--method full");
  /* Falcon: the grouped query_key_value rows (LoRA's B and IA3's scales in
   * the file's order, no linear biases) from 3 uneven shards (4 key/value
   * groups); full of the multi_query block, its one input_layernorm
   * trained by both branches, from 2 shards */
  snprintf(m, sizeof m, "%s/../families/falcon/model", cli_fix());
  merge_case("lora-ia3-falcon-tp3", "gpt2", m, 3, 3,
             "--method lora,ia3 --lora-init random "
             "--lora-targets query_key_value,dense,dense_h_to_4h,dense_4h_to_h");
  snprintf(m, sizeof m, "%s/../families/falcon_mq/model", cli_fix());
  merge_case("full-falcon-mq-tp2", "gpt2", m, 2, 2, "--method full");
  /* Gemma-2: the merged folder keeps the 1 + w norms' w and the post norms */
  snprintf(m, sizeof m, "%s/../families/gemma2/model", cli_fix());
  merge_case("lora-ia3-gemma2-tp2", "llama", m, 2, 2,
             "--method lora,ia3 --lora-init random "
             "--lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
  merge_case("full-gemma2", "llama", m, 1, 1, "--method full");
  /* BLOOM: LoRA and IA3 on the per-head query_key_value from 2 shards;
   * full from 3 uneven shards (4 heads) writes the embedding's norm too */
  snprintf(m, sizeof m, "%s/../families/bloom/model", cli_fix());
  merge_case("lora-ia3-bloom-tp2", "gpt2", m, 2, 2,
             "--method lora,ia3 --lora-init random "
             "--lora-targets query_key_value,dense,dense_h_to_4h,dense_4h_to_h");
  merge_case("full-bloom-tp3", "gpt2", m, 3, 3, "--method full");
}

/* The GPT-2 fixture split into two shards with an index, two tensors
 * stored as bf16. */
static void make_sharded(const char *dir) {
  char src[1024], p[1200], *out = NULL;
  snprintf(src, sizeof src, "%s/gpt2/model/model.safetensors", cli_fix());
  cli_must(dt_test_run(&out, "rm -rf %s && mkdir -p %s && cp %s/gpt2/model/config.json %s/", dir,
                       dir, cli_fix(), dir), out, "mkdir");
  free(out);
  dt_st_file f;
  assert_int_equal(dt_st_open(&f, src), 0);
  dt_st_out *t[2];
  int n[2] = {0, 0};
  t[0] = calloc((size_t)f.n, sizeof(dt_st_out));
  t[1] = calloc((size_t)f.n, sizeof(dt_st_out));
  json_t *wm = json_object();
  void **bufs = calloc((size_t)f.n, sizeof(void *));
  for (int k = 0; k < f.n; k++) {
    const dt_st_tensor *s = &f.t[k];
    const int which = k % 2;
    dt_st_out *o = &t[which][n[which]++];
    float *v = malloc(sizeof(float) * (size_t)s->numel);
    assert_int_equal(dt_st_read_f32(&f, s, 0, s->numel, v), 0);
    o->name = s->name;
    o->ndim = s->ndim;
    for (int d = 0; d < s->ndim; d++) o->shape[d] = s->shape[d];
    if (!strcmp(s->name, "transformer.wpe.weight") || !strcmp(s->name, "transformer.ln_f.bias")) {
      uint16_t *h = malloc(sizeof(uint16_t) * (size_t)s->numel);
      for (int64_t j = 0; j < s->numel; j++) h[j] = dt_f32_to_bf16(v[j]);
      free(v);
      o->dtype = DT_DTYPE_BF16;
      o->data = h;
      bufs[k] = h;
    } else {
      o->dtype = DT_DTYPE_F32;
      o->data = v;
      bufs[k] = v;
    }
    json_object_set_new(wm, s->name, json_string(which ? "model-00002-of-00002.safetensors"
                                                       : "model-00001-of-00002.safetensors"));
  }
  static const char *const keys[] = {"format"}, *const vals[] = {"pt"};
  for (int w = 0; w < 2; w++) {
    snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", dir, w + 1);
    assert_int_equal(dt_st_write(p, t[w], n[w], keys, vals, 1), 0);
  }
  json_t *root = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)1, "weight_map", wm);
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  assert_int_equal(json_dump_file(root, p, JSON_INDENT(2)), 0);
  json_decref(root);
  for (int k = 0; k < f.n; k++) free(bufs[k]);
  free(bufs);
  free(t[0]);
  free(t[1]);
  dt_st_close(&f);
}

static void test_sharded_backbone(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir();
  char model[1024], merged[1200], p[1300], q[1300];
  snprintf(model, sizeof model, "%s/gpt2-sharded", tmp);
  make_sharded(model);
  merge_case("lora-gpt2-sharded", "gpt2", model, 2, 1,
             "--method lora --lora-init random --lora-targets c_attn,mlp.c_proj");
  snprintf(merged, sizeof merged, "%s/lora-gpt2-sharded-merged", tmp);
  /* shards and index; every tensor in the same shard; bf16 kept */
  for (int w = 1; w <= 2; w++) {
    snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", merged, w);
    snprintf(q, sizeof q, "%s/model-0000%d-of-00002.safetensors", model, w);
    dt_st_file a, b;
    if (dt_st_open(&a, p)) fail_msg("merged shard %s", p);
    assert_int_equal(dt_st_open(&b, q), 0);
    assert_int_equal(a.n, b.n);
    for (int k = 0; k < b.n; k++) {
      const dt_st_tensor *x = dt_st_find(&a, b.t[k].name);
      if (!x) fail_msg("%s: tensor %s is not in the merged shard", p, b.t[k].name);
      const int lora = strstr(x->name, "c_attn.weight") || strstr(x->name, "mlp.c_proj.weight");
      if (x->dtype != (lora ? DT_DTYPE_F32 : b.t[k].dtype))
        fail_msg("%s: %s has dtype %s", p, x->name, dt_dtype_name(x->dtype));
      if (!lora) { /* the same bytes */
        char *u = malloc(x->nbytes + 1), *v = malloc(b.t[k].nbytes + 1);
        if (pread(a.fd, u, x->nbytes, (off_t)x->offset) != (ssize_t)x->nbytes ||
            pread(b.fd, v, b.t[k].nbytes, (off_t)b.t[k].offset) != (ssize_t)b.t[k].nbytes ||
            x->nbytes != b.t[k].nbytes || memcmp(u, v, x->nbytes) != 0)
          fail_msg("%s: the bytes of untouched %s changed", p, x->name);
        free(u);
        free(v);
      }
    }
    dt_st_close(&a);
    dt_st_close(&b);
  }
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", merged);
  json_error_t err;
  json_t *idx = json_load_file(p, 0, &err);
  if (!idx) fail_msg("no index in %s", merged);
  json_t *wm = json_object_get(idx, "weight_map");
  if (json_object_size(wm) != 28 ||
      strcmp(json_string_value(json_object_get(wm, "transformer.wte.weight")),
             "model-00001-of-00002.safetensors") == 0) /* wte is the 28th tensor: shard 2 */
    fail_msg("merged index: %s", json_dumps(idx, 0));
  json_decref(idx);
  snprintf(p, sizeof p, "%s/model.safetensors", merged);
  if (cli_exists(p)) fail_msg("%s exists beside the shards", p);
}

static void test_refusals(void **state) {
  (void)state;
  const char *tmp = dt_test_tmpdir(), *fix = cli_fix();
  char args[8192], *out = NULL;
  static const char *const methods[][2] = {
      {"prefix", "--prefix-tokens 2"}, {"prompt", "--prompt-tokens 2"},
      {"adapter", "--adapter-size 4"}, {"said", "--said-dim 8"}};
  for (size_t k = 0; k < sizeof methods / sizeof *methods; k++) {
    snprintf(args, sizeof args,
             "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors --batch-size 2 "
             "--steps 1 --method %s %s --out %s/ref-%s --log-every 1000", fix, fix,
             methods[k][0], methods[k][1], tmp, methods[k][0]);
    cli_must(cli_dt(&out, 1, NULL, args), out, args);
    free(out);
    snprintf(args, sizeof args, "merge --checkpoint %s/ref-%s/ckpt-0000000001.nc --out %s/m-%s",
             tmp, methods[k][0], tmp, methods[k][0]);
    const int rc = cli_dt(&out, 2, NULL, args);
    if (rc != 2 || !strstr(out, "cannot be merged into the weights"))
      fail_msg("merge of %s: exit %d:\n%s", methods[k][0], rc, out);
    free(out);
  }
  /* another backbone: the fixture with a changed config.json */
  cli_must(dt_test_run(&out, "rm -rf %s/other && cp -r %s/gpt2/model %s/other && sed -i "
                       "'s/\"initializer_range\": 0.02/\"initializer_range\": 0.03/' %s/other/config.json",
                       tmp, fix, tmp, tmp), out, "copy");
  free(out);
  snprintf(args, sizeof args,
           "train --model %s/gpt2/model --data %s/gpt2/batch.safetensors --batch-size 2 --steps 1 "
           "--method lora --out %s/ref-lora --log-every 1000", fix, fix, tmp);
  cli_must(cli_dt(&out, 1, NULL, args), out, args);
  free(out);
  snprintf(args, sizeof args, "merge --checkpoint %s/ref-lora/ckpt-0000000001.nc --model %s/other --out %s/m-other",
           tmp, tmp, tmp);
  int rc = cli_dt(&out, 1, NULL, args);
  if (rc != 2 || !strstr(out, "another backbone") || !strstr(out, "config.json"))
    fail_msg("merge onto another backbone: exit %d:\n%s", rc, out);
  free(out);
  /* --out must be new or empty, and never the backbone's folder */
  snprintf(args, sizeof args, "merge --checkpoint %s/ref-lora/ckpt-0000000001.nc --out %s/ref-lora",
           tmp, tmp);
  rc = cli_dt(&out, 1, NULL, args);
  if (rc != 2 || !strstr(out, "not empty")) fail_msg("merge into a full folder: exit %d:\n%s", rc, out);
  free(out);
  snprintf(args, sizeof args, "merge --checkpoint %s/ref-lora/ckpt-0000000001.nc --out %s/gpt2/model",
           tmp, fix);
  rc = cli_dt(&out, 1, NULL, args);
  if (rc != 2 || !strstr(out, "backbone's folder"))
    fail_msg("merge into the backbone's folder: exit %d:\n%s", rc, out);
  free(out);
}

int main(int argc, char **argv) {
  cli_init(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lora_gpt2),
      cmocka_unit_test(test_lora_llama),
      cmocka_unit_test(test_ia3),
      cmocka_unit_test(test_composed_and_full),
      cmocka_unit_test(test_families),
      cmocka_unit_test(test_sharded_backbone),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
