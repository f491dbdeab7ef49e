#include "batch.h"

#include <stdlib.h>

#include "rng.h"

int64_t dt_batch_row(const dt_options *o, dt_row_order *c, int64_t N, int B_global,
                     int64_t step, int64_t i) {
  const int64_t g = step * B_global + i;
  if (dt_opt_is_set(o, "sample-rows")) {
    uint64_t key = dt_rng_key((uint64_t)dt_opt_int(o, "sample-rows"), 0x5a3);
    return (int64_t)(dt_rng_u64(key, (uint64_t)g) % (uint64_t)N);
  }
  if (!dt_opt_is_set(o, "shuffle")) return g % N;
  const int64_t epoch = g / N, pos = g % N;
  if (!c->order) {
    c->order = malloc(sizeof(int64_t) * N);
    if (!c->order) return pos; /* degrade to in-order */
    c->epoch = -1;
  }
  if (epoch != c->epoch) {
    uint64_t key = dt_rng_key((uint64_t)dt_opt_int(o, "shuffle"), 0x5f0 + (uint64_t)epoch);
    for (int64_t j = 0; j < N; j++) c->order[j] = j;
    for (int64_t j = N - 1; j > 0; j--) {
      int64_t k = (int64_t)(dt_rng_u64(key, (uint64_t)j) % (uint64_t)(j + 1));
      int64_t t = c->order[j];
      c->order[j] = c->order[k];
      c->order[k] = t;
    }
    c->epoch = epoch;
  }
  return c->order[pos];
}

void dt_row_order_free(dt_row_order *c) {
  free(c->order);
  c->order = NULL;
  c->epoch = -1;
}
