/* Output paths: resolution, collisions, locks. See outpaths.h. */
#include "outpaths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agree.h"
#include "error.h"
#include "outlock.h"

int dt_path_resolve(const char *path, char *out, size_t cap) {
  DT_CHECK(path && *path, DT_EUSAGE, "an empty output path");
  char abs[2 * PATH_MAX];
  if (path[0] == '/') {
    snprintf(abs, sizeof abs, "%s", path);
  } else {
    char cwd[PATH_MAX];
    DT_CHECK(getcwd(cwd, sizeof cwd), DT_EIO, "%s: cannot resolve (current folder: %s)", path,
             strerror(errno));
    snprintf(abs, sizeof abs, "%s/%s", cwd, path);
  }
  /* the longest prefix that exists, through realpath; the rest by hand */
  size_t tail_at = strlen(abs); /* abs[tail_at..] are the missing components */
  char head[2 * PATH_MAX], real[PATH_MAX];
  for (;;) {
    snprintf(head, sizeof head, "%.*s", (int)tail_at, abs);
    if (!head[0]) snprintf(head, sizeof head, "/");
    if (realpath(head, real)) break;
    DT_CHECK(errno == ENOENT, DT_EIO, "%s: cannot resolve %s: %s", path, head, strerror(errno));
    /* drop the last component of the prefix */
    size_t e = tail_at;
    while (e > 0 && abs[e - 1] == '/') e--;
    while (e > 0 && abs[e - 1] != '/') e--;
    tail_at = e;
  }
  char res[2 * PATH_MAX];
  snprintf(res, sizeof res, "%s", real);
  for (const char *p = abs + tail_at; *p;) {
    while (*p == '/') p++;
    const char *q = p;
    while (*q && *q != '/') q++;
    const size_t len = (size_t)(q - p);
    if (len == 0 || (len == 1 && p[0] == '.')) {
      /* nothing */
    } else if (len == 2 && p[0] == '.' && p[1] == '.') {
      char *s = strrchr(res, '/');
      if (s && s != res) *s = 0;
      else snprintf(res, sizeof res, "/");
    } else {
      const size_t r = strlen(res);
      snprintf(res + r, sizeof res - r, "%s%.*s", r > 0 && res[r - 1] == '/' ? "" : "/", (int)len,
               p);
    }
    p = q;
  }
  DT_CHECK(strlen(res) < cap, DT_EUSAGE, "%s: the resolved path is too long", path);
  snprintf(out, cap, "%s", res);
  return DT_OK;
}

/* Rank 0: create dir if missing (one level) and check it is a folder. */
static int make_dir(const char *dir, const char *what) {
  struct stat sb;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    DT_ERR(DT_EIO, "%s %s: cannot create: %s", what, dir, strerror(errno));
  DT_CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), DT_EUSAGE, "%s %s is not a folder", what,
           dir);
  return DT_OK;
}

int dt_outputs_lock_train(const char *out, MPI_Comm comm) {
  int rank, rc = DT_OK;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    rc = make_dir(out, "--out");
    if (rc == DT_OK) rc = dt_outlock_take(out, "--out");
  }
  DT_CALL(dt_agree(rc, comm));
  return DT_OK;
}

typedef struct {
  int task;
  const char *field;
  const char *value;
  char real[PATH_MAX];
} output;

static int sweep_check(const char *file, const dt_output_spec *t, int n) {
  output *o = NULL;
  DT_CALL(dt_calloc(&o, sizeof *o * (size_t)(2 * n + 1), "the outputs of the tasks"));
  int no = 0, rc = DT_OK;
  for (int k = 0; rc == DT_OK && k < n; k++) {
    const char *v[2] = {t[k].out, t[k].metrics};
    const char *f[2] = {"out", "metrics"};
    for (int j = 0; rc == DT_OK && j < 2; j++) {
      if (!v[j] || !*v[j]) continue;
      o[no].task = k;
      o[no].field = f[j];
      o[no].value = v[j];
      rc = dt_path_resolve(v[j], o[no].real, sizeof o[no].real);
      no++;
    }
  }
  for (int a = 0; rc == DT_OK && a < no; a++)
    for (int b = a + 1; rc == DT_OK && b < no; b++) {
      if (strcmp(o[a].real, o[b].real) != 0) continue;
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                        "%s: [task %s] %s = '%s' and [task %s] %s = '%s' are the same path (%s): "
                        "the tasks would overwrite each other's files; give every task its own "
                        "'out' folder and 'metrics' file", file, t[o[a].task].task, o[a].field,
                        o[a].value, t[o[b].task].task, o[b].field, o[b].value, o[a].real);
    }
  free(o);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

int dt_outputs_lock_sweep(const char *file, const dt_output_spec *t, int n, MPI_Comm comm) {
  int rank, rc = DT_OK;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    rc = sweep_check(file, t, n);
    char what[600];
    for (int k = 0; rc == DT_OK && k < n; k++) {
      if (!t[k].out || !*t[k].out) continue;
      snprintf(what, sizeof what, "%s [task %s] out", file, t[k].task);
      rc = make_dir(t[k].out, what);
      if (rc == DT_OK) rc = dt_outlock_take(t[k].out, what);
    }
  }
  DT_CALL(dt_agree(rc, comm));
  return DT_OK;
}
