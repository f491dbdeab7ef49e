#include "gradsync.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

int dt_grad_sync(dt_dist *d, dt_params *t, float **buf, size_t *cap) {
  if (d->size == 1) return DT_OK;
  size_t na = 0, nb = 0;
  for (int i = 0; i < t->n; i++) {
    const dt_param *p = &t->p[i];
    if (p->sync == DT_SYNC_PARTIAL && d->tp_size > 1) na += (size_t)p->numel_l;
    else nb += (size_t)p->numel_l;
  }
  if (!*buf || *cap < na + nb) {
    free(*buf);
    *buf = NULL;
    DT_CALL(dt_malloc(buf, sizeof(float) * (na + nb + 1), "gradient buckets"));
    *cap = na + nb;
  }
  float *A = *buf, *B = *buf + na;
  size_t ia = 0, ib = 0;
  for (int i = 0; i < t->n; i++) {
    const dt_param *p = &t->p[i];
    const int world = p->sync == DT_SYNC_PARTIAL && d->tp_size > 1;
    memcpy(world ? A + ia : B + ib, p->grad, sizeof(float) * (size_t)p->numel_l);
    if (world) ia += (size_t)p->numel_l;
    else ib += (size_t)p->numel_l;
  }
  DT_CALL(dt_world_sum(d, A, na));
  DT_CALL(dt_dp_sum(d, B, nb));
  ia = ib = 0;
  for (int i = 0; i < t->n; i++) {
    dt_param *p = &t->p[i];
    const int world = p->sync == DT_SYNC_PARTIAL && d->tp_size > 1;
    memcpy(p->grad, world ? A + ia : B + ib, sizeof(float) * (size_t)p->numel_l);
    if (world) ia += (size_t)p->numel_l;
    else ib += (size_t)p->numel_l;
  }
  return DT_OK;
}
