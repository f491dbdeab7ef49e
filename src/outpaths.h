/* Output paths: resolved, checked for collisions and locked before anything
 * is trained (docs/usage.md, "Output folders"; docs/reliability.md).
 *
 * Two outputs collide when their resolved paths are equal: absolute, every
 * symbolic link of the part that exists resolved, '.', '..' and repeated
 * slashes removed (so './out', 'out//', '/abs/out' and a link to it are one
 * folder). A run's output folders are locked (io/outlock.h) by rank 0. */
#ifndef DT_OUTPATHS_H
#define DT_OUTPATHS_H

#include <mpi.h>
#include <stddef.h>

/* The resolved form of path (which need not exist). Not collective. */
int dt_path_resolve(const char *path, char *out, size_t cap);

/* train --out DIR: rank 0 creates DIR when missing (one level, as before)
 * and takes its lock. Collective over comm, agreed. */
int dt_outputs_lock_train(const char *out, MPI_Comm comm);

/* The outputs of one sweep task (NULL: none). */
typedef struct {
  const char *task;
  const char *out;
  const char *metrics;
} dt_output_spec;

/* sweep: no two outputs of the tasks (their 'out' folders and 'metrics'
 * files) may resolve to the same path (an error naming the task file, both
 * tasks, both fields and values, and the resolved path); then rank 0 creates
 * each 'out' and takes its lock. Collective over comm, agreed. */
int dt_outputs_lock_sweep(const char *file, const dt_output_spec *t, int n, MPI_Comm comm);

#endif
