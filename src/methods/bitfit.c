/* BitFit (Ben Zaken et al. 2021): train every bias of the backbone in place,
 * LayerNorm biases included (every HF parameter whose name ends in ".bias").
 * LLaMA-family models have no biases, so there is nothing to train there. */
#include <stdio.h>
#include <stdlib.h>

#include "backbone_select.h"
#include "error.h"
#include "method.h"

typedef struct {
  int n;
} bitfit_state;

static int pick_bias(const dt_model *m, const dt_tensor_ref *r, void *ctx) {
  (void)m;
  (void)ctx;
  return r->is_bias;
}

static int bitfit_create(dt_method *me, const dt_options *opt, dt_model *m,
                         dt_params *params, uint64_t seed) {
  (void)opt;
  (void)seed;
  bitfit_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "bitfit state"));
  me->state = s;
  DT_CALL(dt_train_backbone_tensors(m, params, "bitfit", pick_bias, NULL, &s->n));
  DT_CHECK(s->n > 0, DT_EUSAGE,
           "--method bitfit: this %s-family model (%s) has no bias terms; nothing to train",
           dt_cfg_arch(&m->bb->cfg)->title, m->bb->cfg.source);
  return DT_OK;
}

static void bitfit_destroy(dt_method *me) { free(me->state); }

static void bitfit_describe(const dt_method *me, char *buf, size_t cap) {
  const bitfit_state *s = me->state;
  snprintf(buf, cap, "BitFit: %d bias vectors of the backbone", s->n);
}

const dt_method_ops dt_method_bitfit = {
    .name = "bitfit",
    .summary = "train every bias of the backbone, LayerNorm biases included (Ben Zaken et al. 2021)",
    .flags = DT_METHOD_WRITES_BIASES,
    .create = bitfit_create,
    .destroy = bitfit_destroy,
    .describe = bitfit_describe,
};
