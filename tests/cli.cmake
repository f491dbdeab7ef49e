dt_add_test(test_cli SOURCES test_cli.c RANKS 2 TIMEOUT 300)
# Every registered method through train, plan, export, merge and sweep.
dt_add_test(test_method_registry SOURCES test_method_registry.c TIMEOUT 300)
