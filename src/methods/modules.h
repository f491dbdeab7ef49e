/* The HF linear modules of a transformer block and PEFT's rule for picking
 * them by name, shared by the methods that target modules (lora, ia3, said).
 *
 * A module is a row block of one engine site: GPT-2's modules are whole sites
 * (c_attn is the fused q|k|v, as PEFT treats it); LLaMA's q/k/v_proj and
 * gate/up_proj are row blocks of the fused QKV and FC sites. */
#ifndef DT_MODULES_H
#define DT_MODULES_H

#include "model.h"

/* Room dt_block_modules() needs (LLaMA has 7 modules, GPT-2 4). */
enum { DT_MAX_BLOCK_MODULES = DT_ARCH_MAX_MODULES };

typedef struct {
  const char *name; /* HF name inside a block, e.g. "self_attn.k_proj" */
  int site;         /* dt_site the module is part of */
  int row0, out;    /* its rows [row0, row0+out) of the site output */
  int in;           /* input width */
  int whole;        /* the module is the whole site (not a row block) */
} dt_module;

/* The modules of one block of c's family, in HF order, into out[]
 * (DT_MAX_BLOCK_MODULES entries); returns how many. */
int dt_block_modules(const dt_config *c, dt_module *out);

/* What precedes "<layer>.<module>" in HF names: "transformer.h" (GPT-2) or
 * "model.layers" (LLaMA). */
const char *dt_module_prefix(const dt_config *c);

/* "GPT-2" or "LLaMA", for messages. */
const char *dt_family_name(const dt_config *c);

/* PEFT's matching rule: the module name equals target or ends with
 * "." + target. */
int dt_module_matches(const char *module, const char *target);

/* The block's module names as "a, b, c" into buf (for messages). */
void dt_module_names(const dt_config *c, char *buf, size_t cap);

/* Set hit[i] for each of the nmod modules md[] (from dt_block_modules)
 * matched by an item of the comma-separated list (hit[] is not cleared
 * first). Every item must match a module: otherwise a DT_EUSAGE error
 * "--<opt>: '<item>' matches no module of this <family> model (modules:
 * ...)". */
int dt_module_targets(const dt_config *c, const dt_module *md, int nmod,
                      const char *opt, const char *list, int *hit);

#endif
