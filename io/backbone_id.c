/* Backbone identity: hashes of config.json and the weight files (HF) or the
 * resolved synthetic configuration. See backbone_id.h. */
#include "backbone_id.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "error.h"
#include "safetensors.h"

int dt_file_xxh3(const char *path, uint64_t *hash, uint64_t *bytes) {
  int fd = open(path, O_RDONLY);
  DT_CHECK(fd >= 0, DT_EIO, "%s: cannot open to hash it: %s", path, strerror(errno));
  XXH3_state_t *st = XXH3_createState();
  const size_t cap = (size_t)4 << 20;
  char *buf = malloc(cap);
  if (!st || !buf) {
    close(fd);
    XXH3_freeState(st);
    free(buf);
    DT_ERR(DT_ENOMEM, "%s: no memory for a 4 MiB hashing buffer", path);
  }
  XXH3_64bits_reset(st);
  uint64_t total = 0;
  int rc = DT_OK;
  for (;;) {
    ssize_t n = read(fd, buf, cap);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "%s: read failed at byte %llu: %s",
                        path, (unsigned long long)total, strerror(errno));
      break;
    }
    if (n == 0) break;
    XXH3_64bits_update(st, buf, (size_t)n);
    total += (uint64_t)n;
  }
  *hash = XXH3_64bits_digest(st);
  *bytes = total;
  XXH3_freeState(st);
  free(buf);
  close(fd);
  return rc;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Append "name bytes hash\n" for path to desc. */
static int add_file(dt_backbone_id *b, const char *path, uint64_t *hash_out) {
  uint64_t h = 0, n = 0;
  DT_CALL(dt_file_xxh3(path, &h, &n));
  size_t len = strlen(b->desc);
  int w = snprintf(b->desc + len, sizeof b->desc - len, "%s %llu %016llx\n", base_name(path),
                   (unsigned long long)n, (unsigned long long)h);
  DT_CHECK(w > 0 && (size_t)w < sizeof b->desc - len, DT_EINPUT,
           "%s: too many weight files to describe the backbone in %d characters",
           b->source, DT_BACKBONE_DESC_MAX);
  if (hash_out) *hash_out = h;
  return DT_OK;
}

static int identify_hf(dt_backbone_id *b, const dt_config *c) {
  snprintf(b->kind, sizeof b->kind, "hf");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", c->source);
  uint64_t ch = 0;
  DT_CALL(add_file(b, path, &ch));
  snprintf(b->config_xxh3, sizeof b->config_xxh3, "%016llx", (unsigned long long)ch);
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", c->source);
  struct stat sb;
  if (stat(path, &sb) == 0) DT_CALL(add_file(b, path, NULL));
  dt_st_set set;
  DT_CALL(dt_st_set_open(&set, c->source));
  const char **names = calloc((size_t)(set.n_files ? set.n_files : 1), sizeof *names);
  if (!names) {
    dt_st_set_close(&set);
    DT_ERR(DT_ENOMEM, "%s: no memory for the list of weight files", c->source);
  }
  for (int i = 0; i < set.n_files; i++) names[i] = set.files[i].path;
  qsort(names, (size_t)set.n_files, sizeof *names, cmp_str);
  int rc = DT_OK;
  for (int i = 0; rc == DT_OK && i < set.n_files; i++) rc = add_file(b, names[i], NULL);
  free(names);
  dt_st_set_close(&set);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

static void identify_synthetic(dt_backbone_id *b, const dt_config *c, uint64_t seed) {
  snprintf(b->kind, sizeof b->kind, "synthetic");
  snprintf(b->desc, sizeof b->desc,
           "synthetic %s layers=%d d=%d heads=%d kv_heads=%d head_dim=%d ffn=%d vocab=%d "
           "ctx=%d norm_eps=%.9g rope_theta=%.9g tied=%d bias=%d seed=%llu\n",
           dt_cfg_arch(c)->name, c->n_layer, c->d_model, c->n_head,
           c->n_kv_head, c->head_dim, c->d_ffn, c->vocab, c->n_ctx, (double)c->norm_eps,
           (double)c->rope_theta, c->tied_head, c->has_bias, (unsigned long long)seed);
  size_t n = strlen(b->desc);
  if (c->sliding_window && n > 0) /* before the newline; absent for the families without */
    snprintf(b->desc + n - 1, sizeof b->desc - (n - 1), " window=%d\n", c->sliding_window);
  n = strlen(b->desc);
  if (c->attn_scalar > 0 && n > 0) /* Gemma-2's query_pre_attn_scalar (a key of the spec) */
    snprintf(b->desc + n - 1, sizeof b->desc - (n - 1), " attn_scalar=%.9g\n",
             (double)c->attn_scalar);
}

int dt_backbone_identify(dt_backbone_id *b, const dt_config *c, uint64_t seed,
                         MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  memset(b, 0, sizeof *b);
  snprintf(b->source, sizeof b->source, "%s", c->source);
  int rc = DT_OK;
  if (rank == 0) {
    if (strncmp(c->source, "synthetic:", 10) == 0)
      identify_synthetic(b, c, seed);
    else
      rc = identify_hf(b, c);
    if (rc == DT_OK)
      snprintf(b->id, sizeof b->id, "%016llx",
               (unsigned long long)XXH3_64bits(b->desc, strlen(b->desc)));
  }
  /* every rank returns rank 0's outcome */
  char msg[2048];
  int code = rc;
  snprintf(msg, sizeof msg, "%s", rc ? dt_error_message() : "");
  MPI_Bcast(&code, 1, MPI_INT, 0, comm);
  if (code) {
    MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm);
    if (rank != 0) dt_error_set(code, __FILE__, __LINE__, __func__, "%s", msg);
    return dt_error_trace(code, __FILE__, __LINE__, __func__);
  }
  MPI_Bcast(b, (int)sizeof *b, MPI_BYTE, 0, comm);
  return DT_OK;
}

