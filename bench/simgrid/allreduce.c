/* The plan's all-reduces under SimGrid's SMPI (bench/simgrid/allreduce.sh):
 * MPI_Allreduce of n floats over all ranks, buffers from SMPI_SHARED_MALLOC
 * (values meaningless), twice; prints the second one's simulated time. */
#include <mpi.h>
#include <smpi/smpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int r, p; MPI_Comm_rank(MPI_COMM_WORLD, &r); MPI_Comm_size(MPI_COMM_WORLD, &p);
  long n = atol(argv[1]);
  float *x = SMPI_SHARED_MALLOC(4 * n), *y = SMPI_SHARED_MALLOC(4 * n);
  double t = 0;
  for (int k = 0; k < 2; k++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(x, y, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    t = MPI_Wtime() - t0;
  }
  double tm; MPI_Reduce(&t, &tm, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  if (r == 0) printf("ranks %d floats %ld: %.3f ms, %.2f GB/s (message bytes / time)\n", p, n, tm * 1e3, 4.0 * n / tm / 1e9);
  SMPI_SHARED_FREE(x); SMPI_SHARED_FREE(y); MPI_Finalize(); return 0;
}
