/* IA3 (Liu et al. 2022, "(IA)^3"): learned vectors that rescale activations.
 *
 * A targeted module either has its OUTPUT scaled, y = (x W^T + b) * l with
 * l [out] (PEFT's ia3_l [out,1]; the bias is scaled too), or, for a
 * feed-forward module, its INPUT scaled, y = (x * l) W^T + b with l [in]
 * (PEFT's ia3_l [1,in]). l = 1 at init, so the model is unchanged.
 *
 * Output scaling is a post hook on the module's row block of the site output
 * (k_proj / v_proj are row blocks of the fused q|k|v output; the engine
 * applies rotary after the post hooks, as PEFT scales k_proj's output before
 * rotary). Input scaling of a module that is the whole site (GPT-2 modules,
 * o_proj, down_proj) is a pre hook. A feed-forward module that is only a row
 * block of a fused site (LLaMA q/k/v_proj, gate/up_proj) shares its input
 * with the other blocks, so it is done as a post hook on its block instead:
 * y_block += (x * (l - 1)) W_block^T. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "method.h"
#include "merge_rule.h"
#include "modules.h"
#include "peft.h"
#include "quant.h"

static const dt_optdef ia3_opts[] = {
    {"ia3-targets", DT_OPT_STRING, NULL, 0, 0, NULL,
     "comma-separated modules to rescale (HF suffixes: c_attn, attn.c_proj, "
     "mlp.c_fc, mlp.c_proj, q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
     "down_proj); default as PEFT: c_attn,mlp.c_proj (GPT-2) or "
     "k_proj,v_proj,down_proj (LLaMA)"},
    {"ia3-ff", DT_OPT_STRING, NULL, 0, 0, NULL,
     "the feed-forward targets (their INPUT is scaled; the others' output); each "
     "must be listed in --ia3-targets; 'none' for no input scaling; default: "
     "PEFT's (mlp.c_proj / down_proj) when they are targets"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const dt_optgroup ia3_group = {"ia3", "IA3 (--method ia3)", ia3_opts};

typedef struct {
  int layer, site, row0, out, in; /* rows [row0, row0+out) of the site output */
  int ff;                         /* input scaling */
  int whole;                      /* the module is the whole site */
  float *l, *dl;                  /* [in] (ff) or [out] */
} ia3_unit;

typedef struct {
  int n;
  ia3_unit *u;
  float *arena, *garena;
  float *tmp; /* [N, in] scratch (block-wise input scaling) */
  size_t tmp_n;
  dt_segs all; /* scratch: a whole dimension as one segment */
  int n_out, n_ff;
} ia3_state;

static int is_pre_unit(const ia3_unit *u) { return u->ff && u->whole; }

/* This rank's part of a site's input (output) dimension: the sharded
 * dimension's segments, or all of it. */
static const dt_segs *in_segs(const dt_model *m, int site, dt_segs *all, int in) {
  if (dt_site_row_parallel(site)) return dt_site_segs(m, site);
  dt_segs_full(all, in, 0);
  return all;
}
static const dt_segs *out_segs(const dt_model *m, int site, dt_segs *all, int out) {
  if (!dt_site_row_parallel(site)) return dt_site_segs(m, site);
  dt_segs_full(all, out, 0);
  return all;
}

/* The modules the options select: output-scaled (--ia3-targets, or the
 * family's default) in hit[], input-scaled (--ia3-ff, a subset) in ffhit[]
 * (DT_MAX_BLOCK_MODULES each); DT_EUSAGE naming the option otherwise. */
static int ia3_modules(const dt_options *opt, const dt_config *c, dt_module *md, int *nmod,
                       int *hit, int *ffhit) {
  const char *targets = dt_opt_str(opt, "ia3-targets");
  if (!*targets) targets = dt_cfg_arch(c)->ia3_targets;
  const char *ff = dt_opt_str(opt, "ia3-ff");
  char ffbuf[1024] = "";
  if (!*ff) {
    /* PEFT's feed-forward defaults, restricted to the chosen targets */
    const char *def = dt_cfg_arch(c)->ia3_ff;
    if (dt_list_has(targets, def)) snprintf(ffbuf, sizeof ffbuf, "%s", def);
    ff = ffbuf;
  } else if (strcmp(ff, "none") == 0) {
    ff = "";
  }
  if (strlen(targets) >= 1000 || strlen(ff) >= 1000)
    DT_ERR(DT_EUSAGE, "--ia3-targets / --ia3-ff: list too long");
  *nmod = dt_block_modules(c, md);
  for (int i = 0; i < DT_MAX_BLOCK_MODULES; i++) hit[i] = ffhit[i] = 0;
  DT_CALL(dt_module_targets(c, md, *nmod, "ia3-targets", targets, hit));
  {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", ff);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
      DT_CHECK(dt_list_has(targets, t), DT_EUSAGE,
               "--ia3-ff: '%s' is not one of --ia3-targets (%s); feed-forward "
               "modules must be a subset of the targets", t, targets);
  }
  DT_CALL(dt_module_targets(c, md, *nmod, "ia3-ff", ff, ffhit));
  return DT_OK;
}

