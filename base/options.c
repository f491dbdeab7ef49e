/* Options database: declared tables, argv parsing with checked values,
 * --help text and the effective configuration. */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static const char *const k_bool_true[] = {"yes", "true", "1"};
static const char *const k_bool_false[] = {"no", "false", "0"};
#define BOOL_WORDS "yes|no|true|false|1|0"

/* 1 = true, 0 = false, -1 = not a bool word. */
static int bool_word(const char *s) {
  for (size_t i = 0; i < sizeof k_bool_true / sizeof *k_bool_true; i++) {
    if (strcmp(s, k_bool_true[i]) == 0) return 1;
    if (strcmp(s, k_bool_false[i]) == 0) return 0;
  }
  return -1;
}

static int has_range(const dt_optdef *d) { return !(d->min == 0 && d->max == 0); }

static const char *type_name(dt_opt_type t) {
  switch (t) {
    case DT_OPT_INT: return "INT";
    case DT_OPT_FLOAT: return "FLOAT";
    case DT_OPT_STRING: return "STRING";
    case DT_OPT_BOOL: return "BOOL";
    case DT_OPT_CHOICE: return "CHOICE";
  }
  return "?";
}

/* Format a bound compactly: integers without exponent, others with %g. */
static void fmt_num(char *buf, size_t cap, double x) {
  if (x == floor(x) && fabs(x) < 1e15)
    snprintf(buf, cap, "%.0f", x);
  else
    snprintf(buf, cap, "%g", x);
}

/* Is word one of the '|'-separated choices? */
static int in_choices(const char *choices, const char *word) {
  if (!choices) return 0;
  size_t wl = strlen(word);
  const char *p = choices;
  for (;;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == wl && strncmp(p, word, len) == 0) return 1;
    if (!bar) return 0;
    p = bar + 1;
  }
}

/* Check a value against its declaration; on success the normalised text goes
 * to out (DT_OPTVAL_MAX). code is the error code to report with. */
static int check_value(const dt_optdef *d, const char *val, char *out,
                       int code) {
  char lo[64], hi[64];
  fmt_num(lo, sizeof lo, d->min);
  fmt_num(hi, sizeof hi, d->max);
  DT_CHECK(strlen(val) < DT_OPTVAL_MAX, code,
           "option --%s: value is too long (%zu characters, at most %d)",
           d->name, strlen(val), DT_OPTVAL_MAX - 1);
  switch (d->type) {
    case DT_OPT_INT: {
      char *end = NULL;
      errno = 0;
      long v = strtol(val, &end, 10);
      int ok = val[0] && end && *end == 0 && errno == 0 && v >= -2147483647L - 1 &&
               v <= 2147483647L;
      if (ok && has_range(d) && ((double)v < d->min || (double)v > d->max))
        ok = 0;
      if (!ok) {
        if (has_range(d))
          DT_ERR(code, "option --%s expects an integer in [%s, %s], got '%s'",
                 d->name, lo, hi, val);
        DT_ERR(code, "option --%s expects an integer, got '%s'", d->name, val);
      }
      snprintf(out, DT_OPTVAL_MAX, "%ld", v);
      return DT_OK;
    }
    case DT_OPT_FLOAT: {
      char *end = NULL;
      errno = 0;
      double v = strtod(val, &end);
      int ok = val[0] && end && *end == 0 && errno != ERANGE && isfinite(v);
      if (ok && has_range(d) && (v < d->min || v > d->max)) ok = 0;
      if (!ok) {
        if (has_range(d))
          DT_ERR(code, "option --%s expects a number in [%s, %s], got '%s'",
                 d->name, lo, hi, val);
        DT_ERR(code, "option --%s expects a finite number, got '%s'", d->name,
               val);
      }
      snprintf(out, DT_OPTVAL_MAX, "%s", val);
      return DT_OK;
    }
    case DT_OPT_BOOL: {
      int b = bool_word(val);
      DT_CHECK(b >= 0, code, "option --%s must be one of " BOOL_WORDS ", got '%s'",
               d->name, val);
      snprintf(out, DT_OPTVAL_MAX, "%s", b ? "true" : "false");
      return DT_OK;
    }
    case DT_OPT_CHOICE:
      DT_CHECK(in_choices(d->choices, val), code,
               "option --%s must be one of %s, got '%s'", d->name,
               d->choices ? d->choices : "(none declared)", val);
      snprintf(out, DT_OPTVAL_MAX, "%s", val);
      return DT_OK;
    case DT_OPT_STRING:
      snprintf(out, DT_OPTVAL_MAX, "%s", val);
      return DT_OK;
  }
  DT_ERR(DT_EINTERNAL, "option --%s has an unknown type %d", d->name,
         (int)d->type);
}

