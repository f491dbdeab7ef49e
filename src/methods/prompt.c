/* Prompt tuning (Lester et al. 2021, as PEFT): P trained embedding rows
 * prepended to every sequence (prompt_encoder.embedding.weight [P, d]).
 * The engine places them at positions 0..P-1 (GPT-2 adds the position
 * embeddings to them too) and scores no label there.
 * Init: random = N(0,1) (nn.Embedding, PEFT's RANDOM); vocab = rows of the
 * token embedding drawn uniformly from the vocabulary (PEFT's SAMPLE_VOCAB);
 * ids:a,b,c = rows of those tokens, repeated to fill P. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "method.h"
#include "peft.h"
#include "rng.h"
#include "safetensors.h"

static const dt_optdef prompt_opts[] = {
    {"prompt-tokens", DT_OPT_INT, "10", 1, 65536, NULL,
     "virtual tokens P prepended to every sequence"},
    {"prompt-init", DT_OPT_STRING, "random", 0, 0, NULL,
     "random (N(0,1)) | vocab (embeddings of random vocabulary tokens) | "
     "ids:I,J,... (embeddings of these token ids, repeated to fill P)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const dt_optgroup prompt_group = {"prompt", "Prompt tuning (--method prompt)",
                                         prompt_opts};

typedef struct {
  int P, d;
  float *e, *de; /* parameter [P, d] and its grad */
  float *dacc;   /* [P, d] gradient the engine accumulates in one backward */
} prompt_state;

/* The embedding row of token id. The vocabulary is split across a tensor
 * group: the owner copies its row, the others write zeros, and the caller
 * sums the rows over the group (dt_tp_sum). */
static void copy_token_row(const dt_model *m, int id, float *dst) {
  const int d = m->bb->cfg.d_model, local = id - m->bb->sh.vocab0;
  if (local < 0 || local >= m->bb->sh.vocab_l || m->bb->describe_only) /* describe: no weights */
    memset(dst, 0, sizeof(float) * d);
  else if (m->bb->wte.w)
    memcpy(dst, m->bb->wte.w + (size_t)local * d, sizeof(float) * d);
  else
    for (int j = 0; j < d; j++) dst[j] = dt_bf16_to_f32(m->bb->wte.w16[(size_t)local * d + j]);
}

/* Parse "ids:a,b,c" into ids (malloc'd). Errors name the value. */
static int parse_ids(const char *spec, int vocab, int **ids, int *n) {
  const char *p = spec + 4;
  *ids = NULL;
  *n = 0;
  DT_CHECK(*p, DT_EUSAGE,
           "--prompt-init '%s': no token ids after 'ids:' (e.g. ids:10,11,12)", spec);
  int cap = 1;
  for (const char *q = p; *q; q++) cap += *q == ',';
  DT_CALL(dt_malloc(ids, sizeof(int) * cap, "prompt init ids"));
  while (1) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || (*end && *end != ',')) {
      int len = (int)strcspn(p, ",");
      free(*ids);
      *ids = NULL;
      DT_ERR(DT_EUSAGE, "--prompt-init '%s': '%.*s' is not a token id", spec, len, p);
    }
    if (v < 0 || v >= vocab) {
      free(*ids);
      *ids = NULL;
      DT_ERR(DT_EUSAGE,
             "--prompt-init '%s': token id %ld is outside the vocabulary [0, %d)", spec, v,
             vocab);
    }
    (*ids)[(*n)++] = (int)v;
    if (!*end) break;
    p = end + 1;
  }
  return DT_OK;
}

