/* deltatune generate: text (or token ids) out of the backbone with its
 * tuned deltas, through the key/value cache (src/decode.h).
 *
 * Collective over MPI_COMM_WORLD, ranks laid out as in training (dp x tp):
 * every rank reads and tokenizes the prompts (the errors are everyone's);
 * each data-parallel replica generates a contiguous block of them, its
 * tensor group running each step together (the token is chosen on tensor
 * rank 0 from the complete logits and broadcast); rank 0 gathers the new
 * ids and writes OUT.jsonl in input order, atomically (a temporary file
 * renamed). A single --prompt is streamed to stdout as it is generated. */
#include <errno.h>
#include <jansson.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agree.h"
#include "ckpt_run.h"
#include "commands.h"
#include "decode.h"
#include "error.h"
#include "gemm_bf16.h"
#include "jsonl.h"
#include "method.h"
#include "model.h"
#include "mpicheck.h"
#include "optgroups.h"
#include "options.h"
#include "params.h"
#include "safetensors.h"
#include "sampler.h"
#include "timer.h"
#include "tokenizer.h"

static const dt_optdef gen_opts[] = {
    {"prompt", DT_OPT_STRING, NULL, 0, 0, NULL,
     "one prompt (text; needs a tokenizer): its completion is streamed to stdout"},
    {"input", DT_OPT_STRING, NULL, 0, 0, NULL,
     "JSON lines of prompts: rows {\"prompt\": text} or {\"prompt_ids\": [ids]} (a model "
     "without a tokenizer)"},
    {"output", DT_OPT_STRING, NULL, 0, 0, NULL,
     "JSON lines to write (.jsonl): {\"prompt\", \"completion\", \"ids\": [new ids]} per row in "
     "input order (required with --input)"},
    {"overwrite", DT_OPT_BOOL, "no", 0, 0, NULL, "replace an existing --output"},
    {"tokenizer", DT_OPT_STRING, NULL, 0, 0, NULL,
     "a tokenizer.json or a folder holding one (default: the --model folder's, when it has one)"},
    {"max-new-tokens", DT_OPT_INT, "32", 1, 1 << 20, NULL, "new tokens per prompt at most"},
    {"batch-size", DT_OPT_INT, "8", 1, 4096, NULL,
     "prompts generated together by each data-parallel replica"},
    {"temperature", DT_OPT_FLOAT, "0", 0, 100, NULL,
     "0: greedy (the most likely token); > 0: sample from softmax(logits / temperature)"},
    {"top-k", DT_OPT_INT, "0", 0, 1 << 30, NULL, "sampling: only the k most likely tokens (0 = all)"},
    {"top-p", DT_OPT_FLOAT, "1", 1e-9, 1, NULL,
     "sampling: only the most likely tokens whose probabilities sum to p (1 = all)"},
    {"sample-seed", DT_OPT_INT, "0", 0, 2147483647, NULL,
     "sampling: seed of the random stream, keyed by input row and step (the same tokens at any "
     "rank count and --batch-size; --seed is the method's and a checkpoint's)"},
    {"eos", DT_OPT_STRING, NULL, 0, 0, NULL,
     "stop at these token ids (comma-separated; 'none': never) instead of the model's "
     "(generation_config.json eos_token_id, else config.json's, else the tokenizer's eos_token)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

#define MAX_GROUPS 32
#define MAX_EOS 16

typedef struct {
  int32_t *ids; /* prompt ids */
  int n;
  char *text; /* prompt text, NULL for prompt_ids */
  long line;
} prompt_row;

typedef struct {
  int rank, nranks;
  dt_options opt;
  dt_dist dist;
  dt_config cfg;
  dt_backbone_id bb;
  int have_bb;
  dt_model model;
  dt_params params;
  dt_method **methods;
  int n_methods;
  dt_tokenizer *tok;
  int32_t eos[MAX_EOS];
  int n_eos;
  prompt_row *rows;
  long n_rows;
  int max_prompt;
  int32_t **gen; /* [n_rows] new ids (this replica's rows; rank 0: all after the gather) */
  int *n_gen;
} gen_ctx;

static int build_groups(dt_optgroup *g) {
  int n = 0;
  g[n++] = dt_backbone_group;
  g[n++] = dt_method_group;
  g[n++] = (dt_optgroup){"generate", "Generation", gen_opts};
  g[n++] = dt_ckpt_eval_group;
  for (int i = 0; i < dt_method_count() && n < MAX_GROUPS; i++)
    if (dt_method_at(i)->options) g[n++] = *dt_method_at(i)->options;
  return n;
}

static void ctx_free(gen_ctx *c) {
  for (long i = 0; i < c->n_rows; i++) {
    free(c->rows[i].ids);
    free(c->rows[i].text);
    if (c->gen) free(c->gen[i]);
  }
  free(c->rows);
  free(c->gen);
  free(c->n_gen);
  dt_tokenizer_free(&c->tok);
  dt_methods_destroy(c->methods, c->n_methods);
  dt_params_free(&c->params);
  dt_model_free(&c->model);
  if (c->dist.world) dt_dist_free(&c->dist);
}

/* --- inputs --------------------------------------------------------------- */

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The tokenizer: --tokenizer, or the model folder's tokenizer.json when it has one. */
static int load_tokenizer(gen_ctx *c) {
  const dt_options *o = &c->opt;
  if (dt_opt_is_set(o, "tokenizer")) return dt_tokenizer_load(&c->tok, dt_opt_str(o, "tokenizer"));
  const char *model = dt_opt_str(o, "model");
  char p[4200];
  snprintf(p, sizeof p, "%s/tokenizer.json", model);
  if (is_dir(model) && access(p, R_OK) == 0) return dt_tokenizer_load(&c->tok, model);
  return DT_OK;
}

/* eos_token_id of a JSON file: an int or a list of ints (1: found). */
static int eos_from_json(gen_ctx *c, const char *path, int *found) {
  *found = 0;
  if (access(path, R_OK) != 0) return DT_OK;
  json_error_t err;
  json_t *j = json_load_file(path, 0, &err);
  DT_CHECK(j, DT_EINPUT, "%s line %d: %s", path, err.line, err.text);
  json_t *e = json_object_get(j, "eos_token_id");
  int rc = DT_OK;
  if (e && json_is_integer(e)) {
    c->eos[c->n_eos++] = (int32_t)json_integer_value(e);
    *found = 1;
  } else if (e && json_is_array(e)) {
    size_t i;
    json_t *v;
    json_array_foreach(e, i, v) {
      if (!json_is_integer(v) || c->n_eos >= MAX_EOS) {
        rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                          "%s: eos_token_id[%zu] is not an integer (or more than %d ids)", path, i,
                          MAX_EOS);
        break;
      }
      c->eos[c->n_eos++] = (int32_t)json_integer_value(v);
    }
    *found = rc == DT_OK;
  } else if (e && !json_is_null(e)) {
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                      "%s: eos_token_id is neither an integer nor a list of integers", path);
  }
  json_decref(j);
  return rc;
}

