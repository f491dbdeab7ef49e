dt_add_test(test_cli SOURCES test_cli.c RANKS 2 TIMEOUT 300)
