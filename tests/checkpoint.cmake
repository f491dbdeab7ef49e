# Checkpoints (io/checkpoint.c, src/ckpt_run.c, inspect, export): the file
# format round trip at 1 to 4 ranks, and the command-line behaviour (resume
# equivalence, interrupted and corrupted writes, other readers, export).
foreach(np 1 2 3 4)
  dt_add_test(test_ckpt_roundtrip_np${np} SOURCES test_ckpt_roundtrip.c NP ${np} TIMEOUT 120)
endforeach()
dt_add_test(test_ckpt_cli SOURCES test_ckpt_cli.c clitest.c ARGS ${DT_MPIRUN} RANKS 3 TIMEOUT 900)
target_link_libraries(test_ckpt_cli PRIVATE PkgConfig::JANSSON)
