/* Block modules and target matching (see modules.h). */
#include "modules.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "options.h"

int dt_block_modules(const dt_config *c, dt_module *md) {
  const dt_arch_desc *A = dt_cfg_arch(c);
  for (int i = 0; i < A->n_modules; i++) {
    const dt_arch_module *a = &A->modules[i];
    md[i] = (dt_module){a->name, a->site, dt_cfg_dim(c, a->row0), dt_cfg_dim(c, a->out),
                        dt_cfg_dim(c, a->in), a->whole};
  }
  return A->n_modules;
}

const char *dt_module_prefix(const dt_config *c) { return dt_cfg_arch(c)->module_prefix; }

const char *dt_family_name(const dt_config *c) { return dt_cfg_arch(c)->title; }

int dt_module_matches(const char *module, const char *target) {
  size_t lm = strlen(module), lt = strlen(target);
  if (lm == lt) return strcmp(module, target) == 0;
  return lm > lt && module[lm - lt - 1] == '.' && strcmp(module + lm - lt, target) == 0;
}

static void join_names(const dt_module *md, int n, char *buf, size_t cap) {
  size_t used = 0;
  if (cap) buf[0] = 0;
  for (int i = 0; i < n && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", md[i].name);
}

void dt_module_names(const dt_config *c, char *buf, size_t cap) {
  dt_module md[DT_MAX_BLOCK_MODULES];
  join_names(md, dt_block_modules(c, md), buf, cap);
}

int dt_module_targets(const dt_config *c, const dt_module *md, int nmod,
                      const char *opt, const char *list, int *hit) {
  char buf[DT_OPTVAL_MAX];
  DT_CHECK(strlen(list) < sizeof buf, DT_EUSAGE, "--%s: list too long (%zu characters)",
           opt, strlen(list));
  snprintf(buf, sizeof buf, "%s", list);
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int any = 0;
    for (int i = 0; i < nmod; i++)
      if (dt_module_matches(md[i].name, t)) hit[i] = any = 1;
    if (!any) {
      char names[256];
      join_names(md, nmod, names, sizeof names);
      DT_ERR(DT_EUSAGE, "--%s: '%s' matches no module of this %s model (modules: %s)", opt,
             t, dt_family_name(c), names);
    }
  }
  return DT_OK;
}
