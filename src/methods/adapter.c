/* Houlsby adapters (Houlsby et al. 2019): a bottleneck MLP with a skip
 * connection after the attention output projection and after the FFN output
 * projection, before the residual add:
 *   y <- y + up(act(down(y))),  down: Linear(d, m), up: Linear(m, d)
 * (both with bias). up = 0 and the biases 0 at init, so the model is
 * unchanged; down ~ N(0, std^2). Post hooks at DT_SITE_ATTN_OUT and
 * DT_SITE_PROJ. Names adapter_<layer>_<attn|mlp>.<down|up>.<weight|bias>,
 * weights [out, in]. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "method.h"
#include "ops.h"
#include "rng.h"

static const dt_optdef adapter_opts[] = {
    {"adapter-size", DT_OPT_INT, "64", 1, 1048576, NULL, "bottleneck width m"},
    {"adapter-act", DT_OPT_CHOICE, "gelu_tanh", 0, 0, "gelu_tanh|relu",
     "bottleneck activation"},
    {"adapter-init-std", DT_OPT_FLOAT, "1e-3", 0, 1e3, NULL,
     "std of the normal init of the down projection (up and biases start at 0)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const dt_optgroup adapter_group = {"adapter", "Houlsby adapters (--method adapter)",
                                          adapter_opts};

enum { ACT_GELU_TANH, ACT_RELU };

typedef struct {
  float *Wd, *bd, *Wu, *bu;     /* [m,d], [m], [d,m], [d] */
  float *gWd, *gbd, *gWu, *gbu; /* their gradients */
} adapter_unit;

typedef struct {
  int m, d, act, n_layer;
  adapter_unit *u; /* [n_layer][2]: attn, mlp */
  float *arena, *garena;
  float *dg; /* [N, m] scratch */
  size_t dg_n;
} adapter_state;

static int unit_of(int site) {
  return site == DT_SITE_ATTN_OUT ? 0 : site == DT_SITE_PROJ ? 1 : -1;
}

static int adapter_create(dt_method *me, const dt_options *opt, dt_model *m,
                          dt_params *params, uint64_t seed) {
  const dt_config *c = &m->bb->cfg;
  adapter_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "adapter state"));
  me->state = s;
  s->m = dt_opt_int(opt, "adapter-size");
  s->d = c->d_model;
  s->n_layer = c->n_layer;
  const char *act = dt_opt_str(opt, "adapter-act");
  if (strcmp(act, "gelu_tanh") == 0) s->act = ACT_GELU_TANH;
  else if (strcmp(act, "relu") == 0) s->act = ACT_RELU;
  else DT_ERR(DT_EUSAGE, "--adapter-act: unknown activation '%s' (gelu_tanh|relu)", act);
  const double std = dt_opt_float(opt, "adapter-init-std");
  const size_t per = (size_t)2 * s->m * s->d + s->m + s->d;
  const size_t total = per * 2 * c->n_layer;
  DT_CALL(dt_calloc(&s->u, sizeof(adapter_unit) * 2 * c->n_layer, "adapter units"));
  DT_CALL(dt_model_alloc(m, &s->arena, sizeof(float) * total, "adapter parameters"));
  DT_CALL(dt_model_alloc(m, &s->garena, sizeof(float) * total, "adapter gradients"));
  static const char *const where[2] = {"attn", "mlp"};
  for (int l = 0; l < c->n_layer; l++)
    for (int k = 0; k < 2; k++) {
      const int idx = 2 * l + k;
      adapter_unit *u = &s->u[idx];
      float *p = dt_at(s->arena, per * idx), *g = dt_at(s->garena, per * idx);
      const size_t md = (size_t)s->m * s->d;
      u->Wd = p;
      u->bd = dt_at(p, md);
      u->Wu = dt_at(p, md + s->m);
      u->bu = dt_at(p, 2 * md + s->m);
      u->gWd = g;
      u->gbd = dt_at(g, md);
      u->gWu = dt_at(g, md + s->m);
      u->gbu = dt_at(g, 2 * md + s->m);
      /* arena is zero-filled: up and biases start at 0 */
      const uint64_t key = dt_rng_key(seed, 0xada0000 + (uint64_t)idx);
      for (size_t j = 0; p && j < md; j++) u->Wd[j] = (float)(std * dt_rng_normal(key, j));
      char nm[DT_PARAM_NAME_MAX];
      int64_t shd[2] = {s->m, s->d}, shu[2] = {s->d, s->m}, sbd[1] = {s->m},
              sbu[1] = {s->d};
      /* adapters act on the summed (replicated) projection outputs: their
       * gradients are complete on every rank of a tensor group */
      snprintf(nm, sizeof nm, "adapter_%d_%s.down.weight", l, where[k]);
      DT_CALL(dt_params_add(params, "adapter", nm, 2, shd, u->Wd, u->gWd, 0));
      dt_params_last_sync(params, DT_SYNC_COMPLETE);
      snprintf(nm, sizeof nm, "adapter_%d_%s.down.bias", l, where[k]);
      DT_CALL(dt_params_add(params, "adapter", nm, 1, sbd, u->bd, u->gbd, 0));
      dt_params_last_sync(params, DT_SYNC_COMPLETE);
      snprintf(nm, sizeof nm, "adapter_%d_%s.up.weight", l, where[k]);
      DT_CALL(dt_params_add(params, "adapter", nm, 2, shu, u->Wu, u->gWu, 0));
      dt_params_last_sync(params, DT_SYNC_COMPLETE);
      snprintf(nm, sizeof nm, "adapter_%d_%s.up.bias", l, where[k]);
      DT_CALL(dt_params_add(params, "adapter", nm, 1, sbu, u->bu, u->gbu, 0));
      dt_params_last_sync(params, DT_SYNC_COMPLETE);
    }
  return DT_OK;
}

