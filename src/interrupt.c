/* Signals that ask for a checkpoint and a clean stop (see interrupt.h). */
#include "interrupt.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mpicheck.h"
#include "testhook.h"

static volatile sig_atomic_t g_caught;

static void on_signal(int sig) {
  if (!g_caught) g_caught = sig;
}

static void set(int sig, void (*fn)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART; /* MPI and file calls go on where they were */
  sigaction(sig, &sa, NULL);
}

void dt_interrupt_install(void) {
  g_caught = 0;
  set(SIGTERM, on_signal);
  set(SIGUSR1, on_signal);
}

void dt_interrupt_uninstall(void) {
  set(SIGTERM, SIG_DFL);
  set(SIGUSR1, SIG_DFL);
}

int dt_interrupt_caught(void) { return (int)g_caught; }

int dt_interrupt_agree(MPI_Comm comm, int *sig) {
  int mine = (int)g_caught, any = 0;
  DT_MPI(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm),
         "MPI_Allreduce of the signals caught (a step boundary)");
  *sig = any;
  return DT_OK;
}

void dt_interrupt_test_hook(long long step, int rank) {
  const char *f = dt_test_hook("DT_TEST_INTERRUPT");
  if (!f) return;
  long long at = -1;
  int who = 0;
  if (sscanf(f, "%lld:%d", &at, &who) < 1) return;
  if (step == at && rank == who) raise(SIGTERM);
}

const char *dt_signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGINT: return "SIGINT";
    default: return "a signal";
  }
}