/* The ids that end a completion: --eos, generation_config.json, config.json,
 * the tokenizer's eos_token; none for a synthetic model without --eos. */
static int find_eos(gen_ctx *c) {
  const dt_options *o = &c->opt;
  c->n_eos = 0;
  if (dt_opt_is_set(o, "eos")) {
    const char *s = dt_opt_str(o, "eos");
    if (!strcmp(s, "none")) return DT_OK;
    char buf[DT_OPTVAL_MAX];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
      char *end;
      const long v = strtol(p, &end, 10);
      DT_CHECK(end != p && *end == 0 && v >= 0 && v < c->cfg.vocab && c->n_eos < MAX_EOS,
               DT_EUSAGE, "--eos '%s': '%s' is not a token id of the model (0..%d)", s, p,
               c->cfg.vocab - 1);
      c->eos[c->n_eos++] = (int32_t)v;
    }
    return DT_OK;
  }
  const char *model = dt_opt_str(o, "model");
  if (!is_dir(model)) return DT_OK;
  char p[4200];
  int found;
  snprintf(p, sizeof p, "%s/generation_config.json", model);
  DT_CALL(eos_from_json(c, p, &found));
  if (found) return DT_OK;
  snprintf(p, sizeof p, "%s/config.json", model);
  DT_CALL(eos_from_json(c, p, &found));
  if (found || !c->tok) return DT_OK;
  snprintf(p, sizeof p, "%s/tokenizer_config.json", model);
  json_error_t err;
  json_t *j = access(p, R_OK) == 0 ? json_load_file(p, JSON_DECODE_INT_AS_REAL, &err) : NULL;
  json_t *e = j ? json_object_get(j, "eos_token") : NULL;
  if (e && json_is_object(e)) e = json_object_get(e, "content");
  const int32_t id = e && json_is_string(e) ? dt_tokenizer_token_id(c->tok, json_string_value(e)) : -1;
  if (id >= 0) c->eos[c->n_eos++] = id;
  json_decref(j);
  return DT_OK;
}

