/* LoRA: y += (alpha/r) * dropout(x) A^T B^T on the targeted linears.
 * A [r, in] (kaiming-uniform, as PEFT), B [out, r] (zero), so the model is
 * unchanged at init. Fused q|k|v and gate|up rows are targeted by name
 * (q_proj, v_proj, ...); GPT-2's c_attn is the whole fused matrix, as PEFT
 * treats it.
 *
 * Under tensor parallelism A and B are replicated. On a column-parallel
 * matrix a rank applies the rows of B that match its output rows (A's and
 * B's gradients are partial sums). On a row-parallel matrix the hook sees
 * the summed output: h = x A^T is summed over the tensor group from each
 * rank's input columns, after which B's gradient is complete on every rank
 * and A's is a partial sum. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "method.h"
#include "merge_rule.h"
#include "peft.h"
#include "modules.h"
#include "rng.h"

static const dt_optdef lora_opts[] = {
    {"lora-rank", DT_OPT_INT, "8", 1, 65536, NULL, "rank r of the update B A"},
    {"lora-alpha", DT_OPT_FLOAT, "16", 0, 1e6, NULL, "scale numerator: delta W = (alpha/r) B A"},
    {"lora-targets", DT_OPT_STRING, NULL, 0, 0, NULL,
     "comma-separated module names (HF suffixes: c_attn, attn.c_proj, mlp.c_fc, "
     "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj); default "
     "c_attn (GPT-2) or q_proj,v_proj (LLaMA)"},
    {"lora-dropout", DT_OPT_FLOAT, "0", 0, 0.95, NULL, "dropout on the LoRA input"},
    {"lora-rslora", DT_OPT_BOOL, "no", 0, 0, NULL, "rank-stabilised scale alpha/sqrt(r)"},
    {"lora-init", DT_OPT_CHOICE, "peft", 0, 0, "peft|random",
     "peft: B = 0 (identity at init); random: B drawn like A (PEFT init_lora_weights=False)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const dt_optgroup lora_group = {"lora", "LoRA (--method lora)", lora_opts};

typedef struct {
  int layer, site, row0, out, in; /* rows [row0, row0+out) of the site output */
  float *A, *B, *dA, *dB;         /* [r,in], [out,r] */
} lora_unit;

typedef struct {
  int r;
  float scale, dropout;
  uint64_t key;
  int64_t fwd_count; /* training forwards so far (dropout stream) */
  int n;
  lora_unit *u;
  float *arena, *garena;
  float *dh;   /* [N, r] scratch */
  float *tmp;  /* [N, in] scratch (dropout) */
  size_t dh_n, tmp_n;
} lora_state;

/* The modules the options target (--lora-targets, or the family's
 * default): md[] and hit[] (DT_MAX_BLOCK_MODULES each); every target must
 * match a module (DT_EUSAGE naming --lora-targets). */
static int lora_modules(const dt_options *opt, const dt_config *c, dt_module *md, int *nmod,
                        int *hit) {
  const char *targets = dt_opt_str(opt, "lora-targets");
  if (!*targets) targets = dt_cfg_arch(c)->lora_targets;
  *nmod = dt_block_modules(c, md);
  for (int i = 0; i < DT_MAX_BLOCK_MODULES; i++) hit[i] = 0;
  DT_CALL(dt_module_targets(c, md, *nmod, "lora-targets", targets, hit));
  return DT_OK;
}

static int lora_check_config(const dt_options *opt, const dt_config *c) {
  dt_module md[DT_MAX_BLOCK_MODULES];
  int nmod, hit[DT_MAX_BLOCK_MODULES];
  return lora_modules(opt, c, md, &nmod, hit);
}

