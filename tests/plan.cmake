# deltatune plan (src/plan.c, src/machine.c, docs/plan.md): described models
# and methods against loaded ones, the LoRA paper's counts, the search and
# the command line; the tensor-group sums of a step counted as the engine
# makes them (2 and 4 ranks); and, through the command line, predicted peak
# RSS within 10% of train's measured one and checkpoint variables equal to
# the written file minus its header, at 1-4 ranks.
dt_add_test(test_plan SOURCES test_plan.c LABELS plan)
dt_add_test(test_plan_comm_np2 SOURCES test_plan_comm.c NP 2 LABELS "plan;parallel")
add_test(NAME test_plan_comm_np4 COMMAND ${DT_MPIRUN} -np 4 $<TARGET_FILE:test_plan_comm_np2>)
set_tests_properties(test_plan_comm_np4 PROPERTIES PROCESSORS 4 TIMEOUT 300 LABELS "plan;parallel"
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
dt_add_test(test_plan_cli SOURCES test_plan_cli.c ARGS ${DT_MPIRUN} RANKS 4 TIMEOUT 1200 LABELS plan)
target_link_libraries(test_plan_cli PRIVATE PkgConfig::JANSSON)
