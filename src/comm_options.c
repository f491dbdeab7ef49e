#include "comm_options.h"

#include <string.h>

static const dt_optdef comm_opts[] = {
    {"tp-sum", DT_OPT_CHOICE, "shm", 0, 0, "shm|allreduce",
     "the tensor group's sums when the group shares a node: through a shared-memory window "
     "(shm) or MPI_Allreduce (allreduce, for comparison; also keeps the residual stream once "
     "per rank)"},
    {"shared-stream", DT_OPT_BOOL, "yes", 0, 0, NULL,
     "keep the saved residual stream once per tensor group on a node (no: once per rank, for "
     "comparison)"},
    {"comm-barrier", DT_OPT_BOOL, "no", 0, 0, NULL,
     "wait at a barrier of the group before each MPI_Allreduce (tensor-group sums across "
     "nodes, gradient buckets, small reductions) and count that as waiting in the summary, so "
     "that the transfer is told from waiting for the group's slowest rank (for measuring; one "
     "more barrier per all-reduce)"},
    {"comm-lockstep", DT_OPT_BOOL, "no", 0, 0, NULL,
     "replace every sum, maximum and all-reduce of the ranks by a barrier of its group, moving "
     "no data (the losses and deltas are then wrong): the step then takes the machine's "
     "lockstep limit, every rank running the same products and passes at once, each waiting "
     "for its group's slowest rank, without any transfer (for measuring only; "
     "docs/performance.md)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

const dt_optgroup dt_comm_group = {"comm", "Communication (for comparisons)", comm_opts};

void dt_comm_options_apply(const dt_options *o, dt_dist *d, dt_model *m) {
  if (d) dt_dist_use_shm_sum(d, strcmp(dt_opt_str(o, "tp-sum"), "shm") == 0);
  if (d) dt_dist_time_waits(d, dt_opt_bool(o, "comm-barrier"));
  if (d) dt_dist_lockstep(d, dt_opt_bool(o, "comm-lockstep"));
  if (m) m->x_share_req = dt_opt_bool(o, "shared-stream");
}
