/* deltatune: command-line entry point. Only this level turns an error into
 * a message and a non-zero exit of every rank. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "error.h"
#include "mpicheck.h"

typedef struct {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
} command;

static const command g_commands[] = {
    {"train", dt_cmd_train, "train delta parameters on a frozen backbone"},
    {"sweep", dt_cmd_sweep, "train many tasks concurrently on one loaded backbone"},
    {"eval", dt_cmd_eval, "loss, token accuracy and exact match on a data file"},
    {"generate", dt_cmd_generate, "text from the backbone and its deltas (greedy or sampled)"},
    {"gradcheck", dt_cmd_gradcheck, "check gradients against finite differences"},
    {"methods", dt_cmd_methods, "list the delta methods"},
    {"inspect", dt_cmd_inspect, "what a checkpoint holds; is it complete and intact"},
    {"export", dt_cmd_export, "write a checkpoint as a PEFT adapter or a safetensors file"},
    {"merge", dt_cmd_merge, "fold a checkpoint's deltas into a copy of the backbone (HF folder)"},
    {"plan", dt_cmd_plan, "memory, time, storage and communication of a job before it runs"},
    {"tokenize", dt_cmd_tokenize, "token ids of JSON lines of text with a HF tokenizer.json (or back)"},
};
#define N_COMMANDS (int)(sizeof g_commands / sizeof g_commands[0])

static void usage(FILE *f) {
  fprintf(f,
          "usage: deltatune <command> [options]   (deltatune <command> --help)\n\n"
          "Delta tuning of large language models on MPI clusters: the backbone\n"
          "stays frozen, only small delta parameters are trained.\n\ncommands:\n");
  for (int i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-9s %s\n", g_commands[i].name, g_commands[i].help);
  fprintf(f, "\ndocumentation: docs/ (docs/usage.md)\n");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  /* MPI errors come back as values (base/mpicheck.h): every communicator
   * the tool splits from the world inherits this handler */
  int rc = dt_mpi_errors_return(MPI_COMM_WORLD);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rc) {
    /* nothing to agree on yet: abort as for any unagreed error below */
  } else if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    if (rank == 0) usage(stdout);
    rc = argc < 2 ? DT_EUSAGE : DT_OK;
    if (argc < 2) dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__, "no command given");
  } else if (!strcmp(argv[1], "--version")) {
    if (rank == 0) printf("deltatune %s\n", DT_VERSION);
  } else {
    const command *cmd = NULL;
    for (int i = 0; i < N_COMMANDS; i++)
      if (!strcmp(argv[1], g_commands[i].name)) cmd = &g_commands[i];
    if (!cmd) {
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                        "unknown command '%s' (commands: train, sweep, eval, generate, gradcheck, methods, inspect, export, merge, plan, tokenize; "
                        "see deltatune --help)", argv[1]);
    } else {
      rc = cmd->fn(argc - 2, argv + 2);
    }
  }
  if (rc == DT_OK) {
    MPI_Finalize();
    return 0;
  }
  /* Usage and input errors are found identically by every rank before any
   * collective, and agreed errors (dt_agree, a non-finite global loss) are
   * held by every rank: each rank exits with the code and rank 0 says why.
   * Other errors may hit one rank only: abort the whole job so nobody
   * hangs. */
  const int deterministic = rc == DT_EUSAGE || rc == DT_EINPUT || dt_error_agreed();
  if (rank == 0 || !deterministic) {
    if (size > 1 && !deterministic)
      fprintf(stderr, "deltatune: error on rank %d: %s\n", rank, dt_error_message());
    else
      fprintf(stderr, "deltatune: %s: %s\n", rc == DT_EINTERRUPT ? "stopped" : "error",
              dt_error_message());
    if (getenv("DT_TRACEBACK")) fputs(dt_error_traceback(), stderr);
  }
  fflush(stderr);
  if (deterministic || size == 1) {
    MPI_Finalize();
    return rc;
  }
  MPI_Abort(MPI_COMM_WORLD, rc);
  return rc;
}
