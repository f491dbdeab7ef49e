dt_add_test(test_cli SOURCES test_cli.c RANKS 2 TIMEOUT 300)
# Every registered method through train, plan, export, merge and sweep.
dt_add_test(test_method_registry SOURCES test_method_registry.c TIMEOUT 300)
# Adding a method is one file plus one registry line: the test-only methods
# (tests/methods/*.c, registered in src/methods.c's DT_METHOD_TABLE) are
# linked into a test build of the binary only, and the same test drives
# them through every command of that binary, gradcheck included.
file(GLOB DT_TEST_METHODS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/methods/*.c)
add_executable(deltatune_testmethods ${CMAKE_SOURCE_DIR}/src/main.c ${DT_TEST_METHODS})
target_link_libraries(deltatune_testmethods PRIVATE dt_drivers)
dt_add_test(test_method_registry_testmethods SOURCES test_method_registry.c ${DT_TEST_METHODS}
            ARGS $<TARGET_FILE:deltatune_testmethods> gain TIMEOUT 300)
add_dependencies(test_method_registry_testmethods deltatune_testmethods)
