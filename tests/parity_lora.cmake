set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_parity_test(parity_gpt2_lora gpt2 lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
dt_add_parity_test(parity_llama_lora llama lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
dt_add_identity_test(identity_gpt2_lora gpt2 --method lora --lora-targets c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj)
dt_add_identity_test(identity_llama_lora llama --method lora --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)

# LoRA on quantized frozen backbones (--weights-dtype int8 | nf4, src/quant.h)
# against tests/data/hf-parity-quant: the same LoRA trained by PyTorch on the
# fixture backbone quantized and dequantized by tests/refs/make_quant_refs.py.
set(Q ../hf-parity-quant)
foreach(w int8 nf4)
  dt_case(parity_np1_quant test_parity 1 parity parity_gpt2_lora_${w} ${Q}/gpt2-${w} lora 2e-5
    --weights-dtype ${w} --method lora --lora-rank 4 --lora-alpha 8
    --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
  dt_case(parity_np1_quant test_parity 1 parity parity_llama_lora_${w} ${Q}/llama-${w} lora 2e-5
    --weights-dtype ${w} --method lora --lora-rank 4 --lora-alpha 8
    --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
endforeach()
# int8 under --tp 2: the row-parallel matrices' row scales are agreed over
# the tensor group, so the numbers are the one-rank ones
dt_case(parity_np2_quant test_parity 2 parity parity_llama_lora_int8_tp2 ${Q}/llama-int8 lora 2e-5
  --tp 2 --weights-dtype int8 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
dt_case(parity_np2_quant test_parity 2 parity parity_gpt2_lora_int8_tp2 ${Q}/gpt2-int8 lora 2e-5
  --tp 2 --weights-dtype int8 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
