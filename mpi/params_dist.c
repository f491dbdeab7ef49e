#include "params_dist.h"

static int tp_sum(void *ctx, float *buf, size_t n) { return dt_tp_sum(ctx, buf, n); }

int dt_params_save_dist(const dt_params *t, const char *path, int which, dt_dist *dist) {
  if (!dist) return dt_params_save(t, path, which);
  const dt_params_reduce r = {tp_sum, dist, dist->world, dist->rank};
  return dt_params_save_reduced(t, path, which, &r);
}
