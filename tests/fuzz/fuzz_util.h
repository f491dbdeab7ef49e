/* Shared by the libFuzzer targets (tests/fuzz, docs/reliability.md): the
 * parsers under test read files, so each input is written to a file of this
 * process first. */
#ifndef DT_FUZZ_UTIL_H
#define DT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir_[256];

/* At exit: the private folder and the files in it go. */
static inline void fuzz_cleanup_(void) {
  static const char *const names[] = {"t.safetensors", "config.json", "d.safetensors",
                                      "tasks.ini", "c.nc", "tokenizer.json", "rows.jsonl"};
  char p[512];
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(p, sizeof p, "%s/%s", fuzz_dir_, names[i]);
    unlink(p);
  }
  rmdir(fuzz_dir_);
}

/* A private folder (made once) and the path of name inside it. */
static inline const char *fuzz_path(const char *name) {
  char *dir = fuzz_dir_;
  static char path[512];
  if (!dir[0]) {
    /* memory-backed when possible: an input is written and read per run */
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof fuzz_dir_, "%s/dt-fuzz-XXXXXX", base);
    if (!mkdtemp(dir)) abort();
    atexit(fuzz_cleanup_);
  }
  snprintf(path, sizeof path, "%s%s%s", dir, name[0] ? "/" : "", name);
  return path;
}

/* Write the input to name in the private folder; returns its path. */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size) {
  const char *p = fuzz_path(name);
  FILE *f = fopen(p, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  if (fclose(f) != 0) abort();
  return p;
}

#endif
