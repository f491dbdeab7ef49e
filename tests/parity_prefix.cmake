set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_parity_test(parity_gpt2_prefix gpt2 prefix 2e-5 --method prefix --prefix-tokens 3
  --init-from ${F}/gpt2/prefix/init.safetensors)
dt_add_parity_test(parity_llama_prefix llama prefix 2e-5 --method prefix --prefix-tokens 3
  --init-from ${F}/llama/prefix/init.safetensors)
dt_add_parity_test(parity_gpt2_prefix_proj gpt2 prefix_proj 2e-5 --method prefix --prefix-tokens 3
  --prefix-hidden 32 --init-from ${F}/gpt2/prefix_proj/init.safetensors)
dt_add_parity_test(parity_llama_prefix_proj llama prefix_proj 2e-5 --method prefix --prefix-tokens 3
  --prefix-hidden 32 --init-from ${F}/llama/prefix_proj/init.safetensors)
# the same runs with activations recomputed in backward
dt_add_parity_test(parity_llama_prefix_proj_recompute llama prefix_proj 2e-5 --method prefix
  --prefix-tokens 3 --prefix-hidden 32 --recompute --init-from ${F}/llama/prefix_proj/init.safetensors)
dt_add_parity_test(parity_gpt2_prefix_recompute gpt2 prefix 2e-5 --method prefix --prefix-tokens 3
  --recompute --init-from ${F}/gpt2/prefix/init.safetensors)
