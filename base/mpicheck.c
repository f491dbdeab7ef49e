/* MPI results as errors. See mpicheck.h. */
#include "mpicheck.h"

#include "error.h"

int dt_mpi_error(int mpirc, const char *file, int line, const char *func, const char *what) {
  char s[MPI_MAX_ERROR_STRING] = "";
  int len = 0, cls = 0;
  if (MPI_Error_string(mpirc, s, &len) != MPI_SUCCESS) s[0] = 0;
  if (MPI_Error_class(mpirc, &cls) != MPI_SUCCESS) cls = mpirc;
  return dt_error_set(DT_EMPI, file, line, func, "%s failed: %s (MPI error class %d)", what,
                      s[0] ? s : "unknown MPI error", cls);
}

int dt_mpi_result(int mpirc, const char *file, int line, const char *func, const char *what) {
  return mpirc == MPI_SUCCESS ? DT_OK : dt_mpi_error(mpirc, file, line, func, what);
}

int dt_mpi_errors_return(MPI_Comm comm) {
  DT_MPI(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN),
         "MPI_Comm_set_errhandler(MPI_ERRORS_RETURN)");
  return DT_OK;
}

int dt_mpi_win_errors_return(MPI_Win win) {
  DT_MPI(MPI_Win_set_errhandler(win, MPI_ERRORS_RETURN),
         "MPI_Win_set_errhandler(MPI_ERRORS_RETURN)");
  return DT_OK;
}
