/* Block modules and target matching (see modules.h). */
#include "modules.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "options.h"

int dt_block_modules(const dt_config *c, dt_module *md) {
  const int d = c->d_model, qd = dt_cfg_q_dim(c), kvd = dt_cfg_kv_dim(c), F = c->d_ffn;
  int n = 0;
  if (c->arch == DT_ARCH_GPT2) {
    md[n++] = (dt_module){"attn.c_attn", DT_SITE_QKV, 0, dt_cfg_qkv_dim(c), d, 1};
    md[n++] = (dt_module){"attn.c_proj", DT_SITE_ATTN_OUT, 0, d, qd, 1};
    md[n++] = (dt_module){"mlp.c_fc", DT_SITE_FC, 0, F, d, 1};
    md[n++] = (dt_module){"mlp.c_proj", DT_SITE_PROJ, 0, d, F, 1};
  } else {
    md[n++] = (dt_module){"self_attn.q_proj", DT_SITE_QKV, 0, qd, d, 0};
    md[n++] = (dt_module){"self_attn.k_proj", DT_SITE_QKV, qd, kvd, d, 0};
    md[n++] = (dt_module){"self_attn.v_proj", DT_SITE_QKV, qd + kvd, kvd, d, 0};
    md[n++] = (dt_module){"self_attn.o_proj", DT_SITE_ATTN_OUT, 0, d, qd, 1};
    md[n++] = (dt_module){"mlp.gate_proj", DT_SITE_FC, 0, F, d, 0};
    md[n++] = (dt_module){"mlp.up_proj", DT_SITE_FC, F, F, d, 0};
    md[n++] = (dt_module){"mlp.down_proj", DT_SITE_PROJ, 0, d, F, 1};
  }
  return n;
}

const char *dt_module_prefix(const dt_config *c) {
  return c->arch == DT_ARCH_GPT2 ? "transformer.h" : "model.layers";
}

const char *dt_family_name(const dt_config *c) {
  return c->arch == DT_ARCH_GPT2 ? "GPT-2" : "LLaMA";
}

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
