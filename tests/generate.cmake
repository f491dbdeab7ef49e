# Generation (issue 23): the key/value cache against the full forward on
# every method family (test_decode.c); the command at 1 and 2 ranks, and
# against transformers' generate() (test_generate.c).
dt_add_test(test_decode SOURCES test_decode.c)
dt_add_test(test_generate SOURCES test_generate.c ARGS ${DT_MPIRUN} RANKS 2 TIMEOUT 600)
target_link_libraries(test_generate PRIVATE PkgConfig::JANSSON)
