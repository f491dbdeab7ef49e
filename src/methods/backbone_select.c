/* Selection and registration of trainable backbone tensors (see
 * backbone_select.h). */
#include "backbone_select.h"

#include <stdlib.h>

#include "error.h"

static int train_one(dt_model *m, dt_params *p, const char *method,
                     const dt_tensor_ref *r) {
  const dt_param *prev = dt_params_find(p, r->name);
  DT_CHECK(!prev, DT_EUSAGE,
           "--method: '%s' and '%s' both train the backbone tensor '%s'; "
           "choose one of them",
           prev && prev->method ? prev->method : "?", method, r->name);
  float *data, *grad;
  DT_CALL(dt_model_require_grad(m, r, &data, &grad));
  if (!r->sharded) {
    /* replicated: computed from replicated activations, complete everywhere */
    DT_CALL(dt_params_add(p, method, r->name, r->ndim, r->shape, data, grad,
                          r->transposed));
    dt_params_last_sync(p, DT_SYNC_COMPLETE);
    dt_params_last_alias(p, r->alias);
    return DT_OK;
  }
  /* this rank's shard: complete for its part */
  dt_param_shard sh;
  sh.shard_dim = r->shard_dim;
  sh.rows = r->rows;
  sh.cols = r->cols;
  sh.segs = r->segs;
  sh.first_l0 = r->segs.n ? dt_segs_at(&r->segs, 0)->l0 : 0;
  sh.local_cols = r->mat ? r->mat->cols : 1;
  DT_CALL(dt_params_add_shard(p, method, r->name, r->ndim, r->shape, data, grad,
                              r->transposed, r->numel_l, &sh));
  dt_params_last_alias(p, r->alias);
  return DT_OK;
}

int dt_train_backbone_tensors(dt_model *m, dt_params *p, const char *method,
                              dt_backbone_pick pick, void *ctx, int *count) {
  dt_tensor_ref *refs;
  int n, k = 0, rc = DT_OK;
  *count = 0;
  DT_CALL(dt_model_tensors(m, &refs, &n));
  for (int i = 0; rc == DT_OK && i < n; i++) {
    if (!pick(m, &refs[i], ctx)) continue;
    rc = train_one(m, p, method, &refs[i]);
    k += rc == DT_OK;
  }
  free(refs);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  *count = k;
  return DT_OK;
}
