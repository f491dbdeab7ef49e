#include "shmwin.h"

#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "mpicheck.h"

int dt_shmwin_alloc(dt_shmwin *w, MPI_Comm comm, size_t bytes, const char *what) {
  int rank = 0;
  DT_MPI(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank of a shared-memory window's group");
  /* 64 bytes more to align the base: a mapping is page aligned in every
   * process, so the same offset aligns it in all of them */
  const MPI_Aint mine_bytes = rank == 0 ? (MPI_Aint)(bytes + 64) : 0;
  void *mine = NULL, *base = NULL;
  w->base = NULL;
  DT_CHECK(MPI_Win_allocate_shared(mine_bytes, 1, MPI_INFO_NULL, comm, &mine, &w->win) ==
               MPI_SUCCESS,
           DT_EMPI, "cannot allocate %zu MB of shared memory for %s", bytes >> 20, what);
  DT_CALL(dt_mpi_win_errors_return(w->win));
  MPI_Aint sz;
  int du;
  char q[160];
  snprintf(q, sizeof q, "MPI_Win_shared_query of the window of %s", what);
  DT_MPI(MPI_Win_shared_query(w->win, 0, &sz, &du, &base), q);
  w->base = (void *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
  w->bytes = bytes;
  return DT_OK;
}

void dt_shmwin_free(dt_shmwin *w) {
  if (w->base) MPI_Win_free(&w->win);
  w->base = NULL;
  w->bytes = 0;
}
