/* The options that choose between two equal ways of communicating, for
 * comparisons (docs/parallel.md, docs/performance.md): the tensor group's
 * sums through a shared-memory window or MPI_Allreduce, and the saved
 * residual stream once per tensor group on a node or once per rank. The
 * results are the same either way; the time and memory differ. */
#ifndef DT_COMM_OPTIONS_H
#define DT_COMM_OPTIONS_H

#include "dist.h"
#include "model.h"
#include "options.h"

/* The group "comm" of train, eval and gradcheck. */
extern const dt_optgroup dt_comm_group;

/* Apply the group's options to a layout d (before its first sum) and to a
 * backbone m (after dt_model_load, before dt_model_plan); either may be
 * NULL. */
void dt_comm_options_apply(const dt_options *o, dt_dist *d, dt_model *m);

#endif
