/* The sweep's task file: structure (inih, through a line reader that keeps
 * the line numbers) and each task's options. See taskfile.h. */
#include "taskfile.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_run.h"
#include "error.h"
#include "method.h"

int dt_train_task_groups(dt_optgroup *g, int max); /* src/train.c */

typedef struct {
  dt_taskfile *tf;
  const char *path;
  FILE *f;
  int line;      /* lines handed to inih so far: the line it parses */
  int stop;      /* the reader met an error: end the file there */
  int cur;       /* task the keys go to, -1 before the first section */
  int pending;   /* a section line was read and no key of it yet */
  int hdr_line;  /* line of that section */
  char hdr[512]; /* its name */
  int err_line;  /* line of the first error (0: none) */
  char err[1024];
} parse_ctx;

static void fail(parse_ctx *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(parse_ctx *p, int line, const char *fmt, ...) {
  if (p->err_line) return; /* the first error is the one reported */
  p->err_line = line;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err, sizeof p->err, fmt, ap);
  va_end(ap);
}

/* A section line ended without a key: an empty task (or a stray section). */
static void empty_section(parse_ctx *p) {
  if (strncmp(p->hdr, "task ", 5) == 0 && p->hdr[5])
    fail(p, p->hdr_line, "[%s] has no keys (a task needs at least 'data')", p->hdr);
  else
    fail(p, p->hdr_line, "section [%s]: expected [task NAME]", p->hdr);
}

/* inih's reader: one line per call, numbered; over-long lines (inih's line
 * buffer would split them into two lines), NUL bytes and indented lines
 * (inih reads them as the continuation of the previous value) end the
 * file with an error. Section lines are noted here, so that every
 * [task NAME] line is seen, with its line number, even without keys. */
static char *read_line(char *str, int num, void *stream) {
  parse_ctx *p = stream;
  if (p->stop || num < 2) return NULL;
  int n = 0, c = EOF, nul = 0;
  while (n < num - 1 && (c = getc(p->f)) != EOF) {
    if (c == 0) nul = 1;
    str[n++] = (char)c;
    if (c == '\n') break;
  }
  if (n == 0) return NULL;
  str[n] = 0;
  p->line++;
  if (str[n - 1] != '\n' && n == num - 1) {
    const int next = getc(p->f);
    if (next != EOF && next != '\n') {
      fail(p, p->line, "the line is longer than %d characters", num - 1);
      p->stop = 1;
      return NULL;
    }
  }
  if (nul) {
    fail(p, p->line, "the line holds a NUL byte (not a text file?)");
    p->stop = 1;
    return NULL;
  }
  const char *s = str;
  if (p->line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
      (unsigned char)s[2] == 0xBF)
    s += 3; /* UTF-8 byte order mark, skipped by inih too */
  /* blanks as inih's (isspace): a line starting with any of them continues
   * the previous value there, even "\v[task x]" */
  const int indented = isspace((unsigned char)*s);
  const char *t = s;
  while (isspace((unsigned char)*t)) t++;
  if (indented && *t && *t != ';' && *t != '#') {
    fail(p, p->line, "the line is indented (an indented line continues the previous value); "
                     "remove the indentation");
    p->stop = 1;
    return NULL;
  }
  if (*t == '[') {
    const char *e = strchr(t + 1, ']');
    if (e) { /* without ']' inih reports the line */
      if (p->pending) empty_section(p);
      p->pending = 1;
      p->hdr_line = p->line;
      snprintf(p->hdr, sizeof p->hdr, "%.*s", (int)(e - t - 1), t + 1);
    }
  }
  return str;
}

