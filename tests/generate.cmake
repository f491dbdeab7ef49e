# Generation (issue 23): the key/value cache against the full forward on
# every method family (test_decode.c); the command across layouts, sampling,
# streaming and bad input (test_generate layouts), and against the
# references of tests/data/generate (test_generate_refs).
dt_add_test(test_decode SOURCES test_decode.c)
dt_add_test(test_generate SOURCES test_generate.c ARGS layouts ${DT_MPIRUN} RANKS 2 TIMEOUT 600)
target_link_libraries(test_generate PRIVATE PkgConfig::JANSSON)
add_test(NAME test_generate_refs COMMAND test_generate refs ${DT_MPIRUN})
# seconds under the sanitizers on a loaded 2-core machine (tests/CMakeLists.txt: COST)
set_tests_properties(test_generate_refs PROPERTIES PROCESSORS 2 TIMEOUT 600 COST 150)
set_tests_properties(test_generate PROPERTIES COST 130)
