/* The one timer (base layer): seconds on the monotonic clock, for
 * durations (step times, communication, calibration). */
#ifndef DT_CLOCK_H
#define DT_CLOCK_H

/* Seconds since an arbitrary fixed point; only differences mean anything. */
double dt_now(void);

#endif
