/* JSON lines to the tokenized training layout, and its cache (textdata.h). */
#include "textdata.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "agree.h"
#include "error.h"
#include "jsonl.h"
#include "safetensors.h"
#include "tokenizer.h"

#define FORMAT "deltatune-textdata-1"

typedef struct {
  const dt_textdata_spec *s;
  dt_tokenizer *tok;
  int32_t eos;
  json_t *row;
  int32_t *ids, *prompt; /* scratch: encodings of the row */
  size_t n_ids, ids_cap, n_prompt, prompt_cap;
  int fatal;             /* the error is not a bad row (--too-long error) */
  /* this rank's kept rows: their tokens and labels go to the spill file
   * (unlinked at once: nothing stays behind) as they are made, so a rank
   * holds one row, not its block; their lengths stay in memory */
  FILE *spill;
  int32_t *in, *lab; /* [seq_len] one row */
  int *len;
  long n_seg, cap_seg;
  dt_textdata_stats st;
} work;

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* The tokenizer_config.json beside the tokenizer (path: a file or folder). */
static void config_path(const char *tp, char *cfg, size_t n) {
  struct stat st;
  if (stat(tp, &st) == 0 && S_ISDIR(st.st_mode)) {
    snprintf(cfg, n, "%s/tokenizer_config.json", tp);
  } else {
    const char *slash = strrchr(tp, '/');
    snprintf(cfg, n, "%.*stokenizer_config.json", slash ? (int)(slash - tp + 1) : 0, tp);
  }
}

/* The EOS id: s->eos, or eos_token of tokenizer_config.json. */
static int find_eos(work *w) {
  const char *tp = w->s->tokenizer;
  char *name = NULL;
  if (w->s->eos) {
    name = strdup(w->s->eos);
  } else {
    char cfg[4096];
    config_path(tp, cfg, sizeof cfg);
    json_error_t err;
    json_t *c = json_load_file(cfg, JSON_DECODE_INT_AS_REAL, &err); /* model_max_length: 1e30 */
    json_t *e = c ? json_object_get(c, "eos_token") : NULL;
    if (e && json_is_object(e)) e = json_object_get(e, "content");
    if (e && json_is_string(e)) name = strdup(json_string_value(e));
    json_decref(c);
    DT_CHECK(name, DT_EUSAGE, "no EOS token: give --eos TOKEN (no eos_token in %s)", cfg);
  }
  DT_CHECK(name, DT_ENOMEM, "out of memory");
  w->eos = dt_tokenizer_token_id(w->tok, name);
  if (w->eos < 0) {
    int rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                          "the EOS token '%s' is not a token of %s", name, tp);
    free(name);
    return rc;
  }
  free(name);
  return DT_OK;
}

/* The ids of the string field of the row into *ids. */
static int encode(work *w, const dt_jsonl *r, const char *field, int special, int32_t **ids,
                  size_t *n, size_t *cap) {
  const char *s;
  size_t k;
  DT_CALL(dt_jsonl_string(r, w->row, field, &s, &k));
  int rc = dt_tokenizer_encode(w->tok, s, k, special, ids, n, cap);
  if (rc != DT_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", dt_error_message());
    return dt_error_set(rc, __FILE__, __LINE__, __func__, "%s line %ld: field \"%s\": %s", r->path,
                        r->lineno, field, msg);
  }
  return DT_OK;
}

/* Room for one more row length. */
static int reserve(work *w) {
  if (w->n_seg == w->cap_seg) {
    long cap = w->cap_seg ? 2 * w->cap_seg : 4096;
    int *p = realloc(w->len, (size_t)cap * sizeof *p);
    DT_CHECK(p, DT_ENOMEM, "out of memory for %ld rows", cap);
    w->len = p;
    w->cap_seg = cap;
  }
  return DT_OK;
}

