/* deltatune plan, in process (docs/plan.md):
 *   - a described model (dt_model_describe) has the weight bytes, shapes,
 *     activation layout and FLOPs of a loaded one, for several shapes and
 *     every rank of several tensor-parallel splits;
 *   - methods created on a described model register the same tensors
 *     (names, counts, this rank's elements, gradient classes) as on the
 *     loaded model, and count the bytes the loaded model's creation
 *     allocates;
 *   - the LoRA paper's parameter counts on GPT-3 175B (18.9M at r = 4 on
 *     Wq, Wv) and the checkpoint bytes that follow;
 *   - the smallest node count (also on LLaMA-2-70B at 64 ranks per node, a
 *     search over groups of up to millions of ranks that once did not
 *     finish), and the command line (text, JSON, errors);
 *   - the machine file's measured sum curves: an old file (the two
 *     constants only) keeps the straight line; a curve is followed between
 *     its points and extended by its last band, survives a save and load,
 *     and sets the plan's communication time; a malformed one is an error
 *     naming the file and the field. */
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "machine.h"
#include "plan.h"
#include "quant.h"
#include "testutil.h"
#include "timer.h"

static const dt_optdef k_extra[] = {
    {"init-from", DT_OPT_STRING, NULL, 0, 0, NULL, "(plan and train accept it)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

/* Every method's options and --init-from, parsed from args. */
static void parse_opts(dt_options *o, const char *const *args, int nargs) {
  dt_optgroup g[32];
  int ng = 0;
  g[ng++] = (dt_optgroup){"x", "x", k_extra};
  for (int i = 0; i < dt_method_count() && ng < 32; i++)
    if (dt_method_at(i)->options) g[ng++] = *dt_method_at(i)->options;
  char *argv[32];
  for (int i = 0; i < nargs; i++) argv[i] = (char *)args[i];
  assert_int_equal(dt_options_parse(o, "train", g, ng, nargs, argv), DT_OK);
}

static int64_t heap(void) {
  struct mallinfo2 mi = mallinfo2();
  return (int64_t)mi.uordblks + (int64_t)mi.hblkhd;
}

typedef struct {
  const char *model;
  const char *methods;
  const char *args[8];
  int nargs;
} method_case;

static const char *k_models[] = {
    "synthetic:gpt2:layers=2,d=96,heads=4,ffn=200,vocab=301,ctx=64",
    "synthetic:llama:layers=3,d=64,heads=4,kv_heads=2,ffn=120,vocab=257,ctx=64",
    "synthetic:llama:layers=2,d=48,heads=6,kv_heads=1,vocab=100,ctx=64",
};

static const method_case k_cases[] = {
    {NULL, "lora", {"--lora-rank", "3"}, 2},
    {NULL, "lora", {"--lora-rank", "2", "--lora-dropout", "0.1", "--lora-targets",
                    "attn.c_proj,mlp.c_fc,mlp.c_proj"}, 6},
    {NULL, "adapter", {"--adapter-size", "7"}, 2},
    {NULL, "prefix", {"--prefix-tokens", "5"}, 2},
    {NULL, "prefix", {"--prefix-tokens", "3", "--prefix-hidden", "16"}, 4},
    {NULL, "prompt", {"--prompt-tokens", "4", "--prompt-init", "vocab"}, 4},
    {NULL, "bitfit", {0}, 0},
    {NULL, "lastlayer", {"--last-layers", "1", "--last-layers-head", "yes"}, 4},
    {NULL, "full", {0}, 0},
    {NULL, "said", {"--said-dim", "50"}, 2},
    {NULL, "ia3", {0}, 0},
    {NULL, "lora,bitfit", {0}, 0},
    {NULL, "prompt,lastlayer", {0}, 0},
};

/* One shape, one split (split: left-over heads by query rows), one method
 * list: describe vs load. */
static void compare(const char *model, int r, int T, int split, const method_case *mc) {
  const int llama = strstr(model, "llama") != NULL;
  if (llama && strstr(mc->methods, "bitfit")) return; /* no biases */
  const char *args[8];
  int nargs = mc->nargs;
  for (int i = 0; i < nargs; i++) args[i] = mc->args[i];
  if (llama && nargs == 6) args[5] = "o_proj,gate_proj,down_proj";
  dt_options *o = calloc(1, sizeof *o);
  parse_opts(o, args, nargs);
  o->command = "train";
  dt_dist fake;
  memset(&fake, 0, sizeof fake);
  fake.tp_rank = r;
  fake.tp_size = T;
  fake.size = T;
  fake.dp_size = 1;
  fake.split_heads = split;
  dt_model real, desc;
  assert_int_equal(dt_model_load(&real, model, 0, 1, T > 1 ? &fake : NULL, 0), DT_OK);
  real.bb->dist = NULL; /* no communicator: creation needs none (prompt's vocab init sums) */
  assert_int_equal(dt_model_describe(&desc, model, 0, r, T, split), DT_OK);
  assert_int_equal(real.bb->sh.n_kv_l, desc.bb->sh.n_kv_l);
  assert_int_equal(real.bb->sh.kv_share, split && dt_shard_can_share(&real.bb->cfg, T)
                                             ? T / (real.bb->cfg.n_kv_head % T) : 1);
  assert_true(real.bb->weight_bytes > 0);
  assert_int_equal(real.bb->weight_bytes, desc.bb->weight_bytes);
  if (T > 1) assert_true(desc.bb->weight_bytes < dt_model_local_weight_bytes(&desc) + 64 * 64 * 4);
  dt_params pr, pd;
  memset(&pr, 0, sizeof pr);
  memset(&pd, 0, sizeof pd);
  dt_method **mr = NULL, **md = NULL;
  int nr = 0, nd = 0;
  int64_t h0 = heap();
  assert_int_equal(dt_methods_create(mc->methods, o, &real, &pr, 1, &mr, &nr), DT_OK);
  const int64_t real_bytes = heap() - h0;
  h0 = heap();
  assert_int_equal(dt_methods_create(mc->methods, o, &desc, &pd, 1, &md, &nd), DT_OK);
  const int64_t desc_bytes = heap() - h0 + desc.described_bytes;
  /* the same tensors */
  assert_int_equal(pr.n, pd.n);
  assert_int_equal(pr.numel, pd.numel);
  assert_int_equal(pr.numel_l, pd.numel_l);
  for (int i = 0; i < pr.n; i++) {
    assert_string_equal(pr.p[i].name, pd.p[i].name);
    assert_int_equal(pr.p[i].numel_l, pd.p[i].numel_l);
    assert_int_equal(pr.p[i].sync, pd.p[i].sync);
  }
  /* the same allocations (malloc's own bookkeeping aside) */
  const double diff = fabs((double)(real_bytes - desc_bytes));
  if (!(diff <= 4096 + 0.01 * (double)real_bytes))
    fail_msg("%s on %s, rank %d of %d: creation allocated %lld bytes, the description "
             "counts %lld", mc->methods, model, r, T, (long long)real_bytes,
             (long long)desc_bytes);
  /* the same activation layout, buffers and FLOPs */
  assert_int_equal(dt_model_set_methods(&real, mr, nr), DT_OK);
  assert_int_equal(dt_model_set_methods(&desc, md, nd), DT_OK);
  for (int rc = 0; rc < 2; rc++)
    assert_int_equal(dt_model_act_bytes(&real, 3, 17, rc), dt_model_act_bytes(&desc, 3, 17, rc));
  assert_int_equal(dt_model_plan_extra_bytes(&real, 3, 17), dt_model_plan_extra_bytes(&desc, 3, 17));
  assert_true(fabs(dt_model_step_flops(&real, 20, 60, 50) - dt_model_step_flops(&desc, 20, 60, 50)) <
              1e-6 * dt_model_step_flops(&real, 20, 60, 50));
  dt_methods_destroy(mr, nr);
  dt_methods_destroy(md, nd);
  dt_params_free(&pr);
  dt_params_free(&pd);
  dt_model_free(&real);
  dt_model_free(&desc);
  free(o);
}

static void test_describe_matches_load(void **state) {
  (void)state;
  for (size_t s = 0; s < sizeof k_models / sizeof *k_models; s++)
    for (int T = 1; T <= 3; T++)
      for (int r = 0; r < T; r++)
        for (int split = 0; split <= (T > 1); split++)
          for (size_t c = 0; c < sizeof k_cases / sizeof *k_cases; c++)
            compare(k_models[s], r, T, split, &k_cases[c]);
}

static void plan_of(const char *model, const char *methods, const char *const *args, int nargs,
                    int nodes, int rpn, int tp, int batch, int seq, dt_plan_out *out) {
  dt_options *o = calloc(1, sizeof *o);
  parse_opts(o, args, nargs);
  dt_plan_in in = {model, methods, o, nodes, rpn, tp, batch, seq, 0, 1, 0, -1, 0, 1, 0, 0, NULL, 0};
  dt_machine mc;
  dt_machine_defaults(&mc);
  assert_int_equal(dt_plan_compute(&in, &mc, out), DT_OK);
  free(o);
}

/* The LoRA paper (Hu et al. 2021, GPT-3 175B): r = 4 on Wq and Wv trains
 * 2 x 96 layers x (12288 + 12288) x 4 = 18.9M parameters (4.7M at r = 1,
 * 37.7M at r = 8), 37.7 MB in fp16 (our fp32 checkpoint: twice that). Our
 * GPT-2-family preset fuses q|k|v into c_attn, which PEFT (and we) target as
 * one module: A [r, d], B [3d, r] has the same r (d + 3d) = 2 r (d + d)
 * parameters per layer; a LLaMA-style 96 x 12288 shape targets q_proj and
 * v_proj exactly as the paper does. Both give the paper's count. */
static void test_lora_paper_counts(void **state) {
  (void)state;
  const char *r4[] = {"--lora-rank", "4"};
  dt_plan_out o;
  plan_of("synthetic:gpt3-175b", "lora", r4, 2, 64, 8, 64, 8, 2048, &o);
  assert_int_equal(o.trainable, 18874368);
  assert_true(fabs(o.trainable / 1e6 - 18.9) < 0.05);
  assert_int_equal(o.ckpt_deltas, 4 * 18874368);
  assert_true(fabs(o.ckpt_deltas / 2 / 1e6 - 37.7) < 0.1); /* fp16, as the paper counts */
  assert_int_equal(o.ckpt_with_opt, 3 * o.ckpt_deltas);
  assert_int_equal(o.frozen_params, 174604259328LL); /* GPT-2 layout: 175B */
  const char *qv4[] = {"--lora-rank", "4", "--lora-targets", "q_proj,v_proj"};
  plan_of("synthetic:llama:layers=96,d=12288,heads=96,ffn=49152,vocab=50257,ctx=2048", "lora",
          qv4, 4, 64, 8, 64, 8, 2048, &o);
  assert_int_equal(o.trainable, 18874368);
  const char *qv1[] = {"--lora-rank", "1", "--lora-targets", "q_proj,v_proj"};
  plan_of("synthetic:llama:layers=96,d=12288,heads=96,ffn=49152,vocab=50257,ctx=2048", "lora",
          qv1, 4, 8, 8, 8, 8, 2048, &o);
  assert_true(fabs(o.trainable / 1e6 - 4.7) < 0.05);
  const char *r8[] = {"--lora-rank", "8"};
  plan_of("synthetic:gpt3-175b", "lora", r8, 2, 8, 8, 8, 8, 2048, &o);
  assert_true(fabs(o.trainable / 1e6 - 37.7) < 0.05);
  /* the frozen backbone: 175B fp32 parameters over 64 tensor ranks */
  assert_true(fabs((double)o.weight_bytes_total - 4.0 * 174604259328.0) < 1e7);
}

/* The smallest node count is a layout that fits, and one node fewer none
 * does. */
static void test_min_nodes(void **state) {
  (void)state;
  dt_options *o = calloc(1, sizeof *o);
  parse_opts(o, NULL, 0);
  dt_machine mc;
  dt_machine_defaults(&mc);
  dt_plan_in in = {"synthetic:llama2-13b", "lora", o, 1, 4, 1, 8, 1024, 0, 1, 0, -1, 0, 1, 0, 0, NULL, 0};
  const double mem = 64.0 * (1 << 30);
  int n = 0, tp = 0;
  assert_int_equal(dt_plan_min_nodes(&in, &mc, mem, 1024, &n, &tp), DT_OK);
  assert_true(n >= 1 && tp >= 1);
  dt_plan_out out;
  in.nodes = n;
  in.tp = tp;
  assert_int_equal(dt_plan_compute(&in, &mc, &out), DT_OK);
  assert_true((double)out.node_bytes <= mem);
  for (int t = 1; n > 1 && t <= (n - 1) * 4; t++) {
    if (((n - 1) * 4) % t || 8 % (((n - 1) * 4) / t)) continue;
    in.nodes = n - 1;
    in.tp = t;
    if (dt_plan_compute(&in, &mc, &out) == DT_OK) assert_true((double)out.node_bytes > mem);
  }
  /* nothing fits in 1 MiB */
  assert_int_equal(dt_plan_min_nodes(&in, &mc, 1 << 20, 64, &n, &tp), DT_OK);
  assert_int_equal(n, 0);
  free(o);
}

/* LLaMA-2-70B, LoRA, bf16 weights, 4 rows of 2048 tokens, --recompute,
 * whole key/value groups. Every rank keeps its replica's activations (about
 * 5.6 GiB a rank at one row), and a rank holding a key/value group keeps
 * 1/8 of the attention weights however large the group, so 64 ranks of
 * that size do not fit 512 GiB; but a node's memory is the sum of its own
 * ranks: with a group of 128 ranks over two nodes only 8 of node 0's 64
 * ranks hold a group. The search finds that (8 nodes), in seconds, where
 * 64 times the largest rank would not fit; one node does not fit; a group
 * of 4M ranks over 65536 nodes is planned in seconds too. At 8 ranks per
 * node and 128 GiB it finds a layout, checked against every layout of one
 * node fewer. */
static void test_min_nodes_70b(void **state) {
  (void)state;
  dt_options *o = calloc(1, sizeof *o);
  parse_opts(o, NULL, 0);
  dt_machine mc;
  dt_machine_defaults(&mc);
  dt_plan_in in = {"synthetic:llama2-70b", "lora", o, 1, 64, 64, 4, 2048, DT_W_BF16, 1, 1, -1, 0, 1,
                   0, 0, NULL, 0};
  const double gib = (double)(1 << 30);
  int n = -1, tp = -1;
  const double t0 = dt_now();
  assert_int_equal(dt_plan_min_nodes(&in, &mc, 512 * gib, 65536, &n, &tp), DT_OK);
  const double dt = dt_now() - t0;
  if (dt > 20) fail_msg("the 70B search took %.1f s", dt);
  assert_int_equal(n, 8);
  dt_plan_out out;
  in.nodes = n;
  in.tp = tp;
  assert_int_equal(dt_plan_compute(&in, &mc, &out), DT_OK);
  assert_true((double)out.node_bytes <= 512 * gib);
  assert_true(64.0 * (double)out.mem.node_share > 512 * gib); /* the largest rank 64 times */
  /* node 0's sum: its 8 group ranks are the largest, the other 56 smaller */
  assert_true(out.node_bytes < 64 * out.mem.node_share);
  assert_true(out.node_bytes > 8 * out.mem.node_share);
  /* one node: no fit */
  in.nodes = 1;
  in.tp = 64;
  assert_int_equal(dt_plan_compute(&in, &mc, &out), DT_OK);
  assert_true((double)out.node_bytes > 512 * gib);
  /* the rank that holds the most holds a key/value group: its weights are
   * those of tp rank 0 described alone */
  dt_model d;
  assert_int_equal(dt_model_describe(&d, in.model, DT_W_BF16, 0, 64, 0), DT_OK);
  assert_int_equal(out.mem.weights, (int64_t)d.bb->weight_bytes);
  dt_model_free(&d);
  in.nodes = 65536;
  in.tp = 65536 * 64;
  const double t1 = dt_now();
  assert_int_equal(dt_plan_compute(&in, &mc, &out), DT_OK);
  if (dt_now() - t1 > 20) fail_msg("a group of 4M ranks took %.1f s", dt_now() - t1);
  assert_true(out.mem.acts > 5 * gib); /* the replicated activations stay */
  /* 8 ranks per node, 128 GiB: the smallest count fits, one fewer does not */
  in.ranks_per_node = 8;
  assert_int_equal(dt_plan_min_nodes(&in, &mc, 128 * gib, 65536, &n, &tp), DT_OK);
  assert_true(n > 1 && tp >= 1);
  in.nodes = n;
  in.tp = tp;
  assert_int_equal(dt_plan_compute(&in, &mc, &out), DT_OK);
  assert_true((double)out.node_bytes <= 128 * gib);
  /* 128 GiB of bf16 weights alone need two nodes */
  assert_true((double)out.weight_bytes_total / n < 128 * gib);
  int tried = 0;
  for (int t = 1; t <= (n - 1) * 8; t++) {
    if (((n - 1) * 8) % t || 4 % (((n - 1) * 8) / t)) continue;
    in.nodes = n - 1;
    in.tp = t;
    if (dt_plan_compute(&in, &mc, &out) == DT_OK) {
      assert_true((double)out.node_bytes > 128 * gib);
      tried++;
    } else {
      dt_error_clear();
    }
  }
  assert_true(tried > 0);
  free(o);
}

/* The command: JSON fields, text, usage errors. */
static void test_cli(void **state) {
  (void)state;
  char *out = NULL;
  const char *mf = "/nonexistent/machine.json";
  int rc = dt_test_run(&out,
                       "%s plan --model synthetic:gpt3-175b --method lora --lora-rank 4 "
                       "--nodes 64 --ranks-per-node 8 --tp 8 --batch-size 64 --seq-len 2048 "
                       "--mem-per-node 1T --json --machine %s",
                       DT_BINARY, mf);
  assert_int_equal(rc, 0);
  json_error_t je;
  json_t *j = json_loads(strchr(out, '{'), 0, &je);
  if (!j) fail_msg("not JSON (%s): %s", je.text, out);
  json_t *p = json_object_get(j, "plan");
  assert_int_equal(json_integer_value(json_object_get(p, "trainable_parameters")), 18874368);
  json_t *mem = json_object_get(p, "memory_per_rank");
  assert_true(json_integer_value(json_object_get(mem, "peak_rss")) >
              json_integer_value(json_object_get(mem, "frozen_weights")));
  assert_true(json_integer_value(json_object_get(json_object_get(p, "checkpoint_per_task"),
                                                 "deltas_bytes")) == 75497472);
  assert_true(json_is_object(json_object_get(j, "full_finetuning")));
  assert_true(json_is_integer(json_object_get(json_object_get(j, "smallest_fit"), "nodes")));
  assert_true(json_real_value(json_object_get(json_object_get(p, "time"), "step_s")) > 0);
  json_decref(j);
  free(out);
  rc = dt_test_run(&out, "%s plan --model synthetic:llama2-70b --method adapter --tp 8 "
                         "--ranks-per-node 8 --batch-size 8 --seq-len 1024 --machine %s",
                   DT_BINARY, mf);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "total: predicted peak RSS"));
  assert_non_null(strstr(out, "full fine-tuning, same layout"));
  assert_non_null(strstr(out, "built-in defaults"));
  free(out);
  /* usage errors: exit 2 with a message naming the option */
  struct {
    const char *args, *msg;
  } bad[] = {
      {"--model synthetic:gpt2-small --tp 3 --ranks-per-node 4", "--tp 3 does not divide"},
      {"--model synthetic:gpt2-small --ranks-per-node 4 --batch-size 6", "not divisible"},
      {"--model synthetic:gpt2-small --method lora --adapter-size 8", "--adapter-size belongs"},
      {"--model synthetic:gpt2-small --mem-per-node lots", "--mem-per-node 'lots'"},
      {"--method lora", "--model is required"},
      {"--model synthetic:gpt2-small --method bitfit,prefix --prefix-tokens 2000",
       "exceeds the model's n_positions"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    rc = dt_test_run(&out, "%s plan %s --machine %s", DT_BINARY, bad[i].args, mf);
    if (rc != 2 || !strstr(out, bad[i].msg))
      fail_msg("plan %s: exit %d, expected 2 and '%s':\n%s", bad[i].args, rc, bad[i].msg, out);
    free(out);
  }
}

/* Plan the 2-node run of docs/testing.md ("The plan across nodes") with the
 * machine file path: its tensor-group sums' and reductions' seconds. */
static void comm_time(const char *path, double *t_tp, double *t_red) {
  dt_machine mc;
  int found = 0;
  assert_int_equal(dt_machine_load(&mc, path, &found), DT_OK);
  assert_int_equal(found, 1);
  dt_options *o = calloc(1, sizeof *o);
  parse_opts(o, NULL, 0);
  dt_plan_in in = {"synthetic:gpt2:layers=4,d=512,heads=8,vocab=4096,ctx=128", "lora", o, 2, 1, 2,
                   4, 64, 0, 1, 0, -1, 0, 1, 0, 0, NULL, 0};
  dt_plan_out out;
  assert_int_equal(dt_plan_compute(&in, &mc, &out), DT_OK);
  assert_int_equal(out.tp_sums_shm, 0); /* the group spans the nodes */
  *t_tp = out.t_tp;
  *t_red = out.t_reduce;
  free(o);
}

static void test_machine_curves(void **state) {
  (void)state;
  /* an old file: the constants' straight line */
  const char *old = dt_test_tmp("old.json");
  dt_test_write(old, "{\"allreduce_latency_s\": 2e-5, \"allreduce_bytes_per_s\": 1e9}\n");
  dt_machine mc;
  int found = 0;
  assert_int_equal(dt_machine_load(&mc, old, &found), DT_OK);
  assert_int_equal(mc.allreduce_curve.n, 0);
  assert_true(fabs(dt_machine_allreduce_time(&mc, 131072) - (2e-5 + 4.0 * 131072 / 1e9)) < 1e-15);
  /* the same line given as a curve through three of its points: the same
   * plan; every time doubled: twice the communication */
  const char *line = dt_test_tmp("line.json");
  dt_test_write(line, "{\"allreduce_latency_s\": 2e-5, \"allreduce_bytes_per_s\": 1e9, "
                      "\"allreduce_curve\": [[1, 2.0004e-5], [1024, 2.4096e-5], "
                      "[1048576, 0.004214304]]}\n");
  const char *twice = dt_test_tmp("twice.json");
  dt_test_write(twice, "{\"allreduce_curve\": [[1, 4.0008e-5], [1024, 4.8192e-5], "
                       "[1048576, 0.008428608]]}\n");
  double a_tp, a_red, b_tp, b_red, c_tp, c_red;
  comm_time(old, &a_tp, &a_red);
  comm_time(line, &b_tp, &b_red);
  comm_time(twice, &c_tp, &c_red);
  if (!(fabs(b_tp / a_tp - 1) < 1e-9 && fabs(c_tp / a_tp - 2) < 1e-9 && a_tp > 0))
    fail_msg("tensor-group sums: constants %.9g s, the same line as a curve %.9g s, doubled %.9g s",
             a_tp, b_tp, c_tp);
  if (!(fabs(c_red / b_red - 2) < 1e-6 && b_red > 0))
    fail_msg("reductions: curve %.9g s, doubled %.9g s", b_red, c_red);
  /* between the points, below the first, past the last (the last band) */
  const char *bent = dt_test_tmp("bent.json");
  dt_test_write(bent, "{\"allreduce_curve\": [[1, 1e-5], [1000, 1e-4], [3000, 5e-4]]}\n");
  assert_int_equal(dt_machine_load(&mc, bent, &found), DT_OK);
  assert_int_equal(mc.allreduce_curve.n, 3);
  const double want[][2] = {{0, 1e-5}, {1, 1e-5}, {500.5, 5.5e-5}, {1000, 1e-4},
                            {2000, 3e-4}, {3000, 5e-4}, {5000, 9e-4}};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    const double t = dt_machine_allreduce_time(&mc, want[i][0]);
    if (!(fabs(t - want[i][1]) < 1e-12))
      fail_msg("curve at %g floats: %.9g s, expected %.9g s", want[i][0], t, want[i][1]);
  }
  /* no shared-memory curve in that file: its constants */
  assert_true(fabs(dt_machine_shm_sum_time(&mc, 4096) -
                   (mc.shm_sum_latency_s + 4.0 * 4096 / mc.shm_sum_bytes_per_s)) < 1e-15);
  /* save and load again: the same curve */
  const char *again = dt_test_tmp("again.json");
  assert_int_equal(dt_machine_save(&mc, again), DT_OK);
  dt_machine m2;
  assert_int_equal(dt_machine_load(&m2, again, &found), DT_OK);
  assert_int_equal(m2.allreduce_curve.n, 3);
  assert_int_equal(m2.shm_sum_curve.n, 0);
  for (int i = 0; i < 3; i++)
    assert_true(m2.allreduce_curve.floats[i] == mc.allreduce_curve.floats[i] &&
                m2.allreduce_curve.seconds[i] == mc.allreduce_curve.seconds[i]);
  /* malformed curves: errors naming the file, the field and the entry */
  static const struct {
    const char *json, *msg;
  } bad[] = {
      {"{\"allreduce_curve\": [[1, 1e-5]]}", "field allreduce_curve must be an array of 2 to"},
      {"{\"allreduce_curve\": 3}", "field allreduce_curve must be an array"},
      {"{\"shm_sum_curve\": [[1024, 1e-5], [1024, 2e-5]]}",
       "field shm_sum_curve, entry 1: floats 1024"},
      {"{\"allreduce_curve\": [[1, 1e-5], [8, -1]]}", "field allreduce_curve, entry 1: seconds -1"},
      {"{\"allreduce_curve\": [[1, 1e-5], [8]]}",
       "field allreduce_curve, entry 1: expected [floats, seconds]"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *f = dt_test_tmp("bad.json");
    dt_test_write(f, bad[i].json);
    assert_int_equal(dt_machine_load(&mc, f, &found), DT_EINPUT);
    dt_test_error_has(f);
    dt_test_error_has(bad[i].msg);
    dt_error_clear();
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_describe_matches_load),
      cmocka_unit_test(test_lora_paper_counts),
      cmocka_unit_test(test_min_nodes),
      cmocka_unit_test(test_min_nodes_70b),
      cmocka_unit_test(test_cli),
      cmocka_unit_test(test_machine_curves),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
