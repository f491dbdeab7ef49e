set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_parity_test(parity_gpt2_lora gpt2 lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
dt_add_parity_test(parity_llama_lora llama lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
dt_add_identity_test(identity_gpt2_lora gpt2 --method lora --lora-targets c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj)
dt_add_identity_test(identity_llama_lora llama --method lora --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
