/* Machine constants of `deltatune plan`'s time and memory model: measured by
 * `deltatune plan --calibrate` on the current allocation (dt_machine_calibrate)
 * and kept in a JSON file (default ~/.cache/deltatune/machine.json) that
 * later plans read. docs/plan.md says how each is measured and used. */
#ifndef DT_MACHINE_H
#define DT_MACHINE_H

#include <mpi.h>

/* Measured time of one sum at several sizes: t(n) between two points is the
 * straight line through them (a latency and a bandwidth per size band);
 * below the first point its time, above the last one the last band's
 * bandwidth. n = 0: not measured (the two constants' straight line). */
#define DT_COMM_POINTS 16
typedef struct {
  int n;
  double floats[DT_COMM_POINTS];  /* increasing */
  double seconds[DT_COMM_POINTS]; /* mean seconds of one call */
} dt_comm_curve;

typedef struct {
  double sgemm_gflops;          /* sgemm 1024^3 per rank, every rank busy at once */
  double engine_fraction;       /* model FLOP/s of a training step / sgemm_gflops */
  double bf16_gflops;           /* bf16 products (gemm_bf16.h) 1024^3 per rank, every rank busy;
                                 * 0: not measured (no bf16 matmul on the machine) */
  double engine_fraction_bf16;  /* model FLOP/s of the same step with bf16 weights and
                                 * products / bf16_gflops (0: not measured) */
  double shm_sum_latency_s;     /* dt_tp_sum through the shared-memory window: */
  double shm_sum_bytes_per_s;   /*   t(n floats) = latency + 4 n / bytes_per_s */
  double allreduce_latency_s;   /* MPI_Allreduce (small tensor-group sums, */
  double allreduce_bytes_per_s; /*   gradient buckets, groups spanning nodes) */
  dt_comm_curve shm_sum_curve;  /* the same two as measured at several sizes */
  dt_comm_curve allreduce_curve; /*   (used instead of the constants when present) */
  double allreduce_scratch;     /* MPI_Allreduce's transient memory / the message's bytes */
  double stream_bytes_per_s;    /* memory streaming per rank, every rank busy (AdamW) */
  double baseline_rss_bytes;    /* resident set of a rank before the model: binary, MPI, BLAS */
  double blas_bytes_per_row;    /* OpenBLAS packing memory per row of a GEMM's output */
  double blas_buffer_bytes;     /*   (row-major C), up to this (its buffer) */
  int ranks;                    /* ranks of the calibration run (0: defaults) */
  char blas_core[64];           /* OpenBLAS kernel that ran */
  char when[32];                /* UTC time of the calibration */
  char source[1024];            /* the file read, or "built-in defaults" */
} dt_machine;

/* The built-in constants (docs/plan.md: where they come from). */
void dt_machine_defaults(dt_machine *mc);
/* The default file: $HOME/.cache/deltatune/machine.json (buf, cap). */
int dt_machine_default_path(char *buf, size_t cap);
/* Read path into mc (defaults for fields it lacks). *found = 0 and the
 * defaults when the file does not exist; a malformed file is an error. */
int dt_machine_load(dt_machine *mc, const char *path, int *found);
/* Write mc as JSON (creating the folder). */
int dt_machine_save(const dt_machine *mc, const char *path);
/* Seconds of one dt_tp_sum of n floats through the shared-memory window,
 * and of one MPI_Allreduce of n floats: the measured curve where the file
 * has one, else latency + 4 n / bandwidth. */
double dt_machine_shm_sum_time(const dt_machine *mc, double n);
double dt_machine_allreduce_time(const dt_machine *mc, double n);
/* Measure every constant on the ranks of comm (all of MPI_COMM_WORLD):
 * the resident baseline, sgemm and memory streaming per rank with every
 * rank busy, the engine's
 * model FLOP/s on a small training step (each rank alone), and the
 * time of dt_tp_sum and MPI_Allreduce over all ranks as one tensor group at
 * sizes from 1 to 2^20 floats (the curves; the constants through the
 * smallest and largest; about 4 x sum_seconds of calls per curve, the
 * sizes in turn). With one rank the communication constants keep their
 * defaults. Collective; every rank ends with the same mc. */
int dt_machine_calibrate(dt_machine *mc, double sum_seconds);

#endif