/* One row of the file (w->row) to one kept row of tokens and labels. */
static int add_row(work *w, const dt_jsonl *r) {
  const dt_textdata_spec *s = w->s;
  if (s->split) {
    json_t *v = json_object_get(w->row, "split");
    DT_CHECK(v && json_is_string(v), DT_EINPUT,
             "%s line %ld: the row has no string field \"split\" (--data-split %s)", r->path,
             r->lineno, s->split);
    if (strcmp(json_string_value(v), s->split)) {
      w->st.other_split++;
      return DT_OK;
    }
  }
  const int is_prompt = json_object_get(w->row, "prompt") != NULL;
  size_t np = 0, total;
  if (is_prompt) {
    DT_CALL(encode(w, r, "prompt", s->special, &w->prompt, &w->n_prompt, &w->prompt_cap));
    DT_CALL(encode(w, r, "completion", 0, &w->ids, &w->n_ids, &w->ids_cap));
    np = w->n_prompt;
    total = np + w->n_ids + 1;
  } else {
    DT_CALL(encode(w, r, s->field, s->special, &w->ids, &w->n_ids, &w->ids_cap));
    total = w->n_ids + (s->pack ? 1 : 0);
  }
  if (total > (size_t)s->seq_len) {
    w->fatal = s->too_long_error;
    DT_CHECK(!s->too_long_error, DT_EINPUT,
             "%s line %ld: the row has %zu tokens, more than --seq-len %d (--too-long drop skips "
             "it)", r->path, r->lineno, total, s->seq_len);
    w->st.dropped++;
    return DT_OK;
  }
  DT_CHECK(total >= 2, DT_EINPUT, "%s line %ld: the row has %zu token%s: nothing to score",
           r->path, r->lineno, total, total == 1 ? "" : "s");
  DT_CALL(reserve(w));
  int32_t *in = w->in, *lab = w->lab;
  for (size_t t = 0; t < np; t++) in[t] = w->prompt[t], lab[t] = -100;
  for (size_t t = 0; t < w->n_ids; t++) in[np + t] = lab[np + t] = w->ids[t];
  if (np + w->n_ids < total) in[total - 1] = lab[total - 1] = w->eos;
  DT_CHECK(fwrite(in, 4, total, w->spill) == total && fwrite(lab, 4, total, w->spill) == total,
           DT_EIO, "cannot write the tokens of %s line %ld to a scratch file: %s", r->path,
           r->lineno, strerror(errno));
  w->len[w->n_seg++] = (int)total;
  w->st.rows_kept++;
  return DT_OK;
}

/* Rows [first, last) of the file. A bad row is an error, or skipped and
 * counted with s->skip_bad. */