static int ia3_check_config(const dt_options *opt, const dt_config *c) {
  dt_module md[DT_MAX_BLOCK_MODULES];
  int nmod, hit[DT_MAX_BLOCK_MODULES], ffhit[DT_MAX_BLOCK_MODULES];
  return ia3_modules(opt, c, md, &nmod, hit, ffhit);
}

static int ia3_create(dt_method *me, const dt_options *opt, dt_model *m,
                      dt_params *params, uint64_t seed) {
  (void)seed; /* deterministic init: ones */
  const dt_config *c = &m->bb->cfg;
  ia3_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "ia3 state"));
  me->state = s;
  dt_module md[DT_MAX_BLOCK_MODULES];
  int nmod, hit[DT_MAX_BLOCK_MODULES], ffhit[DT_MAX_BLOCK_MODULES];
  DT_CALL(ia3_modules(opt, c, md, &nmod, hit, ffhit));
  /* Every unit scales activations, except an input-scaled row block of a
   * fused site, which multiplies its rows of the frozen matrix (post hook):
   * on a quantized backbone that matrix exists only quantized. */
  for (int i = 0; i < nmod; i++)
    DT_CHECK(!(m->bb->wquant && hit[i] && ffhit[i] && !md[i].whole), DT_EUSAGE,
             "--ia3-ff %s on a quantized backbone (--weights-dtype %s): an input-scaled module "
             "that shares its site with others multiplies its rows of the frozen matrix, which "
             "is stored quantized; scale it as an output (leave it out of --ia3-ff), or use "
             "--weights-dtype fp32|bf16",
             md[i].name, dt_qtype_name(m->bb->wquant));
  int per = 0;
  size_t per_floats = 0;
  for (int i = 0; i < nmod; i++)
    if (hit[i]) {
      per++;
      per_floats += (size_t)(ffhit[i] ? md[i].in : md[i].out);
    }
  s->n = per * c->n_layer;
  DT_CALL(dt_calloc(&s->u, sizeof(ia3_unit) * s->n, "ia3 units"));
  const size_t total = per_floats * c->n_layer;
  DT_CALL(dt_alloc_aligned(&s->arena, sizeof(float) * total, "ia3 parameters"));
  DT_CALL(dt_alloc_aligned(&s->garena, sizeof(float) * total, "ia3 gradients"));
  size_t off = 0;
  int k = 0;
  for (int l = 0; l < c->n_layer; l++)
    for (int i = 0; i < nmod; i++) {
      if (!hit[i]) continue;
      ia3_unit *u = &s->u[k++];
      const int len = ffhit[i] ? md[i].in : md[i].out;
      *u = (ia3_unit){l, md[i].site, md[i].row0, md[i].out, md[i].in, ffhit[i],
                      md[i].whole, s->arena + off, s->garena + off};
      off += (size_t)len;
      for (int j = 0; j < len; j++) u->l[j] = 1.0f;
      if (u->ff) s->n_ff++;
      else s->n_out++;
      char nm[DT_PARAM_NAME_MAX];
      int64_t sh[2] = {u->ff ? 1 : u->out, u->ff ? u->in : 1};
      snprintf(nm, sizeof nm, "base_model.model.%s.%d.%s.ia3_l", dt_module_prefix(c), l,
               md[i].name);
      DT_CALL(dt_params_add(params, "ia3", nm, 2, sh, u->l, u->dl, 0));
      /* Under tensor parallelism the gradient of a vector is complete on
       * every rank when it scales a replicated quantity (the input of a
       * column-parallel module seen after the input-gradient sum, or the
       * summed output of a row-parallel one), and a partial sum when it
       * scales this rank's columns or rows. */
      const int rowp = dt_site_row_parallel(u->site);
      const int complete = is_pre_unit(u) ? !rowp : (!u->ff && rowp);
      dt_params_last_sync(params, complete ? DT_SYNC_COMPLETE : DT_SYNC_PARTIAL);
    }
  return DT_OK;
}

