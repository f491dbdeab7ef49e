# Falcon (issue 24) on the tiny models of tests/data/families
# (tests/parity/make_family_models.py writes them from the GPT-2 fixture's
# weights, read as 8 heads of 6): falcon (new_decoder_architecture, the
# Falcon-40B/180B block: query_key_value per key/value group of 2 query
# heads, ln_attn and ln_mlp, no linear biases, untied lm_head), falcon_mq
# (Falcon-7B's block: multi_query, one input_layernorm feeding attention and
# MLP, biases, tied head) and falcon_seq (the old per-head layout, a
# sequential block, the legacy rope_theta, gelu_new).
# - the forward pass against the numpy reference (reference_forward.py) at
#   1 rank and tensor-parallel on 2 and 3 ranks (falcon: 4 key/value groups,
#   uneven on 3, each rank whole groups with their query heads; falcon_mq:
#   the one key/value head on one rank);
# - the backward against finite differences with every kind of method.
set(FAM ${DT_TESTDATA_DIR}/families)
set(BG ${DT_TESTDATA_DIR}/hf-parity/gpt2/batch.safetensors)
foreach(model falcon falcon_mq falcon_seq)
  dt_family_reference(${model} ${FAM}/${model}/model ${BG} 2 3)
endforeach()
# prefix tuning (PEFT's table through --init-from) with a key/value per
# query head, as PEFT's Falcon prefix: query head h attends to prefix head h,
# not its group's; 1 rank, 3 ranks of uneven groups (each rank the prefix
# rows of its groups' query heads) and falcon_mq on 2 ranks (one rank holds
# every query head, the other none)
set(REF /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/parity/reference_forward.py
  $<TARGET_FILE:deltatune>)
set(W ${CMAKE_CURRENT_BINARY_DIR}/family_reference)
add_test(NAME family_reference_falcon_prefix COMMAND ${REF} ${FAM}/falcon/model ${BG}
  ${W}/falcon_prefix:prefix=3)
add_test(NAME family_reference_falcon_prefix_tp3 COMMAND ${REF} ${FAM}/falcon/model ${BG}
  ${W}/falcon_prefix_tp3:prefix=3 1e-5 ${DT_MPIRUN} -np 3 -- --tp 3)
add_test(NAME family_reference_falcon_mq_prefix_tp2 COMMAND ${REF} ${FAM}/falcon_mq/model ${BG}
  ${W}/falcon_mq_prefix_tp2:prefix=3 1e-5 ${DT_MPIRUN} -np 2 -- --tp 2)
set_tests_properties(family_reference_falcon_prefix_tp3 PROPERTIES PROCESSORS 3)
set_tests_properties(family_reference_falcon_mq_prefix_tp2 PROPERTIES PROCESSORS 2)
foreach(t falcon_prefix falcon_prefix_tp3 falcon_mq_prefix_tp2)
  set_tests_properties(family_reference_${t} PROPERTIES TIMEOUT 120
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
endforeach()

# the backward against finite differences: every weight and bias (full), LoRA
# on every module with BitFit, IA3 on the default targets, prefix, prompt,
# SAID and the recomputed pass; the three block forms (the shared norm's
# gradient gathers the attention's and the MLP's parts)
set(DN --data ${BG} --batch-size 2 --min-norm 5e-4)
foreach(model falcon falcon_mq falcon_seq)
  dt_add_gradcheck(gradcheck_${model}_full falcon --model ${FAM}/${model}/model ${DN} --method full)
  dt_add_gradcheck(gradcheck_${model}_bitfit_lora falcon --model ${FAM}/${model}/model ${DN}
    --method lora,bitfit --lora-init random
    --lora-targets query_key_value,dense,dense_h_to_4h,dense_4h_to_h)
  dt_add_gradcheck(gradcheck_${model}_lora_ia3 falcon --model ${FAM}/${model}/model ${DN}
    --method lora,ia3 --lora-init random)
  dt_add_gradcheck(gradcheck_${model}_prefix falcon --model ${FAM}/${model}/model ${DN}
    --method prefix --prefix-tokens 2 --prefix-hidden 16)
  dt_add_gradcheck(gradcheck_${model}_prompt_ia3 falcon --model ${FAM}/${model}/model ${DN}
    --method prompt,ia3 --prompt-tokens 3)
endforeach()
dt_add_gradcheck(gradcheck_falcon_said falcon --model ${FAM}/falcon/model ${DN} --method said
  --said-dim 24)
dt_add_gradcheck(gradcheck_falcon_recompute falcon --model ${FAM}/falcon/model ${DN}
  --method lora,prefix --lora-init random --prefix-tokens 3 --recompute)
dt_add_gradcheck(gradcheck_falcon_adapter falcon --model ${FAM}/falcon_mq/model ${DN}
  --method adapter,ia3 --adapter-size 4 --adapter-init-std 0.1)

# transformers' and PEFT's own fixtures (tests/data/hf-parity/falcon,
# falcon_mq, falcon_seq: tests/parity/device_run.sh falcon falcon_mq
# falcon_seq on the 16-core machine, transformers 5.17, peft 0.21,
# 2026-12-05, from the three models above on the GPT-2 batch): every method
# at 1 rank, LoRA on 3 uneven shards and on 2 replicas x 2 shards
# (tests/families.cmake). LoRA on PEFT's default query_key_value with the
# FFN's output dense_4h_to_h, IA3 on PEFT's falcon mapping. Prefix tuning
# on falcon and falcon_seq (falcon's prefix fixtures: device_run.sh falcon,
# 2026-12-05 16:45 UTC, a key/value per query head as deltatune's). None on
# falcon_mq: PEFT cannot train one there (its prefix has a key/value per
# query head, 8, and the multi-query block's keys 1 head: "Sizes of tensors
# must match ... Expected size 8 but got size 1", transformers 5.17, peft
# 0.21); deltatune's is checked against the numpy reference above.
dt_hf_family(falcon query_key_value,dense_4h_to_h query_key_value,dense_4h_to_h dense_4h_to_h)
dt_hf_family(falcon_mq query_key_value,dense_4h_to_h query_key_value,dense_4h_to_h dense_4h_to_h
  NO_PREFIX)
dt_hf_family(falcon_seq query_key_value,dense_4h_to_h query_key_value,dense_4h_to_h dense_4h_to_h)

# config.json's variants, defaults and refusals; plan's parameter counts of
# synthetic:falcon-40b and falcon-180b equal the published ones
dt_add_test(test_falcon SOURCES test_falcon.c LABELS plan)
target_link_libraries(test_falcon PRIVATE PkgConfig::JANSSON)

# the synthetic family (Falcon-40B/180B's block: grouped query_key_value,
# ln_attn / ln_mlp, no linear biases): finite differences of every weight
dt_add_gradcheck(gradcheck_synth_falcon_full falcon
  --model synthetic:falcon:layers=2,d=48,heads=8,kv_heads=2,vocab=96,ctx=32 ${DN} --method full)
