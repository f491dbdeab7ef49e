# Every file the configure and build read from the system belongs to a
# package scripts/install-deps.sh installs (or to a hard dependency of one),
# so the README's commands work on a fresh Debian 12, not only here (issue
# 19). The guard proves the check can fail: the same traced files against
# the list without ocl-icd-opencl-dev (libdnnl-dev's CMake config needs it
# and only recommends it) must name that package. One trace serves both.
set(DT_DEPS_CHECK /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/deps/check_build_deps.py
    ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
add_test(NAME deps_build COMMAND ${DT_DEPS_CHECK} --guard ocl-icd-opencl-dev)
set_tests_properties(deps_build PROPERTIES TIMEOUT 180 LABELS deps)
