#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mpicheck.h"

int dt_adamw_init(dt_adamw *o, const dt_params *t) {
  o->numel = t->numel_l;
  o->step = 0;
  DT_CALL(dt_alloc_aligned(&o->m, sizeof(float) * (size_t)(t->numel_l + 1), "AdamW first moment"));
  DT_CALL(dt_alloc_aligned(&o->v, sizeof(float) * (size_t)(t->numel_l + 1), "AdamW second moment"));
  return DT_OK;
}

void dt_adamw_free(dt_adamw *o) {
  free(o->m);
  free(o->v);
  o->m = o->v = NULL;
}

double dt_adamw_lr(const dt_adamw *o, int64_t step) {
  double lr = o->lr;
  if (o->warmup_steps > 0 && step < o->warmup_steps)
    return lr * (double)(step + 1) / (double)o->warmup_steps;
  if (o->schedule == DT_SCHED_CONSTANT || o->total_steps <= o->warmup_steps) return lr;
  double p = (double)(step - o->warmup_steps) / (double)(o->total_steps - o->warmup_steps);
  if (p > 1.0) p = 1.0;
  if (o->schedule == DT_SCHED_LINEAR) return lr * (1.0 - p);
  return lr * 0.5 * (1.0 + cos(M_PI * p));
}

int dt_grad_norm(const dt_params *t, dt_dist *dist, double *norm) {
  double s = 0.0, sh = 0.0;
  for (int i = 0; i < t->n; i++) {
    const float *g = t->p[i].grad;
    double a = 0.0;
    for (int64_t j = 0; j < t->p[i].numel_l; j++) a += (double)g[j] * g[j];
    if (t->p[i].shard) sh += a;
    else s += a;
  }
  if (dist && dist->tp_size > 1)
    DT_MPI(MPI_Allreduce(MPI_IN_PLACE, &sh, 1, MPI_DOUBLE, MPI_SUM, dist->tp),
           "MPI_Allreduce of the gradient norm over the tensor group");
  *norm = sqrt(s + sh);
  return DT_OK;
}

double dt_adamw_step(dt_adamw *o, dt_params *t, double grad_norm) {
  const double lr = dt_adamw_lr(o, o->step);
  o->step++;
  const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
  const double bc1 = 1.0 - pow(o->beta1, (double)o->step);
  const double bc2 = 1.0 - pow(o->beta2, (double)o->step);
  const float step_size = (float)(lr / bc1);
  const float bc2_sqrt = (float)sqrt(bc2);
  const float decay = (float)(1.0 - lr * o->weight_decay);
  float clip = 1.0f;
  if (o->clip_norm > 0.0 && grad_norm > o->clip_norm)
    clip = (float)(o->clip_norm / (grad_norm + 1e-6));
  int64_t off = 0;
  for (int i = 0; i < t->n; i++) {
    float *p = t->p[i].data, *g = t->p[i].grad;
    float *m = o->m + off, *v = o->v + off;
    for (int64_t j = 0; j < t->p[i].numel_l; j++) {
      float gj = g[j] * clip;
      if (o->weight_decay != 0.0) p[j] *= decay;
      m[j] = m[j] + (gj - m[j]) * (1.0f - b1); /* torch lerp_ */
      v[j] = v[j] * b2 + (1.0f - b2) * gj * gj;
      float denom = sqrtf(v[j]) / bc2_sqrt + eps;
      p[j] -= step_size * (m[j] / denom);
    }
    off += t->p[i].numel_l;
  }
  return lr;
}
