# Reliability (docs/reliability.md): bad input at every entry point, one
# message and the exit code on 2 ranks; faults (a rank killed, a non-finite
# loss, a read-only or full output folder) end the job with the last good
# checkpoint intact.
dt_add_test(test_bad_input SOURCES test_bad_input.c RANKS 2 TIMEOUT 900 LABELS reliability)
dt_add_test(test_faults SOURCES test_faults.c RANKS 2 TIMEOUT 600 LABELS reliability)
# Output collisions and locks: two tasks of a sweep on one folder or metrics
# file, a second run on a held folder, a stale lock (2 ranks).
dt_add_test(test_outputs SOURCES test_outputs.c TIMEOUT 300 LABELS reliability)
set_tests_properties(test_outputs PROPERTIES PROCESSORS 2)
# Fault injection: short trainings killed (one rank, SIGKILL), stopped (the
# job, SIGTERM) or starved of disk at random moments, resumed until done:
# every final checkpoint name inspects, the deltas equal an uninterrupted
# run's. Seeded (the seed is printed); until 24 faults land, the kinds in turn.
add_test(NAME fault_inject COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/fault_inject.sh
         $<TARGET_FILE:deltatune> ${CMAKE_SOURCE_DIR} ${DT_MPIRUN})
set_tests_properties(fault_inject PROPERTIES TIMEOUT 300 LABELS reliability PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
# MPI errors come back as values (MPI_ERRORS_RETURN, DT_MPI): a failing
# collective on a split communicator and on a shared window (2 ranks).
dt_add_test(test_mpi_errors SOURCES test_mpi_errors.c NP 2 TIMEOUT 60 LABELS reliability)
