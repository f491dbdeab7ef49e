/* The median step time of a run's timings. */
#ifndef DT_MEDIAN_H
#define DT_MEDIAN_H

/* The median of v[0..n) leaving out v[0] when there are others (a run's
 * first step is its warm-up); sorts the values it uses in place. NAN when
 * n is 0. */
double dt_median_after_first(double *v, int n);

#endif
