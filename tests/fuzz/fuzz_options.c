/* libFuzzer: the bytes as a command line (split at NUL and newline) for the
 * options parser, against tables of every option type (and the checkpoint
 * and method tables of the engine); every value of a line that parses is
 * read back through its typed accessor. Arguments starting with
 * "synthetic:" also go through the synthetic model spec parser. */
#include "ckpt_run.h"
#include "error.h"
#include "fuzz_util.h"
#include "hf_config.h"
#include "method.h"
#include "options.h"

static const dt_optdef k_opts[] = {
    {"steps", DT_OPT_INT, "100", 0, 1000000000, NULL, "int"},
    {"seed", DT_OPT_INT, NULL, 0, 2147483647, NULL, "int without default"},
    {"lr", DT_OPT_FLOAT, "1e-3", 0, 10, NULL, "float"},
    {"eps", DT_OPT_FLOAT, NULL, 1e-8, 1, NULL, "float without default"},
    {"betas", DT_OPT_STRING, "0.9,0.999", 0, 0, NULL, "list of floats"},
    {"model", DT_OPT_STRING, NULL, 0, 0, NULL, "string"},
    {"schedule", DT_OPT_CHOICE, "constant", 0, 0, "constant|linear|cosine", "choice"},
    {"recompute", DT_OPT_BOOL, "no", 0, 0, NULL, "flag"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static dt_options o; /* large: not on the stack */
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  char *argv[MAX_ARGS];
  int argc = 0;
  for (size_t i = 0, s = 0; i <= size && argc < MAX_ARGS; i++)
    if (i == size || buf[i] == 0 || buf[i] == '\n') {
      buf[i] = 0;
      if (i > s || i < size) argv[argc++] = buf + s;
      s = i + 1;
    }
  dt_optgroup g[40];
  int ng = 0;
  g[ng++] = (dt_optgroup){"core", "Core", k_opts};
  g[ng++] = dt_ckpt_train_group;
  for (int i = 0; i < dt_method_count() && ng < 40; i++)
    if (dt_method_at(i)->options) g[ng++] = *dt_method_at(i)->options;
  if (dt_options_parse(&o, "train", g, ng, argc, argv) == DT_OK) {
    for (int k = 0; k < o.n; k++) {
      const dt_optdef *d = o.v[k].def;
      switch (d->type) {
        case DT_OPT_INT:
          if (dt_opt_is_set(&o, d->name)) {
            const int v = dt_opt_int(&o, d->name);
            if (v < d->min || v > d->max) abort(); /* accepted out of range */
          }
          break;
        case DT_OPT_FLOAT:
          if (dt_opt_is_set(&o, d->name)) {
            const double v = dt_opt_float(&o, d->name);
            if (!(v >= d->min && v <= d->max)) abort();
          }
          break;
        case DT_OPT_BOOL: (void)dt_opt_bool(&o, d->name); break;
        default: {
          double f[4];
          int n;
          (void)dt_opt_str(&o, d->name);
          if (dt_opt_floats(&o, d->name, f, 4, &n) == DT_OK && (n < 0 || n > 4)) abort();
        }
      }
      (void)dt_opt_given(&o, d->name);
    }
  }
  dt_error_clear();
  for (int i = 0; i < argc; i++)
    if (strncmp(argv[i], "synthetic:", 10) == 0) {
      dt_config c;
      if (dt_synthetic_config_parse(&c, argv[i]) == DT_OK && dt_config_validate(&c) != DT_OK)
        abort();
      dt_error_clear();
    }
  free(buf);
  return 0;
}
