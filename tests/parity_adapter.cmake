set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_parity_test(parity_gpt2_adapter gpt2 adapter 2e-5 --method adapter --adapter-size 8
  --init-from ${F}/gpt2/adapter/init.safetensors)
dt_add_parity_test(parity_llama_adapter llama adapter 2e-5 --method adapter --adapter-size 8
  --init-from ${F}/llama/adapter/init.safetensors)
dt_add_identity_test(identity_gpt2_adapter gpt2 --method adapter --adapter-size 8)
dt_add_identity_test(identity_llama_adapter llama --method adapter)
dt_add_test(test_adapter SOURCES test_adapter.c)
