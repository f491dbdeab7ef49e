/* One MPI-3 shared-memory window over the ranks of a node-local
 * communicator: the first rank of comm allocates it, the others map the
 * same memory. Used for the frozen weights shared by the replicas of a node
 * (--share-weights), the residual stream shared by a tensor group and the
 * slots of the tensor group's shared-memory sums. */
#ifndef DT_SHMWIN_H
#define DT_SHMWIN_H

#include <mpi.h>
#include <stddef.h>

typedef struct {
  MPI_Win win;
  void *base;   /* this rank's view, 64-byte aligned; NULL: not allocated */
  size_t bytes; /* usable bytes from base */
} dt_shmwin;

/* Allocate `bytes` (rank 0 of comm; every rank passes the same value) and
 * map them on every rank of comm, with MPI_ERRORS_RETURN on the window.
 * `what` names the contents in errors ("the frozen weights"). Collective
 * over comm, whose ranks must share a node (MPI_COMM_TYPE_SHARED). */
int dt_shmwin_alloc(dt_shmwin *w, MPI_Comm comm, size_t bytes, const char *what);
/* Free the window (collective over its communicator); no-op when none. */
void dt_shmwin_free(dt_shmwin *w);

#endif