static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 1000;
  int row[65];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

static dt_optval *lookup(dt_options *o, const char *name, size_t len) {
  for (int i = 0; i < o->n; i++)
    if (strlen(o->v[i].def->name) == len &&
        strncmp(o->v[i].def->name, name, len) == 0)
      return &o->v[i];
  return NULL;
}

static const dt_optval *lookup_c(const dt_options *o, const char *name) {
  for (int i = 0; i < o->n; i++)
    if (strcmp(o->v[i].def->name, name) == 0) return &o->v[i];
  return NULL;
}

static int unknown_option(const dt_options *o, const char *arg, size_t len) {
  const char *cmd = o->command ? o->command : "";
  char given[128];
  snprintf(given, sizeof given, "%.*s", (int)(len < 120 ? len : 120), arg);
  const char *bare = given;
  while (*bare == '-') bare++;
  int best = 1000;
  const char *sugg = NULL;
  for (int i = 0; i < o->n; i++) {
    int d = edit_distance(bare, o->v[i].def->name);
    if (d < best) {
      best = d;
      sugg = o->v[i].def->name;
    }
  }
  if (sugg && best <= 3)
    DT_ERR(DT_EUSAGE,
           "unknown option '%s' for 'deltatune %s' (did you mean '--%s'?; see "
           "deltatune %s --help)",
           given, cmd, sugg, cmd);
  DT_ERR(DT_EUSAGE, "unknown option '%s' for 'deltatune %s' (see deltatune %s --help)",
         given, cmd, cmd);
}