static void ia3_destroy(dt_method *me) {
  ia3_state *s = me->state;
  if (!s) return;
  free(s->u);
  free(s->arena);
  free(s->garena);
  free(s->tmp);
  free(s);
}

static int is_pre(const ia3_unit *u) { return is_pre_unit(u); }

/* Has (layer, site) a unit done as a pre hook (pre = 1) / post hook (0)? */
static int has_unit(const dt_method *me, int layer, dt_site site, int pre) {
  const ia3_state *s = me->state;
  for (int i = 0; i < s->n; i++)
    if (s->u[i].layer == layer && s->u[i].site == (int)site && is_pre(&s->u[i]) == pre)
      return 1;
  return 0;
}

static int ia3_wants_pre(const dt_method *me, int layer, dt_site site) {
  return has_unit(me, layer, site, 1);
}

static int ia3_wants_post(const dt_method *me, int layer, dt_site site) {
  return has_unit(me, layer, site, 0);
}

/* ws per (layer, site): the pre-scale output block [N, out] of each
 * output-scaled unit there. */
static size_t ia3_site_ws(const dt_method *me, int layer, dt_site site, int N) {
  const ia3_state *s = me->state;
  size_t w = 0;
  for (int i = 0; i < s->n; i++)
    if (s->u[i].layer == layer && s->u[i].site == (int)site && !s->u[i].ff)
      w += (size_t)N * s->u[i].out;
  return w;
}

/* x_out = x * l per column (x_out may alias x); a row-parallel input holds
 * this rank's columns only. */
static int ia3_pre_fwd(dt_method *me, const dt_site_io *io, float *x_out) {
  ia3_state *s = me->state;
  for (int i = 0; i < s->n; i++) {
    const ia3_unit *u = &s->u[i];
    if (u->layer != io->layer || u->site != (int)io->site || !is_pre(u)) continue;
    const dt_segs *sg = in_segs(me->model, u->site, &s->all, u->in);
    for (int64_t r = 0; r < io->N; r++) {
      const float *x = io->x + r * io->in;
      float *xo = x_out + r * io->in;
      for (int k = 0; k < sg->n; k++) {
        const dt_seg *g = dt_segs_at(sg, k);
        for (int j = 0; j < g->len; j++) xo[g->l0 + j] = x[g->l0 + j] * u->l[g->g0 + j];
      }
    }
  }
  return DT_OK;
}

/* dx' -> dx = dx' * l; dl += sum over rows of dx' * x. */
static int ia3_pre_bwd(dt_method *me, const dt_site_io *io, float *dx) {
  ia3_state *s = me->state;
  for (int i = 0; i < s->n; i++) {
    const ia3_unit *u = &s->u[i];
    if (u->layer != io->layer || u->site != (int)io->site || !is_pre(u)) continue;
    const dt_segs *sg = in_segs(me->model, u->site, &s->all, u->in);
    for (int64_t r = 0; r < io->N; r++) {
      const float *x = io->x + r * io->in;
      float *g = dx + r * io->in;
      for (int k = 0; k < sg->n; k++) {
        const dt_seg *sgk = dt_segs_at(sg, k);
        for (int j = 0; j < sgk->len; j++) {
          const int lj = sgk->l0 + j, gj = sgk->g0 + j;
          u->dl[gj] += g[lj] * x[lj];
          g[lj] *= u->l[gj];
        }
      }
    }
  }
  return DT_OK;
}

/* The unit's rows [row0, row0+out) of the site output that this rank holds:
 * calls fn(global row - row0, local row, count) per run. */
#define FOR_UNIT_ROWS(me, u, s, BODY)                                              \
  do {                                                                             \
    const dt_segs *sg_ = out_segs((me)->model, (u)->site, &(s)->all, (u)->row0 + (u)->out); \
    for (int k_ = 0; k_ < sg_->n; k_++) {                                          \
      const dt_seg *g_ = dt_segs_at(sg_, k_);                                      \
      const int a_ = g_->g0 > (u)->row0 ? g_->g0 : (u)->row0;                      \
      const int b_ = g_->g0 + g_->len < (u)->row0 + (u)->out ? g_->g0 + g_->len     \
                                                            : (u)->row0 + (u)->out; \
      if (a_ >= b_) continue;                                                      \
      const int ur __attribute__((unused)) = a_ - (u)->row0;                       \
      const int lr = g_->l0 + (a_ - g_->g0), cnt = b_ - a_;                        \
      BODY;                                                                        \
    }                                                                              \
  } while (0)

