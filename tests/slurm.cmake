# The batch jobs on a real single-node Slurm cluster (munge, slurmctld,
# slurmd in a scratch folder), the installed module loaded with Lmod.
# Exit 77 = skipped (no root, no Slurm/munge/Lmod, or Slurm does not start
# here), except under CI=true, where that is a failure; the reason is printed. RESOURCE_LOCK: one cmake --install at a time.
add_test(NAME slurm_jobs COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm/test_slurm_jobs.sh
         ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(slurm_jobs PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 420 LABELS slurm
  PROCESSORS 2 RESOURCE_LOCK deltatune_install)
