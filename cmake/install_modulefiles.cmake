# Run by `cmake --install` (install(SCRIPT) in CMakeLists.txt, after an
# install(CODE) that sets DT_SOURCE_DIR, DT_VERSION, DT_MPI_MODULE and
# DT_MPIEXEC): writes the modulefiles with the prefix actually installed to,
# so that `cmake --install build --prefix P` gives modulefiles naming P.
#   share/deltatune/modulefiles/deltatune/VERSION.lua   Lmod
#   share/deltatune/modulefiles-tcl/deltatune/VERSION   Tcl (Environment Modules)
# They are written straight into the prefix (no shared file in the build
# folder, so parallel installs to different prefixes do not race) and listed
# in install_manifest.txt.

set(DT_MPI_VERSION "an unknown MPI")
execute_process(COMMAND "${DT_MPIEXEC}" --version OUTPUT_VARIABLE out ERROR_QUIET
                RESULT_VARIABLE rc)
if(rc EQUAL 0 AND out MATCHES "\\((OpenRTE|Open MPI)\\) ([0-9][0-9.]*)")
  set(DT_MPI_VERSION "Open MPI ${CMAKE_MATCH_2}")
elseif(rc EQUAL 0 AND out MATCHES "^([^\n]+)")
  set(DT_MPI_VERSION "${CMAKE_MATCH_1}")
endif()

set(PROJECT_VERSION "${DT_VERSION}")
foreach(mf "deltatune.lua.in:modulefiles/deltatune/${DT_VERSION}.lua"
           "deltatune.tcl.in:modulefiles-tcl/deltatune/${DT_VERSION}")
  string(REPLACE ":" ";" mf "${mf}")
  list(GET mf 0 src)
  list(GET mf 1 rel)
  set(dst "${CMAKE_INSTALL_PREFIX}/share/deltatune/${rel}")
  message(STATUS "Installing: $ENV{DESTDIR}${dst}")
  configure_file("${DT_SOURCE_DIR}/modules/${src}" "$ENV{DESTDIR}${dst}" @ONLY)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${dst}")
endforeach()