static void adapter_destroy(dt_method *me) {
  adapter_state *s = me->state;
  if (!s) return;
  free(s->u);
  free(s->arena);
  free(s->garena);
  free(s->dg);
  free(s);
}

static int adapter_wants_post(const dt_method *me, int layer, dt_site site) {
  (void)me;
  (void)layer;
  return unit_of(site) >= 0;
}

/* ws: adapter input y [N,d], pre-activation h [N,m], activation a [N,m]. */
static size_t adapter_site_ws(const dt_method *me, int layer, dt_site site, int N) {
  const adapter_state *s = me->state;
  (void)layer;
  if (unit_of(site) < 0) return 0;
  return (size_t)N * ((size_t)s->d + 2 * (size_t)s->m);
}

static int adapter_post_fwd(dt_method *me, const dt_site_io *io) {
  adapter_state *s = me->state;
  const adapter_unit *u = &s->u[2 * io->layer + unit_of(io->site)];
  const int N = io->N, d = s->d, m = s->m;
  float *yin = io->ws, *h = yin + (size_t)N * d, *a = h + (size_t)N * m;
  memcpy(yin, io->y, sizeof(float) * (size_t)N * d);
  dt_linear_forward(h, yin, u->Wd, u->bd, N, d, m);
  if (s->act == ACT_GELU_TANH) {
    dt_gelu_forward(a, h, (int64_t)N * m);
  } else {
    for (int64_t j = 0; j < (int64_t)N * m; j++) a[j] = h[j] > 0 ? h[j] : 0.0f;
  }
  /* y += a Wu^T + bu */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, d, m, 1.0f, a, m, u->Wu, m,
              1.0f, io->y, d);
  for (int64_t r = 0; r < N; r++) {
    float *y = io->y + r * d;
    for (int j = 0; j < d; j++) y[j] += u->bu[j];
  }
  return DT_OK;
}

static int adapter_post_bwd(dt_method *me, const dt_site_io *io, float *dy, float *dx) {
  (void)dx; /* the adapter sits after the linear: no path to its input */
  adapter_state *s = me->state;
  const adapter_unit *u = &s->u[2 * io->layer + unit_of(io->site)];
  const int N = io->N, d = s->d, m = s->m;
  const float *yin = io->ws, *h = yin + (size_t)N * d, *a = h + (size_t)N * m;
  DT_CALL(dt_ensure_floats(&s->dg, &s->dg_n, (size_t)N * m, "adapter scratch"));
  /* up: gWu += dy^T a, gbu += colsum dy; da = dy Wu */
  dt_linear_backward_weight(u->gWu, u->gbu, dy, a, N, m, d);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, m, d, 1.0f, dy, d, u->Wu, m,
              0.0f, s->dg, m);
  /* through the activation: dh = da * act'(h) */
  if (s->act == ACT_GELU_TANH) {
    dt_gelu_backward(s->dg, s->dg, h, (int64_t)N * m);
  } else {
    for (int64_t j = 0; j < (int64_t)N * m; j++)
      if (!(h[j] > 0)) s->dg[j] = 0.0f;
  }
  /* down: gWd += dh^T yin, gbd += colsum dh; dy (skip path) += dh Wd */
  dt_linear_backward_weight(u->gWd, u->gbd, s->dg, yin, N, d, m);
  dt_linear_backward_input(dy, s->dg, u->Wd, N, d, m);
  return DT_OK;
}

static void adapter_describe(const dt_method *me, char *buf, size_t cap) {
  const adapter_state *s = me->state;
  snprintf(buf, cap, "Houlsby adapters m=%d (%s) after attention and FFN of %d layers",
           s->m, s->act == ACT_GELU_TANH ? "gelu_tanh" : "relu", s->n_layer);
}

/* Backward scratch (plan): the bottleneck's gradient [N, m]. */
static int adapter_scratch_bytes(const dt_method *me, const dt_options *o, const dt_model *m,
                                 int64_t N, int64_t *bytes) {
  (void)me, (void)m;
  *bytes = dt_alloc_bytes(4 * N * dt_opt_int(o, "adapter-size"));
  return DT_OK;
}

const dt_method_ops dt_method_adapter = {
    .name = "adapter",
    .summary = "bottleneck adapters after attention and FFN (Houlsby et al. 2019)",
    .options = &adapter_group,
    .merge_refusal = "its bottleneck layers are new modules with a nonlinearity between them, "
                     "which no weight of the backbone can hold",
    .create = adapter_create,
    .destroy = adapter_destroy,
    .site_ws = adapter_site_ws,
    .scratch_bytes = adapter_scratch_bytes,
    .post_fwd = adapter_post_fwd,
    .post_bwd = adapter_post_bwd,
    .wants_post = adapter_wants_post,
    .describe = adapter_describe,
};
