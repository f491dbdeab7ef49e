/* GEMM rates on every rank at once: OpenBLAS sgemm against the bf16 products
 * of src/gemm_bf16.c (oneDNN), on a square product and on the shapes of a
 * tensor-parallel step (issue 12: "achieved GFLOP/s as a fraction of the
 * measured GEMM peak of the same cores").
 *
 *   mpirun -np R --bind-to core build/dt_gemm_peak [TP] [TOKENS] [D] [FFN] [VOCAB]
 *
 * Every rank times the same products at the same time (so the figure is
 * what R busy cores give, not one idle core); rank 0 prints, per shape, the
 * median over ranks of each rank's best of several repetitions, in GFLOP/s
 * per rank and for all ranks together, and the lockstep rate: the slowest
 * rank's median repetition, the pace of ranks that synchronise after every
 * product (a tensor group). The shapes default to the 1.31B
 * GPT-2 shape (d 2048, ffn 8192, vocab 50257) at --tp R, 4 x 512 tokens.
 * Last, one line per precision of each rank's median rate on the square
 * product with the core it ran on, to tell a slow core from a slow rank. */
#define _GNU_SOURCE
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "error.h"
#include "gemm_bf16.h"

typedef struct {
  const char *name;
  int M, N, K, trans_b; /* C[M,N] = A[M,K] op(B) */
} shape;

static int cmp_d(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Best and median seconds of `reps` runs after one warm-up; `reps` <= 15. */
static void time_one(const shape *s, int bf16, float *A, float *B, uint16_t *B16, float *C,
                     uint16_t *a16, int reps, double *best, double *median) {
  double ts[16];
  for (int r = 0; r <= reps; r++) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    if (bf16) {
      if (dt_gemm_bf16(C, A, B16, s->M, s->N, s->K, s->trans_b, 0.0f, a16) != DT_OK) {
        fprintf(stderr, "dt_gemm_peak: %s\n", dt_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, s->trans_b ? CblasTrans : CblasNoTrans, s->M, s->N,
                  s->K, 1.0f, A, s->K, B, s->trans_b ? s->K : s->N, 0.0f, C, s->N);
    }
    if (r > 0) ts[r - 1] = MPI_Wtime() - t0;
  }
  qsort(ts, (size_t)reps, sizeof *ts, cmp_d);
  *best = ts[0];
  *median = ts[reps / 2];
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int tp = argc > 1 ? atoi(argv[1]) : size;
  const int n = argc > 2 ? atoi(argv[2]) : 2048;
  const int d = argc > 3 ? atoi(argv[3]) : 2048;
  const int ffn = argc > 4 ? atoi(argv[4]) : 4 * d;
  const int vocab = argc > 5 ? atoi(argv[5]) : 50257;
  if (tp < 1 || n < 1 || d < tp || ffn < tp || vocab < tp) {
    if (rank == 0) fprintf(stderr, "usage: dt_gemm_peak [TP] [TOKENS] [D] [FFN] [VOCAB]\n");
    MPI_Finalize();
    return 2;
  }
  const shape shapes[] = {
      {"square 2048", 2048, 2048, 2048, 1},
      {"qkv x W^T", n, 3 * d / tp, d, 1},
      {"attn-out x W^T", n, d, d / tp, 1},
      {"fc x W^T", n, ffn / tp, d, 1},
      {"fc-out x W^T", n, d, ffn / tp, 1},
      {"fc dy W", n, d, ffn / tp, 0},
      {"fc-out dy W", n, ffn / tp, d, 0},
      {"head x W^T (512 rows)", 512, (vocab + tp - 1) / tp, d, 1},
  };
  const int ns = (int)(sizeof shapes / sizeof *shapes);
  size_t ma = 0, mb = 0, mc = 0;
  for (int i = 0; i < ns; i++) {
    const shape *s = &shapes[i];
    if ((size_t)s->M * s->K > ma) ma = (size_t)s->M * s->K;
    if ((size_t)s->N * s->K > mb) mb = (size_t)s->N * s->K;
    if ((size_t)s->M * s->N > mc) mc = (size_t)s->M * s->N;
  }
  float *A = malloc(ma * sizeof *A), *B = malloc(mb * sizeof *B), *C = malloc(mc * sizeof *C);
  uint16_t *B16 = malloc(mb * sizeof *B16), *a16 = malloc(ma * sizeof *a16);
  if (!A || !B || !C || !B16 || !a16) MPI_Abort(MPI_COMM_WORLD, 1);
  for (size_t i = 0; i < ma; i++) A[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
  for (size_t i = 0; i < mb; i++) B[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
  dt_f32_to_bf16_n(B16, B, mb);
  const char *impl = "?";
  if (dt_gemm_bf16_probe(&impl) != DT_OK) impl = dt_error_message();
  if (rank == 0) {
    printf("dt_gemm_peak: %d ranks, shapes of --tp %d, %d tokens, d %d, ffn %d, vocab %d\n", size,
           tp, n, d, ffn, vocab);
    printf("sgemm: OpenBLAS %s; bf16: %s, %s\n", openblas_get_corename(), dt_gemm_bf16_library(),
           impl);
    printf("| shape | M x N x K | fp32 GFLOP/s per rank | bf16 GFLOP/s per rank | fp32 all ranks | "
           "bf16 all ranks | bf16 / fp32 | fp32 / bf16 lockstep per rank (slowest rank, median) "
           "|\n|---|---|---|---|---|---|---|---|\n");
  }
  double *all = rank == 0 ? malloc(sizeof(double) * size) : NULL;
  for (int i = 0; i < ns; i++) {
    const shape *s = &shapes[i];
    const double flops = 2.0 * s->M * s->N * s->K;
    double med[2], lock[2];
    for (int b = 0; b < 2; b++) {
      const int per_rank = i == 0; /* the square product: each rank's own rate and core */
      double best, median;
      time_one(s, b, A, B, B16, C, a16, flops > 4e9 ? 5 : 9, &best, &median);
      double g[2] = {flops / best / 1e9, flops / median / 1e9}, slow = g[1];
      MPI_Gather(g, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
      MPI_Reduce(&g[1], &slow, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
      if (per_rank) {
        double mine[2] = {g[1], (double)sched_getcpu()};
        double *rc = rank == 0 ? malloc(sizeof(double) * 2 * size) : NULL;
        MPI_Gather(mine, 2, MPI_DOUBLE, rc, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (rank == 0 && rc) {
          fprintf(stderr, "dt_gemm_peak: %s %s per rank (rank:core median GFLOP/s):", s->name,
                  b ? "bf16" : "fp32");
          for (int q = 0; q < size; q++) fprintf(stderr, " %d:%d %.1f", q, (int)rc[2 * q + 1], rc[2 * q]);
          fprintf(stderr, "\n");
        }
        free(rc);
      }
      if (rank == 0) {
        qsort(all, size, sizeof *all, cmp_d);
        med[b] = all[size / 2];
        lock[b] = slow;
      }
    }
    if (rank == 0)
      printf("| %s | %d x %d x %d | %.1f | %.1f | %.0f | %.0f | %.2f | %.1f / %.1f |\n", s->name, s->M,
             s->N, s->K, med[0], med[1], med[0] * size, med[1] * size, med[1] / med[0], lock[0],
             lock[1]);
  }
  free(all);
  free(A), free(B), free(C), free(B16), free(a16);
  dt_gemm_bf16_shutdown();
  MPI_Finalize();
  return 0;
}
