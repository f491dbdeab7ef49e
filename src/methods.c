/* The table of delta methods: adding a method = its file + one line here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "method.h"

/* The registry: one line per method, X(the symbol of its dt_method_ops).
 * Weak references: a method whose file is not linked is simply absent (the
 * test-only ones, tests/method_*.c, are linked into test builds only). */
#define DT_METHOD_TABLE(X) \
  X(dt_method_lora)        \
  X(dt_method_adapter)     \
  X(dt_method_prefix)      \
  X(dt_method_prompt)      \
  X(dt_method_bitfit)      \
  X(dt_method_lastlayer)   \
  X(dt_method_said)        \
  X(dt_method_ia3)         \
  X(dt_method_full)        \
  X(dt_method_test_gain)

#define DT_METHOD_DECLARE(sym) extern const dt_method_ops sym __attribute__((weak));
DT_METHOD_TABLE(DT_METHOD_DECLARE)
#undef DT_METHOD_DECLARE

#define DT_METHOD_ENTRY(sym) &sym,
static const dt_method_ops *const g_all[] = {DT_METHOD_TABLE(DT_METHOD_ENTRY)};
#undef DT_METHOD_ENTRY
#define N_ALL (int)(sizeof g_all / sizeof g_all[0])

static const dt_method_ops *g_methods[N_ALL];
static int g_n = -1;

static void init_table(void) {
  if (g_n >= 0) return;
  g_n = 0;
  for (int i = 0; i < N_ALL; i++)
    if (g_all[i]) g_methods[g_n++] = g_all[i];
}

int dt_method_count(void) {
  init_table();
  return g_n;
}
const dt_method_ops *dt_method_at(int i) {
  init_table();
  return g_methods[i];
}

int dt_methods_check_options(const dt_options *o, const char *ml) {
  /* the names first: an unknown method is found before the backbone is
   * built, with the message dt_methods_create would give */
  if (ml && *ml && strcmp(ml, "none") != 0) {
    char buf[512], names[512] = "";
    snprintf(buf, sizeof buf, "%s", ml);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      if (dt_method_lookup(tok)) continue;
      for (int i = 0; i < dt_method_count(); i++) {
        strcat(names, i ? "|" : "");
        strcat(names, g_methods[i]->name);
      }
      DT_ERR(DT_EUSAGE, "--method: unknown method '%s'; choose from %s", tok, names);
    }
  }
  for (int i = 0; i < dt_method_count(); i++) {
    const dt_method_ops *ops = dt_method_at(i);
    if (!ops->options || dt_list_has(ml, ops->name)) continue;
    for (const dt_optdef *d = ops->options->defs; d->name; d++)
      DT_CHECK(!dt_opt_given(o, d->name), DT_EUSAGE,
               "--%s belongs to method '%s', which is not selected (--method %s)", d->name,
               ops->name, ml);
  }
  return DT_OK;
}

int dt_methods_check_config(const dt_options *o, const char *ml, const dt_config *cfg) {
  init_table();
  for (int i = 0; i < g_n; i++)
    if (g_methods[i]->check_config && dt_list_has(ml, g_methods[i]->name))
      DT_CALL(g_methods[i]->check_config(o, cfg));
  return DT_OK;
}

/* Does a method of the list carry one of the flags? */
static int list_flags(const char *list, unsigned flags) {
  init_table();
  for (int i = 0; i < g_n; i++)
    if ((g_methods[i]->flags & flags) && dt_list_has(list, g_methods[i]->name)) return 1;
  return 0;
}

int dt_methods_write_matrices(const char *list) { return list_flags(list, DT_METHOD_WRITES_MATRICES); }

int dt_methods_write_backbone(const char *list) {
  return list_flags(list, DT_METHOD_WRITES_MATRICES | DT_METHOD_WRITES_BIASES);
}

int dt_share_weights(const char *choice, const char *methods) {
  if (!strcmp(choice, "yes")) return 1;
  if (!strcmp(choice, "no")) return 0;
  return !dt_methods_write_matrices(methods);
}

int dt_split_heads(const char *choice, const char *methods, int pxgemm, int *split) {
  const int can = !dt_methods_write_backbone(methods) && !pxgemm;
  *split = !strcmp(choice, "rows") ? DT_SPLIT_HEADS_ASKED : strcmp(choice, "whole") && can;
  DT_CHECK(strcmp(choice, "rows") || can, DT_EUSAGE,
           "--tp-heads rows: %s; use --tp-heads whole or auto",
           pxgemm ? "--tp-gemm pxgemm multiplies the block-cyclic layout of whole heads"
                  : "the method trains backbone tensors, whose gradients each rank completes "
                    "for its own heads");
  return DT_OK;
}

const dt_method_ops *dt_method_lookup(const char *name) {
  init_table();
  for (int i = 0; i < dt_method_count(); i++)
    if (strcmp(g_methods[i]->name, name) == 0) return g_methods[i];
  return NULL;
}

int dt_methods_create(const char *list, const dt_options *opt, dt_model *m,
                      dt_params *params, uint64_t seed, dt_method ***out,
                      int *n_out) {
  *out = NULL;
  *n_out = 0;
  if (!list || !*list || strcmp(list, "none") == 0) return DT_OK;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", list);
  dt_method **ms = NULL;
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    const dt_method_ops *ops = dt_method_lookup(tok);
    if (!ops) {
      char names[512] = "";
      for (int i = 0; i < dt_method_count(); i++) {
        strcat(names, i ? "|" : "");
        strcat(names, g_methods[i]->name);
      }
      dt_methods_destroy(ms, n);
      DT_ERR(DT_EUSAGE, "--method: unknown method '%s'; choose from %s", tok, names);
    }
    for (int i = 0; i < n; i++)
      if (ms[i]->ops == ops) {
        dt_methods_destroy(ms, n);
        DT_ERR(DT_EUSAGE, "--method: '%s' is listed twice", tok);
      }
    dt_method **grown = realloc(ms, sizeof *ms * (n + 1));
    if (!grown) {
      dt_methods_destroy(ms, n);
      DT_ERR(DT_ENOMEM, "method list");
    }
    ms = grown;
    dt_method *me = calloc(1, sizeof *me);
    if (!me) {
      dt_methods_destroy(ms, n);
      DT_ERR(DT_ENOMEM, "method");
    }
    me->ops = ops;
    me->model = m;
    ms[n++] = me;
    int rc = ops->create(me, opt, m, params, seed);
    if (rc) {
      dt_methods_destroy(ms, n);
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
  }
  *out = ms;
  *n_out = n;
  return DT_OK;
}

void dt_methods_destroy(dt_method **ms, int n) {
  for (int i = 0; i < n; i++) {
    if (ms[i] && ms[i]->ops->destroy) ms[i]->ops->destroy(ms[i]);
    free(ms[i]);
  }
  free(ms);
}
