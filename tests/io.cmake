# io/: safetensors, model configs, datasets.
dt_add_test(test_safetensors SOURCES test_safetensors.c)
dt_add_test(test_hf_config SOURCES test_hf_config.c)
dt_add_test(test_arch SOURCES test_arch.c)
dt_add_test(test_dataset SOURCES test_dataset.c)
