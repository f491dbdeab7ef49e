# GPT-NeoX / Pythia (issue 24) on the tiny models of tests/data/families
# (tests/parity/make_family_models.py writes them from the GPT-2 fixture's
# weights): neox (parallel residual, rotary on half of each head, GELU with
# erf, untied embed_out, transformers 5's rope_parameters) and neox_seq
# (sequential residual, the legacy rotary_pct / rotary_emb_base keys,
# gelu_fast, tied head).
# - the forward pass against the numpy reference (reference_forward.py) at
#   1 rank and tensor-parallel on 2 and 3 (uneven: 4 heads) ranks, which
#   checks the per-head query_key_value rows through the shard layout;
# - the backward against finite differences with every kind of method.
set(FAM ${DT_TESTDATA_DIR}/families)
set(BG ${DT_TESTDATA_DIR}/hf-parity/gpt2/batch.safetensors)
foreach(model neox neox_seq)
  dt_family_reference(${model} ${FAM}/${model}/model ${BG} 2 3)
endforeach()

# the backward against finite differences: every weight and bias (full), LoRA
# on every module with BitFit, IA3 on the default targets, prefix, prompt,
# SAID and the recomputed pass; both residual forms
set(DN --data ${BG} --batch-size 2 --min-norm 5e-4)
foreach(model neox neox_seq)
  dt_add_gradcheck(gradcheck_${model}_full neox --model ${FAM}/${model}/model ${DN} --method full)
  dt_add_gradcheck(gradcheck_${model}_bitfit_lora neox --model ${FAM}/${model}/model ${DN}
    --method lora,bitfit --lora-init random
    --lora-targets query_key_value,dense,dense_h_to_4h,dense_4h_to_h)
  dt_add_gradcheck(gradcheck_${model}_lora_ia3 neox --model ${FAM}/${model}/model ${DN}
    --method lora,ia3 --lora-init random)
  dt_add_gradcheck(gradcheck_${model}_prefix neox --model ${FAM}/${model}/model ${DN}
    --method prefix --prefix-tokens 2 --prefix-hidden 16)
  dt_add_gradcheck(gradcheck_${model}_prompt_ia3 neox --model ${FAM}/${model}/model ${DN}
    --method prompt,ia3 --prompt-tokens 3)
endforeach()
dt_add_gradcheck(gradcheck_neox_said neox --model ${FAM}/neox/model ${DN} --method said
  --said-dim 24)
dt_add_gradcheck(gradcheck_neox_recompute neox --model ${FAM}/neox/model ${DN}
  --method lora,prefix --lora-init random --prefix-tokens 3 --recompute)

# transformers' and PEFT's own fixtures (tests/data/hf-parity/gpt_neox and
# gpt_neox_seq: tests/parity/device_run.sh gpt_neox gpt_neox_seq on the
# 16-core machine, transformers 5.17, peft 0.21, 2026-12-05, from the two models
# above on the GPT-2 batch): every method at 1 rank, LoRA on 3 uneven shards and
# on 2 replicas x 2 shards (tests/families.cmake). LoRA on PEFT's default
# query_key_value with the FFN's output dense_4h_to_h, IA3 on PEFT's gpt_neox
# mapping (query_key_value, the feed-forward dense_4h_to_h).
foreach(fam gpt_neox gpt_neox_seq)
  dt_hf_family(${fam} query_key_value,dense_4h_to_h query_key_value,dense_4h_to_h dense_4h_to_h)
endforeach()
