/* Full fine-tuning: every backbone parameter is trained in place, under its
 * HF name. A tied lm_head is not a separate parameter: its gradient flows
 * into the token embedding (transformer.wte.weight), as in HF. Needs
 * --weights-dtype fp32. */
#include <stdio.h>
#include <stdlib.h>

#include "backbone_select.h"
#include "error.h"
#include "method.h"

typedef struct {
  int n;
} full_state;

static int pick_all(const dt_model *m, const dt_tensor_ref *r, void *ctx) {
  (void)m;
  (void)r;
  (void)ctx;
  return 1;
}

static int full_create(dt_method *me, const dt_options *opt, dt_model *m,
                       dt_params *params, uint64_t seed) {
  (void)opt;
  (void)seed;
  full_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "full state"));
  me->state = s;
  DT_CALL(dt_train_backbone_tensors(m, params, "full", pick_all, NULL, &s->n));
  return DT_OK;
}

static void full_destroy(dt_method *me) { free(me->state); }

static void full_describe(const dt_method *me, char *buf, size_t cap) {
  const full_state *s = me->state;
  snprintf(buf, cap, "full fine-tuning: all %d backbone tensors%s", s->n,
           me->model->bb->cfg.tied_head ? " (lm_head tied to the token embedding)" : "");
}

const dt_method_ops dt_method_full = {
    .name = "full",
    .summary = "train every backbone parameter (needs --weights-dtype fp32)",
    .flags = DT_METHOD_WRITES_MATRICES,
    .create = full_create,
    .destroy = full_destroy,
    .describe = full_describe,
};