static int read_block(work *w, long first, long last) {
  dt_jsonl r;
  DT_CALL(dt_jsonl_open(&r, w->s->data));
  int rc = DT_OK;
  for (long i = 0; i < last && rc == DT_OK; i++) {
    int more;
    rc = dt_jsonl_next(&r, i >= first, &w->row, &more);
    if (rc == DT_OK && !more) break;
    if (rc == DT_OK && i >= first) rc = add_row(w, &r);
    json_decref(w->row);
    w->row = NULL;
    if (i >= first && rc == DT_EINPUT && w->s->skip_bad && !w->fatal) {
      w->st.skipped++;
      dt_error_clear();
      rc = DT_OK;
    }
  }
  dt_jsonl_close(&r);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

static int pwrite_all(int fd, const void *buf, size_t n, off_t at, const char *path) {
  const char *p = buf;
  while (n > 0) {
    ssize_t k = pwrite(fd, p, n, at);
    if (k < 0 && errno == EINTR) continue;
    DT_CHECK(k > 0, DT_EIO, "cannot write '%s': %s", path, k < 0 ? strerror(errno) : "no space");
    p += k, n -= (size_t)k, at += k;
  }
  return DT_OK;
}

/* Rank 0: the temporary file, its header and its size. */
static int create_file(const char *tmp, long N, int T, json_t *meta, off_t *data_start) {
  const int64_t bytes = (int64_t)N * T * 4;
  json_t *h = json_pack("{s:O, s:{s:s, s:[I,i], s:[I,I]}, s:{s:s, s:[I,i], s:[I,I]}}", "__metadata__",
                        meta, "input_ids", "dtype", "I32", "shape", (json_int_t)N, T, "data_offsets",
                        (json_int_t)0, (json_int_t)bytes, "labels", "dtype", "I32", "shape",
                        (json_int_t)N, T, "data_offsets", (json_int_t)bytes, (json_int_t)(2 * bytes));
  char *text = h ? json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(h);
  DT_CHECK(text, DT_ENOMEM, "out of memory");
  size_t n = strlen(text), padded = (n + 7) / 8 * 8;
  char *head = malloc(8 + padded);
  if (!head) {
    free(text);
    DT_ERR(DT_ENOMEM, "out of memory");
  }
  for (int i = 0; i < 8; i++) head[i] = (char)((uint64_t)padded >> (8 * i));
  memcpy(head + 8, text, n);
  memset(head + 8 + n, ' ', padded - n);
  free(text);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int rc = fd >= 0 ? DT_OK
                   : dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot create '%s': %s",
                                  tmp, strerror(errno));
  if (rc == DT_OK) rc = pwrite_all(fd, head, 8 + padded, 0, tmp);
  *data_start = (off_t)(8 + padded);
  if (rc == DT_OK && ftruncate(fd, *data_start + 2 * bytes) != 0)
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot size '%s': %s", tmp,
                      strerror(errno));
  if (fd >= 0 && close(fd) != 0 && rc == DT_OK)
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot write '%s'", tmp);
  free(head);
  return rc;
}

/* This rank's rows into the file: row g (of all ranks, in file order) at
 * row_of[g], column col_of[g]; the one that ends a row of the file also
 * writes its padding. */
static int write_rows(const work *w, const char *tmp, off_t data_start, long N, int T,
                      const long *row_of, const int *col_of, long n_all, long g0) {
  int fd = open(tmp, O_WRONLY);
  DT_CHECK(fd >= 0, DT_EIO, "cannot open '%s' (written by rank 0; --data-cache must be a folder "
           "every rank sees): %s", tmp, strerror(errno));
  int32_t *pad_in = malloc((size_t)T * sizeof *pad_in), *pad_lab = malloc((size_t)T * sizeof *pad_lab);
  int rc = pad_in && pad_lab ? DT_OK
                             : dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "out of memory");
  if (rc == DT_OK && (fflush(w->spill) != 0 || fseek(w->spill, 0, SEEK_SET) != 0))
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot read back the scratch file");
  for (int t = 0; rc == DT_OK && t < T; t++) pad_in[t] = w->eos, pad_lab[t] = -100;
  const off_t lab_start = data_start + (off_t)N * T * 4;
  for (long j = 0; rc == DT_OK && j < w->n_seg && g0 + j < n_all; j++) {
    const long g = g0 + j;
    const off_t pos = ((off_t)row_of[g] * T + col_of[g]) * 4;
    const size_t k = (size_t)w->len[j];
    if (fread(w->in, 4, k, w->spill) != k || fread(w->lab, 4, k, w->spill) != k) {
      rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot read back the scratch file");
      break;
    }
    rc = pwrite_all(fd, w->in, k * 4, data_start + pos, tmp);
    if (rc == DT_OK) rc = pwrite_all(fd, w->lab, k * 4, lab_start + pos, tmp);
    const int end = col_of[g] + (int)k;
    if (rc == DT_OK && (g + 1 == n_all || row_of[g + 1] != row_of[g]) && end < T) {
      rc = pwrite_all(fd, pad_in, (size_t)(T - end) * 4, data_start + pos + (off_t)k * 4, tmp);
      if (rc == DT_OK)
        rc = pwrite_all(fd, pad_lab, (size_t)(T - end) * 4, lab_start + pos + (off_t)k * 4, tmp);
    }
  }
  if (close(fd) != 0 && rc == DT_OK)
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot write '%s'", tmp);
  free(pad_in);
  free(pad_lab);
  return rc;
}

