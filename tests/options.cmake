dt_add_test(test_options SOURCES test_options.c)
dt_add_test(test_params SOURCES test_params.c)
