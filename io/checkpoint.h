/* Checkpoints: one CDF-5 NetCDF file per task, written and read collectively
 * with PnetCDF (docs/checkpoint.md describes the format attribute by
 * attribute).
 *
 * Every trainable tensor is one float variable in its full EXTERNAL (HF /
 * PEFT) shape and layout, whatever the rank layout that wrote it, so a file
 * can be read back by any number of ranks. With the optimizer state, two
 * more variables per tensor hold AdamW's exp_avg and exp_avg_sq in the same
 * shape. Each variable carries its external name, role, method, units,
 * long_name and the XXH3-64 of its bytes, verified on every read.
 *
 * Writing is safe against failures and interruptions: the file is written
 * under a temporary name in the same folder, its `complete` attribute is set
 * only after every rank's data is in, the ranks agree on the outcome, and
 * only then does rank 0 rename it over the target and fsync the folder.
 */
#ifndef DT_CHECKPOINT_H
#define DT_CHECKPOINT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "backbone_id.h"
#include "params.h"

#define DT_CKPT_FORMAT "deltatune-checkpoint"
#define DT_CKPT_FORMAT_VERSION 1
#define DT_CKPT_NAME_MAX 256 /* NetCDF names (NC_MAX_NAME) */
#define DT_CKPT_MAX_COUNTERS 8
#define DT_CKPT_MAX_METHODS 16
#define DT_CKPT_VALUE_MAX 1024 /* an option's value text (options.h DT_OPTVAL_MAX) */

enum { DT_CKPT_PARAM = 0, DT_CKPT_EXP_AVG = 1, DT_CKPT_EXP_AVG_SQ = 2 };

/* One variable of a checkpoint. */
typedef struct {
  char name[DT_PARAM_NAME_MAX]; /* external (HF/PEFT) name */
  char ncname[DT_CKPT_NAME_MAX]; /* NetCDF variable name (sanitised) */
  char method[32];
  int role; /* DT_CKPT_PARAM / EXP_AVG / EXP_AVG_SQ */
  int ndim;
  int64_t shape[4];
  int64_t numel;
  uint64_t xxh3; /* of the float32 little-endian values, external layout */
  int varid;
} dt_ckpt_var;

/* An option as stored: --name and its value text ("" when unset). */
typedef struct {
  char name[64];
  char value[DT_CKPT_VALUE_MAX];
} dt_ckpt_opt;

/* Counters of one method (dt_method_ops save_counters). */
typedef struct {
  char method[32];
  int n;
  int64_t v[DT_CKPT_MAX_COUNTERS];
} dt_ckpt_counters;

/* Everything a checkpoint says besides the tensor values. The writer takes
 * it from the caller (vars are filled by the writer); the reader fills it. */
typedef struct {
  /* written by the tool */
  int format_version;
  char version[32];  /* DT_VERSION of the writer */
  char created[40];  /* UTC, ISO 8601 */
  int complete;      /* 1 once every rank's data is in */
  char command[32];  /* "train" */
  char methods[512]; /* "lora,bitfit" */
  /* every option of the command and of the selected methods */
  int n_opts;
  dt_ckpt_opt *opts;       /* malloc'd (dt_ckpt_info_free) */
  char options_given[2048]; /* names given on the command line, comma-separated */
  /* backbone */
  dt_backbone_id backbone;
  char arch[16]; /* gpt2 | llama */
  int layers, d_model, heads, kv_heads, head_dim, ffn, vocab, ctx;
  /* rank layout of the writer */
  int nranks;
  char rank_layout[256];
  /* training state */
  int64_t step;        /* optimizer updates done = index of the next step */
  int64_t steps_total; /* --steps of the run that wrote it */
  double lr_last;      /* learning rate of the last update (NaN: none yet) */
  double lr_next;      /* learning rate of the next update */
  double loss_first;   /* loss of step 0 (NaN: unknown) */
  double loss_last;    /* loss of the last step (NaN: none yet) */
  int64_t batch_size;  /* global rows per step */
  int64_t data_next_row; /* global row counter of the next step (step * batch) */
  int64_t data_rows, data_seq_len;
  char data_source[1024];
  int has_optimizer;
  int n_counters;
  dt_ckpt_counters counters[DT_CKPT_MAX_METHODS];
  /* filled by the reader */
  int n_vars;
  dt_ckpt_var *vars; /* malloc'd */
  int64_t data_bytes, header_bytes, file_bytes;
} dt_ckpt_info;

void dt_ckpt_info_free(dt_ckpt_info *i);
/* The stored value of option `name`, or NULL when the file has none. */
const char *dt_ckpt_info_opt(const dt_ckpt_info *i, const char *name);
/* The counters stored for a method, or NULL. */
const dt_ckpt_counters *dt_ckpt_info_counters(const dt_ckpt_info *i, const char *method);

