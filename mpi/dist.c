#include "dist.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "mpicheck.h"
#include "shmwin.h"
#include "timer.h"

/* BLACS C interface (ScaLAPACK's). */
void Cblacs_get(int ctx, int what, int *val);
void Cblacs_gridinit(int *ctx, const char *order, int nprow, int npcol);
void Cblacs_gridexit(int ctx);
int Csys2blacs_handle(MPI_Comm comm);

int dt_dist_init(dt_dist *d, int tp) {
  memset(d, 0, sizeof *d);
  d->world = MPI_COMM_WORLD;
  d->blacs_ctx = d->blacs_ctx_col = -1; /* freeable from here on (dt_dist_free) */
  DT_MPI(MPI_Comm_rank(d->world, &d->rank), "MPI_Comm_rank");
  DT_MPI(MPI_Comm_size(d->world, &d->size), "MPI_Comm_size");
  DT_CHECK(tp >= 1 && d->size % tp == 0, DT_EUSAGE,
           "--tp %d does not divide the %d ranks (ranks = data-parallel x tensor-parallel)",
           tp, d->size);
  d->tp_size = tp;
  d->tp_nodes = 1;
  d->dp_size = d->size / tp;
  d->tp_rank = d->rank % tp;
  d->dp_rank = d->rank / tp;
  DT_CHECK(MPI_Comm_split(d->world, d->dp_rank, d->tp_rank, &d->tp) == MPI_SUCCESS,
           DT_EMPI, "cannot create the tensor-parallel communicator");
  DT_CHECK(MPI_Comm_split(d->world, d->tp_rank, d->dp_rank, &d->dp) == MPI_SUCCESS,
           DT_EMPI, "cannot create the data-parallel communicator");
  DT_CHECK(MPI_Comm_split_type(d->dp, MPI_COMM_TYPE_SHARED, d->dp_rank, MPI_INFO_NULL,
                               &d->peers) == MPI_SUCCESS,
           DT_EMPI, "cannot create the communicator of the node's replicas");
  DT_MPI(MPI_Comm_rank(d->peers, &d->peers_rank), "MPI_Comm_rank of the node's replicas");
  DT_MPI(MPI_Comm_size(d->peers, &d->peers_size), "MPI_Comm_size of the node's replicas");
  d->blacs_ctx = d->blacs_ctx_col = -1;
  if (tp > 1) {
    int ctx = Csys2blacs_handle(d->tp);
    Cblacs_gridinit(&ctx, "Row", 1, tp);
    d->blacs_ctx = ctx;
    ctx = Csys2blacs_handle(d->tp);
    Cblacs_gridinit(&ctx, "Col", tp, 1);
    d->blacs_ctx_col = ctx;
    /* does the tensor group share a node? */
    MPI_Comm node;
    DT_MPI(MPI_Comm_split_type(d->tp, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
           "MPI_Comm_split_type of the tensor group by node");
    int nsize = 0, nrank = 0;
    DT_MPI(MPI_Comm_size(node, &nsize), "MPI_Comm_size of the tensor group's node");
    DT_MPI(MPI_Comm_rank(node, &nrank), "MPI_Comm_rank of the tensor group's node");
    DT_MPI(MPI_Comm_free(&node), "MPI_Comm_free");
    d->shm_ok = nsize == tp;
    /* nodes of this group (one first rank per node), then the most of any group */
    int first = nrank == 0;
    DT_MPI(MPI_Allreduce(&first, &d->tp_nodes, 1, MPI_INT, MPI_SUM, d->tp),
           "MPI_Allreduce of the tensor group's node count");
  }
  DT_MPI(MPI_Allreduce(MPI_IN_PLACE, &d->tp_nodes, 1, MPI_INT, MPI_MAX, d->world),
         "MPI_Allreduce of the tensor groups' node counts");
  return DT_OK;
}

void dt_dist_free(dt_dist *d) {
  dt_shmwin_free(&d->shm_win);
  if (d->blacs_ctx >= 0) Cblacs_gridexit(d->blacs_ctx);
  if (d->blacs_ctx_col >= 0) Cblacs_gridexit(d->blacs_ctx_col);
  if (d->tp != MPI_COMM_NULL && d->tp) MPI_Comm_free(&d->tp);
  if (d->dp != MPI_COMM_NULL && d->dp) MPI_Comm_free(&d->dp);
  if (d->peers != MPI_COMM_NULL && d->peers) MPI_Comm_free(&d->peers);
  memset(d, 0, sizeof *d);
}

/* --comm-lockstep: the operator's barrier alone, all of it waiting. */
static int lockstep_barrier(dt_dist *d, MPI_Comm comm, const char *what) {
  const double t0 = dt_now();
  DT_CHECK(MPI_Barrier(comm) == MPI_SUCCESS, DT_EMPI, "barrier of the %s group failed", what);
  const double dt = dt_now() - t0;
  d->wait_s += dt;
  d->comm_s += dt;
  return DT_OK;
}

static int allreduce(dt_dist *d, MPI_Comm comm, int size, float *buf, size_t n,
                     MPI_Op op, const char *what) {
  if (size <= 1 || n == 0) return DT_OK;
  if (d->lockstep) return lockstep_barrier(d, comm, what);
  double t0 = dt_now();
  if (d->comm_barrier) { /* --comm-barrier: the wait for the group's last rank apart */
    DT_CHECK(MPI_Barrier(comm) == MPI_SUCCESS, DT_EMPI, "barrier of the %s group failed", what);
    d->wait_s += dt_now() - t0;
  }
  while (n > 0) { /* counts are int */
    int c = n > (1u << 30) ? (1 << 30) : (int)n;
    DT_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, c, MPI_FLOAT, op, comm) == MPI_SUCCESS,
             DT_EMPI, "all-reduce over the %s group failed", what);
    buf += c;
    n -= (size_t)c;
  }
  d->comm_s += dt_now() - t0;
  return DT_OK;
}

