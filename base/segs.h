/* Segment lists: how the global indices of one dimension map to the local
 * indices a rank holds. A segment maps global [g0, g0+len) to local
 * [l0, l0+len); adjacent runs are merged. Used by the shard layout
 * (mpi/shard.h) and the parameter table (io/params.h). */
#ifndef DT_SEGS_H
#define DT_SEGS_H

typedef struct {
  int g0, len, l0;
} dt_seg;

#define DT_SEGS_MAX 512 /* BLOOM-176B per-head query_key_value at one rank: 336 runs */

typedef struct {
  int n;
  dt_seg s[DT_SEGS_MAX]; /* merged runs */
} dt_segs;

static inline const dt_seg *dt_segs_at(const dt_segs *s, int i) { return &s->s[i]; }

/* Append global [g0, g0+len) -> local [l0, l0+len) (merged with the last
 * run when adjacent); DT_EUSAGE past DT_SEGS_MAX runs. */
int dt_segs_push(dt_segs *s, int g0, int len, int l0);
/* Segments of `all` restricted to global [lo, hi), shifted by -lo. */
int dt_segs_restrict(dt_segs *out, const dt_segs *all, int lo, int hi);
int dt_segs_total(const dt_segs *s);
/* One segment covering [0, n) -> [l0, l0 + n). */
void dt_segs_full(dt_segs *s, int n, int l0);

#endif
