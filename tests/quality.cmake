# Quality on a real task, short (issue 11; the full table is bench/quality.sh, docs/quality.md): LoRA on the
# shipped pretrained tiny-llama, supersense, 60 steps of 16 random rows on 2 ranks; the test exact match rises
# from ~0 (zero-shot) to well above zero and the training loss falls.
add_test(NAME quality_lora_llama_np2 COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/quality_lora.sh
         $<TARGET_FILE:deltatune> ${CMAKE_SOURCE_DIR} ${DT_MPIRUN})
set_tests_properties(quality_lora_llama_np2 PROPERTIES TIMEOUT 600 LABELS "quality;parallel" PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1")
