/* The shared option groups (src/optgroups.h). */
#include "optgroups.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "gemm_bf16.h"
#include "quant.h"
#include "safetensors.h"

static const dt_optdef backbone_opts[] = {
    {"model", DT_OPT_STRING, NULL, 0, 0, NULL,
     "backbone: a Hugging Face folder (config.json + safetensors) or "
     "synthetic:<family>:k=v,... / synthetic:<preset> (required)"},
    DT_OPTDEF_WEIGHTS_DTYPE,
    DT_OPTDEF_MATMUL_DTYPE,
    DT_OPTDEF_SHARE_WEIGHTS,
    DT_OPTDEF_TP,
    DT_OPTDEF_TP_HEADS,
    {"recompute", DT_OPT_BOOL, "no", 0, 0, NULL,
     "keep only block inputs and recompute activations in backward"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
const dt_optgroup dt_backbone_group = {"backbone", "Backbone and layout", backbone_opts};

static const dt_optdef method_opts[] = {
    {"method", DT_OPT_STRING, "lora", 0, 0, NULL,
     "delta method(s), comma-separated (see deltatune methods); 'none' for the bare backbone"},
    {"seed", DT_OPT_INT, "1", 0, 2147483647, NULL,
     "seed of synthetic weights, method init and dropout"},
    {"init-from", DT_OPT_STRING, NULL, 0, 0, NULL,
     "initial delta values from safetensors file(s), comma-separated (PEFT / HF names)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
const dt_optgroup dt_method_group = {"method", "Method", method_opts};

static const dt_optdef optim_opts[] = {
    {"steps", DT_OPT_INT, "100", 0, 1000000000, NULL, "optimizer steps"},
    {"lr", DT_OPT_FLOAT, "1e-3", 0, 10, NULL, "peak learning rate"},
    {"betas", DT_OPT_STRING, "0.9,0.999", 0, 0, NULL, "AdamW beta1,beta2"},
    {"eps", DT_OPT_FLOAT, "1e-8", 0, 1, NULL, "AdamW epsilon"},
    {"weight-decay", DT_OPT_FLOAT, "0", 0, 10, NULL, "decoupled weight decay"},
    {"clip-norm", DT_OPT_FLOAT, "0", 0, 1e9, NULL, "clip the global gradient norm (0 = off)"},
    {"schedule", DT_OPT_CHOICE, "constant", 0, 0, "constant|linear|cosine",
     "learning-rate schedule after warmup"},
    {"warmup-steps", DT_OPT_INT, "0", 0, 1000000000, NULL, "linear warmup steps"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
const dt_optgroup dt_optim_group = {"optim", "Optimizer", optim_opts};

/* docs/reliability.md */
static const dt_optdef fault_opts[] = {
    {"nan-policy", DT_OPT_CHOICE, "stop", 0, 0, "stop|skip",
     "a step whose loss or gradient norm is NaN/inf: stop (exit 6, naming the step; the "
     "checkpoints already written stay; in a sweep the task fails and the others go on) or "
     "skip (drop that step's update, count it)"},
    {"nan-max-skips", DT_OPT_INT, "10", 1, 1000000000, NULL,
     "--nan-policy skip: stop after this many consecutive skipped steps"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
const dt_optgroup dt_fault_group = {"faults", "Numerical faults", fault_opts};

int dt_backbone_options_check(const dt_options *o, int *w) {
  DT_CALL(dt_matmul_dtype_check(dt_opt_str(o, "matmul-dtype"), dt_opt_str(o, "weights-dtype")));
  dt_wdtype wd;
  DT_CALL(dt_weights_dtype_parse(dt_opt_str(o, "weights-dtype"), &wd));
  DT_CHECK(!(dt_wdtype_quant(wd) && dt_opt_exists(o, "tp-gemm") &&
             !strcmp(dt_opt_str(o, "tp-gemm"), "pxgemm")),
           DT_EUSAGE,
           "--tp-gemm pxgemm multiplies whole fp32 or bf16 matrices; with --weights-dtype %s "
           "use --tp-gemm local (the default)", dt_opt_str(o, "weights-dtype"));
  *w = (int)wd;
  return DT_OK;
}

/* A checkpoint (NetCDF: "CDF" and the version byte) where safetensors are
 * expected. */
static int not_a_checkpoint(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return DT_OK; /* dt_st_open names the error */
  unsigned char b[4] = {0, 0, 0, 0};
  const size_t n = fread(b, 1, 4, f);
  fclose(f);
  DT_CHECK(!(n == 4 && b[0] == 'C' && b[1] == 'D' && b[2] == 'F' && b[3] >= 1 && b[3] <= 5),
           DT_EINPUT,
           "--init-from %s is a NetCDF file (a deltatune checkpoint?), not safetensors: "
           "--init-from reads safetensors deltas (a run's OUT/deltas.safetensors); to continue "
           "a run from its checkpoint use --resume with its --out", path);
  return DT_OK;
}

int dt_init_from_check(const dt_options *o) {
  if (!dt_opt_is_set(o, "init-from")) return DT_OK;
  char list[DT_OPTVAL_MAX];
  snprintf(list, sizeof list, "%s", dt_opt_str(o, "init-from"));
  char *save = NULL;
  for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    while (*p == ' ') p++;
    if (!*p) continue;
    DT_CALL(not_a_checkpoint(p));
    dt_st_file f;
    DT_CALL(dt_st_open(&f, p));
    dt_st_close(&f);
  }
  return DT_OK;
}
