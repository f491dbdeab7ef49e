/* Preemption and time limits: SIGTERM and SIGUSR1 (Slurm's warning before
 * the time limit, `#SBATCH --signal`) only set a flag; the train loop asks
 * at every step boundary whether any rank caught one (one MPI_Allreduce),
 * and if so every rank writes a checkpoint of the steps done and the
 * command ends with DT_EINTERRUPT (exit code 9) on every rank, so that a
 * job script can requeue itself and continue with --resume
 * (docs/checkpoint.md, docs/jobs.md). */
#ifndef DT_INTERRUPT_H
#define DT_INTERRUPT_H

#include <mpi.h>

/* Catch SIGTERM and SIGUSR1 from now on (sigaction; the handler records the
 * first signal and nothing else). */
void dt_interrupt_install(void); /* (forgets a signal caught before) */
/* Restore the default actions. */
void dt_interrupt_uninstall(void);
/* The first signal this process caught (0: none). */
int dt_interrupt_caught(void);
/* Collective over comm: *sig the highest signal number any rank caught (0:
 * none), the same on every rank; DT_EMPI when the reduction fails. */
int dt_interrupt_agree(MPI_Comm comm, int *sig);
/* Test hook (base/testhook.h: test builds only): with DT_TEST_INTERRUPT=STEP[:RANK]
 * in the environment, rank RANK (default 0) raises SIGTERM at itself when
 * called with step == STEP, i.e. a signal that arrives while step STEP runs
 * (deltatune sweep calls it at the start of every step; tests/test_sweep.c). */
void dt_interrupt_test_hook(long long step, int rank);
/* "SIGTERM", "SIGUSR1", ... */
const char *dt_signal_name(int sig);

#endif
