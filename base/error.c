#include "error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_msg[2048];
static char g_trace[4096];
static int g_agreed;

int dt_error_set(int code, const char *file, int line, const char *func,
                 const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_msg, sizeof g_msg, fmt, ap);
  va_end(ap);
  snprintf(g_trace, sizeof g_trace, "  at %s (%s:%d)\n", func, file, line);
  g_agreed = 0;
  return code;
}

void dt_error_mark_agreed(void) { g_agreed = 1; }
int dt_error_agreed(void) { return g_agreed; }

int dt_error_trace(int code, const char *file, int line, const char *func) {
  size_t n = strlen(g_trace);
  if (n + 128 < sizeof g_trace)
    snprintf(g_trace + n, sizeof g_trace - n, "  at %s (%s:%d)\n", func, file,
             line);
  return code;
}

const char *dt_error_message(void) { return g_msg; }
const char *dt_error_traceback(void) { return g_trace; }

void dt_error_clear(void) {
  g_msg[0] = 0;
  g_trace[0] = 0;
  g_agreed = 0;
}

const char *dt_error_name(int code) {
  switch (code) {
    case DT_OK: return "ok";
    case DT_EUSAGE: return "usage error";
    case DT_EINPUT: return "input error";
    case DT_EIO: return "I/O error";
    case DT_ENOMEM: return "out of memory";
    case DT_ENUMERIC: return "numerical error";
    case DT_EMPI: return "MPI error";
    case DT_EINTERNAL: return "internal error";
    case DT_EINTERRUPT: return "interrupted";
    default: return "error";
  }
}

int dt_malloc(void *pptr, size_t bytes, const char *what) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p)
    DT_ERR(DT_ENOMEM, "cannot allocate %zu bytes for %s", bytes, what);
  *(void **)pptr = p;
  return DT_OK;
}

int dt_calloc(void *pptr, size_t bytes, const char *what) {
  void *p = calloc(1, bytes ? bytes : 1);
  if (!p)
    DT_ERR(DT_ENOMEM, "cannot allocate %zu bytes for %s", bytes, what);
  *(void **)pptr = p;
  return DT_OK;
}

int dt_alloc_aligned(void *pptr, size_t bytes, const char *what) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void *p = aligned_alloc(64, rounded ? rounded : 64);
  if (!p)
    DT_ERR(DT_ENOMEM, "cannot allocate %zu bytes for %s", bytes, what);
  memset(p, 0, rounded ? rounded : 64);
  *(void **)pptr = p;
  return DT_OK;
}

int dt_ensure_floats(float **p, size_t *cap, size_t n, const char *what) {
  if (*cap >= n) return DT_OK;
  free(*p);
  *p = NULL;
  *cap = 0;
  DT_CALL(dt_alloc_aligned(p, n * sizeof(float), what));
  *cap = n;
  return DT_OK;
}
