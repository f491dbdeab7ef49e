/* This process's memory as the kernel counts it (Linux /proc), in MB; 0
 * where the kernel does not say. */
#ifndef DT_MEMSTAT_H
#define DT_MEMSTAT_H

/* Resident set now (VmRSS) and its peak (VmHWM). */
double dt_rss_mb(void);
double dt_peak_rss_mb(void);
/* Proportional set size: a page shared by k processes counts 1/k in each,
 * so the ranks' sum is what the job holds (RSS counts shared pages, the
 * frozen weights of --share-weights and the sum window, in every rank). */
double dt_pss_mb(void);

#endif
