/* Rank layout: world = dp x tp. Ranks of one tensor-parallel group are
 * consecutive (world rank r: tp_rank = r % tp, dp_rank = r / tp), so a group
 * sits on one node when ranks are placed by node. Inside each group a BLACS
 * 1 x tp process grid carries the ScaLAPACK descriptors of the sharded
 * frozen matrices (see mpi/shard.h).
 *
 * Named communication operators (Megatron's vocabulary); each is the
 * identity, at no cost, when tp == 1:
 *   g  = dt_tp_sum: forward all-reduce over the tensor group (after a
 *        row-parallel linear), backward identity;
 *   f  = identity forward, dt_tp_sum backward (the input gradient of a
 *        column-parallel linear).
 */
#ifndef DT_DIST_H
#define DT_DIST_H

#include <mpi.h>
#include <stddef.h>

#include "shmwin.h"

typedef struct {
  MPI_Comm world, tp, dp;
  int rank, size;
  int tp_rank, tp_size;
  int dp_rank, dp_size;
  /* the ranks of this node that hold the same tensor shard (same tp_rank,
   * other data-parallel replicas): they can map one copy of the frozen
   * weights (dt_model_load with share) */
  MPI_Comm peers;
  int peers_rank, peers_size;
  int blacs_ctx;     /* 1 x tp grid of this rank's tensor group, -1 when tp == 1 */
  int blacs_ctx_col; /* tp x 1 grid of the same group (row-parallel matrices) */
  double comm_s; /* seconds spent in the operators below */
  double wait_s; /* of which in the shared-memory sums' first barrier: waiting
                    for the last rank of the group to arrive with its part (and,
                    with comm_barrier, in the barrier before the all-reduces) */
  int comm_barrier; /* an MPI_Barrier of the group before each MPI_Allreduce of
                       the operators below, timed as waiting (dt_dist_time_waits) */
  int lockstep;     /* every operator below is only a barrier of its group:
                       no data moves (dt_dist_lockstep) */
  /* dt_tp_sum calls that communicated (tp > 1, n > 0), their floats, and
   * how many went through the shared-memory window (deltatune plan counts
   * the same; tests compare) */
  long long n_tp_sum, tp_sum_floats, n_tp_sum_shm;
  /* intra-node fast path of dt_tp_sum: a shared-memory window holding one
   * slot per tensor rank plus the result, when the group shares a node */
  dt_shmwin shm_win;
  float *shm_base;   /* this rank's view of the whole window */
  size_t shm_cap;    /* floats per slot */
  int shm_ok;        /* the tensor group lives on one node */
  int shm_part_open; /* a dt_tp_sum_part's slot awaits its dt_tp_sum_into */
  int tp_nodes;      /* the most nodes any tensor group spans (1: every group
                      * inside a node; more: its sums cross the network) */
  int split_heads;   /* key/value groups left over from an even split over the
                        group are shared by query rows (mpi/shard.h; the
                        driver's --tp-heads, read by dt_model_load) */
} dt_dist;

/* dt_tp_sum goes through the shared-memory window from this many floats
 * (smaller sums use MPI_Allreduce); a window slot holds at least
 * DT_SHM_SLOT_MIN floats. */
#define DT_SHM_SUM_MIN 1024
#define DT_SHM_SLOT_MIN 65536

/* Split MPI_COMM_WORLD into tp groups of `tp` ranks. Collective. */
int dt_dist_init(dt_dist *d, int tp);
void dt_dist_free(dt_dist *d);

/* Sum over the tensor group, in place (g forward / f backward). */
int dt_tp_sum(dt_dist *d, float *buf, size_t n);
/* The same sum without copying the part in: dt_tp_sum_part sets *part to
 * where this rank should compute its n floats (its slot of the shared-memory
 * window where the sum goes through it, else buf); dt_tp_sum_into then puts
 * the group's sum of the parts into buf. Every rank of the group calls both,
 * in the same order with the same n (the first may allocate the window), and
 * no other tensor-group sum comes between them. */
int dt_tp_sum_part(dt_dist *d, float *buf, size_t n, float **part);
int dt_tp_sum_into(dt_dist *d, float *buf, const float *part, size_t n);
/* As dt_tp_sum_into, plus add[width] (NULL: nothing) on each row of the sum
 * (a row-parallel product's bias), but where the sum goes through the
 * shared-memory window *sum points to the result there instead of a copy in
 * buf (else *sum = buf): read-only, and valid until this rank's next
 * tensor-group sum. n is a multiple of width when add is given. */
int dt_tp_sum_view(dt_dist *d, float *buf, const float *part, size_t n, const float *add,
                   size_t width, const float **sum);
/* on = 0: the tensor-group sums always use MPI_Allreduce, never the
 * shared-memory window (--tp-sum allreduce, for comparisons). Call before
 * the first sum. */
void dt_dist_use_shm_sum(dt_dist *d, int on);
/* on = 1: every MPI_Allreduce of the operators below first waits at an
 * MPI_Barrier of its group, counted in wait_s (and comm_s), so that
 * comm_s - wait_s is the transfer alone, without the time a rank waits for
 * the group's slowest one (--comm-barrier, for measuring the plan's
 * communication time; one more barrier per all-reduce). */
void dt_dist_time_waits(dt_dist *d, int on);
/* on = 1: every operator below (sums, maxima, all-reduces) is replaced by
 * an MPI_Barrier of its group, timed as waiting: no data moves, so the
 * results are wrong, and a step takes the machine's lockstep limit: every
 * rank runs the same products and passes at once and each pass waits for
 * the group's slowest rank, without any transfer (--comm-lockstep, for
 * measuring; docs/performance.md). */
void dt_dist_lockstep(dt_dist *d, int on);
/* Max over the tensor group, in place. */
int dt_tp_max(dt_dist *d, float *buf, size_t n);
/* Sum over the data-parallel replicas, in place. */
int dt_dp_sum(dt_dist *d, float *buf, size_t n);
/* Sum over every rank, in place. */
int dt_world_sum(dt_dist *d, float *buf, size_t n);

#endif