static int prompt_create(dt_method *me, const dt_options *opt, dt_model *m,
                         dt_params *params, uint64_t seed) {
  const dt_config *c = &m->bb->cfg;
  prompt_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "prompt state"));
  me->state = s;
  s->P = dt_opt_int(opt, "prompt-tokens");
  s->d = c->d_model;
  const size_t n = (size_t)s->P * s->d;
  DT_CALL(dt_alloc_aligned(&s->e, sizeof(float) * n, "prompt embeddings"));
  DT_CALL(dt_alloc_aligned(&s->de, sizeof(float) * n, "prompt gradients"));
  DT_CALL(dt_alloc_aligned(&s->dacc, sizeof(float) * n, "prompt gradient scratch"));
  const char *init = dt_opt_str(opt, "prompt-init");
  const uint64_t key = dt_rng_key(seed, 0x9a0e7);
  if (strcmp(init, "random") == 0) {
    for (size_t j = 0; j < n; j++) s->e[j] = (float)dt_rng_normal(key, j);
  } else if (strcmp(init, "vocab") == 0) {
    for (int i = 0; i < s->P; i++) {
      int id = (int)(dt_rng_u64(key, (uint64_t)i) % (uint64_t)c->vocab);
      copy_token_row(m, id, s->e + (size_t)i * s->d);
    }
  } else if (strncmp(init, "ids:", 4) == 0) {
    int *ids, k;
    DT_CALL(parse_ids(init, c->vocab, &ids, &k));
    for (int i = 0; i < s->P; i++) copy_token_row(m, ids[i % k], s->e + (size_t)i * s->d);
    free(ids);
  } else {
    DT_ERR(DT_EUSAGE, "--prompt-init: unknown value '%s'; choose random, vocab or ids:I,J,...",
           init);
  }
  if (strcmp(init, "random") != 0 && m->bb->dist)
    DT_CALL(dt_tp_sum(m->bb->dist, s->e, (size_t)s->P * s->d));
  int64_t sh[2] = {s->P, s->d};
  DT_CALL(dt_params_add(params, "prompt", "prompt_encoder.embedding.weight", 2, sh, s->e,
                        s->de, 0));
  /* the embedding-layer gradient is replicated: complete on every rank */
  dt_params_last_sync(params, DT_SYNC_COMPLETE);
  return DT_OK;
}

static void prompt_destroy(dt_method *me) {
  prompt_state *s = me->state;
  if (!s) return;
  free(s->e);
  free(s->de);
  free(s->dacc);
  free(s);
}

static int prompt_virtual_tokens(const dt_method *me) {
  return ((const prompt_state *)me->state)->P;
}

static int prompt_begin_forward(dt_method *me, int train) {
  prompt_state *s = me->state;
  if (train) memset(s->dacc, 0, sizeof(float) * (size_t)s->P * s->d);
  return DT_OK;
}

static int prompt_embed(dt_method *me, const float **e, float **de) {
  prompt_state *s = me->state;
  *e = s->e;
  *de = s->dacc;
  return DT_OK;
}

static int prompt_end_backward(dt_method *me) {
  prompt_state *s = me->state;
  for (size_t j = 0; j < (size_t)s->P * s->d; j++) s->de[j] += s->dacc[j];
  return DT_OK;
}

static void prompt_describe(const dt_method *me, char *buf, size_t cap) {
  const prompt_state *s = me->state;
  snprintf(buf, cap, "prompt tuning: %d virtual tokens of width %d", s->P, s->d);
}

/* `export --format peft` (src/peft.h). */
static int prompt_export_peft(dt_peft_export *x) {
  const dt_ckpt_info *i = x->info;
  const dt_peft_tensors *p = x->in;
  dt_peft_out *l = x->out;
  const int e = dt_peft_find(p, "prompt_encoder.embedding.weight");
  DT_CHECK(e >= 0 && p->v[e]->ndim == 2 && p->v[e]->shape[1] == i->d_model, DT_EINPUT,
           "export: no prompt_encoder.embedding.weight [P, %d] in the checkpoint", i->d_model);
  DT_CALL(dt_peft_push(l, "prompt_embeddings", p->v[e], p->data[e]));
  json_t *c = dt_peft_config_common(i, "PROMPT_TUNING");
  json_object_set_new(c, "num_virtual_tokens", json_integer(p->v[e]->shape[0]));
  json_object_set_new(c, "token_dim", json_integer(i->d_model));
  json_object_set_new(c, "num_transformer_submodules", json_integer(1));
  json_object_set_new(c, "num_attention_heads", json_integer(i->heads));
  json_object_set_new(c, "num_layers", json_integer(i->layers));
  json_object_set_new(c, "prompt_tuning_init", json_string("RANDOM"));
  json_object_set_new(c, "prompt_tuning_init_text", json_null());
  json_object_set_new(c, "tokenizer_name_or_path", json_null());
  json_object_set_new(c, "modules_to_save", json_null());
  x->cfg = c;
  return DT_OK;
}

const dt_method_ops dt_method_prompt = {
    .name = "prompt",
    .summary = "trained virtual token embeddings prepended to the input (Lester et al. 2021)",
    .options = &prompt_group,
    .merge_refusal = "its virtual tokens are prepended to the input, not a weight",
    .create = prompt_create,
    .destroy = prompt_destroy,
    .virtual_tokens = prompt_virtual_tokens,
    .begin_forward = prompt_begin_forward,
    .end_backward = prompt_end_backward,
    .prompt_embed = prompt_embed,
    .describe = prompt_describe,
    .export_peft = prompt_export_peft,
};
