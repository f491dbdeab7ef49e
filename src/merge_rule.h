/* What a method's merge rule (dt_method_ops.merge_tensor) works with:
 * `deltatune merge` (src/merge.c) hands each trained tensor of the
 * checkpoint to its method's rule, which folds it into the weights through
 * two operations merge knows how to apply to a module of a block:
 *   add_lowrank  W += scale B A              (B [out, r], A [r, in])
 *   add_scale    W's rows (and bias) * l      (l [out]; input = 0), or
 *                W's input columns * l        (l [in];  input = 1)
 * A method whose tensors replace the backbone's (flags DT_METHOD_WRITES_*)
 * needs no rule; one that cannot be folded has merge_refusal. */
#ifndef DT_MERGE_RULE_H
#define DT_MERGE_RULE_H

#include <stddef.h>

#include "checkpoint.h"
#include "method.h"
#include "methods/modules.h"

struct dt_merge_rule {
  const dt_config *cfg;       /* the backbone's configuration */
  const dt_ckpt_info *info;   /* the checkpoint: its options */
  const char *ckpt;           /* its path, for messages */
  int n;                      /* trained tensors */
  const dt_ckpt_var *const *v;
  float *const *data;
  int *used;                  /* set used[k] for every tensor the rule folds */
  /* "base_model.model.<prefix>.<layer>.<module>.<suffix>" -> the HF module
   * path "<prefix>.<layer>.<module>" and its entry (1), or 0 */
  int (*module_of)(const dt_merge_rule *x, const char *name, const char *suffix, char *path,
                   size_t cap, dt_module *mod);
  /* the index of the trained tensor called name, -1 when absent */
  int (*find)(const dt_merge_rule *x, const char *name);
  int (*add_lowrank)(dt_merge_rule *x, const char *path, const dt_module *mod, const float *A,
                     const float *B, int r, float scale);
  int (*add_scale)(dt_merge_rule *x, const char *path, const dt_module *mod, const float *l,
                   int input);
  void *merge;                /* merge.c's state */
  const char *method;         /* the method whose tensor is folded */
};

#endif
