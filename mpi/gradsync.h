/* Completing the gradients of a parameter table across ranks (see
 * docs/parallel.md): two flat buckets, partial sums over every rank,
 * complete and shard gradients over the data-parallel replicas. */
#ifndef DT_GRADSYNC_H
#define DT_GRADSYNC_H

#include <stddef.h>

#include "dist.h"
#include "params.h"

/* buf/cap: a reusable bucket buffer (grown as needed; free() it). */
int dt_grad_sync(dt_dist *d, dt_params *t, float **buf, size_t *cap);

#endif
