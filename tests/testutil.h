/* Shared helpers for the cmocka tests. */
#ifndef DT_TESTUTIL_H
#define DT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "method.h"
#include "model.h"
#include "options.h"
#include "params.h"
#include "safetensors.h"

/* Path of a file in the HF parity fixtures (tests/data/hf-parity/REL). */
const char *dt_test_fixture(const char *rel);
/* Path under tests/data. */
const char *dt_test_data(const char *rel);
/* A fresh temporary directory (removed at exit is not guaranteed). */
const char *dt_test_tmpdir(void);
/* NAME inside dt_test_tmpdir(); the result lives until 16 later calls. */
const char *dt_test_tmp(const char *name);
/* Write the text S to PATH (the test fails if it cannot). */
void dt_test_write(const char *path, const char *s);
/* A folder NAME inside dt_test_tmpdir() holding config.json with the text
 * JSON (a model folder for dt_hf_config_load); lives as dt_test_tmp's. */
const char *dt_test_config_dir(const char *name, const char *json);
/* The current error message (dt_error_message) contains NEEDLE, or the test
 * fails naming both. */
void dt_test_error_has(const char *needle);
/* A fresh folder under /dev/shm for tests that mount: mounts are made only
 * there, inside DT_TEST_PRIVATE_NS (tests/private_ns.sh), so that they work
 * in a chroot as on a booted machine and never reach the machine's own
 * mount table. */
const char *dt_test_mount_dir(void);
#define DT_TEST_PRIVATE_NS DT_SOURCE_DIR "/tests/private_ns.sh"
/* A real component this test needs cannot start here (WHY says why): under
 * CI=true that fails the test, elsewhere it is skipped with the reason. A
 * test of a real component never passes by skipping in CI. */
void dt_test_unavailable(const char *why);
/* Run a shell command; stdout+stderr go to *out (malloc'd, may be NULL).
 * Returns the exit status (or -1 if it could not run / was signalled). */
int dt_test_run(char **out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A test-local generator (xorshift64*, independent of base/rng.h): the
 * next 64 bits from *state, and a float uniform in [-1, 1) made of them. */
uint64_t dt_test_rand_u64(uint64_t *state);
float dt_test_rand_pm1(uint64_t *state);
/* How often needle occurs in hay. */
int dt_test_count(const char *hay, const char *needle);
/* Fail the test (naming `what`) unless out holds needle. */
void dt_test_expect(const char *out, const char *needle, const char *what);
/* Seconds on the monotonic clock. */
double dt_test_now(void);
/* Read a whole text file (malloc'd, NUL-terminated). NULL on failure. */
char *dt_test_slurp(const char *path);

/* The "loss" of each step 0, 1, ... of a --metrics file, in order (at most
 * 64; *n gets the count). malloc'd; NULL when the file cannot be read. */
double *dt_test_read_losses(const char *path, int *n);
/* A tensor of an open safetensors file as fp32 (malloc'd; NULL on error). */
float *dt_test_read_tensor(const dt_st_file *f, const dt_st_tensor *t);
/* Every tensor of ref_path must appear in got_path (canonical parameter
 * names) with the same shape and a relative L2 error <= tol, and got_path
 * must have no other tensor; fails the test (naming `what`) otherwise.
 * With tol > 0, a reference tensor below 1e-7 of the whole reference's L2
 * norm is zero up to rounding: its error must be below that instead.
 * Returns the worst relative error (of the other tensors). */
double dt_test_compare_tensors(const char *got_path, const char *ref_path, double tol,
                               const char *what);

/* Finite-difference gradient checks of delta methods on the HF parity
 * fixture models (tests/data/hf-parity/<family>/model), batch
 * DT_TEST_FX_B x DT_TEST_FX_T of random token ids, every position scored.
 *
 * dt_test_fx_open parses args (every method's options) into fx->opt, loads
 * the model, creates the comma-separated methods (seed 3) and plans the
 * batch (recompute: --recompute). On failure it returns the error code with
 * fx still safe to close (the rest of fx zeroed where not yet set).
 * dt_test_fx_loss runs an eval forward and returns the mean loss.
 *
 * dt_test_fx_check_grads computes the gradient at the current point, then
 * checks every trainable tensor by a central difference of the loss along its
 * own unit gradient direction (the derivative there is |g_t|), and the whole
 * table along one random unit direction; it fails the test (fail_msg) on a
 * zero gradient or a mismatch beyond 1e-3 relative + 3e-6.
 *
 * dt_test_gradcheck runs one case: opens the methods, asserts n_tensors
 * trainable tensors, asserts the fresh init leaves the loss of method "none"
 * unchanged, moves every tensor away from its init (dt_test_fx_perturb, amp
 * 0.3) and checks the gradients. */
enum { DT_TEST_FX_B = 2, DT_TEST_FX_T = 12 };
typedef struct {
  dt_options opt;
  dt_model m;
  dt_params p;
  dt_method **ms;
  int nm;
  int32_t ids[DT_TEST_FX_B * DT_TEST_FX_T];
  double count; /* scored tokens */
} dt_test_fx;

int dt_test_fx_open(dt_test_fx *fx, const char *family, const char *methods,
                    int recompute, const char *const *args, int nargs);
void dt_test_fx_close(dt_test_fx *fx);
double dt_test_fx_loss(dt_test_fx *fx);
/* Every value = base + amp * N(0,1), base 1 for IA3 vectors (multiplicative,
 * init 1) and 0 for every other tensor. */
void dt_test_fx_perturb(dt_test_fx *fx, double amp);
void dt_test_fx_check_grads(dt_test_fx *fx);
void dt_test_gradcheck(const char *family, const char *methods, int recompute,
                       const char *const *args, int nargs, int n_tensors);

#endif
