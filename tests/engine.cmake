# The frozen backbone: eval parity with transformers, finite-difference
# gradients on every layer type, both families, other shapes and seeds.
# The elementwise kernels' sums: the fused exponential sum bit for bit, the
# norms against a long double evaluation of their formulas.
dt_add_test(test_vmath SOURCES test_vmath.c)
dt_add_test(test_eval_base SOURCES test_eval_base.c)
target_link_libraries(test_eval_base PRIVATE PkgConfig::JANSSON)
set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_gradcheck(gradcheck_gpt2_full fixtures --model ${F}/gpt2/model --data ${F}/gpt2/batch.safetensors --batch-size 2 --method full)
dt_add_gradcheck(gradcheck_llama_full fixtures --model ${F}/llama/model --data ${F}/llama/batch.safetensors --batch-size 2 --method full)
dt_add_gradcheck(gradcheck_gpt2_lora fixtures --model ${F}/gpt2/model --data ${F}/gpt2/batch.safetensors --batch-size 2
  --method lora --lora-rank 4 --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
dt_add_gradcheck(gradcheck_llama_lora_fresh fixtures --model ${F}/llama/model --data ${F}/llama/batch.safetensors --batch-size 2
  --method lora --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
# other shapes: GQA with one kv head, odd widths, more layers; synthetic weights from another seed
dt_add_gradcheck(gradcheck_synth_llama_full synth_llama --model synthetic:llama:layers=3,d=40,heads=5,kv_heads=1,ffn=72,vocab=96,ctx=64
  --seed 5 --data ${F}/llama/batch.safetensors --batch-size 2 --method full --min-norm 1e-5)
dt_add_gradcheck(gradcheck_synth_gpt2_full synth_gpt2 --model synthetic:gpt2:layers=3,d=36,heads=3,ffn=100,vocab=96,ctx=40
  --seed 9 --data ${F}/gpt2/batch.safetensors --batch-size 2 --method full --min-norm 1e-5)
# every method on shapes and seeds other than the fixtures': GQA with one kv
# head and odd widths (llama), 3 heads of 12 (gpt2); methods composed
set(SL synthetic:llama:layers=3,d=40,heads=5,kv_heads=1,ffn=72,vocab=96,ctx=64)
set(SG synthetic:gpt2:layers=3,d=36,heads=3,ffn=100,vocab=96,ctx=40)
set(DL --data ${F}/llama/batch.safetensors --batch-size 2 --seed 11 --min-norm 1e-3)
set(DG --data ${F}/gpt2/batch.safetensors --batch-size 2 --seed 13 --min-norm 1e-3)
dt_add_gradcheck(gradcheck_synth_llama_lora synth_llama --model ${SL} ${DL} --method lora --lora-init random --lora-rank 3 --lora-alpha 2
  --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --lora-rslora)
dt_add_gradcheck(gradcheck_synth_gpt2_lora_bitfit synth_gpt2 --model ${SG} ${DG} --method lora,bitfit --lora-init random
  --lora-targets c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj)
dt_add_gradcheck(gradcheck_synth_llama_adapter_ia3 synth_llama --model ${SL} ${DL} --method adapter,ia3 --adapter-size 5 --adapter-init-std 0.1)
dt_add_gradcheck(gradcheck_synth_gpt2_adapter_ia3 synth_gpt2 --model ${SG} ${DG} --method ia3,adapter --adapter-size 4 --adapter-init-std 0.1)
dt_add_gradcheck(gradcheck_synth_llama_prefix_mlp synth_llama --model ${SL} ${DL} --method prefix --prefix-tokens 4 --prefix-hidden 16)
dt_add_gradcheck(gradcheck_synth_gpt2_prefix synth_gpt2 --model ${SG} ${DG} --method prefix --prefix-tokens 2)
dt_add_gradcheck(gradcheck_synth_llama_prompt synth_llama --model ${SL} ${DL} --method prompt --prompt-tokens 4 --prompt-init vocab)
dt_add_gradcheck(gradcheck_synth_gpt2_prompt_lastlayer synth_gpt2 --model ${SG} ${DG} --method prompt,lastlayer --prompt-tokens 3 --last-layers 2 --last-layers-head yes)
dt_add_gradcheck(gradcheck_synth_llama_recompute synth_llama --model ${SL} ${DL} --method lora,prefix --lora-init random --prefix-tokens 2 --recompute)
# bf16 products (--matmul-dtype bf16, oneDNN) against a double reference
dt_add_test(test_gemm_bf16 SOURCES test_gemm_bf16.c)
# attention's products in bf16 against its fp32 products, every layout
dt_add_test(test_attention_bf16 SOURCES test_attention_bf16.c)
# attention's fp32 products (AVX-512 tile, no packing) against a double reference
dt_add_test(test_sgemm_small SOURCES test_sgemm_small.c)
# --matmul-dtype bf16 end to end: PEFT fixtures, fp32 products, 2 ranks --tp 2
dt_add_test(test_bf16_products SOURCES test_bf16_products.c)
target_link_libraries(test_bf16_products PRIVATE PkgConfig::JANSSON)
target_compile_definitions(test_bf16_products PRIVATE
  DT_TEST_MPIRUN="${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe")
set_tests_properties(test_bf16_products PROPERTIES PROCESSORS 2)
