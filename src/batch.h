/* Which data rows make up a step's batch: in order (wrapping around), in a
 * per-epoch random order (--shuffle SEED), or drawn with replacement
 * (--sample-rows SEED). A pure function of the options, the step and the
 * row's position in the global batch, so resumed runs and every rank
 * layout see the same rows. */
#ifndef DT_BATCH_H
#define DT_BATCH_H

#include <stdint.h>

#include "options.h"

typedef struct {
  int64_t *order; /* permutation of the current epoch (--shuffle) */
  int64_t epoch;
} dt_row_order;

/* Row of the data file for global batch position i of step `step`. */
int64_t dt_batch_row(const dt_options *o, dt_row_order *cache, int64_t n_rows, int B_global,
                     int64_t step, int64_t i);
void dt_row_order_free(dt_row_order *cache);

#endif
