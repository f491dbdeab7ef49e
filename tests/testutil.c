#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_path[8][4096];
static int g_slot;

static const char *rotate(const char *fmt, const char *a, const char *b) {
  char *p = g_path[g_slot++ % 8];
  snprintf(p, 4096, fmt, a, b);
  return p;
}

const char *dt_test_fixture(const char *rel) {
  return rotate("%s/hf-parity/%s", DT_TESTDATA_DIR, rel);
}

const char *dt_test_data(const char *rel) {
  return rotate("%s/%s", DT_TESTDATA_DIR, rel);
}

const char *dt_test_tmpdir(void) {
  static char dir[256];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/dt-test-XXXXXX");
    if (!mkdtemp(dir)) return "/tmp";
  }
  return dir;
}

char *dt_test_slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  if (buf) buf[n] = 0;
  fclose(f);
  return buf;
}

int dt_test_run(char **out, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[8400];
  snprintf(full, sizeof full, "( %s ) 2>&1", cmd);
  FILE *p = popen(full, "r");
  if (!p) return -1;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += r;
    if (cap - len < 1024) {
      cap *= 2;
      buf = realloc(buf, cap);
    }
  }
  if (buf) buf[len] = 0;
  int st = pclose(p);
  if (out) *out = buf; else free(buf);
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}
