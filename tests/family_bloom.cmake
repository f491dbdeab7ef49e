# BLOOM (issue 24) on the tiny models of tests/data/families
# (tests/parity/make_family_models.py writes them from the GPT-2 fixture's
# weights): bloom (4 heads: ALiBi slopes of a power of two, transformers'
# saved keys) and bloom_h6 (6 heads of 8: the interleaved extra slopes,
# BigScience's original keys); both with a drawn word_embeddings_layernorm.
# - the forward pass against the numpy reference (reference_forward.py,
#   ALiBi in transformers' slope * key position form) at 1 rank and
#   tensor-parallel on 2 and 3 ranks (bloom_h6 on 4: uneven, 2 heads on two
#   ranks and 1 on the others), which checks the per-head query_key_value
#   rows and each rank's slopes by global head index;
# - the backward against finite differences with every kind of method
#   (prefix: its key/values at positions 0..P-1 before the tokens, as PEFT
#   extends the attention mask that build_alibi_tensor counts).
set(FAM ${DT_TESTDATA_DIR}/families)
set(BG ${DT_TESTDATA_DIR}/hf-parity/gpt2/batch.safetensors)
set(REF /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/parity/reference_forward.py
  $<TARGET_FILE:deltatune>)
set(W ${CMAKE_CURRENT_BINARY_DIR}/family_reference)
dt_family_reference(bloom ${FAM}/bloom/model ${BG} 2 3)
dt_family_reference(bloom_h6 ${FAM}/bloom_h6/model ${BG} 2 3 4)
# prefix tuning's key/values (PEFT's table through --init-from) at positions
# 0..P-1 before the tokens, ALiBi over the whole mask as transformers counts
# it with PEFT's extended attention mask: 1 rank and 3 ranks
add_test(NAME family_reference_bloom_prefix COMMAND ${REF} ${FAM}/bloom/model ${BG}
  ${W}/bloom_prefix:prefix=3)
add_test(NAME family_reference_bloom_h6_prefix_tp3 COMMAND ${REF} ${FAM}/bloom_h6/model ${BG}
  ${W}/bloom_h6_prefix_tp3:prefix=3 1e-5 ${DT_MPIRUN} -np 3 -- --tp 3)
set_tests_properties(family_reference_bloom_h6_prefix_tp3 PROPERTIES PROCESSORS 3)
foreach(t bloom_prefix bloom_h6_prefix_tp3)
  set_tests_properties(family_reference_${t} PROPERTIES TIMEOUT 120
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
endforeach()

# the backward against finite differences: every weight and bias (full:
# the embedding's norm too), LoRA on every module with BitFit, IA3 on the
# default targets, prefix, prompt (its rows through the embedding's norm),
# SAID and the recomputed pass
set(DN --data ${BG} --batch-size 2 --min-norm 5e-4)
# IA3 and the prompt rows (scaled down by the embedding's norm) have
# gradients near 1e-4 here, where eps 1e-2 leaves fp32 rounding of the loss
# above the tolerance: a wider step (the gradient checked to 3e-3 or better)
set(DS --data ${BG} --batch-size 2 --min-norm 2e-5 --eps 3e-2)
# the prompt rows' gradient (5e-5) moves the loss by about its fp32
# rounding even so: a step of 1e-1 and 1e-2 accepted (a missing norm
# backward is off by far more)
set(DP --data ${BG} --batch-size 2 --min-norm 2e-5 --eps 1e-1 --tol 1e-2)
foreach(model bloom bloom_h6)
  dt_add_gradcheck(gradcheck_${model}_full bloom --model ${FAM}/${model}/model ${DN} --method full)
  dt_add_gradcheck(gradcheck_${model}_bitfit_lora bloom --model ${FAM}/${model}/model ${DN}
    --method lora,bitfit --lora-init random
    --lora-targets query_key_value,dense,dense_h_to_4h,dense_4h_to_h)
  dt_add_gradcheck(gradcheck_${model}_lora_ia3 bloom --model ${FAM}/${model}/model ${DS}
    --method lora,ia3 --lora-init random)
  dt_add_gradcheck(gradcheck_${model}_prefix bloom --model ${FAM}/${model}/model ${DN}
    --method prefix --prefix-tokens 2 --prefix-hidden 16)
  dt_add_gradcheck(gradcheck_${model}_prompt_ia3 bloom --model ${FAM}/${model}/model ${DP}
    --method prompt,ia3 --prompt-tokens 3)
endforeach()
dt_add_gradcheck(gradcheck_bloom_said bloom --model ${FAM}/bloom/model ${DN} --method said
  --said-dim 24)
dt_add_gradcheck(gradcheck_bloom_recompute bloom --model ${FAM}/bloom_h6/model ${DN}
  --method lora,prefix --lora-init random --prefix-tokens 3 --recompute)

# transformers' and PEFT's own fixtures (tests/data/hf-parity/bloom and
# bloom_h6: tests/parity/device_run.sh bloom bloom_h6 on the 16-core machine,
# transformers 5.17, peft 0.21, 2026-12-05, from the two models above on the
# GPT-2 batch): every method at 1 rank, LoRA on 3 uneven shards and on 2
# replicas x 2 shards (tests/families.cmake). LoRA on PEFT's default
# query_key_value with the FFN's output dense_4h_to_h, IA3 on PEFT's bloom
# mapping (query_key_value, the feed-forward mlp.dense_4h_to_h).
foreach(fam bloom bloom_h6)
  dt_hf_family(${fam} query_key_value,dense_4h_to_h query_key_value,mlp.dense_4h_to_h
    mlp.dense_4h_to_h)
endforeach()
