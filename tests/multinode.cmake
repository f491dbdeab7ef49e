# The multinode tests (label multinode; docs/testing.md, "The virtual
# cluster"): one virtual cluster of 3 nodes (network and UTS namespaces,
# munge, slurmctld, a slurmd per node; tests/cluster/vcluster.sh) brought up
# once by the fixture multinode_up and taken down by multinode_down, the
# tests in between one at a time (RESOURCE_LOCK: they share the 2 cores and
# the cluster). Needs root; a cluster that cannot start fails the tests
# (never a skip). Not in the sanitizer suite (tests/CMakeLists.txt).
string(MD5 dt_vc_hash "${CMAKE_BINARY_DIR}")
string(SUBSTRING "${dt_vc_hash}" 0 8 dt_vc_hash)
set(DT_VC_DIR /tmp/dt-vc-${dt_vc_hash})
set(dt_vc ${CMAKE_CURRENT_SOURCE_DIR}/cluster)
# DT_VC_OWNER=0: the cluster outlives the setup test; its watchdog stops it
# after DT_VC_LIFETIME seconds if multinode_down never runs
add_test(NAME multinode_up COMMAND bash ${dt_vc}/vcluster.sh up ${DT_VC_DIR} 3)
add_test(NAME multinode_down COMMAND bash ${dt_vc}/vcluster.sh down ${DT_VC_DIR})
set_tests_properties(multinode_up PROPERTIES FIXTURES_SETUP vcluster TIMEOUT 60
  ENVIRONMENT "DT_VC_OWNER=0;DT_VC_LIFETIME=900")
set_tests_properties(multinode_down PROPERTIES FIXTURES_CLEANUP vcluster TIMEOUT 60)
# the MPI_Init barrier across nodes (test fence)
add_executable(vc_init_barrier cluster/init_barrier.c)
target_link_libraries(vc_init_barrier PRIVATE MPI::MPI_C)
foreach(t fence parity share ckpt jobs plan)
  add_test(NAME multinode_${t} COMMAND bash ${dt_vc}/test_multinode.sh ${t} ${CMAKE_BINARY_DIR}
           ${CMAKE_SOURCE_DIR} ${DT_VC_DIR})
  set_tests_properties(multinode_${t} PROPERTIES FIXTURES_REQUIRED vcluster TIMEOUT 300)
endforeach()
foreach(t up down fence parity share ckpt jobs plan)
  set_tests_properties(multinode_${t} PROPERTIES LABELS multinode PROCESSORS 2 RESOURCE_LOCK vcluster)
endforeach()
