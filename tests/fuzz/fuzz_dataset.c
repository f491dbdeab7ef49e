/* libFuzzer: the bytes as a tokenized data file, loaded against a
 * vocabulary of 96 (the fixtures'). A file that loads holds only ids in
 * [0, 96) and labels in [0, 96) or -100, with a scored position. */
#include "dataset.h"
#include "error.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("d.safetensors", data, size);
  dt_dataset d;
  if (dt_dataset_load(&d, path, 96) == DT_OK) {
    const int64_t n = d.n_rows * d.seq_len;
    for (int64_t i = 0; i < n; i++) {
      if (d.input_ids[i] < 0 || d.input_ids[i] >= 96) abort();
      if ((d.labels[i] < 0 || d.labels[i] >= 96) && d.labels[i] != -100) abort();
    }
    if (d.n_scored <= 0) abort();
    dt_dataset_free(&d);
  }
  dt_error_clear();
  return 0;
}
