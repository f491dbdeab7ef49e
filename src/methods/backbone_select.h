/* Shared mechanics of the methods that train backbone tensors in place
 * (bitfit, lastlayer, full): pick tensors from dt_model_tensors(), make them
 * trainable and register them in the parameter table under their HF names and
 * HF shapes. Parameters point straight into the backbone storage (a GPT-2
 * Conv1D weight is stored transposed, transposed = 1; a LLaMA q/k/v or
 * gate/up tensor is a contiguous row block of its fused matrix). */
#ifndef DT_BACKBONE_SELECT_H
#define DT_BACKBONE_SELECT_H

#include <stdint.h>

#include "model.h"
#include "params.h"

/* Returns non-zero to train the tensor. */
typedef int (*dt_backbone_pick)(const dt_model *m, const dt_tensor_ref *r,
                                void *ctx);

/* Register every backbone tensor that pick selects, in HF named_parameters
 * order, as trained by `method`. *count receives the number of tensors
 * registered (may be 0; the caller decides whether that is an error). A
 * tensor already registered by another method is a usage error naming both
 * methods. */
int dt_train_backbone_tensors(dt_model *m, dt_params *p, const char *method,
                              dt_backbone_pick pick, void *ctx, int *count);

#endif
