#include "median.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double dt_median_after_first(double *v, int n) {
  const int first = n > 1;
  if (n <= 0) return NAN;
  qsort(v + first, (size_t)(n - first), sizeof(double), cmp_double);
  return v[first + (n - first) / 2];
}
