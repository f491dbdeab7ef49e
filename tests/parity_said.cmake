set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_parity_test(parity_gpt2_said gpt2 said 2e-5 --method said --said-dim 24
  --init-from ${F}/gpt2/said/init.safetensors,${F}/gpt2/said/projection.safetensors)
dt_add_parity_test(parity_llama_said llama said 2e-5 --method said --said-dim 24
  --init-from ${F}/llama/said/init.safetensors,${F}/llama/said/projection.safetensors)
dt_add_identity_test(identity_gpt2_said gpt2 --method said)
dt_add_identity_test(identity_llama_said llama --method said --said-dim 64)
dt_add_test(test_fastfood SOURCES test_fastfood.c)
dt_add_test(test_said SOURCES test_said.c ARGS ${DT_MPIRUN} RANKS 2 TIMEOUT 120)
