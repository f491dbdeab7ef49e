#include "segs.h"

#include <string.h>

#include "error.h"

int dt_segs_push(dt_segs *s, int g0, int len, int l0) {
  if (len <= 0) return DT_OK;
  dt_seg *last = s->n ? (dt_seg *)dt_segs_at(s, s->n - 1) : NULL;
  if (last && last->g0 + last->len == g0 && last->l0 + last->len == l0) {
    last->len += len; /* merge adjacent runs */
    return DT_OK;
  }
  DT_CHECK(s->n < DT_SEGS_MAX, DT_EUSAGE,
           "this tensor-parallel split needs more than %d runs of heads per rank; "
           "use a --tp that divides the number of key/value heads", DT_SEGS_MAX);
  dt_seg *d = &s->s[s->n];
  *d = (dt_seg){g0, len, l0};
  s->n++;
  return DT_OK;
}

void dt_segs_full(dt_segs *s, int n, int l0) {
  memset(s, 0, sizeof *s);
  if (n > 0) {
    s->s[0] = (dt_seg){0, n, l0};
    s->n = 1;
  }
}

int dt_segs_total(const dt_segs *s) {
  int t = 0;
  for (int i = 0; i < s->n; i++) t += dt_segs_at(s, i)->len;
  return t;
}

int dt_segs_restrict(dt_segs *out, const dt_segs *all, int lo, int hi) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < all->n; i++) {
    const dt_seg *g = dt_segs_at(all, i);
    int a = g->g0 > lo ? g->g0 : lo, b = g->g0 + g->len < hi ? g->g0 + g->len : hi;
    if (a < b) DT_CALL(dt_segs_push(out, a - lo, b - a, g->l0 + (a - g->g0)));
  }
  return DT_OK;
}