int dt_options_parse(dt_options *o, const char *command,
                     const dt_optgroup *groups, int n_groups, int argc,
                     char **argv) {
  o->command = command;
  o->n = 0;
  o->help = 0;
  const char *cmd = command ? command : "";

  for (int g = 0; g < n_groups; g++) {
    const dt_optdef *defs = groups[g].defs;
    for (int k = 0; defs && defs[k].name; k++) {
      const dt_optdef *d = &defs[k];
      const dt_optval *dup = lookup_c(o, d->name);
      DT_CHECK(!dup, DT_EINTERNAL,
               "option --%s is declared twice (groups '%s' and '%s')", d->name,
               dup ? dup->group : "", groups[g].group ? groups[g].group : "");
      DT_CHECK(o->n < DT_OPTIONS_MAX, DT_EINTERNAL,
               "too many options declared (more than %d)", DT_OPTIONS_MAX);
      dt_optval *v = &o->v[o->n++];
      v->def = d;
      v->group = groups[g].group;
      v->value[0] = 0;
      v->given = 0;
      v->is_set = d->def != NULL;
      if (d->def) DT_CALL(check_value(d, d->def, v->value, DT_EINTERNAL));
    }
  }

  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      o->help = 1;
      continue;
    }
    if (strncmp(arg, "--", 2) != 0 || arg[2] == 0) {
      if (arg[0] == '-' && arg[1] != 0 && arg[1] != '-')
        return unknown_option(o, arg, strlen(arg));
      if (i > 0 && strncmp(argv[i - 1], "--", 2) == 0 &&
          !strchr(argv[i - 1], '=')) {
        dt_optval *prev = lookup(o, argv[i - 1] + 2, strlen(argv[i - 1] + 2));
        if (prev && prev->def->type == DT_OPT_BOOL)
          DT_ERR(DT_EUSAGE,
                 "unexpected argument '%s' for 'deltatune %s': --%s is a flag "
                 "that takes " BOOL_WORDS " (see deltatune %s --help)",
                 arg, cmd, prev->def->name, cmd);
      }
      DT_ERR(DT_EUSAGE,
             "unexpected argument '%s' for 'deltatune %s': options are given "
             "as --name value (see deltatune %s --help)",
             arg, cmd, cmd);
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    dt_optval *v = lookup(o, name, nlen);
    if (!v) return unknown_option(o, arg, (size_t)(name - arg) + nlen);
    const dt_optdef *d = v->def;

    const char *val;
    if (eq) {
      val = eq + 1;
    } else if (d->type == DT_OPT_BOOL) {
      if (i + 1 < argc && bool_word(argv[i + 1]) >= 0)
        val = argv[++i];
      else
        val = "true";
    } else {
      DT_CHECK(i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0, DT_EUSAGE,
               "option --%s needs a value%s%s", d->name,
               d->type == DT_OPT_CHOICE ? ", one of " : "",
               d->type == DT_OPT_CHOICE && d->choices ? d->choices : "");
      val = argv[++i];
    }
    DT_CHECK(val[0] != 0 || d->type == DT_OPT_STRING || d->type == DT_OPT_BOOL,
             DT_EUSAGE,
             "option --%s needs a value%s%s", d->name,
             d->type == DT_OPT_CHOICE ? ", one of " : "",
             d->type == DT_OPT_CHOICE && d->choices ? d->choices : "");
    char norm[DT_OPTVAL_MAX];
    DT_CALL(check_value(d, val, norm, DT_EUSAGE));
    DT_CHECK(!v->given, DT_EUSAGE,
             "option --%s given twice ('%s' and '%s'); give it once", d->name,
             v->value, norm);
    memcpy(v->value, norm, sizeof norm);
    v->given = 1;
    v->is_set = 1;
  }
  return DT_OK;
}

/* "--name TYPE" column text. */
static void left_col(char *buf, size_t cap, const dt_optdef *d) {
  snprintf(buf, cap, "--%s %s", d->name, type_name(d->type));
}

void dt_options_print_help(FILE *out, const char *command, const char *summary,
                           const dt_optgroup *groups, int n_groups) {
  const char *cmd = command ? command : "COMMAND";
  fprintf(out, "usage: deltatune %s [options]\n", cmd);
  if (summary && summary[0]) fprintf(out, "\n%s\n", summary);
  int width = (int)strlen("-h, --help");
  char col[DT_OPTVAL_MAX];
  for (int g = 0; g < n_groups; g++)
    for (int k = 0; groups[g].defs && groups[g].defs[k].name; k++) {
      left_col(col, sizeof col, &groups[g].defs[k]);
      if ((int)strlen(col) > width) width = (int)strlen(col);
    }
  for (int g = 0; g < n_groups; g++) {
    const char *title = groups[g].title ? groups[g].title : groups[g].group;
    fprintf(out, "\n%s:\n", title ? title : "options");
    for (int k = 0; groups[g].defs && groups[g].defs[k].name; k++) {
      const dt_optdef *d = &groups[g].defs[k];
      left_col(col, sizeof col, d);
      fprintf(out, "  %-*s   %s", width, col, d->help ? d->help : "");
      if (d->def) fprintf(out, " [default: %s]", d->def);
      if ((d->type == DT_OPT_INT || d->type == DT_OPT_FLOAT) && has_range(d)) {
        char lo[64], hi[64];
        fmt_num(lo, sizeof lo, d->min);
        fmt_num(hi, sizeof hi, d->max);
        fprintf(out, " [range: %s..%s]", lo, hi);
      } else if (d->type == DT_OPT_CHOICE) {
        fprintf(out, " [choices: %s]", d->choices ? d->choices : "");
      } else if (d->type == DT_OPT_BOOL) {
        fprintf(out, " [choices: " BOOL_WORDS "]");
      }
      fputc('\n', out);
    }
  }
  fprintf(out, "\n  %-*s   show this help\n", width, "-h, --help");
}