/* (Re)allocate the shared window for slots of n floats. Collective over the
 * tensor group (every rank calls dt_tp_sum with the same n). */
static int shm_reserve(dt_dist *d, size_t n) {
  if (d->shm_base && n <= d->shm_cap) return DT_OK;
  dt_shmwin_free(&d->shm_win);
  d->shm_base = NULL;
  size_t cap = n < DT_SHM_SLOT_MIN ? DT_SHM_SLOT_MIN : n;
  /* rank 0 allocates T slots + the result; the others map it */
  DT_CALL(dt_shmwin_alloc(&d->shm_win, d->tp, sizeof(float) * cap * (d->tp_size + 1),
                          "tensor-group sums"));
  d->shm_base = d->shm_win.base;
  d->shm_cap = cap;
  return DT_OK;
}

/* Sum over the tensor group through shared memory: every rank copies its
 * buffer into its slot, sums one slice of all slots in rank order into the
 * result, and copies the whole result back. The summation order is fixed,
 * so every rank gets bitwise the same values. */
static int shm_sum(dt_dist *d, float *buf, size_t n) {
  DT_CALL(shm_reserve(d, n));
  const int T = d->tp_size, me = d->tp_rank;
  float *slot = d->shm_base + (size_t)me * d->shm_cap;
  float *res = d->shm_base + (size_t)T * d->shm_cap;
  memcpy(slot, buf, sizeof(float) * n);
  __sync_synchronize();
  const double tw = dt_now();
  DT_MPI(MPI_Barrier(d->tp), "MPI_Barrier of the tensor group (shared-memory sum)");
  d->wait_s += dt_now() - tw;
  const size_t per = (n + (size_t)T - 1) / T, lo = per * (size_t)me;
  const size_t hi = lo + per < n ? lo + per : n;
  if (lo < hi) {
    memcpy(res + lo, d->shm_base + lo, sizeof(float) * (hi - lo));
    for (int k = 1; k < T; k++) {
      const float *src = d->shm_base + (size_t)k * d->shm_cap;
      for (size_t i = lo; i < hi; i++) res[i] += src[i];
    }
  }
  __sync_synchronize();
  DT_MPI(MPI_Barrier(d->tp), "MPI_Barrier of the tensor group (shared-memory sum)");
  memcpy(buf, res, sizeof(float) * n);
  return DT_OK;
}

void dt_dist_use_shm_sum(dt_dist *d, int on) { d->shm_ok = d->shm_ok && on; }
void dt_dist_time_waits(dt_dist *d, int on) { d->comm_barrier = on; }
void dt_dist_lockstep(dt_dist *d, int on) { d->lockstep = on; }

int dt_tp_sum(dt_dist *d, float *buf, size_t n) {
  if (d->tp_size > 1 && n > 0) {
    d->n_tp_sum++;
    d->tp_sum_floats += (long long)n;
    d->n_tp_sum_shm += d->shm_ok && n >= DT_SHM_SUM_MIN;
  }
  if (d->tp_size > 1 && d->shm_ok && n >= DT_SHM_SUM_MIN && !d->lockstep) {
    double t0 = dt_now();
    int rc = shm_sum(d, buf, n);
    d->comm_s += dt_now() - t0;
    return rc;
  }
  return allreduce(d, d->tp, d->tp_size, buf, n, MPI_SUM, "tensor-parallel");
}
int dt_tp_max(dt_dist *d, float *buf, size_t n) {
  return allreduce(d, d->tp, d->tp_size, buf, n, MPI_MAX, "tensor-parallel");
}
int dt_dp_sum(dt_dist *d, float *buf, size_t n) {
  return allreduce(d, d->dp, d->dp_size, buf, n, MPI_SUM, "data-parallel");
}
int dt_world_sum(dt_dist *d, float *buf, size_t n) {
  return allreduce(d, d->world, d->size, buf, n, MPI_SUM, "world");
}
