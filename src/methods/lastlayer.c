/* Last-layer tuning: train every parameter of the last k transformer blocks
 * in place (--last-layers k). With --last-layers-head yes the final norm and
 * the output head are trained too: an untied lm_head.weight, or, when the
 * head is tied to the token embedding (GPT-2), the shared embedding matrix
 * (transformer.wte.weight), which then learns from both its uses, as
 * training a tied head does in HF. Matrices need --weights-dtype fp32. */
#include <stdio.h>
#include <stdlib.h>

#include "backbone_select.h"
#include "error.h"
#include "method.h"

static const dt_optdef lastlayer_opts[] = {
    {"last-layers", DT_OPT_INT, "1", 1, 1000000, NULL,
     "train the last k transformer blocks (1..number of layers)"},
    {"last-layers-head", DT_OPT_BOOL, "no", 0, 0, NULL,
     "also train the final norm and the head (lm_head; for a tied head the "
     "shared token embedding)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const dt_optgroup lastlayer_group = {"lastlayer", "Last-layer tuning (--method lastlayer)",
                                            lastlayer_opts};

typedef struct {
  int k, head, n;
} lastlayer_state;

static int pick_last(const dt_model *m, const dt_tensor_ref *r, void *ctx) {
  const lastlayer_state *s = ctx;
  if (r->layer >= 0) return r->layer >= m->bb->cfg.n_layer - s->k;
  if (!s->head) return 0;
  if (r->vec == &m->bb->lnf_w || r->vec == &m->bb->lnf_b) return 1;
  if (m->bb->cfg.tied_head) return r->mat == &m->bb->wte;
  return r->mat == &m->bb->lm_head;
}

static int lastlayer_create(dt_method *me, const dt_options *opt, dt_model *m,
                            dt_params *params, uint64_t seed) {
  (void)seed;
  lastlayer_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "lastlayer state"));
  me->state = s;
  s->k = dt_opt_int(opt, "last-layers");
  s->head = dt_opt_bool(opt, "last-layers-head");
  DT_CHECK(s->k <= m->bb->cfg.n_layer, DT_EUSAGE,
           "--last-layers %d: the model (%s) has only %d layers", s->k,
           m->bb->cfg.source, m->bb->cfg.n_layer);
  DT_CALL(dt_train_backbone_tensors(m, params, "lastlayer", pick_last, s, &s->n));
  return DT_OK;
}

static void lastlayer_destroy(dt_method *me) { free(me->state); }

static void lastlayer_describe(const dt_method *me, char *buf, size_t cap) {
  const lastlayer_state *s = me->state;
  const dt_config *c = &me->model->bb->cfg;
  snprintf(buf, cap, "last %d of %d blocks%s: %d tensors", s->k, c->n_layer,
           !s->head ? ""
           : c->tied_head ? " + final norm + head (tied: token embedding)"
                          : " + final norm + lm_head",
           s->n);
}

const dt_method_ops dt_method_lastlayer = {
    .name = "lastlayer",
    .summary = "train every parameter of the last k blocks (optionally the head)",
    .options = &lastlayer_group,
    .flags = DT_METHOD_WRITES_MATRICES,
    .create = lastlayer_create,
    .destroy = lastlayer_destroy,
    .describe = lastlayer_describe,
};