/* The spill file of this rank, beside out, unlinked once open; and the
 * row buffers [seq_len]. */
static int open_spill(work *w, const char *out) {
  char p[4200];
  snprintf(p, sizeof p, "%s.spill.XXXXXX", out);
  int fd = mkstemp(p);
  DT_CHECK(fd >= 0, DT_EIO, "cannot create a scratch file %s: %s", p, strerror(errno));
  unlink(p);
  w->spill = fdopen(fd, "w+b");
  if (!w->spill) {
    close(fd);
    DT_ERR(DT_EIO, "cannot open a scratch file beside %s", out);
  }
  DT_CALL(dt_malloc(&w->in, (size_t)w->s->seq_len * sizeof *w->in, "row tokens"));
  DT_CALL(dt_malloc(&w->lab, (size_t)w->s->seq_len * sizeof *w->lab, "row labels"));
  return DT_OK;
}

static void work_free(work *w) {
  dt_tokenizer_free(&w->tok);
  json_decref(w->row);
  free(w->ids);
  free(w->prompt);
  if (w->spill) fclose(w->spill);
  free(w->in);
  free(w->lab);
  free(w->len);
}

int dt_textdata_write(const dt_textdata_spec *s, const char *out, const char *const *meta_keys,
                      const char *const *meta_values, int n_meta, dt_textdata_stats *st,
                      MPI_Comm comm) {
  int rank, nranks;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &nranks);
  work w;
  memset(&w, 0, sizeof w);
  w.s = s;
  long n = 0;
  int rc = s->seq_len >= 2 ? DT_OK
                           : dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                                          "JSON lines data needs --seq-len (at least 2)");
  if (rc == DT_OK) rc = open_spill(&w, out);
  if (rc == DT_OK) rc = dt_tokenizer_load(&w.tok, s->tokenizer);
  if (rc == DT_OK) rc = find_eos(&w);
  if (rc == DT_OK) rc = dt_jsonl_count_rows(s->data, &n);
  rc = dt_agree(rc, comm);
  if (rc == DT_OK) rc = dt_agree(read_block(&w, n * rank / nranks, n * (rank + 1) / nranks), comm);
  if (rc) {
    work_free(&w);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  w.st.rows_read = n;
  long sums[5] = {w.st.rows_kept, w.st.dropped, w.st.skipped, w.st.other_split, 0};
  MPI_Allreduce(MPI_IN_PLACE, sums, 5, MPI_LONG, MPI_SUM, comm);
  /* every row's length, in file order, on every rank: the layout */
  int *counts = calloc((size_t)nranks, sizeof *counts), *displ = calloc((size_t)nranks, sizeof *displ);
  int *len_all = malloc(((size_t)sums[0] + 1) * sizeof *len_all);
  long *row_of = malloc(((size_t)sums[0] + 1) * sizeof *row_of);
  int *col_of = malloc(((size_t)sums[0] + 1) * sizeof *col_of);
  rc = counts && displ && len_all && row_of && col_of
           ? DT_OK
           : dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "out of memory for %ld rows",
                          sums[0]);
  if (rc == DT_OK && sums[0] > INT32_MAX)
    rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__, "%s: %ld rows are too many",
                      s->data, sums[0]);
  rc = dt_agree(rc, comm);
  long N = 0, g0 = 0;
  const int T = s->seq_len;
  /* --max-rows: the first rows that fit, of every rank's */
  const long keep = s->max_rows > 0 && sums[0] > s->max_rows ? s->max_rows : sums[0];
  if (rc == DT_OK) {
    int mine = (int)w.n_seg;
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, comm);
    for (int k = 0; k < nranks; k++) displ[k] = k ? displ[k - 1] + counts[k - 1] : 0;
    g0 = displ[rank];
    MPI_Allgatherv(w.len, mine, MPI_INT, len_all, counts, displ, MPI_INT, comm);
    int used = T;
    for (long g = 0; g < keep; g++) {
      if (!s->pack || used + len_all[g] > T) N++, used = 0;
      row_of[g] = N - 1;
      col_of[g] = used;
      used += len_all[g];
    }
    if (N == 0)
      rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                        "%s: no row to train on (%ld rows: %ld longer than --seq-len %d, %ld bad, "
                        "%ld of another split)", s->data, n, sums[1], T, sums[2], sums[3]);
    else if ((double)N * T >= 4e9)
      rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                        "%s: %ld rows of %d tokens are too many for one file", s->data, N, T);
    rc = dt_agree(rc, comm);
  }
  char tmp[4096];
  off_t data_start = 0;
  if (rc == DT_OK) {
    if (rank == 0) {
      char host[256] = "";
      gethostname(host, sizeof host - 1); /* two jobs' rank 0 may share a pid, not a host */
      snprintf(tmp, sizeof tmp, "%s.tmp.%s.%ld", out, host, (long)getpid());
      json_t *meta = json_object();
      char num[32];
      const char *k0[] = {"format", "source", "tokenizer"};
      const char *v0[] = {FORMAT, s->data, s->tokenizer};
      for (int i = 0; meta && i < 3; i++) json_object_set_new(meta, k0[i], json_string(v0[i]));
      for (int i = 0; meta && i < n_meta; i++)
        json_object_set_new(meta, meta_keys[i], json_string(meta_values[i]));
      const char *names[] = {"rows_read", "rows_kept", "dropped", "skipped", "other_split"};
      const long vals[] = {n, keep, sums[1], sums[2], sums[3]};
      for (int i = 0; meta && i < 5; i++) {
        snprintf(num, sizeof num, "%ld", vals[i]);
        json_object_set_new(meta, names[i], json_string(num));
      }
      rc = meta ? create_file(tmp, N, T, meta, &data_start)
                : dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "out of memory");
      json_decref(meta);
    }
    rc = dt_agree(rc, comm);
    MPI_Bcast(tmp, sizeof tmp, MPI_CHAR, 0, comm);
    long long ds = (long long)data_start;
    MPI_Bcast(&ds, 1, MPI_LONG_LONG, 0, comm);
    data_start = (off_t)ds;
    if (rc == DT_OK) rc = dt_agree(write_rows(&w, tmp, data_start, N, T, row_of, col_of, keep, g0), comm);
    if (rank == 0) {
      if (rc == DT_OK && rename(tmp, out) != 0)
        rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot rename '%s' to '%s': %s",
                          tmp, out, strerror(errno));
      if (rc != DT_OK) unlink(tmp);
    }
    rc = dt_agree(rc, comm);
  }
  free(counts);
  free(displ);
  free(len_all);
  free(row_of);
  free(col_of);
  work_free(&w);
  DT_CALL(rc);
  if (st) {
    memset(st, 0, sizeof *st);
    st->rows_read = n;
    st->rows_kept = keep;
    st->beyond_max = sums[0] - keep;
    st->dropped = sums[1];
    st->skipped = sums[2];
    st->other_split = sums[3];
    st->rows_out = N;
  }
  return DT_OK;
}

