/* Errors as values with context.
 *
 * Every fallible function returns int: DT_OK (0) or an error code. The first
 * failure records a formatted message (naming the file, field and value); each
 * caller that propagates it with DT_CALL appends its location, giving a short
 * traceback. Only the top level (main) turns an error into a message and a
 * non-zero exit of every rank.
 */
#ifndef DT_ERROR_H
#define DT_ERROR_H

enum {
  DT_OK = 0,
  DT_EUSAGE = 2,    /* bad command line: exit code 2 */
  DT_EINPUT = 3,    /* bad input file / data / config */
  DT_EIO = 4,       /* read/write failure */
  DT_ENOMEM = 5,    /* allocation failure */
  DT_ENUMERIC = 6,  /* NaN/inf loss or similar */
  DT_EMPI = 7,      /* communication failure */
  DT_EINTERNAL = 8, /* a bug: an invariant did not hold */
  DT_EINTERRUPT = 9 /* stopped by a signal after checkpointing */
};

/* Record a new error (clears any previous one) and return code. */
int dt_error_set(int code, const char *file, int line, const char *func,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Append a traceback frame and return code unchanged. */
int dt_error_trace(int code, const char *file, int line, const char *func);
/* The message of the last error ("" when none). */
const char *dt_error_message(void);
/* The traceback (one frame per line). */
const char *dt_error_traceback(void);
void dt_error_clear(void);
const char *dt_error_name(int code);

/* Agreed errors. An error that every rank of MPI_COMM_WORLD holds at the
 * same point (a global value such as the all-reduced loss, or the result of
 * dt_agree over the world) is marked agreed: main then reports it once, from
 * rank 0, and every rank exits with its code without MPI_Abort (dt_agree in
 * agree.h makes any error agreed). Recording a new error clears the mark. */
void dt_error_mark_agreed(void);
int dt_error_agreed(void);

#define DT_ERR(code, ...) \
  return dt_error_set((code), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define DT_CALL(expr)                                                   \
  do {                                                                  \
    int dt_call_rc_ = (expr);                                           \
    if (dt_call_rc_ != DT_OK)                                           \
      return dt_error_trace(dt_call_rc_, __FILE__, __LINE__, __func__); \
  } while (0)

/* Check a condition; on failure record the message and return. */
#define DT_CHECK(cond, code, ...) \
  do {                            \
    if (!(cond)) DT_ERR((code), __VA_ARGS__); \
  } while (0)

/* Allocation helpers that record an error naming what was being allocated. */
#include <stddef.h>
#include <stdint.h>
int dt_malloc(void *pptr, size_t bytes, const char *what);
int dt_calloc(void *pptr, size_t bytes, const char *what);
/* 64-byte aligned, zero-filled. Free with free(). */
int dt_alloc_aligned(void *pptr, size_t bytes, const char *what);
/* Scratch that grows on demand: make *p (from dt_alloc_aligned, or NULL with
 * *cap 0) hold at least n floats; *cap is its size in floats. A buffer that
 * grows is reallocated without its contents. */
int dt_ensure_floats(float **p, size_t *cap, size_t n, const char *what);
/* The bytes an allocation of b bytes takes as plan counts it (whole 64-byte
 * lines, at least one). */
static inline int64_t dt_alloc_bytes(int64_t b) { return b > 0 ? (b + 63) / 64 * 64 : 64; }

#endif