static int on_key(void *user, const char *section, const char *name, const char *value) {
  parse_ctx *p = user;
  (void)section; /* inih truncates long section names: the reader's is used */
  dt_taskfile *tf = p->tf;
  if (p->pending) { /* the first key of a section: a new task */
    p->pending = 0;
    p->cur = -1;
    if (strncmp(p->hdr, "task ", 5) != 0 || !p->hdr[5]) {
      fail(p, p->hdr_line, "section [%s]: expected [task NAME]", p->hdr);
      return 0;
    }
    const char *tn = p->hdr + 5;
    if (strlen(tn) >= DT_TASK_NAME_MAX) {
      fail(p, p->hdr_line, "task name '%.80s...' is longer than %d characters", tn,
           DT_TASK_NAME_MAX - 1);
      return 0;
    }
    for (int i = 0; i < tf->n; i++)
      if (strcmp(tf->t[i].name, tn) == 0) {
        fail(p, p->hdr_line, "task '%s' is defined twice (first at line %d); task names must "
             "be unique", tn, tf->t[i].line);
        return 0;
      }
    if (tf->n == DT_TASK_MAX) {
      fail(p, p->hdr_line, "more than %d tasks", DT_TASK_MAX);
      return 0;
    }
    dt_task_src *t = &tf->t[tf->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", tn);
    t->line = p->hdr_line;
    p->cur = tf->n++;
  }
  if (p->cur < 0) {
    fail(p, p->line, "key '%.64s' is outside a [task NAME] section", name);
    return 0;
  }
  dt_task_src *t = &tf->t[p->cur];
  if (strlen(name) >= sizeof t->key[0]) {
    fail(p, p->line, "task '%s': key '%.64s...' is too long", t->name, name);
    return 0;
  }
  if (strlen(value) >= sizeof t->val[0]) {
    fail(p, p->line, "task '%s': the value of key '%s' is longer than %zu characters", t->name,
         name, sizeof t->val[0] - 1);
    return 0;
  }
  if (!strcmp(name, "model") || !strcmp(name, "tp") || !strcmp(name, "tp-heads") ||
      !strcmp(name, "weights-dtype") || !strcmp(name, "recompute")) {
    fail(p, p->line,
         "task '%s': '%s' is a property of the shared backbone; give it to deltatune sweep",
         t->name, name);
    return 0;
  }
  for (int i = 0; i < t->nkv; i++)
    if (strcmp(t->key[i], name) == 0) {
      fail(p, p->line, "task '%s': key '%s' is given twice (first at line %d)", t->name, name,
           t->kline[i]);
      return 0;
    }
  if (t->nkv == DT_TASK_MAX_KV) {
    fail(p, p->line, "task '%s': more than %d keys", t->name, DT_TASK_MAX_KV);
    return 0;
  }
  snprintf(t->key[t->nkv], sizeof t->key[0], "%s", name);
  snprintf(t->val[t->nkv], sizeof t->val[0], "%s", value);
  t->kline[t->nkv] = p->line;
  t->nkv++;
  return 1;
}

int dt_taskfile_parse(dt_taskfile *tf, const char *path) {
  tf->n = 0;
  parse_ctx p;
  memset(&p, 0, sizeof p);
  p.tf = tf;
  p.path = path;
  p.cur = -1;
  p.f = fopen(path, "rb");
  DT_CHECK(p.f, DT_EINPUT, "--tasks %s: cannot open the task file: %s", path, strerror(errno));
  const int r = ini_parse_stream(read_line, &p, on_key, &p);
  const int read_error = ferror(p.f);
  fclose(p.f);
  DT_CHECK(!read_error, DT_EINPUT, "--tasks %s: cannot read the task file", path);
  if (!p.err_line && p.pending) empty_section(&p);
  /* inih's own errors (a line that is neither a section, a key = value nor
   * a comment) come without a handler call: the lowest line is reported */
  if (r > 0 && (!p.err_line || r < p.err_line))
    DT_ERR(DT_EINPUT,
           "%s: line %d: not INI syntax (expected [task NAME], key = value or a comment)", path,
           r);
  if (r < 0 && !p.err_line) DT_ERR(DT_EINPUT, "%s: cannot parse the task file", path);
  if (p.err_line) DT_ERR(DT_EINPUT, "%s: line %d: %s", path, p.err_line, p.err);
  DT_CHECK(tf->n > 0, DT_EINPUT,
           "%s: no [task NAME] section (an empty task file, or only comments): nothing to "
           "train", path);
  return DT_OK;
}

/* The line of key name in t (its section's line when absent). */
static int key_line(const dt_task_src *t, const char *name) {
  for (int i = 0; i < t->nkv; i++)
    if (strcmp(t->key[i], name) == 0) return t->kline[i];
  return t->line;
}

#define TASK_ARG_MAX (DT_OPTVAL_MAX + 72)

int dt_task_options(dt_options *o, const dt_task_src *t, const char *path, int npre,
                    char **pre) {
  dt_optgroup g[40];
  int ng = dt_train_task_groups(g, 39);
  g[ng++] = dt_ckpt_train_group;
  const int argc = npre + t->nkv;
  char(*bufs)[TASK_ARG_MAX] = NULL;
  char **argv = NULL;
  DT_CALL(dt_calloc(&bufs, sizeof *bufs * (size_t)(t->nkv + 1), "task options"));
  int rc = dt_calloc(&argv, sizeof *argv * (size_t)(argc + 2), "task options");
  for (int i = 0; rc == DT_OK && i < npre; i++) argv[i] = pre[i];
  /* each key alone (after the shared arguments) first, so that an error
   * names its line */
  for (int i = 0; rc == DT_OK && i < t->nkv; i++) {
    snprintf(bufs[i], TASK_ARG_MAX, "--%s=%s", t->key[i], t->val[i]);
    argv[npre + i] = bufs[i];
  }
  char **v = NULL;
  if (rc == DT_OK) rc = dt_calloc(&v, sizeof *v * (size_t)(npre + 1), "task options");
  for (int i = 0; rc == DT_OK && i < t->nkv; i++) {
    for (int k = 0; k < npre; k++) v[k] = pre[k];
    v[npre] = bufs[i];
    if (dt_options_parse(o, "train", g, ng, npre + 1, v) == DT_OK) continue;
    char msg[1500];
    snprintf(msg, sizeof msg, "%s", dt_error_message());
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "%s: line %d: task '%s', key '%s': %s", path, t->kline[i], t->name,
                      t->key[i], msg);
  }
  if (rc == DT_OK && dt_options_parse(o, "train", g, ng, argc, argv) != DT_OK) {
    char msg[1500];
    snprintf(msg, sizeof msg, "%s", dt_error_message());
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__, "%s: line %d: task '%s': %s",
                      path, t->line, t->name, msg);
  }
  free(v);
  free(argv);
  free(bufs);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  DT_CALL(dt_task_check(o, t, path));
  return DT_OK;
}

