# deltatune merge: merged-model logits equal backbone + deltas (LoRA, IA3,
# composed, full from --tp 2, a sharded backbone); refusals.
dt_add_test(test_merge SOURCES test_merge.c clitest.c ARGS ${DT_MPIRUN} RANKS 4 TIMEOUT 600)
target_link_libraries(test_merge PRIVATE PkgConfig::JANSSON)