/* --- the cache ------------------------------------------------------------ */

/* XXH3-64 of a file's bytes. */
static int hash_file(const char *path, uint64_t *h) {
  FILE *f = fopen(path, "rb");
  DT_CHECK(f, DT_EINPUT, "cannot open '%s' for reading", path);
  XXH3_state_t *x = XXH3_createState();
  char *buf = malloc(1 << 20);
  int rc = x && buf ? DT_OK : dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "out of memory");
  if (rc == DT_OK) XXH3_64bits_reset(x);
  size_t k;
  while (rc == DT_OK && (k = fread(buf, 1, 1 << 20, f)) > 0) XXH3_64bits_update(x, buf, k);
  if (rc == DT_OK && ferror(f))
    rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "read error in '%s'", path);
  if (rc == DT_OK) *h = XXH3_64bits_digest(x);
  XXH3_freeState(x);
  free(buf);
  fclose(f);
  return rc;
}

/* mkdir -p dir. */
static int make_dirs(const char *dir) {
  char d[4096];
  snprintf(d, sizeof d, "%s", dir);
  for (char *p = d + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(d, 0755);
      *p = '/';
    }
  DT_CHECK(mkdir(d, 0755) == 0 || errno == EEXIST, DT_EIO, "cannot create the cache folder %s: %s",
           d, strerror(errno));
  return DT_OK;
}

