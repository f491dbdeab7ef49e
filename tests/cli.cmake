dt_add_test(test_cli SOURCES test_cli.c TIMEOUT 300)
