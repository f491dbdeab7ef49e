/* Subcommands. Each parses its own options, is collective over
 * MPI_COMM_WORLD, and returns an error code (the top level reports it). */
#ifndef DT_COMMANDS_H
#define DT_COMMANDS_H

int dt_cmd_train(int argc, char **argv);
int dt_cmd_eval(int argc, char **argv);
int dt_cmd_methods(int argc, char **argv);
int dt_cmd_gradcheck(int argc, char **argv);
int dt_cmd_sweep(int argc, char **argv);
int dt_cmd_inspect(int argc, char **argv); /* inspect.c */
int dt_cmd_export(int argc, char **argv);  /* export.c */
int dt_cmd_merge(int argc, char **argv);   /* merge.c */
int dt_cmd_plan(int argc, char **argv);    /* plan.c */
int dt_cmd_tokenize(int argc, char **argv); /* tokenize.c */
int dt_cmd_generate(int argc, char **argv); /* generate.c */

#endif