/* --data-cache, or $XDG_CACHE_HOME/deltatune/data, or ~/.cache/deltatune/data. */
static int cache_dir(const dt_options *o, char *dir, size_t n) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (dt_opt_is_set(o, "data-cache")) snprintf(dir, n, "%s", dt_opt_str(o, "data-cache"));
  else if (xdg && *xdg) snprintf(dir, n, "%s/deltatune/data", xdg);
  else if (home && *home) snprintf(dir, n, "%s/.cache/deltatune/data", home);
  else DT_ERR(DT_EUSAGE, "no folder for the token cache: give --data-cache DIR (HOME is not set)");
  return DT_OK;
}

/* The options that change the tokenized rows. */
static const char *const k_data_opts[] = {"data",       "tokenizer",     "seq-len",
                                          "too-long",   "pack",          "skip-bad-rows",
                                          "data-split", "eos",           "data-cache", "max-rows"};
#define N_DATA_OPTS (sizeof k_data_opts / sizeof *k_data_opts)

int dt_data_same(const dt_options *a, const dt_options *b) {
  for (size_t i = 0; i < N_DATA_OPTS; i++)
    if (strcmp(dt_opt_str(a, k_data_opts[i]), dt_opt_str(b, k_data_opts[i]))) return 0;
  return 1;
}

/* Rank 0: the cache file of the spec, and whether it is there already. */
static int cache_lookup(const dt_options *o, const dt_textdata_spec *s, char *path, size_t n,
                        char *key, size_t kn, int *hit) {
  uint64_t hd, ht, hc = 0;
  char tj[4096], cfg[4096];
  struct stat st;
  if (stat(s->tokenizer, &st) == 0 && S_ISDIR(st.st_mode))
    snprintf(tj, sizeof tj, "%s/tokenizer.json", s->tokenizer);
  else
    snprintf(tj, sizeof tj, "%s", s->tokenizer);
  DT_CALL(hash_file(s->data, &hd));
  DT_CALL(hash_file(tj, &ht));
  config_path(s->tokenizer, cfg, sizeof cfg);
  if (!s->eos && stat(cfg, &st) == 0) DT_CALL(hash_file(cfg, &hc));
  snprintf(key, kn,
           "%s data=%016llx tokenizer=%016llx config=%016llx eos=%s seq_len=%d too_long=%s "
           "pack=%d skip_bad=%d split=%s special=%d field=%s max_rows=%ld",
           FORMAT, (unsigned long long)hd, (unsigned long long)ht, (unsigned long long)hc,
           s->eos ? s->eos : "", s->seq_len, s->too_long_error ? "error" : "drop", s->pack,
           s->skip_bad, s->split ? s->split : "", s->special, s->field, s->max_rows);
  char dir[4096];
  DT_CALL(cache_dir(o, dir, sizeof dir));
  DT_CALL(make_dirs(dir));
  const char *base = strrchr(s->data, '/');
  base = base ? base + 1 : s->data;
  snprintf(path, n, "%s/%.*s-%016llx.safetensors", dir, (int)(strlen(base) - strlen(".jsonl")), base,
           (unsigned long long)XXH3_64bits(key, strlen(key)));
  *hit = 0;
  dt_st_file f;
  if (access(path, F_OK) == 0 && dt_st_open(&f, path) == DT_OK) {
    char *k = NULL;
    if (dt_st_get_metadata(&f, "key", &k) == DT_OK && k && !strcmp(k, key)) *hit = 1;
    free(k);
    dt_st_close(&f);
  }
  dt_error_clear();
  return DT_OK;
}

