dt_add_test(test_sweep_gpt2 SOURCES test_sweep.c ARGS gpt2 RANKS 2 TIMEOUT 300)
add_test(NAME test_sweep_llama COMMAND test_sweep_gpt2 llama)
set_tests_properties(test_sweep_llama PROPERTIES TIMEOUT 300 PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
