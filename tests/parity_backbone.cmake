# Methods that train backbone tensors in place: bitfit, lastlayer, full.
# --init-from loads the fixture's init (the backbone's own values) through the
# external <-> storage layout conversion (transposed Conv1D, fused row blocks).
set(F ${DT_TESTDATA_DIR}/hf-parity)
dt_add_parity_test(parity_gpt2_bitfit gpt2 bitfit 2e-5 --method bitfit
  --init-from ${F}/gpt2/bitfit/init.safetensors)
dt_add_parity_test(parity_gpt2_lastlayer gpt2 lastlayer 1e-4 --method lastlayer
  --init-from ${F}/gpt2/lastlayer/init.safetensors)
dt_add_parity_test(parity_llama_lastlayer llama lastlayer 1e-4 --method lastlayer
  --init-from ${F}/llama/lastlayer/init.safetensors)
dt_add_parity_test(parity_gpt2_full gpt2 full 1e-4 --method full --weights-dtype fp32
  --init-from ${F}/gpt2/full/init.safetensors)
dt_add_parity_test(parity_llama_full llama full 1e-4 --method full --weights-dtype fp32
  --init-from ${F}/llama/full/init.safetensors)
# Options, layouts and errors of the three methods beyond the fixtures.
dt_add_test(test_backbone SOURCES test_backbone.c)
