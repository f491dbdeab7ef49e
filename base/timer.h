/* Wall-clock seconds for timing (CLOCK_MONOTONIC): the one timer of the
 * tool, for step times, communication times and benchmarks. */
#ifndef DT_TIMER_H
#define DT_TIMER_H

#include <time.h>

static inline double dt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
