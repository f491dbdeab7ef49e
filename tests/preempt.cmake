# Preemption without Slurm: SIGTERM / SIGUSR1 under mpirun -> checkpoint at
# a step boundary, exit code 9, --resume gives the uninterrupted deltas.
add_test(NAME preempt_mpirun COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/preempt/test_preempt.sh
         $<TARGET_FILE:deltatune> ${CMAKE_SOURCE_DIR} ${DT_MPIRUN})
set_tests_properties(preempt_mpirun PROPERTIES TIMEOUT 300 LABELS "jobs;parallel" PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