/* Line `name ...` of desc into out (without the newline); 0 when absent. */
static int find_line(const char *desc, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *p = desc; *p;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == ' ') {
      snprintf(out, cap, "%.*s", (int)len, p);
      return 1;
    }
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

void dt_backbone_diff(const dt_backbone_id *want, const dt_backbone_id *have, char *buf,
                      size_t cap) {
  buf[0] = 0;
  if (strcmp(want->id, have->id) == 0) return;
  if (strcmp(want->kind, have->kind) != 0 || strcmp(want->kind, "synthetic") == 0) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%.*s", (int)strcspn(want->desc, "\n"), want->desc);
    snprintf(b, sizeof b, "%.*s", (int)strcspn(have->desc, "\n"), have->desc);
    snprintf(buf, cap, "the checkpoint's backbone is %s (%s), this one is %s (%s)",
             want->source, a, have->source, b);
    return;
  }
  /* both HF: name the first file that differs, in either direction */
  for (int pass = 0; pass < 2; pass++) {
    const char *desc = pass ? have->desc : want->desc;
    for (const char *p = desc; *p;) {
      const char *e = strchr(p, '\n');
      size_t len = e ? (size_t)(e - p) : strlen(p);
      char name[512], mine[600], other[600];
      snprintf(name, sizeof name, "%.*s", (int)strcspn(p, " \n"), p);
      snprintf(mine, sizeof mine, "%.*s", (int)len, p);
      int found = find_line(pass ? want->desc : have->desc, name, other, sizeof other);
      if (!found) {
        snprintf(buf, cap, "%s is %s the checkpoint's backbone (%s) but %s this one (%s)", name,
                 pass ? "not in" : "in", want->source, pass ? "in" : "not in", have->source);
        return;
      }
      if (strcmp(mine, other) != 0) {
        unsigned long long n1 = 0, n2 = 0;
        char h1[32] = "", h2[32] = "";
        const char *w = pass ? other : mine, *h = pass ? mine : other;
        sscanf(w + strlen(name), " %llu %31s", &n1, h1);
        sscanf(h + strlen(name), " %llu %31s", &n2, h2);
        if (n1 != n2)
          snprintf(buf, cap, "%s has %llu bytes in the checkpoint's backbone (%s) but %llu in "
                   "this one (%s)", name, n1, want->source, n2, have->source);
        else
          snprintf(buf, cap, "%s differs in content (xxh3 %s in the checkpoint's backbone %s, "
                   "%s in this one %s)", name, h1, want->source, h2, have->source);
        return;
      }
      if (!e) break;
      p = e + 1;
    }
  }
  snprintf(buf, cap, "backbone identity %s (checkpoint, %s) differs from %s (%s)", want->id,
           want->source, have->id, have->source);
}