/* Write `path` safely from the parameter table and, when exp_avg is not
 * NULL, AdamW's moments (storage layout, table order, numel_l per tensor:
 * dt_adamw's m and v). Rank r writes the variables i of replicated tensors
 * with i % nranks == r. On success *file_bytes (may be NULL) is the file
 * size. Collective over comm; on failure every rank returns the same error
 * and the previous file at `path`, if any, is untouched.
 *
 * dt_ckpt_write_tp also takes tensors sharded by tensor parallelism
 * (dt_param.shard): tp is this rank's tensor group (a sub-communicator of
 * comm whose shards together hold each sharded tensor exactly once;
 * MPI_COMM_NULL when nothing is sharded). Each sharded variable is
 * assembled whole, in its external shape, on the first rank of a tensor
 * group, and the groups' first ranks take turns writing them. The file is
 * the same as one written from unsharded tensors. */
int dt_ckpt_write(const char *path, const dt_ckpt_info *meta, const dt_params *params,
                  const float *exp_avg, const float *exp_avg_sq, MPI_Comm comm,
                  int64_t *file_bytes);
int dt_ckpt_write_tp(const char *path, const dt_ckpt_info *meta, const dt_params *params,
                     const float *exp_avg, const float *exp_avg_sq, MPI_Comm comm,
                     MPI_Comm tp, int64_t *file_bytes);

/* A checkpoint opened for reading. */
typedef struct {
  int ncid;
  MPI_Comm comm;
  char path[4096];
  dt_ckpt_info info;
} dt_ckpt_file;

/* Open and read the header: format and version, attributes, variables.
 * Before PnetCDF reads it, rank 0 walks the NetCDF header and checks every
 * count in it against the file's size (PnetCDF would allocate what a
 * damaged header claims); after, every variable must lie inside the file (a
 * truncated file is named as such). Errors (corrupted or truncated, not
 * NetCDF, another format, a newer version) name the file. Collective over
 * comm. */
int dt_ckpt_open(dt_ckpt_file *f, const char *path, MPI_Comm comm);
void dt_ckpt_close(dt_ckpt_file *f);
/* The variable of external name `name` (canonical comparison) and role. */
const dt_ckpt_var *dt_ckpt_find(const dt_ckpt_file *f, const char *name, int role);
/* Read a variable (external layout, numel floats) and verify its checksum:
 * a mismatch is an error naming the variable and the file. Collective. */
int dt_ckpt_read_var(dt_ckpt_file *f, const dt_ckpt_var *v, float *dst);
/* Restore every parameter of the table (and the moments when exp_avg is not
 * NULL): each must be in the file with its shape. Every rank reads each
 * variable whole (and checks its checksum); a sharded parameter keeps its
 * own elements (dt_param_full_to_local). Collective. */
int dt_ckpt_read_params(dt_ckpt_file *f, dt_params *params, float *exp_avg,
                        float *exp_avg_sq);
/* Read every variable and verify its checksum. Collective. */
int dt_ckpt_verify(dt_ckpt_file *f);

/* --- a folder of checkpoints ------------------------------------------- */
/* DIR/ckpt-<step as 10 digits>.nc */
void dt_ckpt_path(char *out, size_t cap, const char *dir, int64_t step);
/* The newest complete checkpoint of DIR (the highest step among the files
 * named ckpt-<digits>.nc; temporaries never have that name): path "" and
 * step -1 when there is none. Rank 0 lists, the result is broadcast.
 * Collective. */
int dt_ckpt_find_newest(const char *dir, char *path, size_t cap, int64_t *step,
                        MPI_Comm comm);
/* The steps of every checkpoint of DIR (files named ckpt-<digits>.nc),
 * newest first; *steps malloc'd (NULL when none). Rank 0 lists, the list is
 * broadcast. Collective. */
int dt_ckpt_list(const char *dir, int64_t **steps, int *n, MPI_Comm comm);
/* After the checkpoint of step `current` was written: keep the `keep`
 * newest checkpoints of DIR (0 = all) up to `current`, remove those of a
 * later step (an earlier run's, which --resume would otherwise pick) and
 * left-over temporaries of interrupted writes. Rank 0 works; collective. */
int dt_ckpt_prune(const char *dir, int keep, int64_t current, MPI_Comm comm);

/* If any rank's rc is an error, every rank returns the error of the lowest
 * failing rank, with its message. Collective over comm. */
int dt_ckpt_agree(int rc, MPI_Comm comm);

#endif
