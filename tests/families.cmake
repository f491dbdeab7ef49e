# The Qwen2, Mistral and OPT families (issue 24), on the tiny models of
# tests/data/families (tests/parity/make_family_models.py writes them from
# the LLaMA fixture's weights):
# - qwen2_zerobias (q/k/v biases zero) and mistral_w16 (a window longer than
#   any sequence here) compute what hf-parity/llama computes, so transformers'
#   and PEFT's fixtures are their reference: every method (qwen2_zerobias:
#   those that train no bias) at 1 rank and on the layouts of parallel.cmake;
# - qwen2 (biases drawn), qwen2_tied and mistral (window 4 of 12 tokens)
#   against an independent numpy forward pass (tests/parity/reference_forward.py,
#   which reproduces the llama fixture) at 1 rank and tensor-parallel, and
#   their backward against finite differences with every kind of method;
# - opt (the GPT-2 fixture's weights in OPT's files: ReLU, positions offset
#   by 2) likewise against numpy and finite differences.
set(F ${DT_TESTDATA_DIR}/hf-parity)
set(FAM ${DT_TESTDATA_DIR}/families)

# dt_family_parity(MODEL REFERENCE METHOD TOL args...): 1 rank and the
# layouts 2 shards, 2 replicas, 3 uneven shards, 2 replicas x 2 shards
function(dt_family_parity model ref method tol)
  dt_add_parity_test(parity_${model}_${method} ${model}:${ref} ${method} ${tol} ${ARGN})
  foreach(layout "2 2" "2 1" "3 3" "4 2")
    separate_arguments(l UNIX_COMMAND "${layout}")
    list(GET l 0 np)
    list(GET l 1 tp)
    dt_add_parity_test_mpi(parity_np${np}_tp${tp}_${model}_${method} ${np} ${tp} ${model}:${ref}
      ${method} ${tol} ${ARGN})
  endforeach()
