/* Helpers of the command-line tests (test_ckpt_tp, test_merge,
 * test_preempt, test_ckpt_cli): run deltatune under the launcher given on the test's
 * command line, compare files, tensors, metrics and checkpoints. */
#ifndef DT_CLITEST_H
#define DT_CLITEST_H

#include <stddef.h>
#include <stdint.h>

#include "testutil.h"

/* The launcher: argv[1..] of the test ("mpirun --oversubscribe" when
 * none); "-np N" is appended. Also sets the fixture folder. */
void cli_init(int argc, char **argv);
/* tests/data/hf-parity, without a trailing slash */
const char *cli_fix(void);
const char *cli_mpirun(void);
/* Run "ENV MPIRUN -np NP deltatune ARGS"; output in *out (malloc'd). */
int cli_dt(char **out, int np, const char *env, const char *args);
/* fail_msg with the output unless rc == 0 */
void cli_must(int rc, char *out, const char *what);
int cli_exists(const char *path);
/* The bytes of a file (malloc'd, one spare byte), or NULL; *len its size. */
char *cli_read_bytes(const char *path, size_t *len);
/* Write LEN bytes to PATH: 0, or -1 on any failure. */
int cli_write_bytes(const char *path, const char *b, size_t len);
/* Byte-for-byte equal files. */
int cli_same_file(const char *a, const char *b);
/* A tensor of a safetensors file by canonical name (malloc'd floats), or
 * NULL; *n its element count, ndim and shape (both may be NULL). */
float *cli_tensor(const char *path, const char *name, int64_t *n, int *ndim, int64_t *shape);
/* Largest |a - b| over the tensors of file a matched by name in file b;
 * fails when a tensor is missing or has another shape. */
double cli_max_diff(const char *a, const char *b);
/* The metrics of a --metrics file: per step (last record wins) the loss,
 * lr and grad_norm fields as written; *count the records per step. */
typedef struct {
  int n; /* highest step + 1 */
  char v[256][3][32];
  int count[256];
  int order[1024]; /* steps in file order */
  int n_records;
} cli_metrics;
void cli_read_metrics(const char *path, cli_metrics *m);
/* Both files have steps 0..steps-1 with equal loss, lr and grad_norm. */
void cli_same_metrics(const char *a, const char *b, int steps, const char *what);
/* The "variables:" section of deltatune inspect --variables (malloc'd). */
char *cli_variables(const char *ckpt);

#endif