static int ia3_post_fwd(dt_method *me, const dt_site_io *io) {
  ia3_state *s = me->state;
  dt_model *m = me->model;
  float *ws = io->ws;
  const int N = io->N;
  for (int i = 0; i < s->n; i++) {
    const ia3_unit *u = &s->u[i];
    if (u->layer != io->layer || u->site != (int)io->site || is_pre(u)) continue;
    if (!u->ff) {
      /* save the block, then scale it */
      FOR_UNIT_ROWS(me, u, s, {
        for (int64_t r = 0; r < N; r++) {
          float *y = io->y + r * io->out + lr;
          float *sv = ws + r * u->out + ur;
          for (int j = 0; j < cnt; j++) {
            sv[j] = y[j];
            y[j] *= u->l[ur + j];
          }
        }
      });
      ws += (size_t)N * u->out;
    } else {
      /* y_block += (x * (l - 1)) W_block^T over this rank's rows */
      DT_CALL(dt_ensure_floats(&s->tmp, &s->tmp_n, (size_t)N * u->in, "ia3 scratch"));
      for (int64_t r = 0; r < N; r++)
        for (int j = 0; j < u->in; j++)
          s->tmp[r * u->in + j] = io->x[r * u->in + j] * (u->l[j] - 1.0f);
      const float *W = dt_mat_f32(m, &m->bb->layers[u->layer].lin[u->site]);
      FOR_UNIT_ROWS(me, u, s, {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, cnt, u->in, 1.0f, s->tmp,
                    u->in, W + (size_t)lr * u->in, u->in, 1.0f, io->y + lr, io->out);
      });
    }
  }
  return DT_OK;
}

static int ia3_post_bwd(dt_method *me, const dt_site_io *io, float *dy, float *dx) {
  ia3_state *s = me->state;
  dt_model *m = me->model;
  float *ws = io->ws;
  const int N = io->N;
  for (int i = 0; i < s->n; i++) {
    const ia3_unit *u = &s->u[i];
    if (u->layer != io->layer || u->site != (int)io->site || is_pre(u)) continue;
    if (!u->ff) {
      FOR_UNIT_ROWS(me, u, s, {
        for (int64_t r = 0; r < N; r++) {
          float *g = dy + r * io->out + lr;
          const float *sv = ws + r * u->out + ur;
          for (int j = 0; j < cnt; j++) {
            u->dl[ur + j] += g[j] * sv[j];
            g[j] *= u->l[ur + j];
          }
        }
      });
      ws += (size_t)N * u->out;
    } else {
      /* t = dy_block W_block (this rank's rows); dl += colsum(t * x);
       * dx += t * (l - 1) (partial sums, completed with the input gradient) */
      DT_CALL(dt_ensure_floats(&s->tmp, &s->tmp_n, (size_t)N * u->in, "ia3 scratch"));
      memset(s->tmp, 0, sizeof(float) * (size_t)N * u->in);
      const float *W = dt_mat_f32(m, &m->bb->layers[u->layer].lin[u->site]);
      FOR_UNIT_ROWS(me, u, s, {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, u->in, cnt, 1.0f,
                    dy + lr, io->out, W + (size_t)lr * u->in, u->in, 1.0f, s->tmp, u->in);
      });
      for (int64_t r = 0; r < N; r++) {
        const float *t = s->tmp + r * u->in, *x = io->x + r * u->in;
        float *g = dx + r * u->in;
        for (int j = 0; j < u->in; j++) {
          u->dl[j] += t[j] * x[j];
          g[j] += t[j] * (u->l[j] - 1.0f);
        }
      }
    }
  }
  return DT_OK;
}

static void ia3_describe(const dt_method *me, char *buf, size_t cap) {
  const ia3_state *s = me->state;
  snprintf(buf, cap, "IA3 scaling vectors: %d output-scaled and %d input-scaled modules",
           s->n_out, s->n_ff);
}

/* Backward scratch (plan): [N, in] for the input scaling of a fused row
 * block (a feed-forward target that is part of its site). */
