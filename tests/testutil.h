/* Shared helpers for the cmocka tests. */
#ifndef DT_TESTUTIL_H
#define DT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file in the HF parity fixtures (tests/data/hf-parity/REL). */
const char *dt_test_fixture(const char *rel);
/* Path under tests/data. */
const char *dt_test_data(const char *rel);
/* A fresh temporary directory (removed at exit is not guaranteed). */
const char *dt_test_tmpdir(void);
/* Run a shell command; stdout+stderr go to *out (malloc'd, may be NULL).
 * Returns the exit status (or -1 if it could not run / was signalled). */
int dt_test_run(char **out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Read a whole text file (malloc'd, NUL-terminated). NULL on failure. */
char *dt_test_slurp(const char *path);

#endif
