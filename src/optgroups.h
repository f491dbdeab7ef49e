/* The option groups the drivers share, declared once (src/optgroups.c), so
 * that an option has one type, range, default and help wherever it is
 * accepted: train, eval and gradcheck, sweep (and its tasks), plan.
 *
 *   dt_backbone_group  the frozen backbone and its layout (train, sweep)
 *   dt_method_group    which methods, their seed and initial values
 *   dt_optim_group     AdamW and its schedule (train, sweep tasks)
 *   dt_fault_group     what a non-finite step does (train, sweep, tasks)
 *   dt_ckpt_train_group (src/ckpt_run.h) checkpoints
 *
 * A command whose option differs in meaning only (plan's --tp describes a
 * job it does not run) takes the single definition with DT_OPTDEF_*. */
#ifndef DT_OPTGROUPS_H
#define DT_OPTGROUPS_H

#include "options.h"

#define DT_OPTDEF_TP                                                                   \
  {"tp", DT_OPT_INT, "1", 1, 1048576, NULL,                                            \
   "tensor-parallel ranks per backbone copy (must divide the ranks; dp = ranks / tp)"}
#define DT_OPTDEF_WEIGHTS_DTYPE \
  {"weights-dtype", DT_OPT_CHOICE, "fp32", 0, 0, "fp32|bf16|int8|nf4", "storage of the frozen matrices (int8, nf4: the block matrices quantized; docs/usage.md)"}
#define DT_OPTDEF_MATMUL_DTYPE                                                                \
  {"matmul-dtype", DT_OPT_CHOICE, "fp32", 0, 0, "fp32|bf16",                                  \
   "products with the frozen matrices and attention's: fp32 (bf16 weights widened), or bf16 x bf16 " \
   "with fp32 accumulation through oneDNN (activations, attention's queries, keys, values and "  \
   "probabilities rounded to bf16; int8/nf4 matrices dequantized to bf16; needs --weights-dtype " \
   "bf16, int8 or nf4)"}
#define DT_OPTDEF_SHARE_WEIGHTS                                                                 \
  {"share-weights", DT_OPT_CHOICE, "auto", 0, 0, "auto|yes|no",                                 \
   "data-parallel replicas on one node map one copy of the frozen matrices (MPI-3 shared "      \
   "memory) instead of one each; auto: unless the method trains or rewrites backbone matrices " \
   "(full, lastlayer, said; yes shares anyway and copies what they write)"}

#define DT_OPTDEF_TP_HEADS                                                                      \
  {"tp-heads", DT_OPT_CHOICE, "auto", 0, 0, "auto|rows|whole",                                  \
   "key/value groups left over when they do not divide over --tp (40 heads on 16 ranks): "     \
   "each shared by --tp / leftover ranks, every one of which attends with part of the query "  \
   "rows (rows), or each whole on one rank, whose attention then takes longer than the "       \
   "others' (whole); auto: rows unless the method trains backbone tensors (full, lastlayer, "  \
   "said, bitfit) or --tp-gemm is pxgemm (docs/parallel.md)"}

extern const dt_optgroup dt_backbone_group;
extern const dt_optgroup dt_method_group;
extern const dt_optgroup dt_optim_group;
extern const dt_optgroup dt_fault_group;

/* The backbone group's values that must agree with each other: --weights-dtype
 * against --matmul-dtype, and against --tp-gemm where the command has it;
 * *w the parsed --weights-dtype (dt_wdtype, src/quant.h). */
int dt_backbone_options_check(const dt_options *o, int *w);

/* --init-from: every comma-separated file opens as safetensors; a
 * checkpoint given there is named as such. */
int dt_init_from_check(const dt_options *o);

#endif