static int add_row(gen_ctx *c, prompt_row *r, long *cap) {
  if (c->n_rows == *cap) {
    *cap = *cap ? 2 * *cap : 64;
    prompt_row *n = realloc(c->rows, sizeof *n * (size_t)*cap);
    DT_CHECK(n, DT_ENOMEM, "out of memory for %ld prompts", *cap);
    c->rows = n;
  }
  c->rows[c->n_rows++] = *r;
  if (r->n > c->max_prompt) c->max_prompt = r->n;
  return DT_OK;
}

static int encode_text(gen_ctx *c, const char *s, size_t n, prompt_row *r, const char *where) {
  DT_CHECK(c->tok, DT_EUSAGE,
           "%s: a text prompt needs a tokenizer: give --tokenizer (the --model folder %s has no "
           "tokenizer.json), or rows {\"prompt_ids\": [...]}", where, dt_opt_str(&c->opt, "model"));
  size_t nids = 0, cap = 0;
  int rc = dt_tokenizer_encode(c->tok, s, n, 1, &r->ids, &nids, &cap);
  if (rc != DT_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", dt_error_message());
    return dt_error_set(rc, __FILE__, __LINE__, __func__, "%s: %s", where, msg);
  }
  r->n = (int)nids;
  DT_CHECK((r->text = strndup(s, n)), DT_ENOMEM, "out of memory");
  return DT_OK;
}

/* One row of --input: {"prompt": text} or {"prompt_ids": [ids]}. */
static int read_row(gen_ctx *c, dt_jsonl *jr, json_t *row, prompt_row *r) {
  char where[4200];
  snprintf(where, sizeof where, "%s line %ld", jr->path, jr->lineno);
  json_t *pt = json_object_get(row, "prompt"), *pi = json_object_get(row, "prompt_ids");
  DT_CHECK(!(pt && pi), DT_EINPUT, "%s: give \"prompt\" or \"prompt_ids\", not both", where);
  DT_CHECK(pt || pi, DT_EINPUT, "%s: the row has neither \"prompt\" (text) nor \"prompt_ids\" "
           "(token ids)", where);
  if (pi) {
    size_t n = 0, cap = 0;
    DT_CALL(dt_jsonl_ids(jr, row, "prompt_ids", c->cfg.vocab, &r->ids, &n, &cap));
    r->n = (int)n;
  } else {
    const char *s;
    size_t n;
    DT_CALL(dt_jsonl_string(jr, row, "prompt", &s, &n));
    DT_CALL(encode_text(c, s, n, r, where));
  }
  DT_CHECK(r->n > 0, DT_EINPUT, "%s: field \"%s\": the prompt has no token", where,
           pi ? "prompt_ids" : "prompt");
  return DT_OK;
}