static int lora_create(dt_method *me, const dt_options *opt, dt_model *m,
                       dt_params *params, uint64_t seed) {
  const dt_config *c = &m->bb->cfg;
  lora_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "lora state"));
  me->state = s;
  s->r = dt_opt_int(opt, "lora-rank");
  double alpha = dt_opt_float(opt, "lora-alpha");
  s->scale = (float)(dt_opt_bool(opt, "lora-rslora") ? alpha / sqrt(s->r) : alpha / s->r);
  s->dropout = (float)dt_opt_float(opt, "lora-dropout");
  s->key = dt_rng_key(seed, 0x10a4);
  const int random_b = strcmp(dt_opt_str(opt, "lora-init"), "random") == 0;
  /* which modules are targeted; every target must match something */
  dt_module md[DT_MAX_BLOCK_MODULES];
  int nmod, hit[DT_MAX_BLOCK_MODULES];
  DT_CALL(lora_modules(opt, c, md, &nmod, hit));
  int per = 0;
  for (int i = 0; i < nmod; i++) per += hit[i];
  s->n = per * c->n_layer;
  DT_CALL(dt_calloc(&s->u, sizeof(lora_unit) * s->n, "lora units"));
  size_t total = 0;
  for (int i = 0; i < nmod; i++)
    if (hit[i]) total += (size_t)s->r * (md[i].in + md[i].out);
  total *= c->n_layer;
  DT_CALL(dt_model_alloc(m, &s->arena, sizeof(float) * total, "lora parameters"));
  DT_CALL(dt_model_alloc(m, &s->garena, sizeof(float) * total, "lora gradients"));
  size_t off = 0;
  int k = 0;
  for (int l = 0; l < c->n_layer; l++)
    for (int i = 0; i < nmod; i++) {
      if (!hit[i]) continue;
      lora_unit *u = &s->u[k++];
      *u = (lora_unit){l, md[i].site, md[i].row0, md[i].out, md[i].in,
                       dt_at(s->arena, off), dt_at(s->arena, off + (size_t)s->r * md[i].in),
                       dt_at(s->garena, off), dt_at(s->garena, off + (size_t)s->r * md[i].in)};
      off += (size_t)s->r * (md[i].in + md[i].out);
      /* PEFT init: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
      const double bound = 1.0 / sqrt((double)u->in);
      uint64_t key = dt_rng_key(seed, 0x10a0000 + (uint64_t)k);
      for (int64_t j = 0; u->A && j < (int64_t)s->r * u->in; j++)
        u->A[j] = (float)((2.0 * dt_rng_uniform(key, (uint64_t)j) - 1.0) * bound);
      if (random_b && u->B) {
        const double bb = 1.0 / sqrt((double)s->r);
        uint64_t kb = dt_rng_key(seed, 0x10b0000 + (uint64_t)k);
        for (int64_t j = 0; j < (int64_t)u->out * s->r; j++)
          u->B[j] = (float)((2.0 * dt_rng_uniform(kb, (uint64_t)j) - 1.0) * bb);
      }
      char nm[DT_PARAM_NAME_MAX];
      int64_t shA[2] = {s->r, u->in}, shB[2] = {u->out, s->r};
      snprintf(nm, sizeof nm, "base_model.model.%s.%d.%s.lora_A.weight",
               dt_module_prefix(c), l, md[i].name);
      DT_CALL(dt_params_add(params, "lora", nm, 2, shA, u->A, u->dA, 0));
      snprintf(nm, sizeof nm, "base_model.model.%s.%d.%s.lora_B.weight",
               dt_module_prefix(c), l, md[i].name);
      DT_CALL(dt_params_add(params, "lora", nm, 2, shB, u->B, u->dB, 0));
      /* after the tensor-group sum of h, B's gradient is complete on a
       * row-parallel matrix; every other LoRA gradient is a partial sum */
      if (dt_site_row_parallel(u->site)) dt_params_last_sync(params, DT_SYNC_COMPLETE);
    }
  return DT_OK;
}

static void lora_destroy(dt_method *me) {
  lora_state *s = me->state;
  if (!s) return;
  free(s->u);
  free(s->arena);
  free(s->garena);
  free(s->dh);
  free(s->tmp);
  free(s);
}

static int lora_wants_post(const dt_method *me, int layer, dt_site site) {
  const lora_state *s = me->state;
  for (int i = 0; i < s->n; i++)
    if (s->u[i].layer == layer && s->u[i].site == (int)site) return 1;
  return 0;
}

