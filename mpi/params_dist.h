/* Saving a parameter table held across the ranks of a layout: the shards of
 * tensor-parallel tensors are summed over the tensor group (dt_tp_sum) and
 * rank 0 writes (io/params.h's dt_params_save_reduced). */
#ifndef DT_PARAMS_DIST_H
#define DT_PARAMS_DIST_H

#include "dist.h"
#include "params.h"

/* Write data (which = 0) or gradients (which = 1) of t to path; dist NULL:
 * this rank alone (dt_params_save). Collective over dist->world. */
int dt_params_save_dist(const dt_params *t, const char *path, int which, dt_dist *dist);

#endif