static int read_prompts(gen_ctx *c) {
  const dt_options *o = &c->opt;
  long cap = 0;
  if (dt_opt_is_set(o, "prompt")) {
    const char *s = dt_opt_str(o, "prompt");
    prompt_row r = {0};
    int rc = encode_text(c, s, strlen(s), &r, "--prompt");
    if (rc == DT_OK && r.n == 0)
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__, "--prompt '%s' has no token", s);
    if (rc == DT_OK) rc = add_row(c, &r, &cap);
    if (rc) {
      free(r.ids);
      free(r.text);
    }
    return rc;
  }
  dt_jsonl jr;
  DT_CALL(dt_jsonl_open(&jr, dt_opt_str(o, "input")));
  int rc = DT_OK;
  for (;;) {
    json_t *row = NULL;
    int more;
    rc = dt_jsonl_next(&jr, 1, &row, &more);
    if (rc != DT_OK || !more) break;
    prompt_row r = {0};
    r.line = jr.lineno;
    rc = read_row(c, &jr, row, &r);
    json_decref(row);
    if (rc == DT_OK) rc = add_row(c, &r, &cap);
    if (rc) {
      free(r.ids);
      free(r.text);
      break;
    }
  }
  dt_jsonl_close(&jr);
  DT_CALL(rc);
  DT_CHECK(c->n_rows > 0, DT_EINPUT, "--input %s has no row", dt_opt_str(o, "input"));
  return DT_OK;
}

static int check_output(const dt_options *o) {
  if (!dt_opt_is_set(o, "output")) return DT_OK;
  const char *p = dt_opt_str(o, "output");
  const size_t n = strlen(p);
  DT_CHECK(n > 6 && !strcmp(p + n - 6, ".jsonl"), DT_EUSAGE, "--output '%s' must end in .jsonl", p);
  DT_CHECK(dt_opt_bool(o, "overwrite") || access(p, F_OK) != 0, DT_EUSAGE,
           "--output %s exists; give --overwrite yes to replace it", p);
  return DT_OK;
}

/* Everything that can be checked before the backbone is built; nothing
 * collective (the caller agrees). */
static int check_inputs(gen_ctx *c) {
  const dt_options *o = &c->opt;
  const char *spec = dt_opt_str(o, "model");
  memset(&c->cfg, 0, sizeof c->cfg);
  if (strncmp(spec, "synthetic:", 10) == 0) {
    DT_CALL(dt_synthetic_config_parse(&c->cfg, spec));
  } else {
    DT_CALL(dt_hf_config_load(&c->cfg, spec));
    dt_st_set set;
    DT_CALL(dt_st_set_open(&set, spec));
    dt_st_set_close(&set);
  }
  DT_CALL(check_output(o));
  DT_CALL(load_tokenizer(c));
  DT_CALL(find_eos(c));
  DT_CALL(read_prompts(c));
  DT_CALL(dt_init_from_check(o));
  int wd;
  DT_CALL(dt_backbone_options_check(o, &wd));
  (void)wd;
  DT_CALL(dt_methods_check_config(o, dt_opt_str(o, "method"), &c->cfg));
  return DT_OK;
}

/* Learned positions: the prompt, the new tokens but the last (never fed
 * back) and the methods' virtual tokens and prefix must fit n_positions, as
 * transformers' generate() needs (the row named). */
static int check_positions(gen_ctx *c) {
  int extra = 0;
  for (int k = 0; k < c->n_methods; k++) {
    const dt_method *me = c->methods[k];
    if (me->ops->virtual_tokens) extra += me->ops->virtual_tokens(me);
    if (me->ops->prefix_tokens) extra += me->ops->prefix_tokens(me);
  }
  if (dt_cfg_arch(&c->cfg)->pos != DT_POS_LEARNED) return DT_OK;
  const int mx = dt_opt_int(&c->opt, "max-new-tokens");
  for (long i = 0; i < c->n_rows; i++) {
    const prompt_row *r = &c->rows[i];
    char where[4200];
    if (r->line) snprintf(where, sizeof where, "%s line %ld", dt_opt_str(&c->opt, "input"), r->line);
    else snprintf(where, sizeof where, "--prompt");
    DT_CHECK(r->n + mx - 1 + extra <= c->cfg.n_ctx, DT_EUSAGE,
             "%s: a prompt of %d tokens + --max-new-tokens %d - 1 + %d virtual/prefix tokens "
             "exceeds the model's n_positions = %d", where, r->n, mx, extra, c->cfg.n_ctx);
  }
  return DT_OK;
}

