# Every fixture check of the methods on other rank layouts: 2 ranks as 2
# tensor-parallel shards, 2 data-parallel replicas splitting the batch of 2,
# 3 shards (uneven: 4 heads in 2 kv groups and FFN 128 / 192 on 3 ranks),
# and 2 replicas x 2 shards.
set(F ${DT_TESTDATA_DIR}/hf-parity)
function(dt_parity_layouts fam method tol)
  foreach(layout "2 2" "2 1" "3 3" "4 2")
    separate_arguments(l UNIX_COMMAND "${layout}")
    list(GET l 0 np)
    list(GET l 1 tp)
    dt_add_parity_test_mpi(parity_np${np}_tp${tp}_${fam}_${method} ${np} ${tp} ${fam} ${method} ${tol} ${ARGN})
  endforeach()
endfunction()
dt_parity_layouts(gpt2 lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets c_attn,mlp.c_fc --init-from ${F}/gpt2/lora/init.safetensors)
dt_parity_layouts(llama lora 2e-5 --method lora --lora-rank 4 --lora-alpha 8
  --lora-targets q_proj,v_proj,down_proj --init-from ${F}/llama/lora/init.safetensors)