/* a unit on a row-parallel site sums its h [N, r] over the tensor group */
static int lora_tp_sums(const dt_method *me, int layer, dt_site site, int *width) {
  const lora_state *s = me->state;
  int n = 0;
  for (int i = 0; i < s->n && dt_site_row_parallel(site); i++)
    n += s->u[i].layer == layer && s->u[i].site == (int)site;
  *width = s->r;
  return n;
}

/* ws per (layer, site): for each unit there, h [N, r] (+ dropped x [N,in]). */
static size_t lora_site_ws(const dt_method *me, int layer, dt_site site, int N) {
  const lora_state *s = me->state;
  size_t w = 0;
  for (int i = 0; i < s->n; i++)
    if (s->u[i].layer == layer && s->u[i].site == (int)site)
      w += (size_t)N * s->r + (s->dropout > 0 ? (size_t)N * s->u[i].in : 0);
  return w;
}

/* Dropout mask value for element j of unit i in this forward. */
static inline float keep(const lora_state *s, int unit, int64_t j) {
  uint64_t k = dt_rng_key(s->key ^ (uint64_t)s->fwd_count, (uint64_t)unit);
  return dt_rng_uniform(k, (uint64_t)j) >= s->dropout ? 1.0f / (1.0f - s->dropout) : 0.0f;
}

static int lora_begin_forward(dt_method *me, int train) {
  lora_state *s = me->state;
  if (train) s->fwd_count++;
  return DT_OK;
}

