set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_parity_test(parity_gpt2_prompt gpt2 prompt 2e-5 --method prompt --prompt-tokens 3
  --init-from ${F}/gpt2/prompt/init.safetensors)
dt_add_parity_test(parity_llama_prompt llama prompt 2e-5 --method prompt --prompt-tokens 3
  --init-from ${F}/llama/prompt/init.safetensors)
dt_add_parity_test(parity_gpt2_prompt_recompute gpt2 prompt 2e-5 --method prompt --prompt-tokens 3
  --recompute --init-from ${F}/gpt2/prompt/init.safetensors)
# --prompt-init ids:/vocab copy token embedding rows (fp32 and bf16 backbones), bad ids fail
dt_add_test(test_prompt_init SOURCES test_prompt_init.c)
