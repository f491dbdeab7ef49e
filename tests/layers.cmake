# The layer rule (docs/design.md, "Layers"). Each probe is compiled against
# one layer's include path (an object library linked to that layer only,
# built on demand by the test): an include that goes up or sideways must
# fail with the compiler's "No such file" for the header named, and the
# control, which includes downwards, must build. layer_graph checks every
# include of the tree and the call graph of the libraries for upward
# includes and cycles, and that no file outside the family descriptors and
# the config reader names a family (tests/layers/check_layers.py).
function(dt_layer_probe name source layer)
  add_library(${name} OBJECT EXCLUDE_FROM_ALL ${CMAKE_CURRENT_SOURCE_DIR}/layers/${source})
  target_link_libraries(${name} PRIVATE ${layer})
endfunction()
dt_layer_probe(dt_probe_mpi_up mpi_includes_model.c dt_mpi)
dt_layer_probe(dt_probe_io_up io_includes_mpi.c dt_io)
dt_layer_probe(dt_probe_mpi_sideways mpi_includes_tokenizer.c dt_mpi)
dt_layer_probe(dt_probe_base_up base_includes_params.c dt_base)
dt_layer_probe(dt_probe_mpi_down mpi_includes_down.c dt_mpi)
function(dt_layer_test name target)
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${target})
  set_tests_properties(${name} PROPERTIES TIMEOUT 120 LABELS layers ${ARGN})
endfunction()
dt_layer_test(layer_up dt_probe_mpi_up PASS_REGULAR_EXPRESSION "model\\.h: No such file or directory")
dt_layer_test(layer_io dt_probe_io_up PASS_REGULAR_EXPRESSION "dist\\.h: No such file or directory")
dt_layer_test(layer_sideways dt_probe_mpi_sideways PASS_REGULAR_EXPRESSION "tokenizer\\.h: No such file or directory")
dt_layer_test(layer_base dt_probe_base_up PASS_REGULAR_EXPRESSION "params\\.h: No such file or directory")
dt_layer_test(layer_down dt_probe_mpi_down)
# the probes that must fail are built one at a time (one build tree)
set_tests_properties(layer_up layer_io layer_sideways layer_base layer_down PROPERTIES RESOURCE_LOCK dt_layer_probes)
add_test(NAME layer_graph COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/layers/check_layers.py
         ${CMAKE_SOURCE_DIR} $<TARGET_FILE:dt_base> $<TARGET_FILE:dt_text> $<TARGET_FILE:dt_io>
         $<TARGET_FILE:dt_mpi> $<TARGET_FILE:dt_engine> $<TARGET_FILE:dt_drivers>)
set_tests_properties(layer_graph PROPERTIES TIMEOUT 60 LABELS layers)