static int ia3_scratch_bytes(const dt_method *me, const dt_options *o, const dt_model *m, int64_t N,
                             int64_t *bytes) {
  (void)me;
  *bytes = 0;
  const char *ff = dt_opt_str(o, "ia3-ff");
  if (*ff && strcmp(ff, "none") != 0) {
    dt_module md[DT_MAX_BLOCK_MODULES];
    const int nmod = dt_block_modules(&m->bb->cfg, md);
    int hit[DT_MAX_BLOCK_MODULES] = {0};
    DT_CALL(dt_module_targets(&m->bb->cfg, md, nmod, "ia3-ff", ff, hit));
    for (int i = 0; i < nmod; i++)
      if (hit[i] && !md[i].whole) {
        *bytes = dt_alloc_bytes(4 * N * md[i].in);
        break;
      }
  }
  return DT_OK;
}

/* `export --format peft` (src/peft.h). */
static int ia3_export_peft(dt_peft_export *x) {
  const dt_ckpt_info *i = x->info;
  const dt_peft_tensors *p = x->in;
  dt_peft_out *l = x->out;
  json_t *targets = json_array(), *ff = json_array();
  for (int k = 0; k < p->n; k++) {
    char mod[256];
    const dt_ckpt_var *v = p->v[k];
    DT_CHECK(dt_peft_module_of(v->name, "ia3_l", mod, sizeof mod) && v->ndim == 2, DT_EINPUT,
             "export: '%s' is not an IA3 tensor (base_model.model.<module>.ia3_l, 2-D)",
             v->name);
    dt_peft_add_unique(targets, mod);
    if (v->shape[0] == 1 && v->shape[1] > 1) dt_peft_add_unique(ff, mod); /* [1,in]: input scaled */
    DT_CALL(dt_peft_push(l, v->name, v, p->data[k]));
  }
  json_t *c = dt_peft_config_common(i, "IA3");
  json_object_set_new(c, "target_modules", dt_peft_sorted(targets));
  json_object_set_new(c, "feedforward_modules", dt_peft_sorted(ff));
  json_object_set_new(c, "fan_in_fan_out", json_boolean(strcmp(i->arch, "gpt2") == 0));
  json_object_set_new(c, "init_ia3_weights", json_true());
  json_object_set_new(c, "modules_to_save", json_null());
  x->cfg = c;
  return DT_OK;
}

/* `merge`: an output-scaled module's rows (and bias), an input-scaled
 * module's input columns (src/merge_rule.h). */
static int ia3_merge_tensor(dt_merge_rule *x, int k) {
  const dt_ckpt_var *v = x->v[k];
  char path[DT_PARAM_NAME_MAX];
  dt_module mod;
  DT_CHECK(x->module_of(x, v->name, "ia3_l", path, sizeof path, &mod), DT_EINPUT,
           "merge: %s: '%s' is not the IA3 vector of a module of this %s model", x->ckpt,
           v->name, dt_family_name(x->cfg));
  const int out = v->ndim == 2 && v->shape[0] == mod.out && v->shape[1] == 1;
  const int in = v->ndim == 2 && v->shape[0] == 1 && v->shape[1] == mod.in;
  DT_CHECK(out || in, DT_EINPUT, "merge: %s: IA3 vector %s is neither [%d, 1] (output "
           "scaling) nor [1, %d] (input scaling)", x->ckpt, v->name, mod.out, mod.in);
  DT_CALL(x->add_scale(x, path, &mod, x->data[k], in));
  x->used[k] = 1;
  return DT_OK;
}

const dt_method_ops dt_method_ia3 = {
    .name = "ia3",
    .summary = "learned activation scaling vectors (Liu et al. 2022, (IA)^3)",
    .options = &ia3_group,
    .check_config = ia3_check_config,
    .create = ia3_create,
    .destroy = ia3_destroy,
    .site_ws = ia3_site_ws,
    .scratch_bytes = ia3_scratch_bytes,
    .pre_fwd = ia3_pre_fwd,
    .pre_bwd = ia3_pre_bwd,
    .post_fwd = ia3_post_fwd,
    .post_bwd = ia3_post_bwd,
    .wants_pre = ia3_wants_pre,
    .wants_post = ia3_wants_post,
    .describe = ia3_describe,
    .export_peft = ia3_export_peft,
    .merge_tensor = ia3_merge_tensor,
};