static int lora_post_fwd(dt_method *me, const dt_site_io *io) {
  lora_state *s = me->state;
  dt_model *m = me->model;
  float *ws = io->ws;
  const int N = io->N, r = s->r, rowp = dt_site_row_parallel(io->site);
  const dt_segs *sg = dt_site_segs(m, io->site);
  for (int i = 0; i < s->n; i++) {
    const lora_unit *u = &s->u[i];
    if (u->layer != io->layer || u->site != (int)io->site) continue;
    /* dropout masks keyed by the element's row in the whole step */
    const int64_t j0 = (int64_t)me->model->pass_row0 * u->in;
    const float *x = io->x;
    float *h = ws;
    ws += (size_t)N * r;
    if (s->dropout > 0 && io->train) {
      /* the mask is keyed by the global element, so every layout agrees */
      float *xd = ws;
      for (int64_t row = 0; row < N; row++)
        for (int k = 0; k < sg->n && rowp; k++) {
          const dt_seg *g = dt_segs_at(sg, k);
          for (int c = 0; c < g->len; c++)
            xd[row * io->in + g->l0 + c] =
                x[row * io->in + g->l0 + c] * keep(s, i, j0 + row * u->in + g->g0 + c);
        }
      if (!rowp)
        for (int64_t j = 0; j < (int64_t)N * u->in; j++) xd[j] = x[j] * keep(s, i, j0 + j);
      x = xd;
    }
    if (s->dropout > 0) ws += (size_t)N * u->in;
    if (rowp) {
      /* h [N,r] = sum over ranks of x[:, own cols] A[:, own cols]^T */
      memset(h, 0, sizeof(float) * (size_t)N * r);
      for (int k = 0; k < sg->n; k++) {
        const dt_seg *g = dt_segs_at(sg, k);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, g->len, 1.0f, x + g->l0,
                    io->in, u->A + g->g0, u->in, 1.0f, h, r);
      }
      if (m->bb->dist) DT_CALL(dt_tp_sum(m->bb->dist, h, (size_t)N * r));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, u->out, r, s->scale, h, r,
                  u->B, r, 1.0f, io->y + u->row0, io->out);
      continue;
    }
    /* h [N,r] = x A^T ; y[:, own rows of the unit] += scale h B[rows]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, u->in, 1.0f, x,
                u->in, u->A, u->in, 0.0f, h, r);
    for (int k = 0; k < sg->n; k++) {
      const dt_seg *g = dt_segs_at(sg, k);
      const int a = g->g0 > u->row0 ? g->g0 : u->row0;
      const int b = g->g0 + g->len < u->row0 + u->out ? g->g0 + g->len : u->row0 + u->out;
      if (a >= b) continue;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, b - a, r, s->scale, h, r,
                  u->B + (size_t)(a - u->row0) * r, r, 1.0f, io->y + g->l0 + (a - g->g0),
                  io->out);
    }
  }
  return DT_OK;
}

static int lora_post_bwd(dt_method *me, const dt_site_io *io, float *dy, float *dx) {
  lora_state *s = me->state;
  dt_model *m = me->model;
  float *ws = io->ws;
  const int N = io->N, r = s->r, rowp = dt_site_row_parallel(io->site);
  const dt_segs *sg = dt_site_segs(m, io->site);
  DT_CALL(dt_ensure_floats(&s->dh, &s->dh_n, (size_t)N * r, "lora scratch"));
  for (int i = 0; i < s->n; i++) {
    const lora_unit *u = &s->u[i];
    if (u->layer != io->layer || u->site != (int)io->site) continue;
    /* dropout masks keyed by the element's row in the whole step */
    const int64_t j0 = (int64_t)me->model->pass_row0 * u->in;
    const float *h = ws;
    ws += (size_t)N * r;
    const float *x = io->x;
    if (s->dropout > 0) {
      x = ws;
      ws += (size_t)N * u->in;
    }
    if (rowp) {
      /* dy is the full output gradient: dB complete, dh complete, dA and dx
       * for this rank's input columns */
      const float *dys = dy + u->row0;
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, u->out, r, N, s->scale, dys,
                  io->out, h, r, 1.0f, u->dB, r);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, u->out, s->scale, dys,
                  io->out, u->B, r, 0.0f, s->dh, r);
      for (int k = 0; k < sg->n; k++) {
        const dt_seg *g = dt_segs_at(sg, k);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, g->len, N, 1.0f, s->dh, r,
                    x + g->l0, io->in, 1.0f, u->dA + g->g0, u->in);
        if (s->dropout > 0) {
          DT_CALL(dt_ensure_floats(&s->tmp, &s->tmp_n, (size_t)N * g->len, "lora scratch"));
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, g->len, r, 1.0f, s->dh,
                      r, u->A + g->g0, u->in, 0.0f, s->tmp, g->len);
          for (int64_t row = 0; row < N; row++)
            for (int c = 0; c < g->len; c++)
              dx[row * io->in + g->l0 + c] +=
                  s->tmp[row * g->len + c] * keep(s, i, j0 + row * u->in + g->g0 + c);
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, g->len, r, 1.0f, s->dh,
                      r, u->A + g->g0, u->in, 1.0f, dx + g->l0, io->in);
        }
      }
      continue;
    }
    /* column-parallel: this rank's output rows of the unit.
     * dB[rows] += scale dy^T h ; dh = scale sum dy[:, rows] B[rows] ;
     * dA += dh^T x ; dx += dh A (all partial sums) */
    memset(s->dh, 0, sizeof(float) * (size_t)N * r);
    for (int k = 0; k < sg->n; k++) {
      const dt_seg *g = dt_segs_at(sg, k);
      const int a = g->g0 > u->row0 ? g->g0 : u->row0;
      const int b = g->g0 + g->len < u->row0 + u->out ? g->g0 + g->len : u->row0 + u->out;
      if (a >= b) continue;
      const float *dys = dy + g->l0 + (a - g->g0);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, b - a, r, N, s->scale, dys,
                  io->out, h, r, 1.0f, u->dB + (size_t)(a - u->row0) * r, r);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, b - a, s->scale, dys,
                  io->out, u->B + (size_t)(a - u->row0) * r, r, 1.0f, s->dh, r);
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, u->in, N, 1.0f, s->dh,
                r, x, u->in, 1.0f, u->dA, u->in);
    if (s->dropout > 0) {
      DT_CALL(dt_ensure_floats(&s->tmp, &s->tmp_n, (size_t)N * u->in, "lora scratch"));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, u->in, r, 1.0f,
                  s->dh, r, u->A, u->in, 0.0f, s->tmp, u->in);
      for (int64_t j = 0; j < (int64_t)N * u->in; j++) dx[j] += s->tmp[j] * keep(s, i, j0 + j);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, u->in, r, 1.0f,
                  s->dh, r, u->A, u->in, 1.0f, dx, u->in);
    }
  }
  return DT_OK;
}