static int setup(gen_ctx *c) {
  const dt_options *o = &c->opt;
  const uint64_t seed = (uint64_t)dt_opt_int(o, "seed");
  DT_CALL(dt_dist_init(&c->dist, dt_opt_int(o, "tp")));
  DT_CALL(dt_agree(check_inputs(c), MPI_COMM_WORLD));
  DT_CALL(dt_ckpt_precheck(o, &c->cfg, 0, &c->bb, &c->have_bb, MPI_COMM_WORLD));
  int wd;
  DT_CALL(dt_backbone_options_check(o, &wd));
  DT_CALL(dt_split_heads(dt_opt_str(o, "tp-heads"), dt_opt_str(o, "method"), 0,
                         &c->dist.split_heads));
  int rc = dt_model_load(&c->model, dt_opt_str(o, "model"), wd, seed, &c->dist,
                         dt_share_weights(dt_opt_str(o, "share-weights"), dt_opt_str(o, "method")));
  if (rc == DT_OK)
    rc = dt_methods_create(dt_opt_str(o, "method"), o, &c->model, &c->params, seed, &c->methods,
                           &c->n_methods);
  if (rc == DT_OK && dt_opt_is_set(o, "init-from"))
    rc = dt_params_load(&c->params, dt_opt_str(o, "init-from"));
  if (rc == DT_OK) rc = dt_model_set_methods(&c->model, c->methods, c->n_methods);
  if (rc == DT_OK) rc = check_positions(c);
  DT_CALL(dt_agree(rc, MPI_COMM_WORLD));
  DT_CALL(dt_ckpt_eval_load(o, &c->model.bb->cfg, &c->params, c->have_bb ? &c->bb : NULL,
                            c->dist.world));
  c->model.matmul_bf16 = strcmp(dt_opt_str(o, "matmul-dtype"), "bf16") == 0;
  if (c->model.matmul_bf16) {
    const char *impl;
    DT_CALL(dt_agree(dt_gemm_bf16_probe(&impl), MPI_COMM_WORLD));
  }
  DT_CALL(dt_calloc(&c->gen, sizeof(int32_t *) * (size_t)c->n_rows, "generated ids"));
  DT_CALL(dt_calloc(&c->n_gen, sizeof(int) * (size_t)c->n_rows, "generated lengths"));
  return DT_OK;
}

/* --- generation ------------------------------------------------------------ */

static int is_eos(const gen_ctx *c, int32_t id) {
  for (int i = 0; i < c->n_eos; i++)
    if (c->eos[i] == id) return 1;
  return 0;
}

/* Stream the completion of a single --prompt: print what the ids decode to
 * beyond what was printed, holding back a trailing U+FFFD (a character
 * whose bytes are split over tokens: the next token completes it). */
typedef struct {
  char *text;
  size_t n, cap, printed;
} streamer;

static int stream_more(gen_ctx *c, streamer *s, const int32_t *ids, int n, int final) {
  DT_CALL(dt_tokenizer_decode(c->tok, ids, (size_t)n, 1, &s->text, &s->n, &s->cap));
  size_t upto = s->n;
  while (!final && upto >= 3 && !memcmp(s->text + upto - 3, "\xEF\xBF\xBD", 3)) upto -= 3;
  if (upto > s->printed) {
    fwrite(s->text + s->printed, 1, upto - s->printed, stdout);
    fflush(stdout);
    s->printed = upto;
  }
  return DT_OK;
}

