set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_parity_test(parity_gpt2_ia3 gpt2 ia3 2e-5 --method ia3 --ia3-targets c_attn,mlp.c_proj
  --ia3-ff mlp.c_proj --init-from ${F}/gpt2/ia3/init.safetensors)
dt_add_parity_test(parity_llama_ia3 llama ia3 2e-5 --method ia3 --ia3-targets k_proj,v_proj,down_proj
  --ia3-ff down_proj --init-from ${F}/llama/ia3/init.safetensors)
# the defaults are PEFT's (same targets as the fixtures)
dt_add_parity_test(parity_gpt2_ia3_defaults gpt2 ia3 2e-5 --method ia3
  --init-from ${F}/gpt2/ia3/init.safetensors)
dt_add_parity_test(parity_llama_ia3_defaults llama ia3 2e-5 --method ia3
  --init-from ${F}/llama/ia3/init.safetensors)
dt_add_identity_test(identity_gpt2_ia3 gpt2 --method ia3
  --ia3-targets c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj --ia3-ff mlp.c_fc,mlp.c_proj)
dt_add_identity_test(identity_llama_ia3 llama --method ia3
  --ia3-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --ia3-ff up_proj,down_proj)
dt_add_test(test_ia3 SOURCES test_ia3.c)
