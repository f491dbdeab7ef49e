/* Options database: every option is declared once in a table with its type,
 * default, allowed range or choices and help text. Each subcommand passes the
 * list of tables it accepts; `--help` prints them; values are read back by
 * name with typed accessors. Delta methods declare their own tables.
 */
#ifndef DT_OPTIONS_H
#define DT_OPTIONS_H

#include <stdio.h>

typedef enum {
  DT_OPT_INT,    /* integer, checked against [min,max] */
  DT_OPT_FLOAT,  /* double, checked against [min,max] */
  DT_OPT_STRING, /* free text (paths, lists) */
  DT_OPT_BOOL,   /* flag: "--x" sets true; "--x yes|no|true|false|1|0" */
  DT_OPT_CHOICE  /* one of choices, "a|b|c" */
} dt_opt_type;

typedef struct {
  const char *name;    /* without leading dashes: "lora-rank" */
  dt_opt_type type;
  const char *def;     /* default value as text; NULL = unset (no default) */
  double min, max;     /* range for INT/FLOAT (inclusive) */
  const char *choices; /* CHOICE: "constant|linear|cosine" */
  const char *help;
} dt_optdef;

/* A table of options, e.g. the LoRA method's; group names the owner
 * ("lora") and is shown as a heading in --help. Ended by name == NULL. */
typedef struct {
  const char *group;
  const char *title;
  const dt_optdef *defs;
} dt_optgroup;

#define DT_OPTIONS_MAX 256
#define DT_OPTVAL_MAX 1024

typedef struct {
  const dt_optdef *def;
  const char *group;
  char value[DT_OPTVAL_MAX];
  int is_set;  /* given on the command line (or a default exists) */
  int given;   /* given on the command line */
} dt_optval;

typedef struct {
  const char *command; /* "train", "eval", ... */
  int n;
  dt_optval v[DT_OPTIONS_MAX];
  int help;            /* --help / -h was given */
} dt_options;

/* Parse argv (argv[0] is the first option, not the program) against the
 * groups. Unknown options, missing values, malformed numbers, out-of-range
 * values and unknown choices are DT_EUSAGE errors naming the option and
 * the allowed values. Both "--name value" and "--name=value" work. */
int dt_options_parse(dt_options *o, const char *command,
                     const dt_optgroup *groups, int n_groups, int argc,
                     char **argv);

/* Print the options of the groups: name, type, default, range/choices, help. */
void dt_options_print_help(FILE *out, const char *command, const char *summary,
                           const dt_optgroup *groups, int n_groups);
/* Print the effective configuration (every option and its value). */
void dt_options_print(FILE *out, const dt_options *o);

/* Typed accessors. A name that no table declares is a programming error:
 * the accessor prints it and aborts. STRING/CHOICE return "" when unset. */
int dt_opt_int(const dt_options *o, const char *name);
double dt_opt_float(const dt_options *o, const char *name);
const char *dt_opt_str(const dt_options *o, const char *name);
int dt_opt_bool(const dt_options *o, const char *name);
int dt_opt_is_set(const dt_options *o, const char *name);  /* has a value */
int dt_opt_given(const dt_options *o, const char *name);   /* on the command line */
/* Does any table declare this option? */
int dt_opt_exists(const dt_options *o, const char *name);

/* Parse a comma-separated list of floats ("0.9,0.999") into out[max]; the
 * count goes to *n. Errors name the option. */
int dt_opt_floats(const dt_options *o, const char *name, double *out, int max,
                  int *n);

/* Is item one of the comma-separated items of list ("lora,bitfit")? A NULL
 * list has none. */
int dt_list_has(const char *list, const char *item);

#endif