int dt_data_prepare(const dt_options *o, const char *model, MPI_Comm comm, char *path, size_t n) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  const char *data = dt_opt_str(o, "data");
  snprintf(path, n, "%s", data);
  int rc = DT_OK;
  if (!ends_with(data, ".jsonl")) {
    if (ends_with(data, ".jsonl.gz"))
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                        "--data %s: compressed JSON lines are not read; gunzip it first", data);
    static const char *const text_only[] = {"tokenizer", "seq-len", "too-long", "pack",
                                            "skip-bad-rows", "data-split", "data-cache", "eos",
                                            "max-rows"};
    for (size_t i = 0; rc == DT_OK && i < sizeof text_only / sizeof *text_only; i++)
      if (dt_opt_given(o, text_only[i]))
        rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                          "--%s applies to JSON lines data (--data FILE.jsonl), not to --data %s",
                          text_only[i], data);
    return dt_agree(rc, comm);
  }
  dt_textdata_spec s = {
      .data = data,
      .tokenizer = dt_opt_is_set(o, "tokenizer") ? dt_opt_str(o, "tokenizer") : model,
      .eos = dt_opt_is_set(o, "eos") ? dt_opt_str(o, "eos") : NULL,
      .field = "text",
      .split = dt_opt_is_set(o, "data-split") ? dt_opt_str(o, "data-split") : NULL,
      .seq_len = dt_opt_int(o, "seq-len"),
      .too_long_error = !strcmp(dt_opt_str(o, "too-long"), "error"),
      .pack = dt_opt_bool(o, "pack"),
      .skip_bad = dt_opt_bool(o, "skip-bad-rows"),
      .max_rows = dt_opt_int(o, "max-rows"),
      .special = 1};
  if (!dt_opt_is_set(o, "tokenizer") && !strncmp(model, "synthetic:", 10))
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--data %s: a synthetic model has no tokenizer; give --tokenizer PATH", data);
  else if (s.seq_len < 2)
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--data %s: JSON lines data needs --seq-len T (tokens per row, at least 2)",
                      data);
  char key[1024] = "";
  int hit = 0;
  if (rc == DT_OK && rank == 0) rc = cache_lookup(o, &s, path, n, key, sizeof key, &hit);
  DT_CALL(dt_agree(rc, comm));
  MPI_Bcast(path, (int)n, MPI_CHAR, 0, comm);
  MPI_Bcast(&hit, 1, MPI_INT, 0, comm);
  if (hit) {
    if (rank == 0) fprintf(stderr, "data: %s: tokenized rows from the cache %s\n", data, path);
    return DT_OK;
  }
  const char *mk[] = {"key"}, *mv[] = {key};
  dt_textdata_stats st;
  DT_CALL(dt_textdata_write(&s, path, mk, mv, 1, &st, comm));
  if (rank == 0)
    fprintf(stderr,
            "data: %s: %ld rows read, %ld kept in %ld rows of %d tokens (%ld longer than --seq-len "
            "dropped, %ld bad rows skipped, %ld of other splits, %ld beyond --max-rows) -> cache "
            "%s\n",
            data, st.rows_read, st.rows_kept, st.rows_out, s.seq_len, st.dropped, st.skipped,
            st.other_split, st.beyond_max, path);
  return DT_OK;
}