/* One batch of prompts rows[r0, r0 + nb) through the decoder. */
static int run_batch(gen_ctx *c, dt_decoder *dc, long r0, int nb, float *logits, int *idx,
                     double *pw, int32_t *pids, streamer *st) {
  const dt_options *o = &c->opt;
  const int max_new = dt_opt_int(o, "max-new-tokens"), V = c->cfg.vocab;
  const dt_sampling sp = {dt_opt_float(o, "temperature"), dt_opt_int(o, "top-k"),
                          dt_opt_float(o, "top-p"), (uint64_t)dt_opt_int(o, "sample-seed")};
  int slots[4096], active[4096];
  int32_t next[4096];
  const int root = c->dist.tp_rank == 0;
  for (int b = 0; b < nb; b++) {
    dt_decoder_reset(dc, b);
    DT_CALL(dt_malloc(&c->gen[r0 + b], sizeof(int32_t) * (size_t)max_new, "generated ids"));
    c->n_gen[r0 + b] = 0;
  }
  int n_active = 0;
  for (int step = 0; step < max_new; step++) {
    /* step 0: the prefill, one pass per prompt length (active[] in pass
     * order, the logits of active[i] at row i); then one token per live row */
    if (step == 0) {
      for (int b = 0; b < nb; b++) {
        const int n = c->rows[r0 + b].n;
        int seen = 0;
        for (int q = 0; q < b && !seen; q++) seen = c->rows[r0 + q].n == n;
        if (seen) continue; /* in the passes of an earlier prompt of this length */
        /* as many prompts of this length per pass as the decoder's rows hold */
        const int per = dc->max_rows / (n + dc->n_virtual) > 0 ? dc->max_rows / (n + dc->n_virtual) : 1;
        for (int q = b; q < nb;) {
          int k = 0;
          for (; q < nb && k < per; q++)
            if (c->rows[r0 + q].n == n) {
              memcpy(pids + (size_t)k * n, c->rows[r0 + q].ids, sizeof(int32_t) * (size_t)n);
              slots[k++] = q;
            }
          if (k == 0) break;
          DT_CALL(dt_decoder_step(dc, k, slots, n, pids, logits + (size_t)n_active * V));
          for (int i = 0; i < k; i++) active[n_active++] = slots[i];
        }
      }
    } else {
      for (int i = 0; i < n_active; i++) {
        slots[i] = active[i];
        next[i] = c->gen[r0 + active[i]][c->n_gen[r0 + active[i]] - 1];
      }
      DT_CALL(dt_decoder_step(dc, n_active, slots, 1, next, logits));
    }
    /* the choice, on tensor rank 0 from the whole logits, for the group */
    for (int i = 0; i < n_active; i++) {
      const float *z = logits + (size_t)i * V;
      next[i] = root ? dt_sample_token(&sp, z, V, r0 + active[i], step, idx, pw) : 0;
    }
    if (c->dist.tp_size > 1)
      DT_MPI(MPI_Bcast(next, n_active, MPI_INT32_T, 0, c->dist.tp), "MPI_Bcast of the chosen tokens");
    int k = 0;
    for (int i = 0; i < n_active; i++) {
      const long r = r0 + active[i];
      c->gen[r][c->n_gen[r]++] = next[i];
      if (st) DT_CALL(stream_more(c, st, c->gen[r], c->n_gen[r], 0));
      if (!is_eos(c, next[i])) active[k++] = active[i];
    }
    n_active = k;
    if (!n_active) break;
  }
  return DT_OK;
}

