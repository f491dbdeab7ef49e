# Every fixture check of the methods on other rank layouts: 2 ranks as 2
# tensor-parallel shards, 2 data-parallel replicas splitting the batch of 2,
# 3 shards (uneven: 4 heads in 2 kv groups and FFN 128 / 192 on 3 ranks),
# and 2 replicas x 2 shards; and 3 shards through ScaLAPACK's psgemm.
set(F ${DT_TESTDATA_DIR}/hf-parity)
function(dt_parity_layouts fam method tol)
  foreach(layout "2 2" "2 1" "3 3" "4 2")
    separate_arguments(l UNIX_COMMAND "${layout}")
    list(GET l 0 np)
    list(GET l 1 tp)
    dt_add_parity_test_mpi(parity_np${np}_tp${tp}_${fam}_${method} ${np} ${tp} ${fam} ${method} ${tol} ${ARGN})
  endforeach()
  # micro-batches of one row, each cut after its last scored token (the
  # fixture's second row ends in two unscored positions): the same losses
  # and gradients, alone and on 2 shards with recomputation
  dt_add_parity_test(parity_micro1_${fam}_${method} ${fam} ${method} ${tol} --micro-batch 1 ${ARGN})
  dt_add_parity_test_mpi(parity_np2_tp2_micro1_${fam}_${method} 2 2 ${fam} ${method} ${tol}
    --micro-batch 1 --recompute yes ${ARGN})
  # the PxGEMM formulation gives the same results
  dt_add_parity_test_mpi(parity_np3_tp3_pxgemm_${fam}_${method} 3 3 ${fam} ${method} ${tol}
    --tp-gemm pxgemm ${ARGN})
endfunction()
dt_parity_layouts(gpt2 lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
dt_parity_layouts(llama lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
dt_parity_layouts(gpt2 ia3 2e-5 --method ia3 --init-from ${F}/gpt2/ia3/init.safetensors)
dt_parity_layouts(llama ia3 2e-5 --method ia3 --init-from ${F}/llama/ia3/init.safetensors)
dt_parity_layouts(gpt2 adapter 2e-5 --method adapter --adapter-size 8 --init-from ${F}/gpt2/adapter/init.safetensors)
dt_parity_layouts(llama adapter 2e-5 --method adapter --adapter-size 8 --init-from ${F}/llama/adapter/init.safetensors)
dt_parity_layouts(gpt2 prefix 2e-5 --method prefix --prefix-tokens 3 --init-from ${F}/gpt2/prefix/init.safetensors)
dt_parity_layouts(llama prefix 2e-5 --method prefix --prefix-tokens 3 --init-from ${F}/llama/prefix/init.safetensors)
dt_parity_layouts(gpt2 prefix_proj 2e-5 --method prefix --prefix-tokens 3 --prefix-hidden 32
  --init-from ${F}/gpt2/prefix_proj/init.safetensors)
dt_parity_layouts(llama prefix_proj 2e-5 --method prefix --prefix-tokens 3 --prefix-hidden 32
  --init-from ${F}/llama/prefix_proj/init.safetensors)
dt_parity_layouts(gpt2 prompt 2e-5 --method prompt --prompt-tokens 3 --init-from ${F}/gpt2/prompt/init.safetensors)
dt_parity_layouts(llama prompt 2e-5 --method prompt --prompt-tokens 3 --init-from ${F}/llama/prompt/init.safetensors)
dt_parity_layouts(gpt2 bitfit 2e-5 --method bitfit --init-from ${F}/gpt2/bitfit/init.safetensors)
dt_parity_layouts(gpt2 lastlayer 1e-4 --method lastlayer --init-from ${F}/gpt2/lastlayer/init.safetensors)
dt_parity_layouts(llama lastlayer 1e-4 --method lastlayer --init-from ${F}/llama/lastlayer/init.safetensors)
dt_parity_layouts(gpt2 full 1e-4 --method full --init-from ${F}/gpt2/full/init.safetensors)
dt_parity_layouts(llama full 1e-4 --method full --init-from ${F}/llama/full/init.safetensors)
dt_parity_layouts(gpt2 said 2e-5 --method said --said-dim 24
  --init-from ${F}/gpt2/said/init.safetensors,${F}/gpt2/said/projection.safetensors)
dt_parity_layouts(llama said 2e-5 --method said --said-dim 24
  --init-from ${F}/llama/said/init.safetensors,${F}/llama/said/projection.safetensors)
# The left-over key/value groups shared by query rows (--tp-heads auto,
# mpi/shard.h): gpt2's 4 heads on 3 ranks above (one group held by all 3);
# here llama's 2 groups on 4 ranks, each held by 2 ranks with no whole group
# (grouped queries, prefix key/values and IA3's key/value scaling across the
# split), and the same layout with whole groups (ranks 2 and 3 hold none).
foreach(m lora ia3 prefix)
  if(m STREQUAL "lora")
    set(a --method lora --lora-rank 4 --lora-alpha 8 --lora-targets q_proj,v_proj,down_proj)
  elseif(m STREQUAL "ia3")
    set(a --method ia3)
  else()
    set(a --method prefix --prefix-tokens 3)
  endif()
  dt_add_parity_test_mpi(parity_np4_tp4_llama_${m} 4 4 llama ${m} 2e-5 ${a}
    --init-from ${F}/llama/${m}/init.safetensors)
endforeach()
dt_add_parity_test_mpi(parity_np4_tp4_whole_llama_lora 4 4 llama lora 2e-5 --tp-heads whole
  --method lora --lora-rank 4 --lora-alpha 8 --lora-targets q_proj,v_proj,down_proj
  --init-from ${F}/llama/lora/init.safetensors)
dt_add_test(test_scalapack_layout SOURCES test_scalapack_layout.c NP 3)
add_test(NAME test_scalapack_layout_np4 COMMAND ${DT_MPIRUN} -np 4 $<TARGET_FILE:test_scalapack_layout>)
set_tests_properties(test_scalapack_layout_np4 PROPERTIES PROCESSORS 4 TIMEOUT 300 LABELS parallel
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
dt_add_test(test_determinism SOURCES test_determinism.c RANKS 4 TIMEOUT 300)

# --share-weights: one node-local copy of the frozen matrices for the
# data-parallel replicas trains bit for bit as one copy each, and saves it
dt_add_test(test_share_weights SOURCES test_share_weights.c clitest.c ARGS ${DT_MPIRUN} RANKS 2
            TIMEOUT 300 LABELS parallel)
# --comm-lockstep: barriers instead of sums, nothing else changed
dt_add_test(test_comm_lockstep SOURCES test_comm_lockstep.c clitest.c ARGS ${DT_MPIRUN} RANKS 4
            TIMEOUT 300 LABELS parallel)
# the tensor-group sum operators (mpi/dist.c) themselves, on 3 ranks
dt_add_test(test_tp_sum SOURCES test_tp_sum.c NP 3 TIMEOUT 120)
# --tp-heads: left-over key/value groups split by query rows train as one rank
dt_add_test(test_split_heads SOURCES test_split_heads.c clitest.c ARGS ${DT_MPIRUN} RANKS 4
            TIMEOUT 300 LABELS parallel)