static void lora_describe(const dt_method *me, char *buf, size_t cap) {
  const lora_state *s = me->state;
  snprintf(buf, cap, "LoRA r=%d scale=%g dropout=%g on %d matrices", s->r,
           (double)s->scale, (double)s->dropout, s->n);
}

/* Checkpointed state: the count of training forwards keys the dropout
 * stream, so a resumed run draws the masks an uninterrupted one would. */
static int lora_save_counters(const dt_method *me, int64_t *v, int cap) {
  const lora_state *s = me->state;
  if (cap < 1) return 0;
  v[0] = s->fwd_count;
  return 1;
}

static int lora_load_counters(dt_method *me, const int64_t *v, int n) {
  lora_state *s = me->state;
  DT_CHECK(n == 1 && v[0] >= 0, DT_EINPUT,
           "lora: the checkpoint's counters.lora holds %d value(s) (%lld first); expected one "
           "non-negative count of training forwards", n, n > 0 ? (long long)v[0] : -1LL);
  s->fwd_count = v[0];
  return DT_OK;
}

/* Backward scratch (plan): dh [N, r], and with dropout an [N, in] block of
 * the widest targeted input (its local share on a row-parallel site). */
static int lora_scratch_bytes(const dt_method *me, const dt_options *o, const dt_model *m, int64_t N,
                              int64_t *bytes) {
  (void)me;
  int64_t b = dt_alloc_bytes(4 * N * dt_opt_int(o, "lora-rank"));
  if (dt_opt_float(o, "lora-dropout") > 0) {
    dt_module md[DT_MAX_BLOCK_MODULES];
    int nmod, hit[DT_MAX_BLOCK_MODULES];
    DT_CALL(lora_modules(o, &m->bb->cfg, md, &nmod, hit));
    int64_t mx = 0;
    for (int i = 0; i < nmod; i++)
      if (hit[i]) {
        const int64_t w = dt_site_row_parallel(md[i].site) ? dt_site_in_l(m, md[i].site) : md[i].in;
        mx = w > mx ? w : mx;
      }
    b += dt_alloc_bytes(4 * N * mx);
  }
  *bytes = b;
  return DT_OK;
}

/* `export --format peft` (src/peft.h). */
static int lora_export_peft(dt_peft_export *x) {
  const dt_ckpt_info *i = x->info;
  const dt_peft_tensors *p = x->in;
  dt_peft_out *l = x->out;
  json_t *targets = json_array();
  for (int k = 0; k < p->n; k++) {
    char mod[256];
    const char *nm = p->v[k]->name;
    DT_CHECK(dt_peft_module_of(nm, "lora_A.weight", mod, sizeof mod) ||
                 dt_peft_module_of(nm, "lora_B.weight", mod, sizeof mod),
             DT_EINPUT, "export: '%s' is not a LoRA tensor name (base_model.model.<module>."
             "lora_A|lora_B.weight)", nm);
    dt_peft_add_unique(targets, mod);
    DT_CALL(dt_peft_push(l, nm, p->v[k], p->data[k]));
  }
  json_t *c = dt_peft_config_common(i, "LORA");
  json_object_set_new(c, "r", json_integer(atoi(dt_peft_opt(i, "lora-rank", "8"))));
  json_object_set_new(c, "lora_alpha", dt_peft_num(atof(dt_peft_opt(i, "lora-alpha", "16"))));
  json_object_set_new(c, "lora_dropout", json_real(atof(dt_peft_opt(i, "lora-dropout", "0"))));
  json_object_set_new(c, "use_rslora",
                      json_boolean(strcmp(dt_peft_opt(i, "lora-rslora", "false"), "true") == 0));
  json_object_set_new(c, "init_lora_weights",
                      json_boolean(strcmp(dt_peft_opt(i, "lora-init", "peft"), "random") != 0));
  json_object_set_new(c, "target_modules", dt_peft_sorted(targets));
  json_object_set_new(c, "fan_in_fan_out", json_boolean(strcmp(i->arch, "gpt2") == 0));
  json_object_set_new(c, "bias", json_string("none"));
  json_object_set_new(c, "use_dora", json_false());
  json_object_set_new(c, "modules_to_save", json_null());
  json_object_set_new(c, "layers_to_transform", json_null());
  json_object_set_new(c, "layers_pattern", json_null());
  json_object_set_new(c, "rank_pattern", json_object());
  json_object_set_new(c, "alpha_pattern", json_object());
  x->cfg = c;
  return DT_OK;
}