/* This replica's block of prompts, in batches. Collective over the tensor group. */
static int generate_block(gen_ctx *c, double *t_gen, int64_t *n_tok) {
  const dt_options *o = &c->opt;
  const int dp = c->dist.dp_size, dr = c->dist.dp_rank;
  const long first = c->n_rows * dr / dp, last = c->n_rows * (dr + 1) / dp;
  int B = dt_opt_int(o, "batch-size");
  if (B > last - first) B = (int)(last - first);
  if (B < 1) B = 1;
  const int V = c->cfg.vocab;
  dt_decoder dc;
  /* the last new token is never fed back */
  DT_CALL(dt_decoder_init(&dc, &c->model, B, c->max_prompt + dt_opt_int(o, "max-new-tokens") - 1));
  float *logits = NULL;
  int *idx = NULL;
  double *pw = NULL;
  int rc = dt_malloc(&logits, sizeof(float) * (size_t)B * V, "logits");
  if (rc == DT_OK) rc = dt_malloc(&idx, sizeof(int) * (size_t)V, "sampling scratch");
  if (rc == DT_OK) rc = dt_malloc(&pw, sizeof(double) * (size_t)V, "sampling scratch");
  int32_t *pids = NULL; /* [B, longest prompt] the prompts of one prefill pass */
  if (rc == DT_OK) rc = dt_malloc(&pids, sizeof(int32_t) * (size_t)B * c->max_prompt, "prompt ids");
  streamer st = {0};
  const int stream = dt_opt_is_set(o, "prompt") && c->rank == 0 && c->tok;
  const double t0 = dt_now();
  for (long r0 = first; rc == DT_OK && r0 < last; r0 += B) {
    const int nb = last - r0 < B ? (int)(last - r0) : B;
    rc = run_batch(c, &dc, r0, nb, logits, idx, pw, pids, stream ? &st : NULL);
  }
  *t_gen = dt_now() - t0;
  *n_tok = 0;
  for (long r = first; r < last; r++) *n_tok += c->n_gen[r];
  if (rc == DT_OK && stream) {
    rc = stream_more(c, &st, c->gen[0], c->n_gen[0], 1);
    fputc('\n', stdout);
    fflush(stdout);
  }
  free(st.text);
  free(logits);
  free(idx);
  free(pw);
  free(pids);
  dt_decoder_free(&dc);
  return rc;
}

/* Rank 0 receives every replica's generated ids (from its tensor rank 0). */
static int gather(gen_ctx *c) {
  if (c->dist.dp_size == 1 || c->dist.tp_rank != 0) return DT_OK;
  const int dp = c->dist.dp_size;
  const int max_new = dt_opt_int(&c->opt, "max-new-tokens");
  for (int q = 1; q < dp; q++) {
    const long first = c->n_rows * q / dp, last = c->n_rows * (q + 1) / dp;
    for (long r = first; r < last; r++) {
      if (c->dist.dp_rank == q) {
        DT_MPI(MPI_Send(c->gen[r], c->n_gen[r], MPI_INT32_T, 0, 23, c->dist.dp),
               "MPI_Send of generated ids");
      } else if (c->dist.dp_rank == 0) {
        MPI_Status s;
        DT_CALL(dt_malloc(&c->gen[r], sizeof(int32_t) * (size_t)max_new, "generated ids"));
        DT_MPI(MPI_Recv(c->gen[r], max_new, MPI_INT32_T, q, 23, c->dist.dp, &s),
               "MPI_Recv of generated ids");
        MPI_Get_count(&s, MPI_INT32_T, &c->n_gen[r]);
      }
    }
  }
  return DT_OK;
}

static int write_output(gen_ctx *c) {
  const char *path = dt_opt_str(&c->opt, "output");
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  DT_CHECK(f, DT_EIO, "cannot create %s: %s", tmp, strerror(errno));
  char *text = NULL;
  size_t tn = 0, tcap = 0;
  int rc = DT_OK;
  for (long i = 0; i < c->n_rows && rc == DT_OK; i++) {
    const prompt_row *r = &c->rows[i];
    json_t *o = json_object(), *ids = json_array();
    if (!o || !ids) rc = dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "out of memory");
    for (int k = 0; rc == DT_OK && k < c->n_gen[i]; k++)
      json_array_append_new(ids, json_integer(c->gen[i][k]));
    json_t *comp = json_null();
    if (rc == DT_OK && c->tok) {
      rc = dt_tokenizer_decode(c->tok, c->gen[i], (size_t)c->n_gen[i], 1, &text, &tn, &tcap);
      if (rc == DT_OK) comp = json_stringn(text, tn);
    }
    if (rc == DT_OK) {
      json_object_set_new(o, "prompt", r->text ? json_string(r->text) : json_null());
      if (!r->text) {
        json_t *pi = json_array();
        for (int k = 0; k < r->n; k++) json_array_append_new(pi, json_integer(r->ids[k]));
        json_object_set_new(o, "prompt_ids", pi);
      }
      json_object_set_new(o, "completion", comp);
      json_object_set_new(o, "ids", ids);
      ids = NULL;
      if (json_dumpf(o, f, JSON_COMPACT | JSON_ENSURE_ASCII) != 0 || fputc('\n', f) == EOF)
        rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot write %s", tmp);
    } else {
      json_decref(comp);
    }
    json_decref(ids);
    json_decref(o);
  }
  free(text);
  if (fclose(f) != 0 && rc == DT_OK)
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot write %s: %s", tmp, strerror(errno));
  if (rc == DT_OK && rename(tmp, path) != 0)
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot rename %s to %s: %s", tmp, path,
                      strerror(errno));
  if (rc) unlink(tmp);
  return rc;
}

