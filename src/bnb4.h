/* bitsandbytes' 4-bit safetensors layout, read straight into a quantized
 * matrix (--weights-dtype nf4, src/quant.h): the `*-bnb-4bit` folders that
 * transformers saves from a Linear4bit (bitsandbytes' QuantState.as_dict
 * (packed=True)). Per HF weight NAME ([out, in]; a GPT-2 Conv1D weight as
 * transformers quantizes it, transposed to [out, in]):
 *   NAME                      uint8 [(out*in + 1) / 2, 1]: the codes of the
 *                             flattened weight, two a byte, the first in the
 *                             high nibble
 *   NAME.absmax               uint8 [out*in / 64]: the 8-bit codes of the
 *                             block scales (double quantization)
 *   NAME.quant_map            float32 [16]: the NF4 code book
 *   NAME.nested_absmax        float32 [ceil(blocks / 256)]
 *   NAME.nested_quant_map     float32 [256]: the dynamic map
 *   NAME.quant_state.bitsandbytes__nf4  uint8: JSON {quant_type, blocksize,
 *                             dtype, shape, nested_blocksize, nested_dtype,
 *                             nested_offset}
 * Read: nf4, blocksize 64, double quantized (nested_blocksize 256), shape
 * the one config.json implies, rows of a multiple of 64 columns (then the
 * flattened blocks are deltatune's per-row blocks), the code book and the
 * map those of src/quant.h (within 1e-6 and 2 ulp: deltatune's own values
 * are used). Anything else is refused naming the file, tensor, field and
 * value. Each rank reads only the codes and scale codes of its own shard. */
#ifndef DT_BNB4_H
#define DT_BNB4_H

#include <stdint.h>

#include "quant.h"
#include "safetensors.h"
#include "segs.h"

typedef struct {
  const dt_st_file *f;               /* the file of the codes */
  const dt_st_tensor *codes, *scodes; /* NAME, NAME.absmax */
  const dt_st_file *fs;              /* the file of NAME.absmax */
  int64_t rows, cols;                /* [out, in] */
  float offset;
  float *nabs;                       /* nested absmax, nnest values */
  int64_t nnest;
} dt_bnb4;

/* Is HF tensor `name` stored in bitsandbytes' 4-bit layout in set (a
 * NAME.quant_state.bitsandbytes__* tensor beside it)? */
int dt_bnb4_in(const dt_st_set *set, const char *name);

/* Check one tensor's layout and quant state against the [rows, cols] the
 * model expects and read its nested statistics. DT_EINPUT naming file,
 * tensor, field and value. */
int dt_bnb4_open(dt_bnb4 *b, const dt_st_set *set, const char *name, int64_t rows, int64_t cols);
void dt_bnb4_close(dt_bnb4 *b);

/* Fill local rows lrows[i] (global rows grows[i], i < nr) of q (nf4 with
 * double quantization) as HF tensor group g of it: the 4-bit codes of its
 * local columns (cols_global: their global columns, NULL: the same) and
 * the statistics (dt_qmat_dq_set). Reads only those rows' bytes. */
int dt_bnb4_load(const dt_bnb4 *b, dt_qmat *q, int g, const int *lrows, const int64_t *grows,
                 int nr, const dt_segs *cols_global);

#endif
