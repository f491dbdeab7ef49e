/* JSON lines reader (jsonl.h): getline per row, jansson per line. */
#include "jsonl.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_text.h"

int dt_jsonl_open(dt_jsonl *r, const char *path) {
  memset(r, 0, sizeof *r);
  r->f = fopen(path, "rb");
  DT_CHECK(r->f, DT_EINPUT, "cannot open '%s' for reading", path);
  size_t n = strlen(path);
  r->path = malloc(n + 1);
  if (!r->path) {
    fclose(r->f);
    r->f = NULL;
    DT_ERR(DT_ENOMEM, "out of memory");
  }
  memcpy(r->path, path, n + 1);
  return DT_OK;
}

static int blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
  return 1;
}

int dt_jsonl_next(dt_jsonl *r, int parse, json_t **row, int *more) {
  *row = NULL;
  *more = 0;
  for (;;) {
    ssize_t len = getline(&r->line, &r->cap, r->f);
    if (len < 0) {
      DT_CHECK(!ferror(r->f), DT_EIO, "%s: read error after line %ld", r->path, r->lineno);
      return DT_OK;
    }
    r->lineno++;
    if (blank(r->line, (size_t)len)) continue;
    *more = 1;
    if (!parse) return DT_OK;
    size_t bad;
    DT_CHECK(tok_utf8_valid(r->line, (size_t)len, &bad), DT_EINPUT,
             "%s line %ld: not valid UTF-8 (byte %zu of the line)", r->path, r->lineno, bad + 1);
    json_error_t err;
    json_t *o = json_loadb(r->line, (size_t)len, JSON_ALLOW_NUL, &err);
    DT_CHECK(o, DT_EINPUT, "%s line %ld: invalid JSON: %s (column %d)", r->path, r->lineno,
             err.text, err.column);
    if (!json_is_object(o)) {
      json_decref(o);
      DT_ERR(DT_EINPUT, "%s line %ld: a row must be a JSON object", r->path, r->lineno);
    }
    *row = o;
    return DT_OK;
  }
}

int dt_jsonl_string(const dt_jsonl *r, json_t *row, const char *field, const char **s, size_t *n) {
  json_t *v = json_object_get(row, field);
  DT_CHECK(v, DT_EINPUT, "%s line %ld: the row has no field \"%s\"", r->path, r->lineno, field);
  DT_CHECK(json_is_string(v), DT_EINPUT, "%s line %ld: field \"%s\" must be a string", r->path,
           r->lineno, field);
  *s = json_string_value(v);
  *n = json_string_length(v);
  return DT_OK;
}

int dt_jsonl_ids(const dt_jsonl *r, json_t *row, const char *field, int32_t limit, int32_t **ids,
                 size_t *n, size_t *cap) {
  json_t *v = json_object_get(row, field);
  DT_CHECK(v, DT_EINPUT, "%s line %ld: the row has no field \"%s\"", r->path, r->lineno, field);
  DT_CHECK(json_is_array(v), DT_EINPUT, "%s line %ld: field \"%s\" must be an array of token ids",
           r->path, r->lineno, field);
  size_t k = json_array_size(v);
  if (k > *cap) {
    int32_t *p = realloc(*ids, k * sizeof *p);
    DT_CHECK(p, DT_ENOMEM, "out of memory for %zu ids", k);
    *ids = p;
    *cap = k;
  }
  for (size_t i = 0; i < k; i++) {
    json_t *x = json_array_get(v, i);
    json_int_t id = json_is_integer(x) ? json_integer_value(x) : -1;
    if (!json_is_integer(x) || id < 0 || id > INT32_MAX || (limit > 0 && id >= limit)) {
      if (limit > 0)
        DT_ERR(DT_EINPUT, "%s line %ld: \"%s\"[%zu] is not a token id in [0, %d)", r->path,
               r->lineno, field, i, (int)limit);
      DT_ERR(DT_EINPUT, "%s line %ld: \"%s\"[%zu] is not a token id (an integer in [0, 2^31))",
             r->path, r->lineno, field, i);
    }
    (*ids)[i] = (int32_t)id;
  }
  *n = k;
  return DT_OK;
}

void dt_jsonl_close(dt_jsonl *r) {
  if (r->f) fclose(r->f);
  free(r->line);
  free(r->path);
  memset(r, 0, sizeof *r);
}

int dt_jsonl_count_rows(const char *path, long *n) {
  dt_jsonl r;
  DT_CALL(dt_jsonl_open(&r, path));
  *n = 0;
  int rc, more = 1;
  json_t *row;
  while ((rc = dt_jsonl_next(&r, 0, &row, &more)) == DT_OK && more) (*n)++;
  dt_jsonl_close(&r);
  return rc;
}
