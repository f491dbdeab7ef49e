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
# under --tp 2: the row-parallel matrices' row (int8) and block (nf4) scales
# are agreed over the tensor group, so the numbers are the one-rank ones (the
# GPT-2 fixture's attention output has 48 columns, 24 a rank: one nf4 block
# that both ranks share)
foreach(w nf4)
  dt_case(parity_np2_quant test_parity 2 parity parity_llama_lora_${w}_tp2 ${Q}/llama-${w} lora 2e-5
    --tp 2 --weights-dtype ${w} --method lora --lora-rank 4 --lora-alpha 8
    --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
  dt_case(parity_np2_quant test_parity 2 parity parity_gpt2_lora_${w}_tp2 ${Q}/gpt2-${w} lora 2e-5
    --tp 2 --weights-dtype ${w} --method lora --lora-rank 4 --lora-alpha 8
    --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
endforeach()
dt_case(parity_np2_quant test_parity 2 parity parity_llama_lora_int8_tp2 ${Q}/llama-int8 lora 2e-5
  --tp 2 --weights-dtype int8 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
dt_case(parity_np2_quant test_parity 2 parity parity_gpt2_lora_int8_tp2 ${Q}/gpt2-int8 lora 2e-5
  --tp 2 --weights-dtype int8 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
# IA3 on the quantized backbones: its units scale activations (PEFT's
# targets; the feed-forward ones whole sites), so the quantized matrices are
# only multiplied, never read as fp32; 1 rank and --tp 2
foreach(w int8 nf4)
  dt_case(parity_np1_quant test_parity 1 parity parity_gpt2_ia3_${w} ${Q}/gpt2-${w} ia3 2e-5
    --weights-dtype ${w} --method ia3 --ia3-targets c_attn,mlp.c_proj --ia3-ff mlp.c_proj
    --init-from ${F}/gpt2/ia3/init.safetensors)
  dt_case(parity_np1_quant test_parity 1 parity parity_llama_ia3_${w} ${Q}/llama-${w} ia3 2e-5
    --weights-dtype ${w} --method ia3 --ia3-targets k_proj,v_proj,down_proj --ia3-ff down_proj
    --init-from ${F}/llama/ia3/init.safetensors)
endforeach()
dt_case(parity_np2_quant test_parity 2 parity parity_llama_ia3_nf4_tp2 ${Q}/llama-nf4 ia3 2e-5
  --tp 2 --weights-dtype nf4 --method ia3 --ia3-targets k_proj,v_proj,down_proj --ia3-ff down_proj
  --init-from ${F}/llama/ia3/init.safetensors)
dt_case(parity_np2_quant test_parity 2 parity parity_gpt2_ia3_nf4_tp2 ${Q}/gpt2-nf4 ia3 2e-5
  --tp 2 --weights-dtype nf4 --method ia3 --ia3-targets c_attn,mlp.c_proj --ia3-ff mlp.c_proj
  --init-from ${F}/gpt2/ia3/init.safetensors)
# the NF4 code book, block scales, codes and packing against PEFT's NormalFloat
# quantizer on a tensor made on the 16-core machine (tests/refs/nf4_peft_ref.py),
# and the double quantization of the block scales against tests/refs/nf4_dq.py
dt_add_test(test_nf4_reference SOURCES test_nf4_reference.c
  ARGS ${DT_TESTDATA_DIR}/quant/nf4_peft.safetensors ${DT_TESTDATA_DIR}/quant/nf4_dq.safetensors)
# nf4's double-quantized scales under --tp 2 on matrices large enough for
# several nested blocks, cut inside one (a synthetic LLaMA): 1 rank's numbers;
# a bitsandbytes 4-bit folder (src/bnb4.h, tests/data/bnb4) loads as
# deltatune's own nf4 of the same float32 weights, at 1 rank and --tp 2
dt_add_test(test_nf4_tp SOURCES test_nf4_tp.c)
target_compile_definitions(test_nf4_tp PRIVATE
  DT_TEST_MPIRUN="${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe")
set_tests_properties(test_nf4_tp PROPERTIES PROCESSORS 2)
