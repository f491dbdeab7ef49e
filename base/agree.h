/* Agreement on errors before collectives (see docs/reliability.md).
 *
 * An error found by some ranks only (a file one node cannot read, memory
 * one rank lacks) must not leave the others waiting in the next collective:
 * every rank calls dt_agree with its own result before that collective and
 * all of them continue, or all of them stop with the same error. */
#ifndef DT_AGREE_H
#define DT_AGREE_H

#include <mpi.h>

/* Collective over comm. Returns DT_OK when no rank failed; otherwise the
 * code of the lowest failing rank, whose message every rank then holds
 * (failing ranks keep their own traceback). Over a communicator as large as
 * MPI_COMM_WORLD the error is marked agreed (dt_error_agreed): main reports
 * it once and every rank exits with its code. */
int dt_agree(int rc, MPI_Comm comm);

#endif
