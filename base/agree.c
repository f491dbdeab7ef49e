/* Agreement on errors before collectives (see agree.h). */
#include "agree.h"

#include <stdio.h>

#include "error.h"
#include "mpicheck.h"

int dt_agree(int rc, MPI_Comm comm) {
  int rank, size, world;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  int mine = rc ? rank : size, first = size;
  /* a failing agreement is an MPI error of its own: not agreed, so main
   * aborts the job (no rank is left waiting) */
  if (size > 1)
    DT_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm),
           "MPI_Allreduce of the ranks' results (dt_agree)");
  else
    first = mine;
  if (first == size) return DT_OK;
  if (size > 1) {
    struct {
      int code;
      char msg[2048];
    } e;
    if (rank == first) {
      e.code = rc;
      snprintf(e.msg, sizeof e.msg, "%s", dt_error_message());
    }
    DT_MPI(MPI_Bcast(&e, (int)sizeof e, MPI_BYTE, first, comm),
           "MPI_Bcast of the first failing rank's error (dt_agree)");
    if (rank != first) /* the first failing rank's error, here too */
      rc = dt_error_set(e.code, __FILE__, __LINE__, __func__, "%s", e.msg);
  }
  if (size == world) dt_error_mark_agreed();
  return rc;
}