void dt_options_print(FILE *out, const dt_options *o) {
  fprintf(out, "effective configuration:\n");
  const char *cur = NULL;
  for (int i = 0; i < o->n; i++) {
    const dt_optval *v = &o->v[i];
    if (i == 0 || v->group != cur) {
      cur = v->group;
      fprintf(out, "  # %s\n", cur ? cur : "options");
    }
    fprintf(out, "  %s = %s\n", v->def->name,
            v->is_set ? v->value : "(unset)");
  }
}

static const dt_optval *need(const dt_options *o, const char *name) {
  const dt_optval *v = lookup_c(o, name);
  if (!v) {
    fprintf(stderr, "internal error: option '%s' is not declared\n", name);
    abort();
  }
  return v;
}

static void wrong_type(const char *name, const char *want, dt_opt_type have) {
  fprintf(stderr, "internal error: option '%s' read as %s but declared %s\n",
          name, want, type_name(have));
  abort();
}

int dt_opt_int(const dt_options *o, const char *name) {
  const dt_optval *v = need(o, name);
  if (v->def->type != DT_OPT_INT) wrong_type(name, "INT", v->def->type);
  return v->is_set ? (int)strtol(v->value, NULL, 10) : 0;
}

double dt_opt_float(const dt_options *o, const char *name) {
  const dt_optval *v = need(o, name);
  if (v->def->type != DT_OPT_FLOAT && v->def->type != DT_OPT_INT)
    wrong_type(name, "FLOAT", v->def->type);
  return v->is_set ? strtod(v->value, NULL) : 0.0;
}

const char *dt_opt_str(const dt_options *o, const char *name) {
  const dt_optval *v = need(o, name);
  return v->is_set ? v->value : "";
}

int dt_opt_bool(const dt_options *o, const char *name) {
  const dt_optval *v = need(o, name);
  if (v->def->type != DT_OPT_BOOL) wrong_type(name, "BOOL", v->def->type);
  return v->is_set && bool_word(v->value) == 1;
}

int dt_opt_is_set(const dt_options *o, const char *name) {
  return need(o, name)->is_set;
}

int dt_opt_given(const dt_options *o, const char *name) {
  return need(o, name)->given;
}

int dt_opt_exists(const dt_options *o, const char *name) {
  return lookup_c(o, name) != NULL;
}

int dt_opt_floats(const dt_options *o, const char *name, double *out, int max,
                  int *n) {
  const dt_optval *v = need(o, name);
  *n = 0;
  if (!v->is_set || v->value[0] == 0) return DT_OK;
  const char *p = v->value;
  int count = 0;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char item[128];
    while (len && (*p == ' ' || *p == '\t')) p++, len--;
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    DT_CHECK(len > 0 && len < sizeof item, DT_EUSAGE,
             "option --%s expects a comma-separated list of numbers, got '%s' "
             "(item %d is %s)",
             name, v->value, count + 1, len ? "too long" : "empty");
    memcpy(item, p, len);
    item[len] = 0;
    char *end = NULL;
    errno = 0;
    double x = strtod(item, &end);
    DT_CHECK(*end == 0 && errno != ERANGE && isfinite(x), DT_EUSAGE,
             "option --%s expects a comma-separated list of numbers, got '%s' "
             "(item %d '%s' is not a finite number)",
             name, v->value, count + 1, item);
    DT_CHECK(count < max, DT_EUSAGE,
             "option --%s takes at most %d comma-separated numbers, got '%s'",
             name, max, v->value);
    out[count++] = x;
    if (!comma) break;
    p = comma + 1;
  }
  *n = count;
  return DT_OK;
}

int dt_list_has(const char *list, const char *item) {
  const size_t n = strlen(item);
  for (const char *p = list; p && *p;) {
    const char *e = strchr(p, ',');
    const size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && strncmp(p, item, n) == 0) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}
