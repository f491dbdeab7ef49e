#include "dist.h"

#include <string.h>
#include <time.h>

#include "error.h"

/* BLACS C interface (ScaLAPACK's). */
void Cblacs_get(int ctx, int what, int *val);
void Cblacs_gridinit(int *ctx, const char *order, int nprow, int npcol);
void Cblacs_gridexit(int ctx);
int Csys2blacs_handle(MPI_Comm comm);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int dt_dist_init(dt_dist *d, int tp) {
  memset(d, 0, sizeof *d);
  d->world = MPI_COMM_WORLD;
  MPI_Comm_rank(d->world, &d->rank);
  MPI_Comm_size(d->world, &d->size);
  DT_CHECK(tp >= 1 && d->size % tp == 0, DT_EUSAGE,
           "--tp %d does not divide the %d ranks (ranks = data-parallel x tensor-parallel)",
           tp, d->size);
  d->tp_size = tp;
  d->dp_size = d->size / tp;
  d->tp_rank = d->rank % tp;
  d->dp_rank = d->rank / tp;
  DT_CHECK(MPI_Comm_split(d->world, d->dp_rank, d->tp_rank, &d->tp) == MPI_SUCCESS,
           DT_EMPI, "cannot create the tensor-parallel communicator");
  DT_CHECK(MPI_Comm_split(d->world, d->tp_rank, d->dp_rank, &d->dp) == MPI_SUCCESS,
           DT_EMPI, "cannot create the data-parallel communicator");
  d->blacs_ctx = d->blacs_ctx_col = -1;
  if (tp > 1) {
    int ctx = Csys2blacs_handle(d->tp);
    Cblacs_gridinit(&ctx, "Row", 1, tp);
    d->blacs_ctx = ctx;
    ctx = Csys2blacs_handle(d->tp);
    Cblacs_gridinit(&ctx, "Col", tp, 1);
    d->blacs_ctx_col = ctx;
  }
  return DT_OK;
}

void dt_dist_free(dt_dist *d) {
  if (d->blacs_ctx >= 0) Cblacs_gridexit(d->blacs_ctx);
  if (d->blacs_ctx_col >= 0) Cblacs_gridexit(d->blacs_ctx_col);
  if (d->tp != MPI_COMM_NULL && d->tp) MPI_Comm_free(&d->tp);
  if (d->dp != MPI_COMM_NULL && d->dp) MPI_Comm_free(&d->dp);
  memset(d, 0, sizeof *d);
}

static int allreduce(dt_dist *d, MPI_Comm comm, int size, float *buf, size_t n,
                     MPI_Op op, const char *what) {
  if (size <= 1 || n == 0) return DT_OK;
  double t0 = now();
  while (n > 0) { /* counts are int */
    int c = n > (1u << 30) ? (1 << 30) : (int)n;
    DT_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, c, MPI_FLOAT, op, comm) == MPI_SUCCESS,
             DT_EMPI, "all-reduce over the %s group failed", what);
    buf += c;
    n -= (size_t)c;
  }
  d->comm_s += now() - t0;
  return DT_OK;
}

int dt_tp_sum(dt_dist *d, float *buf, size_t n) {
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