endfunction()
foreach(model qwen2_zerobias mistral_w16)
  dt_family_parity(${model} llama lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
    --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
  # (llama's IA3 modules: qwen2's own default scales q_proj where llama's scales k_proj)
  dt_family_parity(${model} llama ia3 2e-5 --method ia3 --ia3-targets k_proj,v_proj,down_proj
    --ia3-ff down_proj --init-from ${F}/llama/ia3/init.safetensors)
  dt_family_parity(${model} llama adapter 2e-5 --method adapter --adapter-size 8
    --init-from ${F}/llama/adapter/init.safetensors)
  dt_family_parity(${model} llama prefix 2e-5 --method prefix --prefix-tokens 3
    --init-from ${F}/llama/prefix/init.safetensors)
  dt_family_parity(${model} llama prefix_proj 2e-5 --method prefix --prefix-tokens 3
    --prefix-hidden 32 --init-from ${F}/llama/prefix_proj/init.safetensors)
  dt_family_parity(${model} llama prompt 2e-5 --method prompt --prompt-tokens 3
    --init-from ${F}/llama/prompt/init.safetensors)
  dt_family_parity(${model} llama said 2e-5 --method said --said-dim 24
    --init-from ${F}/llama/said/init.safetensors,${F}/llama/said/projection.safetensors)
endforeach()
# full and lastlayer train the biases too, which LLaMA has none of: Mistral only
dt_family_parity(mistral_w16 llama full 1e-4 --method full --weights-dtype fp32
  --init-from ${F}/llama/full/init.safetensors)
dt_family_parity(mistral_w16 llama lastlayer 1e-4 --method lastlayer
  --init-from ${F}/llama/lastlayer/init.safetensors)

# the forward pass against numpy: loss and logits, 1 rank and tensor-parallel
set(REF /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/parity/reference_forward.py
  $<TARGET_FILE:deltatune>)
set(B ${F}/llama/batch.safetensors)
set(W ${CMAKE_CURRENT_BINARY_DIR}/family_reference)
dt_family_reference(llama ${F}/llama/model ${B})
foreach(model qwen2 qwen2_tied mistral)
  dt_family_reference(${model} ${FAM}/${model}/model ${B} 2 3)
endforeach()
# 150 tokens: three blocks of queries, the window inside each
dt_family_reference(mistral_150 ${FAM}/mistral/model ${FAM}/mistral/batch150.safetensors 2)
set(BG ${F}/gpt2/batch.safetensors)
dt_family_reference(opt ${FAM}/opt/model ${BG} 2 3)

# the backward against finite differences: the biases (full trains them), the
# window over real and prefix keys, methods on every module
set(DQ --data ${B} --batch-size 2 --min-norm 5e-4)
dt_add_gradcheck(gradcheck_qwen2_full families --model ${FAM}/qwen2/model ${DQ} --method full)
dt_add_gradcheck(gradcheck_qwen2_tied_bitfit_lora families --model ${FAM}/qwen2_tied/model ${DQ}
  --method lora,bitfit --lora-init random
  --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
dt_add_gradcheck(gradcheck_mistral_full families --model ${FAM}/mistral/model ${DQ} --method full)
dt_add_gradcheck(gradcheck_mistral_prefix families --model ${FAM}/mistral/model ${DQ}
  --method prefix --prefix-tokens 2 --prefix-hidden 16)
dt_add_gradcheck(gradcheck_mistral_prompt_ia3 families --model ${FAM}/mistral/model ${DQ}
  --method prompt,ia3 --prompt-tokens 3)
dt_add_gradcheck(gradcheck_opt_full families --model ${FAM}/opt/model --data ${BG}
  --batch-size 2 --min-norm 5e-4 --method full)
# (OPT's default LoRA targets: random LoRA on every module moves the ReLU
# inputs across their kink within a finite-difference step, which the
# smooth activations of the other families never meet)
dt_add_gradcheck(gradcheck_opt_lora_ia3 families --model ${FAM}/opt/model --data ${BG}
  --batch-size 2 --min-norm 5e-4 --method lora,ia3 --lora-init random)
dt_add_gradcheck(gradcheck_opt_prefix families --model ${FAM}/opt/model --data ${BG}
  --batch-size 2 --min-norm 5e-4 --method prefix --prefix-tokens 2 --prefix-hidden 16)
dt_add_gradcheck(gradcheck_mistral_150 families --model ${FAM}/mistral/model
  --data ${FAM}/mistral/batch150.safetensors --batch-size 2 --min-norm 5e-4 --method lora,prefix
  --lora-init random --lora-targets q_proj,k_proj,v_proj --prefix-tokens 3)
dt_add_gradcheck(gradcheck_mistral_recompute families --model ${FAM}/mistral/model ${DQ}
  --method lora,prefix --lora-init random --prefix-tokens 5 --recompute)

# export --format peft with the families' default LoRA and IA3 targets
# (merge: test_merge's test_families)
dt_add_test(test_family_export SOURCES test_family_export.c clitest.c ARGS ${DT_MPIRUN} TIMEOUT 120)
target_link_libraries(test_family_export PRIVATE PkgConfig::JANSSON)

# plan's parameter counts of synthetic:qwen2.5-14b/32b/72b and mistral-7b
# equal the published checkpoints'
dt_add_test(test_family_presets SOURCES test_family_presets.c LABELS plan)
target_link_libraries(test_family_presets PRIVATE PkgConfig::JANSSON)
# and plan counts what transformers' save_pretrained wrote for every family
# (the fixtures' model folders, read by tests/parity/st.py)
set(PC_MODELS)
foreach(fam gpt2 llama qwen2 mistral opt gpt_neox gpt_neox_seq gemma gemma2 bloom bloom_h6 falcon
    falcon_mq falcon_seq)
  list(APPEND PC_MODELS ${F}/${fam}/model)
endforeach()
add_test(NAME plan_counts_families COMMAND /usr/bin/python3
  ${CMAKE_CURRENT_SOURCE_DIR}/parity/plan_counts.py $<TARGET_FILE:deltatune> ${PC_MODELS})
set_tests_properties(plan_counts_families PROPERTIES TIMEOUT 60 LABELS plan)

# the biases and the window on 2, 3 and 4 ranks train as one rank does
dt_add_test(test_family_layouts SOURCES test_family_layouts.c clitest.c ARGS ${DT_MPIRUN} RANKS 4
            TIMEOUT 300 LABELS parallel)

# transformers' and PEFT's own fixtures of the three families (issue 24):
# tests/parity/device_run.sh made them on the 16-core machine (transformers
# 5.17, peft 0.21, 2026-12-05) from the tiny models above: qwen2 (biases
# drawn) and mistral (window 4 of 12 tokens) on the llama batch, opt on the
# gpt2 batch. Every method at 1 rank, LoRA on 3 uneven shards and on 2
# replicas x 2 shards.
# dt_hf_family(FAMILY LORA_TARGETS IA3_TARGETS IA3_FF [NO_PREFIX])
# NO_PREFIX: PEFT's prefix tuning differs from deltatune's for the family
# (docs/usage.md says where), so its fixtures have no prefix cases
function(dt_hf_family fam lora ia3 ia3ff)
  cmake_parse_arguments(HF "NO_PREFIX" "" "" ${ARGN})
  set(I ${F}/${fam})
  dt_add_parity_test(parity_${fam}_lora ${fam} lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
    --lora-targets ${lora} --init-from ${I}/lora/init.safetensors)
  foreach(layout "3 3" "4 2")
    separate_arguments(l UNIX_COMMAND "${layout}")
    list(GET l 0 np)
    list(GET l 1 tp)
    dt_add_parity_test_mpi(parity_np${np}_tp${tp}_${fam}_lora ${np} ${tp} ${fam} lora 2e-5
      --method lora --lora-rank 4 --lora-alpha 8 --lora-targets ${lora}
      --init-from ${I}/lora/init.safetensors)
  endforeach()
  dt_add_parity_test(parity_${fam}_ia3 ${fam} ia3 2e-5 --method ia3 --ia3-targets ${ia3}
    --ia3-ff ${ia3ff} --init-from ${I}/ia3/init.safetensors)
  dt_add_parity_test(parity_${fam}_adapter ${fam} adapter 2e-5 --method adapter --adapter-size 8
    --init-from ${I}/adapter/init.safetensors)
  if(NOT HF_NO_PREFIX)
    dt_add_parity_test(parity_${fam}_prefix ${fam} prefix 2e-5 --method prefix --prefix-tokens 3
      --init-from ${I}/prefix/init.safetensors)
    dt_add_parity_test(parity_${fam}_prefix_proj ${fam} prefix_proj 2e-5 --method prefix
      --prefix-tokens 3 --prefix-hidden 32 --init-from ${I}/prefix_proj/init.safetensors)
  endif()
  dt_add_parity_test(parity_${fam}_prompt ${fam} prompt 2e-5 --method prompt --prompt-tokens 3
    --init-from ${I}/prompt/init.safetensors)
  dt_add_parity_test(parity_${fam}_said ${fam} said 2e-5 --method said --said-dim 24
    --init-from ${I}/said/init.safetensors,${I}/said/projection.safetensors)
  dt_add_parity_test(parity_${fam}_full ${fam} full 1e-4 --method full --weights-dtype fp32
    --init-from ${I}/full/init.safetensors)
  dt_add_parity_test(parity_${fam}_lastlayer ${fam} lastlayer 1e-4 --method lastlayer
    --init-from ${I}/lastlayer/init.safetensors)
  if(EXISTS ${I}/bitfit)
    dt_add_parity_test(parity_${fam}_bitfit ${fam} bitfit 2e-5 --method bitfit
      --init-from ${I}/bitfit/init.safetensors)
  endif()
endfunction()
dt_hf_family(qwen2 q_proj,v_proj,down_proj k_proj,v_proj,down_proj down_proj)
dt_hf_family(mistral q_proj,v_proj,down_proj k_proj,v_proj,down_proj down_proj)
dt_hf_family(opt q_proj,v_proj,fc1 q_proj,k_proj,fc2 fc2)

# Gemma and Gemma-2 (tests/data/families/gemma, gemma2: drawn weights, head_dim
# 16 != 48 / 4; Gemma-2 with 3 layers, window 4 in layers 0 and 2, soft-caps 2
# and 3 that bend): the forward pass against numpy at 1, 2 and 3 tensor ranks
# (the 3-rank split is uneven: 2 kv heads, FFN 128), 150 tokens for the window
# across query blocks; the backward against finite differences through the
# 1 + w norms, the embedding scale (full, prompt), GeGLU, the post norms and
# both soft-caps (full, prefix over capped prefix scores, recompute)
foreach(model gemma gemma2)
  dt_family_reference(${model} ${FAM}/${model}/model ${B} 2 3)
endforeach()
dt_family_reference(gemma2_150 ${FAM}/gemma2/model ${FAM}/mistral/batch150.safetensors 2)
dt_add_gradcheck(gradcheck_gemma_full families --model ${FAM}/gemma/model ${DQ} --method full)
dt_add_gradcheck(gradcheck_gemma_prompt_ia3 families --model ${FAM}/gemma/model ${DQ}
  --method prompt,ia3 --prompt-tokens 3)
dt_add_gradcheck(gradcheck_gemma_lora families --model ${FAM}/gemma/model ${DQ}
  --method lora --lora-init random
  --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
dt_add_gradcheck(gradcheck_gemma2_full families --model ${FAM}/gemma2/model ${DQ} --method full)
dt_add_gradcheck(gradcheck_gemma2_prefix_ia3 families --model ${FAM}/gemma2/model ${DQ}
  --method prefix,ia3 --prefix-tokens 2 --prefix-hidden 16)
dt_add_gradcheck(gradcheck_gemma2_150 families --model ${FAM}/gemma2/model
  --data ${FAM}/mistral/batch150.safetensors --batch-size 2 --min-norm 5e-4 --method lora,prefix
  --lora-init random --lora-targets q_proj,k_proj,v_proj,down_proj --prefix-tokens 3)
dt_add_gradcheck(gradcheck_gemma2_recompute families --model ${FAM}/gemma2/model ${DQ}
  --method lora,prefix --lora-init random --prefix-tokens 5 --recompute)

# Gemma against transformers + PEFT: the fixtures of tests/parity/device_run.sh
# (made on the 16-core machine, transformers 5.17, peft 0.21, 2026-12-05, from
# tests/data/families/gemma/model and the LLaMA batch), as qwen2's above:
# LoRA on LLaMA's modules, IA3 on PEFT's gemma default (q_proj, v_proj and the
# feed-forward down_proj)
dt_hf_family(gemma q_proj,v_proj,down_proj q_proj,v_proj,down_proj down_proj)
# Gemma-2 against transformers + PEFT: its fixtures (tests/parity/device_run.sh
# gemma2 on the 16-core machine, transformers 5.17, peft 0.21, 2026-12-05, from
# tests/data/families/gemma2/model and the LLaMA batch: the window of 4, both
# soft-caps, the post norms), as gemma's
dt_hf_family(gemma2 q_proj,v_proj,down_proj q_proj,v_proj,down_proj down_proj)

# Methods against the numpy reference (reference_forward.py --train): deltatune
# trains 2 steps, exports PEFT's adapter, and `eval --checkpoint` is compared
# with numpy applying that adapter as PEFT does (LoRA on every module, IA3 with
# the family's default targets, prompt tuning's rows scaled with the token
# embeddings in Gemma, prefix key/values under Gemma-2's caps and window). On
# LLaMA (family_methods_llama_*) the same code checks itself where deltatune
# matches transformers + PEFT (the hf-parity fixtures).
set(MLORA "--train=lora --lora-init random --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
foreach(model llama gemma gemma2)
  set(dir ${FAM}/${model}/model)
  if(model STREQUAL "llama")
    set(dir ${F}/llama/model)
  endif()
  foreach(m lora ia3 prompt prefix)
    set(arg "--train=${m}")
    if(m STREQUAL "lora")
      set(arg ${MLORA})
    elseif(m STREQUAL "prompt" OR m STREQUAL "prefix")
      set(arg "--train=${m} --${m}-tokens 3")
    endif()
    add_test(NAME family_methods_${model}_${m} COMMAND ${REF} ${dir} ${B} ${W}/m_${model}_${m} "${arg}")
    set_tests_properties(family_methods_${model}_${m} PROPERTIES TIMEOUT 120
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
  endforeach()
endforeach()
foreach(m prompt prefix)
  add_test(NAME family_methods_gemma2_${m}_tp3 COMMAND ${REF} ${FAM}/gemma2/model ${B}
    ${W}/m_gemma2_${m}_tp3 1e-5 ${DT_MPIRUN} -np 3 -- --tp 3 "--train=${m} --${m}-tokens 3")
  set_tests_properties(family_methods_gemma2_${m}_tp3 PROPERTIES TIMEOUT 120 PROCESSORS 3
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
endforeach()
