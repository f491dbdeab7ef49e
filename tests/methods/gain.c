/* A test-only delta method: one trainable scalar gain g on the output of
 * one block's feed-forward input projection (y = g * (x W^T + b)).
 *
 * It exists to show that a method is one file plus one line of the
 * registry (src/methods.c, DT_METHOD_TABLE): linked only into the test
 * build of the binary (tests/cli.cmake, deltatune_testmethods), it then
 * appears in `methods`, `plan`, `train`, `sweep`, `gradcheck`, `export` and
 * `merge` (which refuses it with merge_refusal) without a change to any of
 * them. tests/test_method_registry.c drives it through every command. */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "method.h"

static const dt_optdef gain_opts[] = {
    {"gain-layer", DT_OPT_INT, "-1", -1, 1000000, NULL,
     "the block whose feed-forward input projection is scaled (-1: the last)"},
    {"gain-init", DT_OPT_FLOAT, "1", 0, 10, NULL, "the initial gain"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const dt_optgroup gain_group = {"gain", "Scalar gain, a test-only method (--method gain)",
                                       gain_opts};

typedef struct {
  int layer;
  float *g, *dg; /* [1] each; NULL on a described (plan) model */
} gain_state;

static int gain_layer(const dt_options *opt, const dt_config *c, int *layer) {
  const int l = dt_opt_int(opt, "gain-layer");
  DT_CHECK(l < c->n_layer, DT_EUSAGE, "--gain-layer %d: the model (%s) has %d blocks (0..%d)", l,
           c->source, c->n_layer, c->n_layer - 1);
  *layer = l < 0 ? c->n_layer - 1 : l;
  return DT_OK;
}

static int gain_check_config(const dt_options *opt, const dt_config *c) {
  int l;
  return gain_layer(opt, c, &l);
}

static int gain_create(dt_method *me, const dt_options *opt, dt_model *m, dt_params *params,
                       uint64_t seed) {
  (void)seed;
  gain_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "gain state"));
  me->state = s;
  DT_CALL(gain_layer(opt, &m->bb->cfg, &s->layer));
  DT_CALL(dt_model_alloc(m, &s->g, sizeof(float), "gain"));
  DT_CALL(dt_model_alloc(m, &s->dg, sizeof(float), "gain gradient"));
  if (s->g) *s->g = (float)dt_opt_float(opt, "gain-init");
  char nm[DT_PARAM_NAME_MAX];
  snprintf(nm, sizeof nm, "test_gain.%d.fc.gain", s->layer);
  const int64_t shape[1] = {1};
  DT_CALL(dt_params_add(params, "gain", nm, 1, shape, s->g, s->dg, 0));
  /* each rank sums over its columns of the site: a partial sum */
  dt_params_last_sync(params, DT_SYNC_PARTIAL);
  return DT_OK;
}

static void gain_destroy(dt_method *me) {
  gain_state *s = me->state;
  if (s) {
    free(s->g);
    free(s->dg);
  }
  free(s);
}

static int gain_wants_post(const dt_method *me, int layer, dt_site site) {
  const gain_state *s = me->state;
  return layer == s->layer && site == DT_SITE_FC;
}

/* the site's output before the gain [N, out], for backward */
static size_t gain_site_ws(const dt_method *me, int layer, dt_site site, int N) {
  return gain_wants_post(me, layer, site) ? (size_t)N * dt_site_out_l(me->model, site) : 0;
}

static int gain_post_fwd(dt_method *me, const dt_site_io *io) {
  const gain_state *s = me->state;
  const int64_t n = (int64_t)io->N * io->out;
  for (int64_t i = 0; i < n; i++) {
    io->ws[i] = io->y[i];
    io->y[i] *= *s->g;
  }
  return DT_OK;
}

/* dg += sum(dy * y0); dy <- g dy (the input gradient of y = g y0) */
static int gain_post_bwd(dt_method *me, const dt_site_io *io, float *dy, float *dx) {
  (void)dx;
  gain_state *s = me->state;
  const int64_t n = (int64_t)io->N * io->out;
  double acc = 0;
  for (int64_t i = 0; i < n; i++) {
    acc += (double)dy[i] * io->ws[i];
    dy[i] *= *s->g;
  }
  *s->dg += (float)acc;
  return DT_OK;
}

static void gain_describe(const dt_method *me, char *buf, size_t cap) {
  const gain_state *s = me->state;
  snprintf(buf, cap, "one scalar gain on block %d's feed-forward input projection", s->layer);
}

const dt_method_ops dt_method_test_gain = {
    .name = "gain",
    .summary = "test-only: one scalar gain on a block's feed-forward input projection",
    .options = &gain_group,
    .merge_refusal = "a test-only method: its gain is not folded into the weights",
    .check_config = gain_check_config,
    .create = gain_create,
    .destroy = gain_destroy,
    .site_ws = gain_site_ws,
    .post_fwd = gain_post_fwd,
    .post_bwd = gain_post_bwd,
    .wants_post = gain_wants_post,
    .describe = gain_describe,
};
