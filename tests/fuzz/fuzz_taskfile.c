/* libFuzzer: the bytes as the task file of `deltatune sweep` (INI): the
 * structure (dt_taskfile_parse) and then every task's options as the sweep
 * parses and checks them before it loads the backbone (dt_task_options,
 * after the sweep's shared arguments). A file that parses has 1 to
 * DT_TASK_MAX tasks with distinct names, each with 1 to DT_TASK_MAX_KV
 * distinct keys; a task whose options pass has 'data'. */
#include "error.h"
#include "fuzz_util.h"
#include "options.h"
#include "taskfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static dt_taskfile tf; /* large: not on the stack */
  static dt_options o;
  static char *pre[] = {"--model=synthetic:gpt2", "--weights-dtype=fp32", "--tp=1",
                        "--recompute=no"};
  const char *path = fuzz_file("tasks.ini", data, size);
  if (dt_taskfile_parse(&tf, path) == DT_OK) {
    if (tf.n < 1 || tf.n > DT_TASK_MAX) abort();
    for (int k = 0; k < tf.n; k++) {
      const dt_task_src *t = &tf.t[k];
      if (t->nkv < 1 || t->nkv > DT_TASK_MAX_KV || t->line < 1) abort();
      for (int j = 0; j < k; j++)
        if (strcmp(tf.t[j].name, t->name) == 0) abort(); /* a name twice */
      for (int i = 0; i < t->nkv; i++) {
        if (t->kline[i] <= t->line) abort(); /* a key before its section */
        for (int j = 0; j < i; j++)
          if (strcmp(t->key[j], t->key[i]) == 0) abort(); /* a key twice */
      }
      if (dt_task_options(&o, t, path, 4, pre) == DT_OK) {
        if (!dt_opt_is_set(&o, "data")) abort();
        (void)dt_opt_int(&o, "batch-size");
        (void)dt_opt_float(&o, "lr");
      }
      dt_error_clear();
    }
  }
  dt_error_clear();
  return 0;
}