static int parse(gen_ctx *c, int argc, char **argv, int *help) {
  dt_optgroup g[MAX_GROUPS];
  const int ng = build_groups(g);
  DT_CALL(dt_options_parse(&c->opt, "generate", g, ng, argc, argv));
  *help = c->opt.help;
  if (*help) {
    if (c->rank == 0)
      dt_options_print_help(
          stdout, "generate",
          "Generate text with the backbone and its deltas (--init-from or --checkpoint): greedy, "
          "or sampled with --temperature, --top-k, --top-p; a key/value cache; the same "
          "tensor parallelism as training (--tp under mpirun).",
          g, ng);
    return DT_OK;
  }
  const dt_options *o = &c->opt;
  DT_CHECK(dt_opt_is_set(o, "model"), DT_EUSAGE,
           "--model is required (a HF folder or synthetic:...; see deltatune generate --help)");
  DT_CHECK(dt_opt_is_set(o, "prompt") != dt_opt_is_set(o, "input"), DT_EUSAGE,
           "give one of --prompt TEXT or --input FILE.jsonl (see deltatune generate --help)");
  DT_CHECK(dt_opt_is_set(o, "output") || dt_opt_is_set(o, "prompt"), DT_EUSAGE,
           "--input needs --output OUT.jsonl");
  DT_CALL(dt_methods_check_options(o, dt_opt_str(o, "method")));
  return DT_OK;
}

int dt_cmd_generate(int argc, char **argv) {
  gen_ctx *c = calloc(1, sizeof *c);
  DT_CHECK(c, DT_ENOMEM, "generate context");
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c->nranks);
  int help = 0, ac = argc;
  char **av = argv;
  /* --checkpoint: the file's method and options where none are given */
  int rc = dt_ckpt_eval_argv(argc, argv, &ac, &av, MPI_COMM_WORLD);
  if (rc == DT_OK) rc = parse(c, ac, av, &help);
  dt_ckpt_eval_argv_free(argc, argv, ac, av);
  double t = 0;
  int64_t n_tok = 0;
  if (rc == DT_OK && !help) rc = setup(c);
  if (rc == DT_OK && !help) rc = dt_agree(generate_block(c, &t, &n_tok), MPI_COMM_WORLD);
  if (rc == DT_OK && !help) rc = dt_agree(gather(c), MPI_COMM_WORLD);
  if (rc == DT_OK && !help && dt_opt_is_set(&c->opt, "output"))
    rc = dt_agree(c->rank == 0 ? write_output(c) : DT_OK, MPI_COMM_WORLD);
  if (rc == DT_OK && !help) {
    double tt = t;
    long long nt = n_tok; /* tokens of every replica (tensor rank 0 of each) */
    if (c->dist.tp_rank != 0) nt = 0;
    MPI_Allreduce(MPI_IN_PLACE, &nt, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &tt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (c->rank == 0)
      fprintf(stderr, "generate: %ld prompts, %lld new tokens in %.3fs (%.1f tokens/s; %d rank%s, "
              "tp %d)%s%s\n", c->n_rows, nt, tt, tt > 0 ? nt / tt : 0.0, c->nranks,
              c->nranks > 1 ? "s" : "", c->dist.tp_size,
              dt_opt_is_set(&c->opt, "output") ? " -> " : "",
              dt_opt_is_set(&c->opt, "output") ? dt_opt_str(&c->opt, "output") : "");
  }
  ctx_free(c);
  free(c);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}
