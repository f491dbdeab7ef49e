/* libFuzzer: the bytes as a model folder's config.json. A configuration that
 * loads must also pass the validation the engine relies on. */
#include "error.h"
#include "fuzz_util.h"
#include "hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_file("config.json", data, size);
  dt_config c;
  if (dt_hf_config_load(&c, fuzz_path("")) == DT_OK && dt_config_validate(&c) != DT_OK)
    abort(); /* loaded yet invalid */
  dt_error_clear();
  return 0;
}
