/* init_barrier: does MPI_Init hold every rank until all ranks are in it?
 * (the multinode test `fence`, tests/cluster/test_multinode.sh).
 *
 * The last rank sleeps DELAY seconds (argv[1], default 2) before MPI_Init;
 * every rank notes the wall-clock time (one clock: the virtual nodes share
 * the machine) when it entered and when it left MPI_Init; rank 0 gathers
 * them and checks that no rank left before the last one entered. On Slurm
 * 22.05 with PMIxCollFence=tree and fewer nodes than TreeWidth each node's
 * fence completed alone, so the ranks of the other nodes left MPI_Init at
 * once (docs/testing.md, "PMIx fence").
 * Prints one line per rank and a verdict; exit 0 when held, 1 when not. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

static double wall(void)
{
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

int main(int argc, char **argv)
{
  double delay = argc > 1 ? atof(argv[1]) : 2.0;
  const char *id = getenv("SLURM_PROCID"), *n = getenv("SLURM_NTASKS");
  if (!id || !n) {
    fprintf(stderr, "init_barrier: run it under srun (SLURM_PROCID and SLURM_NTASKS are not set)\n");
    return 2;
  }
  int last = atoi(id) == atoi(n) - 1;
  if (last) usleep((useconds_t)(delay * 1e6));
  double t[2];
  t[0] = wall();
  MPI_Init(&argc, &argv);
  t[1] = wall();
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char host[256] = "?";
  gethostname(host, sizeof host);
  double *all = rank == 0 ? malloc(sizeof(double) * 2 * (size_t)size) : NULL;
  char *hosts = rank == 0 ? malloc(sizeof host * (size_t)size) : NULL;
  if (rank == 0 && (!all || !hosts)) MPI_Abort(MPI_COMM_WORLD, 2);
  MPI_Gather(t, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  MPI_Gather(host, sizeof host, MPI_CHAR, hosts, sizeof host, MPI_CHAR, 0, MPI_COMM_WORLD);
  int held = 1;
  if (rank == 0) {
    double last_in = all[0], first_out = all[1];
    for (int r = 0; r < size; r++) {
      if (all[2 * r] > last_in) last_in = all[2 * r];
      if (all[2 * r + 1] < first_out) first_out = all[2 * r + 1];
    }
    for (int r = 0; r < size; r++)
      printf("rank %d on %s: in MPI_Init from %+.3f s to %+.3f s\n", r, hosts + (size_t)r * sizeof host,
             all[2 * r] - last_in, all[2 * r + 1] - last_in);
    held = first_out >= last_in;
    printf("%s: the first rank left MPI_Init %.3f s %s the last rank entered it (delay %.1f s)\n",
           held ? "held" : "NOT HELD", first_out > last_in ? first_out - last_in : last_in - first_out,
           first_out >= last_in ? "after" : "before", delay);
    free(all);
    free(hosts);
  }
  MPI_Bcast(&held, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return held ? 0 : 1;
}
