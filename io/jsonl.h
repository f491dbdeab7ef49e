/* JSON lines: one JSON object per line (blank lines are not rows). Rows are
 * read one at a time; a bad row (not UTF-8, invalid JSON, not an object, a
 * field missing or of the wrong type) is an error naming the file and the
 * line. */
#ifndef DT_JSONL_H
#define DT_JSONL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
  FILE *f;
  char *path;
  char *line;
  size_t cap;
  long lineno; /* line of the last row read (1-based) */
} dt_jsonl;

int dt_jsonl_open(dt_jsonl *r, const char *path);
/* The next row: *row (json_decref it) or NULL at the end of the file. With
 * parse = 0 the row is only counted and skipped (*row stays NULL, *more 1). */
int dt_jsonl_next(dt_jsonl *r, int parse, json_t **row, int *more);
/* A string field of row: *s points into row. */
int dt_jsonl_string(const dt_jsonl *r, json_t *row, const char *field, const char **s, size_t *n);
/* An array field of ids in [0, limit) (limit <= 0: any non-negative int32). */
int dt_jsonl_ids(const dt_jsonl *r, json_t *row, const char *field, int32_t limit, int32_t **ids,
                 size_t *n, size_t *cap);
void dt_jsonl_close(dt_jsonl *r);
/* The number of lines with a row in PATH (blank lines not counted, rows not
 * parsed): the first pass of a reader that splits the rows between ranks. */
int dt_jsonl_count_rows(const char *path, long *n);

#endif