int dt_task_check(const dt_options *o, const dt_task_src *t, const char *path) {
  DT_CHECK(dt_opt_is_set(o, "data"), DT_EUSAGE,
           "%s: line %d: task '%s' has no 'data' key (its tokenized data file is required)",
           path, t->line, t->name);
  /* the methods: known, each once */
  const char *ml = dt_opt_str(o, "method");
  if (*ml && strcmp(ml, "none") != 0) {
    char buf[DT_OPTVAL_MAX];
    snprintf(buf, sizeof buf, "%s", ml);
    int n = 0;
    const dt_method_ops *seen[64];
    for (char *save = NULL, *m = strtok_r(buf, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
      const dt_method_ops *ops = dt_method_lookup(m);
      if (!ops) {
        char names[512] = "";
        size_t used = 0;
        for (int i = 0; i < dt_method_count() && used < sizeof names; i++)
          used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                   dt_method_at(i)->name);
        DT_ERR(DT_EUSAGE, "%s: line %d: task '%s', key 'method': unknown method '%s' (methods: "
               "%s)", path, key_line(t, "method"), t->name, m, names);
      }
      for (int i = 0; i < n; i++)
        DT_CHECK(seen[i] != ops, DT_EUSAGE,
                 "%s: line %d: task '%s', key 'method': '%s' is listed twice", path,
                 key_line(t, "method"), t->name, m);
      if (n < 64) seen[n++] = ops;
    }
  }
  /* method options of a method that is not selected */
  for (int i = 0; i < dt_method_count(); i++) {
    const dt_method_ops *ops = dt_method_at(i);
    if (!ops->options || dt_list_has(ml, ops->name)) continue;
    for (const dt_optdef *d = ops->options->defs; d->name; d++)
      DT_CHECK(!dt_opt_given(o, d->name), DT_EUSAGE,
               "%s: line %d: task '%s', key '%s': it belongs to method '%s', which this task "
               "does not select (method = %s)", path, key_line(t, d->name), t->name, d->name,
               ops->name, ml);
  }
  DT_CHECK(!(dt_opt_is_set(o, "shuffle") && dt_opt_is_set(o, "sample-rows")), DT_EUSAGE,
           "%s: line %d: task '%s': 'shuffle' and 'sample-rows' exclude each other", path,
           key_line(t, "sample-rows"), t->name);
  return DT_OK;
}