/* `merge`: W += scale B A on each targeted module (src/merge_rule.h); the
 * B of a module is folded with its A. */
static int lora_merge_tensor(dt_merge_rule *x, int k) {
  const dt_ckpt_var *v = x->v[k];
  static const char bsuf[] = ".lora_B.weight";
  const size_t nl = strlen(v->name);
  if (nl >= sizeof bsuf - 1 && !strcmp(v->name + nl - (sizeof bsuf - 1), bsuf)) return DT_OK;
  char path[DT_PARAM_NAME_MAX];
  dt_module mod;
  DT_CHECK(x->module_of(x, v->name, "lora_A.weight", path, sizeof path, &mod), DT_EINPUT,
           "merge: %s: '%s' is not the LoRA A of a module of this %s model", x->ckpt, v->name,
           dt_family_name(x->cfg));
  char bname[2 * DT_PARAM_NAME_MAX];
  snprintf(bname, sizeof bname, "base_model.model.%s.lora_B.weight", path);
  const int kb = x->find(x, bname);
  DT_CHECK(kb >= 0, DT_EINPUT, "merge: %s holds '%s' without its '%s'", x->ckpt, v->name, bname);
  const dt_ckpt_var *vb = x->v[kb];
  const int r = (int)v->shape[0];
  DT_CHECK(v->ndim == 2 && vb->ndim == 2 && v->shape[1] == mod.in && vb->shape[0] == mod.out &&
               vb->shape[1] == r && r > 0,
           DT_EINPUT, "merge: %s: LoRA of %s: A [%lld, %lld] and B [%lld, %lld] do not fit "
           "the module [out %d, in %d]", x->ckpt, path, (long long)v->shape[0],
           (long long)v->shape[1], (long long)vb->shape[0], (long long)vb->shape[1], mod.out,
           mod.in);
  const char *alpha_s = dt_ckpt_info_opt(x->info, "lora-alpha");
  const char *rslora_s = dt_ckpt_info_opt(x->info, "lora-rslora");
  const double alpha = alpha_s && *alpha_s ? atof(alpha_s) : 16.0;
  const int rslora = rslora_s && (!strcmp(rslora_s, "true") || !strcmp(rslora_s, "yes") ||
                                  !strcmp(rslora_s, "1"));
  DT_CALL(x->add_lowrank(x, path, &mod, x->data[k], x->data[kb], r,
                         (float)(rslora ? alpha / sqrt((double)r) : alpha / r)));
  x->used[k] = x->used[kb] = 1;
  return DT_OK;
}

const dt_method_ops dt_method_lora = {
    .name = "lora",
    .summary = "low-rank update B A on targeted linears (Hu et al. 2021)",
    .options = &lora_group,
    .check_config = lora_check_config,
    .tp_sums = lora_tp_sums,
    .create = lora_create,
    .destroy = lora_destroy,
    .site_ws = lora_site_ws,
    .scratch_bytes = lora_scratch_bytes,
    .begin_forward = lora_begin_forward,
    .post_fwd = lora_post_fwd,
    .post_bwd = lora_post_bwd,
    .wants_post = lora_wants_post,
    .describe = lora_describe,
    .save_counters = lora_save_counters,
    .load_counters = lora_load_counters,
    .export_peft = lora_export_peft,
    .merge_tensor = lora_merge_tensor,
};
