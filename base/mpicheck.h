/* MPI results as errors (docs/reliability.md, "MPI errors").
 *
 * main sets MPI_ERRORS_RETURN on MPI_COMM_WORLD (the communicators split
 * from it inherit it) and dt_mpi_win_errors_return on every window the tool
 * creates, so that a failing MPI call returns instead of killing the job
 * with MPI's own message. Every call is then checked with DT_MPI, which
 * turns a failure into DT_EMPI naming the call, what it carried and MPI's
 * error string. An MPI error is not agreed on (the communicator may be
 * broken): main aborts the job (MPI_Abort) after printing it. */
#ifndef DT_MPICHECK_H
#define DT_MPICHECK_H

#include <mpi.h>

/* Record DT_EMPI for MPI result mpirc of `what` (e.g. "MPI_Allreduce of the
 * loss over the data-parallel group"); returns DT_EMPI. */
int dt_mpi_error(int mpirc, const char *file, int line, const char *func, const char *what);

/* Return from the calling function with DT_EMPI when call fails. */
#define DT_MPI(call, what)                                                         \
  do {                                                                             \
    int dt_mpi_rc_ = (call);                                                       \
    if (dt_mpi_rc_ != MPI_SUCCESS)                                                 \
      return dt_mpi_error(dt_mpi_rc_, __FILE__, __LINE__, __func__, (what));       \
  } while (0)

/* DT_OK when mpirc is MPI_SUCCESS, else dt_mpi_error (for loops that must
 * leave through their own cleanup). */
int dt_mpi_result(int mpirc, const char *file, int line, const char *func, const char *what);
#define DT_MPI_RC(call, what) dt_mpi_result((call), __FILE__, __LINE__, __func__, (what))

/* MPI_ERRORS_RETURN on a communicator / a window (DT_EMPI on failure). */
int dt_mpi_errors_return(MPI_Comm comm);
int dt_mpi_win_errors_return(MPI_Win win);

#endif
