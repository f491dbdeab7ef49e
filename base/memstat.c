#include "memstat.h"

#include <stdio.h>

/* A "Name: N kB" line of a /proc file, in MB (0 when missing). */
static double proc_kb_mb(const char *path, const char *fmt) {
  FILE *f = fopen(path, "r");
  if (!f) return 0.0;
  char line[256];
  double kb = 0.0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, fmt, &kb) == 1) break;
  fclose(f);
  return kb / 1024.0;
}

double dt_rss_mb(void) { return proc_kb_mb("/proc/self/status", "VmRSS: %lf kB"); }
double dt_peak_rss_mb(void) { return proc_kb_mb("/proc/self/status", "VmHWM: %lf kB"); }
double dt_pss_mb(void) { return proc_kb_mb("/proc/self/smaps_rollup", "Pss: %lf kB"); }
