/* The task file of `deltatune sweep` (docs/sweep.md): INI, parsed by inih,
 * one [task NAME] section per task whose keys are `deltatune train` options
 * without the dashes. Parsing and validation only: nothing is loaded, no
 * MPI call is made, nothing is printed; every error is a value whose
 * message names the file, the line, the task and the key.
 * Used by src/sweep.c before the backbone is built, and by the fuzz target
 * tests/fuzz/fuzz_taskfile.c. */
#ifndef DT_TASKFILE_H
#define DT_TASKFILE_H

#include "options.h"

#define DT_TASK_MAX 64     /* tasks in a file */
#define DT_TASK_MAX_KV 128 /* keys in a task */
#define DT_TASK_NAME_MAX 64

/* One [task NAME] section as written. */
typedef struct {
  char name[DT_TASK_NAME_MAX];
  int line; /* of the [task NAME] line */
  int nkv;
  char key[DT_TASK_MAX_KV][64];
  char val[DT_TASK_MAX_KV][DT_OPTVAL_MAX];
  int kline[DT_TASK_MAX_KV]; /* line of each key */
} dt_task_src;

typedef struct {
  int n;
  dt_task_src t[DT_TASK_MAX];
} dt_taskfile;

/* Read and check the structure of the task file at path into *tf (large:
 * allocate it on the heap): INI syntax, lines of at most 199 characters,
 * only [task NAME] sections, each name once, each key once per task, no
 * key that belongs to the shared backbone (model, tp, weights-dtype,
 * recompute), at least one task, no empty task. Errors: DT_EINPUT (exit
 * 3). */
int dt_taskfile_parse(dt_taskfile *tf, const char *path);

/* Parse task t's keys as `deltatune train` options (the train task groups
 * and the checkpoint group, as the sweep does) into *o, after the npre
 * arguments pre ("--model=...", the sweep's shared options), then
 * dt_task_check. An option error names the file, the key's line, the task
 * and the key (DT_EUSAGE, exit 2). */
int dt_task_options(dt_options *o, const dt_task_src *t, const char *path, int npre,
                    char **pre);

/* The checks of a task's parsed options that the option tables cannot
 * make (DT_EUSAGE, exit 2, naming the file, line, task and key): 'data' is
 * given, every method is known and listed once, no method option belongs
 * to a method the task does not select, 'shuffle' and 'sample-rows'
 * exclude each other. */
int dt_task_check(const dt_options *o, const dt_task_src *t, const char *path);

#endif
