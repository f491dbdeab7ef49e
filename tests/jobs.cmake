# The job scripts without Slurm (scaling study with mpirun, argument
# handling, peak memory) and the man page against the binary's --help.
add_test(NAME jobs_scripts COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/jobs/test_job_scripts.sh
         ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(jobs_scripts PROPERTIES TIMEOUT 120 LABELS jobs PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
add_test(NAME jobs_manpage COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/jobs/check_manpage.sh
         $<TARGET_FILE:deltatune> ${CMAKE_SOURCE_DIR}/docs/deltatune.1)
set_tests_properties(jobs_manpage PROPERTIES TIMEOUT 30 LABELS jobs)
