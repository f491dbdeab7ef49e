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

/* Sum over the tensor group through shared memory: every rank's part is in
 * its slot (copied there, or computed there: dt_tp_sum_part), each rank sums
 * one slice of all slots in rank order into the result, and every rank
 * copies the whole result into buf. The summation order is fixed, so every
 * rank gets bitwise the same values. Slots are read only between the two
 * barriers, so a rank past the second may write its next part at once; the
 * result is read only after the second, and written only after the first of
 * the next sum, which every rank reaches after its copy. */
static int shm_sum(dt_dist *d, float *buf, const float *part, size_t n, const float *add,
                   size_t width) {
  /* buf NULL: the result stays in the window (dt_tp_sum_view); add: a row
   * of width floats added to each row of the sum, by the rank summing it */
  DT_CALL(shm_reserve(d, n));
  const int T = d->tp_size, me = d->tp_rank;
  float *slot = d->shm_base + (size_t)me * d->shm_cap;
  float *res = d->shm_base + (size_t)T * d->shm_cap;
  if (part != slot) memcpy(slot, part, sizeof(float) * n);
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
    if (add)
      for (size_t i = lo; i < hi;) {
        const size_t j0 = i % width, e = i - j0 + width < hi ? i - j0 + width : hi;
        for (size_t j = j0; i < e; i++, j++) res[i] += add[j];
      }
  }
  __sync_synchronize();
  DT_MPI(MPI_Barrier(d->tp), "MPI_Barrier of the tensor group (shared-memory sum)");
  if (buf) memcpy(buf, res, sizeof(float) * n);
  return DT_OK;
}

/* Does a sum of n floats go through the shared-memory window? */
static int shm_path(const dt_dist *d, size_t n) {
  return d->tp_size > 1 && d->shm_ok && n >= DT_SHM_SUM_MIN && !d->lockstep;
}

void dt_dist_use_shm_sum(dt_dist *d, int on) { d->shm_ok = d->shm_ok && on; }
void dt_dist_time_waits(dt_dist *d, int on) { d->comm_barrier = on; }
void dt_dist_lockstep(dt_dist *d, int on) { d->lockstep = on; }

int dt_tp_sum_part(dt_dist *d, float *buf, size_t n, float **part) {
  *part = buf;
  if (!shm_path(d, n)) return DT_OK;
  DT_CALL(shm_reserve(d, n));
  *part = d->shm_base + (size_t)d->tp_rank * d->shm_cap;
  d->shm_part_open = 1;
  return DT_OK;
}

/* buf = the group's sum of the parts, plus the row add[width] on each row
 * when add is given (view NULL), or *view = where that is (the window's
 * result, or buf) */
static int tp_sum(dt_dist *d, float *buf, const float *part, size_t n, const float *add,
                  size_t width, const float **view) {
  if (d->tp_size > 1 && n > 0) {
    d->n_tp_sum++;
    d->tp_sum_floats += (long long)n;
    d->n_tp_sum_shm += d->shm_ok && n >= DT_SHM_SUM_MIN;
  }
  /* another window sum between dt_tp_sum_part and its dt_tp_sum_into
   * would overwrite the part in the slot */
  DT_CHECK(!d->shm_part_open || part != buf || !shm_path(d, n), DT_EINTERNAL,
           "a tensor-group sum of %zu floats came between dt_tp_sum_part and its dt_tp_sum_into", n);
  if (part != buf) d->shm_part_open = 0;
  if (view) *view = buf;
  if (!shm_path(d, n)) {
    if (part != buf) memcpy(buf, part, sizeof(float) * n);
    DT_CALL(allreduce(d, d->tp, d->tp_size, buf, n, MPI_SUM, "tensor-parallel"));
    if (add)
      for (size_t i = 0; i < n; i += width)
        for (size_t j = 0; j < width; j++) buf[i + j] += add[j];
    return DT_OK;
  }
  const double t0 = dt_now();
  const int rc = shm_sum(d, view ? NULL : buf, part, n, add, width);
  d->comm_s += dt_now() - t0;
  if (view) *view = d->shm_base + (size_t)d->tp_size * d->shm_cap;
  return rc;
}

int dt_tp_sum(dt_dist *d, float *buf, size_t n) { return tp_sum(d, buf, buf, n, NULL, 0, NULL); }
int dt_tp_sum_into(dt_dist *d, float *buf, const float *part, size_t n) {
  return tp_sum(d, buf, part, n, NULL, 0, NULL);
}
int dt_tp_sum_view(dt_dist *d, float *buf, const float *part, size_t n, const float *add,
                   size_t width, const float **sum) {
  return tp_sum(d, buf, part, n, add, width, sum);
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
