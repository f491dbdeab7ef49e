/* Checkpoint files: CDF-5 NetCDF through PnetCDF. See checkpoint.h and
 * docs/checkpoint.md. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pnetcdf.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "agree.h"
#include "error.h"
#include "mpicheck.h"
#include "testhook.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint checksums are defined over little-endian float32 bytes"
#endif

static const char *const k_role_name[] = {"parameter", "exp_avg", "exp_avg_sq"};
static const char *const k_role_suffix[] = {"", "__exp_avg", "__exp_avg_sq"};

/* --- agreement ----------------------------------------------------------- */

int dt_ckpt_agree(int rc, MPI_Comm comm) {
  /* base/agree.c: the same agreement, which also marks an error held by the
   * whole world as agreed (reported once, no MPI_Abort) */
  return dt_agree(rc, comm);
}

/* --- small helpers ------------------------------------------------------- */

void dt_ckpt_info_free(dt_ckpt_info *i) {
  free(i->opts);
  free(i->vars);
  i->opts = NULL;
  i->vars = NULL;
  i->n_opts = i->n_vars = 0;
}

const char *dt_ckpt_info_opt(const dt_ckpt_info *i, const char *name) {
  for (int k = 0; k < i->n_opts; k++)
    if (strcmp(i->opts[k].name, name) == 0) return i->opts[k].value;
  return NULL;
}

const dt_ckpt_counters *dt_ckpt_info_counters(const dt_ckpt_info *i, const char *method) {
  for (int k = 0; k < i->n_counters; k++)
    if (strcmp(i->counters[k].method, method) == 0) return &i->counters[k];
  return NULL;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t o = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* NetCDF name: [A-Za-z0-9_] kept, anything else '_', a leading digit
 * prefixed, then the role suffix. */
static void sanitise(const char *in, const char *suffix, char *out, size_t cap) {
  size_t o = 0;
  if (in[0] >= '0' && in[0] <= '9' && o + 2 < cap) out[o++] = 'v', out[o++] = '_';
  for (const char *p = in; *p && o + 1 < cap; p++) {
    const char c = *p;
    const int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_';
    out[o++] = ok ? c : '_';
  }
  out[o] = 0;
  snprintf(out + o, cap - o, "%s", suffix);
}

static uint64_t checksum(const float *x, int64_t n) {
  return XXH3_64bits(x, (size_t)n * sizeof(float));
}

static int fsync_path(const char *path, int dir) {
  int fd = open(path, dir ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  DT_CHECK(fd >= 0, DT_EIO, "%s: cannot open to fsync: %s", path, strerror(errno));
  int r = fsync(fd);
  int e = errno;
  close(fd);
  DT_CHECK(r == 0, DT_EIO, "%s: fsync failed: %s", path, strerror(e));
  return DT_OK;
}

static void dir_of(const char *path, char *out, size_t cap) {
  const char *s = strrchr(path, '/');
  if (!s)
    snprintf(out, cap, ".");
  else if (s == path)
    snprintf(out, cap, "/");
  else
    snprintf(out, cap, "%.*s", (int)(s - path), path);
}

/* --- writing ------------------------------------------------------------- */

/* The first PnetCDF failure of a sequence of calls is kept (the calls go on,
 * so that every rank makes the same collective calls). */
typedef struct {
  int rc;
  const char *file;
} nc_status;

static void nc_check(nc_status *s, int err, int line, const char *what, const char *name) {
  if (err == NC_NOERR || s->rc) return;
  s->rc = dt_error_set(DT_EIO, __FILE__, line, "dt_ckpt_write", "%s: %s %s: %s", s->file, what,
                       name, ncmpi_strerror(err));
}
#define NCW(s, call, what, name) nc_check((s), (call), __LINE__, (what), (name))

static void put_text(nc_status *s, int ncid, int varid, const char *name, const char *v) {
  NCW(s, ncmpi_put_att_text(ncid, varid, name, (MPI_Offset)strlen(v), v), "writing attribute",
      name);
}
static void put_i64(nc_status *s, int ncid, int varid, const char *name, int64_t v) {
  long long x = (long long)v;
  NCW(s, ncmpi_put_att_longlong(ncid, varid, name, NC_INT64, 1, &x), "writing attribute", name);
}
static void put_int(nc_status *s, int ncid, int varid, const char *name, int v) {
  NCW(s, ncmpi_put_att_int(ncid, varid, name, NC_INT, 1, &v), "writing attribute", name);
}
static void put_f64(nc_status *s, int ncid, int varid, const char *name, double v) {
  NCW(s, ncmpi_put_att_double(ncid, varid, name, NC_DOUBLE, 1, &v), "writing attribute", name);
}

static void put_globals(nc_status *s, int ncid, const dt_ckpt_info *m, int nranks,
                        const char *created, int has_opt) {
  const int G = NC_GLOBAL;
  put_text(s, ncid, G, "title",
           "deltatune checkpoint: the trained delta parameters of one task (and the "
           "optimizer state to resume training); see docs/checkpoint.md");
  put_text(s, ncid, G, "format", DT_CKPT_FORMAT);
  put_int(s, ncid, G, "format_version", DT_CKPT_FORMAT_VERSION);
  put_text(s, ncid, G, "deltatune_version", DT_VERSION);
  put_text(s, ncid, G, "created", created);
  char hist[256];
  snprintf(hist, sizeof hist, "%s deltatune %s %s", created, DT_VERSION, m->command);
  put_text(s, ncid, G, "history", hist);
  put_int(s, ncid, G, "complete", 0);
  put_text(s, ncid, G, "command", m->command);
  put_text(s, ncid, G, "methods", m->methods);
  put_text(s, ncid, G, "options_given", m->options_given);
  for (int k = 0; k < m->n_opts; k++) {
    char an[96];
    snprintf(an, sizeof an, "option.%s", m->opts[k].name);
    put_text(s, ncid, G, an, m->opts[k].value);
  }
  const dt_backbone_id *b = &m->backbone;
  put_text(s, ncid, G, "backbone_kind", b->kind);
  put_text(s, ncid, G, "backbone_source", b->source);
  put_text(s, ncid, G, "backbone_id", b->id);
  if (b->config_xxh3[0]) put_text(s, ncid, G, "backbone_config_xxh3", b->config_xxh3);
  put_text(s, ncid, G, "backbone_files", b->desc);
  put_text(s, ncid, G, "backbone_arch", m->arch);
  put_int(s, ncid, G, "backbone_layers", m->layers);
  put_int(s, ncid, G, "backbone_d_model", m->d_model);
  put_int(s, ncid, G, "backbone_heads", m->heads);
  put_int(s, ncid, G, "backbone_kv_heads", m->kv_heads);
  put_int(s, ncid, G, "backbone_head_dim", m->head_dim);
  put_int(s, ncid, G, "backbone_ffn", m->ffn);
  put_int(s, ncid, G, "backbone_vocab", m->vocab);
  put_int(s, ncid, G, "backbone_ctx", m->ctx);
  put_int(s, ncid, G, "nranks", nranks);
  put_text(s, ncid, G, "rank_layout", m->rank_layout);
  put_text(s, ncid, G, "write_split",
           "every tensor is stored whole in its external shape, whatever the rank layout; "
           "variable i (in definition order) of a replicated tensor written by rank i % "
           "nranks; the j-th variable of a tensor sharded by tensor parallelism assembled "
           "on the first rank of tensor group j % groups and written by it");
  put_i64(s, ncid, G, "step", m->step);
  put_i64(s, ncid, G, "steps_total", m->steps_total);
  put_f64(s, ncid, G, "lr_last", m->lr_last);
  put_f64(s, ncid, G, "lr_next", m->lr_next);
  put_f64(s, ncid, G, "loss_first", m->loss_first);
  put_f64(s, ncid, G, "loss_last", m->loss_last);
  put_i64(s, ncid, G, "batch_size", m->batch_size);
  put_i64(s, ncid, G, "data_next_row", m->data_next_row);
  put_i64(s, ncid, G, "data_rows", m->data_rows);
  put_i64(s, ncid, G, "data_seq_len", m->data_seq_len);
  put_text(s, ncid, G, "data_source", m->data_source);
  put_int(s, ncid, G, "has_optimizer", has_opt);
  for (int k = 0; k < m->n_counters; k++) {
    char an[96];
    snprintf(an, sizeof an, "counters.%s", m->counters[k].method);
    long long v[DT_CKPT_MAX_COUNTERS];
    for (int j = 0; j < m->counters[k].n; j++) v[j] = (long long)m->counters[k].v[j];
    NCW(s, ncmpi_put_att_longlong(ncid, G, an, NC_INT64, m->counters[k].n, v),
        "writing attribute", an);
  }
  put_text(s, ncid, G, "checksum",
           "variable attribute xxh3: XXH3-64 (xxHash) of the variable's float32 "
           "little-endian values in row-major order, 16 hex digits");
}

/* The variables of a table: parameters, then exp_avg, then exp_avg_sq. */
static int plan_vars(const dt_params *t, int with_opt, dt_ckpt_var **out, int *n_out) {
  const int n = t->n * (with_opt ? 3 : 1);
  dt_ckpt_var *v;
  DT_CALL(dt_calloc(&v, sizeof *v * (size_t)(n ? n : 1), "the checkpoint variables"));
  int k = 0;
  for (int role = 0; role < (with_opt ? 3 : 1); role++)
    for (int i = 0; i < t->n; i++, k++) {
      const dt_param *p = &t->p[i];
      dt_ckpt_var *x = &v[k];
      snprintf(x->name, sizeof x->name, "%s", p->name);
      snprintf(x->method, sizeof x->method, "%s", p->method ? p->method : "");
      x->role = role;
      x->ndim = p->ndim;
      for (int d = 0; d < p->ndim; d++) x->shape[d] = p->shape[d];
      x->numel = p->numel;
      sanitise(p->name, k_role_suffix[role], x->ncname, sizeof x->ncname);
      /* make it unique among the names so far */
      for (int tries = 2;; tries++) {
        int clash = 0;
        for (int j = 0; j < k && !clash; j++) clash = strcmp(v[j].ncname, x->ncname) == 0;
        if (!clash) break;
        char base[DT_CKPT_NAME_MAX];
        sanitise(p->name, k_role_suffix[role], base, sizeof base - 16);
        snprintf(x->ncname, sizeof x->ncname, "%.*s_%d", DT_CKPT_NAME_MAX - 16, base, tries);
      }
    }
  *out = v;
  *n_out = n;
  return DT_OK;
}

/* Test hook (docs/checkpoint.md, base/testhook.h: test builds only):
 * DT_TEST_CHECKPOINT_FAULT=kill:STEP[:RANK]
 * kills the rank with SIGKILL, error:STEP[:RANK] fails its write, after its
 * data went into the temporary file of the checkpoint of step STEP. */
static int fault_hook(int64_t step, int rank, const char *file) {
  const char *f = dt_test_hook("DT_TEST_CHECKPOINT_FAULT");
  if (!f) return DT_OK;
  char kind[16] = "";
  long long at = -1;
  int who = 0;
  if (sscanf(f, "%15[a-z]:%lld:%d", kind, &at, &who) < 2 || at != step || who != rank)
    return DT_OK;
  if (strcmp(kind, "kill") == 0) {
    fprintf(stderr, "deltatune: DT_TEST_CHECKPOINT_FAULT: killing rank %d while writing %s\n",
            rank, file);
    fflush(stderr);
    raise(SIGKILL);
  }
  if (strcmp(kind, "error") == 0)
    DT_ERR(DT_EIO, "%s: simulated write failure on rank %d (DT_TEST_CHECKPOINT_FAULT=%s)", file,
           rank, f);
  return DT_OK;
}

/* Bring a sharded tensor whole onto the first rank of its tensor group:
 * every rank places its elements into a zeroed full array (storage order)
 * and a bitwise OR over the group puts them together (the parts are
 * disjoint, so every bit pattern, -0 and NaN payloads included, survives).
 * full: numel floats; on the root it receives the tensor. Collective over
 * tp. */
static int gather_shard(const dt_param *p, const float *local, float *full, MPI_Comm tp,
                        int tp_rank) {
  memset(full, 0, sizeof(float) * (size_t)p->numel);
  dt_param_local_to_full(p, local, full);
  const int64_t chunk = (int64_t)1 << 28;
  for (int64_t o = 0; o < p->numel; o += chunk) {
    const int n = (int)(p->numel - o < chunk ? p->numel - o : chunk);
    DT_MPI(MPI_Reduce(tp_rank == 0 ? MPI_IN_PLACE : (void *)(full + o), full + o, n,
                      MPI_UINT32_T, MPI_BOR, 0, tp),
           "MPI_Reduce of a sharded tensor over its tensor group (checkpoint)");
  }
  return DT_OK;
}

/* Rank 0: reserve the bytes [offset, offset + bytes) of file tmp. A file
 * system without fallocate is left to the checks after the write. */
static int reserve(const char *tmp, const char *path, int64_t offset, int64_t bytes) {
  if (bytes <= 0) return DT_OK;
  int fd = open(tmp, O_WRONLY | O_CLOEXEC);
  DT_CHECK(fd >= 0, DT_EIO, "%s: cannot open to reserve its space: %s; %s was not replaced", tmp,
           strerror(errno), path);
  const int e = posix_fallocate(fd, (off_t)offset, (off_t)bytes);
  close(fd);
  if (e == EOPNOTSUPP || e == ENOSYS || e == EINVAL) return DT_OK;
  DT_CHECK(e == 0, DT_EIO, "%s: reserving the %lld bytes of its variables: %s; %s was not "
           "replaced", tmp, (long long)bytes, strerror(e), path);
  return DT_OK;
}

/* The written temporary, read back before it gets its final name: the
 * header, complete = 1 and every variable's checksum (collective, agreed).
 * A failure is an I/O error naming what did not read back; the target is
 * not replaced. */
static int verify_written(const char *tmp, const char *path, MPI_Comm comm) {
  dt_ckpt_file f;
  int rc = dt_ckpt_open(&f, tmp, comm);
  if (rc == DT_OK) {
    if (!f.info.complete)
      rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "%s: complete is 0", tmp);
    rc = dt_ckpt_agree(rc, comm);
    if (rc == DT_OK) rc = dt_ckpt_verify(&f);
    dt_ckpt_close(&f);
  }
  if (rc == DT_OK) return DT_OK;
  char why[2048], dir[4096];
  snprintf(why, sizeof why, "%s", dt_error_message());
  dir_of(path, dir, sizeof dir);
  struct statvfs vs;
  const int full = statvfs(dir, &vs) == 0 && vs.f_bavail == 0;
  rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__,
                    "%s: the written checkpoint does not read back as written (%s)%s%s; %s was "
                    "not replaced", tmp, why, full ? "; its file system is full: " : "",
                    full ? strerror(ENOSPC) : "", path);
  return dt_ckpt_agree(rc, comm);
}

int dt_ckpt_write(const char *path, const dt_ckpt_info *meta, const dt_params *params,
                  const float *exp_avg, const float *exp_avg_sq, MPI_Comm comm,
                  int64_t *file_bytes) {
  return dt_ckpt_write_tp(path, meta, params, exp_avg, exp_avg_sq, comm, MPI_COMM_NULL,
                          file_bytes);
}

int dt_ckpt_write_tp(const char *path, const dt_ckpt_info *meta, const dt_params *params,
                     const float *exp_avg, const float *exp_avg_sq, MPI_Comm comm,
                     MPI_Comm tp, int64_t *file_bytes) {
  int rank, nranks;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &nranks);
  const int with_opt = exp_avg != NULL && exp_avg_sq != NULL;
  int n_sharded = 0;
  for (int i = 0; i < params->n; i++) {
    const dt_param *p = &params->p[i];
    n_sharded += p->shard != NULL;
    for (int d = 0; d < p->ndim; d++)
      DT_CHECK(p->shape[d] > 0, DT_EINTERNAL,
               "%s: parameter '%s' has an empty dimension %d; it cannot be stored", path,
               p->name, d);
  }
  /* the same on every rank: sharded tensors exist on every rank or none */
  DT_CHECK(n_sharded == 0 || tp != MPI_COMM_NULL, DT_EINTERNAL,
           "%s: %d parameters are sharded but no tensor-parallel group was given", path,
           n_sharded);
  int tp_rank = 0, tp_size = 1;
  if (tp != MPI_COMM_NULL) {
    MPI_Comm_rank(tp, &tp_rank);
    MPI_Comm_size(tp, &tp_size);
  }

  /* names: the temporary file lives next to the target */
  char tmp[4200], created[40] = "";
  if (rank == 0) {
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  }
  DT_MPI(MPI_Bcast(tmp, sizeof tmp, MPI_CHAR, 0, comm), "MPI_Bcast of the checkpoint's name");
  DT_MPI(MPI_Bcast(created, sizeof created, MPI_CHAR, 0, comm),
         "MPI_Bcast of the checkpoint's time");

  dt_ckpt_var *vars = NULL;
  int nv = 0;
  DT_CALL(plan_vars(params, with_opt, &vars, &nv));
  /* Writers: an unsharded variable k is written by rank k % nranks; the
   * j-th variable of a sharded tensor by the first rank of tensor group
   * j % groups, where it is assembled whole. Every rank hashes every
   * unsharded variable in the external layout, and the first rank of each
   * tensor group every sharded one (the writer keeps its buffers for the
   * write): the checksums go into the header, and replicated tensors that
   * differ between ranks (or shards between replicas), a bug, are found
   * here instead of being written half from one rank, half from another. */
  const float **src = NULL, **storage = NULL;
  float **owned = NULL, *scratch = NULL, *scratch2 = NULL;
  uint64_t *sums = NULL, *lo = NULL, *hi = NULL, *shsum = NULL;
  int *reqs = NULL, *stats = NULL, *writer = NULL, *roots = NULL, *posted = NULL;
  int64_t max_numel = 1, *cover = NULL;
  for (int i = 0; i < params->n; i++)
    if ((params->p[i].transposed || params->p[i].shard) && params->p[i].numel > max_numel)
      max_numel = params->p[i].numel;
  int rc = dt_calloc(&src, sizeof *src * (size_t)(nv + 1), "checkpoint buffers");
  if (!rc) rc = dt_calloc(&storage, sizeof *storage * (size_t)(nv + 1), "checkpoint buffers");
  if (!rc) rc = dt_calloc(&owned, sizeof *owned * (size_t)(nv + 1), "checkpoint buffers");
  if (!rc) rc = dt_calloc(&sums, sizeof *sums * (size_t)(nv + 1), "checkpoint checksums");
  if (!rc) rc = dt_calloc(&lo, sizeof *lo * (size_t)(nv + 1), "checkpoint checksums");
  if (!rc) rc = dt_calloc(&hi, sizeof *hi * (size_t)(nv + 1), "checkpoint checksums");
  if (!rc) rc = dt_calloc(&shsum, sizeof *shsum * (size_t)(nv + 1), "checkpoint checksums");
  if (!rc) rc = dt_calloc(&reqs, sizeof *reqs * (size_t)(nv + 1), "checkpoint requests");
  if (!rc) rc = dt_calloc(&stats, sizeof *stats * (size_t)(nv + 1), "checkpoint requests");
  if (!rc) rc = dt_calloc(&posted, sizeof *posted * (size_t)(nv + 1), "checkpoint requests");
  if (!rc) rc = dt_calloc(&writer, sizeof *writer * (size_t)(nv + 1), "checkpoint writers");
  if (!rc) rc = dt_calloc(&roots, sizeof *roots * (size_t)(nranks + 1), "checkpoint writers");
  if (!rc) rc = dt_calloc(&cover, sizeof *cover * (size_t)(params->n + 1), "shard sizes");
  if (!rc) rc = dt_malloc(&scratch, sizeof(float) * (size_t)max_numel, "a whole tensor");
  if (!rc) rc = dt_malloc(&scratch2, sizeof(float) * (size_t)max_numel, "a whole tensor");
  rc = dt_ckpt_agree(rc, comm);
  /* the first ranks of the tensor groups, in rank order */
  int nroots = 0;
  if (rc == DT_OK) {
    int is_root = tp_rank == 0;
    rc = DT_MPI_RC(MPI_Allgather(&is_root, 1, MPI_INT, roots, 1, MPI_INT, comm),
                   "MPI_Allgather of the tensor groups' first ranks (checkpoint)");
    for (int r = 0; r < nranks; r++)
      if (roots[r]) roots[nroots++] = r;
  }
  /* the shards of each tensor group must cover their tensors exactly */
  if (rc == DT_OK && n_sharded) {
    for (int i = 0; i < params->n; i++) cover[i] = params->p[i].shard ? params->p[i].numel_l : 0;
    rc = DT_MPI_RC(MPI_Allreduce(MPI_IN_PLACE, cover, params->n, MPI_INT64_T, MPI_SUM, tp),
                   "MPI_Allreduce of the shards' sizes (checkpoint)");
    for (int i = 0; rc == DT_OK && i < params->n; i++)
      if (params->p[i].shard && cover[i] != params->p[i].numel)
        rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                          "%s: the shards of '%s' hold %lld of its %lld elements over the "
                          "tensor group", path, params->p[i].name, (long long)cover[i],
                          (long long)params->p[i].numel);
  }
  /* storage of each variable, its writer, and the writer's buffers */
  int64_t off[3] = {0, 0, 0};
  for (int k = 0, j = 0; rc == DT_OK && k < nv; k++) {
    const dt_param *p = &params->p[k % params->n];
    const int role = vars[k].role;
    storage[k] = role == DT_CKPT_PARAM ? p->data
                 : role == DT_CKPT_EXP_AVG ? exp_avg + off[1]
                                           : exp_avg_sq + off[2];
    off[role] += p->numel_l;
    if (!storage[k]) {
      rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                        "%s: parameter '%s' has no storage to save", path, p->name);
      break;
    }
    writer[k] = p->shard ? roots[j++ % nroots] : k % nranks;
    if (writer[k] == rank && (p->transposed || p->shard))
      rc = dt_malloc(&owned[k], sizeof(float) * (size_t)p->numel, "a whole tensor");
  }
  rc = dt_ckpt_agree(rc, comm);
  /* external layout and checksums (collective over the tensor groups) */
  int nsh = 0;
  for (int k = 0; rc == DT_OK && k < nv; k++) {
    const dt_param *p = &params->p[k % params->n];
    const int mine = writer[k] == rank;
    if (p->shard) {
      /* whole on the group's first rank, then external */
      float *full = mine && !p->transposed ? owned[k] : scratch;
      rc = gather_shard(p, storage[k], full, tp, tp_rank);
      if (rc) break;
      if (tp_rank == 0) {
        float *ext = full;
        if (p->transposed) {
          ext = mine ? owned[k] : scratch2;
          dt_param_to_external(p, full, ext);
        }
        sums[k] = checksum(ext, p->numel);
        if (mine) src[k] = ext;
      }
      shsum[nsh++] = sums[k];
    } else if (p->transposed) {
      float *buf = mine ? owned[k] : scratch;
      dt_param_to_external(p, storage[k], buf);
      sums[k] = checksum(buf, p->numel);
      if (mine) src[k] = buf;
    } else {
      sums[k] = checksum(storage[k], p->numel);
      if (mine) src[k] = storage[k];
    }
  }
  if (rc == DT_OK && nsh > 0) {
    /* every rank of a group takes its first rank's checksums of the
     * sharded variables, so that replicas are compared below */
    rc = DT_MPI_RC(MPI_Bcast(shsum, nsh, MPI_UINT64_T, 0, tp),
                   "MPI_Bcast of the sharded tensors' checksums (checkpoint)");
    for (int k = 0, j = 0; k < nv; k++)
      if (params->p[k % params->n].shard) sums[k] = shsum[j++];
  }
  if (rc == DT_OK && nv > 0) {
    rc = DT_MPI_RC(MPI_Allreduce(sums, lo, nv, MPI_UINT64_T, MPI_MIN, comm),
                   "MPI_Allreduce of the checksums (checkpoint)");
    if (rc == DT_OK)
      rc = DT_MPI_RC(MPI_Allreduce(sums, hi, nv, MPI_UINT64_T, MPI_MAX, comm),
                     "MPI_Allreduce of the checksums (checkpoint)");
    for (int k = 0; k < nv && rc == DT_OK; k++)
      if (lo[k] != hi[k])
        rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                          "%s: the %s of '%s' differs between %s (xxh3 %016llx and %016llx); "
                          "a replicated tensor must be identical on every rank: not written",
                          path, k_role_name[vars[k].role], vars[k].name,
                          params->p[k % params->n].shard ? "data-parallel replicas" : "ranks",
                          (unsigned long long)lo[k], (unsigned long long)hi[k]);
  }
  free(scratch);
  free(scratch2);
  scratch = scratch2 = NULL;

  nc_status st = {DT_OK, tmp};
  int ncid = -1, created_ok = 0;
  if (rc == DT_OK) {
    NCW(&st, ncmpi_create(comm, tmp, NC_CLOBBER | NC_64BIT_DATA, MPI_INFO_NULL, &ncid),
        "creating", "the file");
    rc = dt_ckpt_agree(st.rc, comm);
    created_ok = rc == DT_OK;
  }
  int64_t data_bytes = 0;
  if (rc == DT_OK) {
    /* define mode: the same definitions on every rank */
    put_globals(&st, ncid, meta, nranks, created, with_opt);
    int64_t ext[64];
    int dimid[64], ndims = 0;
    for (int k = 0; k < nv; k++) {
      dt_ckpt_var *x = &vars[k];
      int dims[4];
      for (int d = 0; d < x->ndim; d++) {
        int j = 0;
        while (j < ndims && ext[j] != x->shape[d]) j++;
        if (j == ndims) {
          if (ndims == 64) {
            if (!st.rc)
              st.rc = dt_error_set(DT_EINTERNAL, __FILE__, __LINE__, __func__,
                                   "%s: more than 64 distinct tensor extents", tmp);
            j = 0;
          } else {
            char dn[32];
            snprintf(dn, sizeof dn, "n%lld", (long long)x->shape[d]);
            ext[ndims] = x->shape[d];
            NCW(&st, ncmpi_def_dim(ncid, dn, (MPI_Offset)x->shape[d], &dimid[ndims]),
                "defining dimension", dn);
            ndims++;
          }
        }
        dims[d] = dimid[j];
      }
      NCW(&st, ncmpi_def_var(ncid, x->ncname, NC_FLOAT, x->ndim, dims, &x->varid),
          "defining variable", x->ncname);
      char ln[512], hx[24];
      if (x->role == DT_CKPT_PARAM)
        snprintf(ln, sizeof ln, "%s delta parameter %s", x->method, x->name);
      else
        snprintf(ln, sizeof ln, "AdamW %s moment (%s) of %s",
                 x->role == DT_CKPT_EXP_AVG ? "first" : "second", k_role_name[x->role],
                 x->name);
      snprintf(hx, sizeof hx, "%016llx", (unsigned long long)sums[k]);
      put_text(&st, ncid, x->varid, "long_name", ln);
      put_text(&st, ncid, x->varid, "units", "1");
      put_text(&st, ncid, x->varid, "name", x->name);
      put_text(&st, ncid, x->varid, "role", k_role_name[x->role]);
      put_text(&st, ncid, x->varid, "method", x->method);
      if (x->role != DT_CKPT_PARAM)
        put_text(&st, ncid, x->varid, "parameter", vars[k % params->n].ncname);
      put_text(&st, ncid, x->varid, "xxh3", hx);
      data_bytes += x->numel * (int64_t)sizeof(float);
    }
    rc = dt_ckpt_agree(st.rc, comm);
    if (rc == DT_OK) {
      NCW(&st, ncmpi_enddef(ncid), "ending define mode of", "the file");
      rc = dt_ckpt_agree(st.rc, comm);
    }
  }
  if (rc == DT_OK) {
    /* the space of the variables, reserved before they are written: a full
     * disk is an error here, with its reason, instead of a write that
     * MPI-IO drops (OMPIO reports ENOSPC on stderr only) */
    int r0 = DT_OK;
    if (rank == 0) {
      MPI_Offset ext = 0;
      NCW(&st, ncmpi_inq_header_extent(ncid, &ext), "asking the header size of", "the file");
      r0 = st.rc ? st.rc : reserve(tmp, path, (int64_t)ext, data_bytes);
    }
    rc = dt_ckpt_agree(r0, comm);
  }
  if (rc == DT_OK) {
    /* data: each rank its own variables, one collective wait */
    int nreq = 0;
    for (int k = 0; k < nv; k++) {
      if (writer[k] != rank) continue;
      MPI_Offset start[4] = {0, 0, 0, 0}, count[4];
      for (int d = 0; d < vars[k].ndim; d++) count[d] = (MPI_Offset)vars[k].shape[d];
      NCW(&st, ncmpi_iput_vara_float(ncid, vars[k].varid, start, count, src[k], &reqs[nreq]),
          "posting the write of variable", vars[k].ncname);
      posted[nreq++] = k;
    }
    NCW(&st, ncmpi_wait_all(ncid, nreq, reqs, stats), "writing", "the variables");
    for (int r = 0; r < nreq; r++)
      NCW(&st, stats[r], "writing variable", vars[posted[r]].ncname);
    NCW(&st, ncmpi_sync(ncid), "syncing", "the data");
    if (st.rc == DT_OK) st.rc = fault_hook(meta->step, rank, tmp);
    rc = dt_ckpt_agree(st.rc, comm);
  }
  if (rc == DT_OK) {
    /* every rank's data is in: mark the file complete */
    NCW(&st, ncmpi_redef(ncid), "re-entering define mode of", "the file");
    int one = 1;
    NCW(&st, ncmpi_put_att_int(ncid, NC_GLOBAL, "complete", NC_INT, 1, &one),
        "writing attribute", "complete");
    NCW(&st, ncmpi_enddef(ncid), "ending define mode of", "the file");
    rc = dt_ckpt_agree(st.rc, comm);
  }
  MPI_Offset hdr = 0;
  if (rc == DT_OK) ncmpi_inq_header_size(ncid, &hdr);
  if (created_ok) {
    int e = ncmpi_close(ncid);
    if (rc == DT_OK) {
      NCW(&st, e, "closing", "the file");
      rc = dt_ckpt_agree(st.rc, comm);
    }
  }
  /* rank 0: durable; every rank: read back and verified; rank 0: renamed
   * over the target, then the folder synced */
  int64_t size = 0;
  if (rc == DT_OK) rc = dt_ckpt_agree(rank == 0 ? fsync_path(tmp, 0) : DT_OK, comm);
  if (rc == DT_OK) rc = verify_written(tmp, path, comm);
  if (rc == DT_OK) {
    int r0 = DT_OK;
    if (rank == 0) {
      /* MPI-IO (OMPIO) can drop a failed write (ENOSPC) without an error:
       * a file shorter than its header and variables is never renamed in */
      struct stat tb;
      const int64_t need = (int64_t)hdr + data_bytes;
      if (r0 == DT_OK && (stat(tmp, &tb) != 0 || (int64_t)tb.st_size < need))
        r0 = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__,
                          "%s: the written file has %lld bytes, less than the %lld of its header "
                          "and variables (disk full?); %s was not replaced", tmp,
                          (long long)tb.st_size, (long long)need, path);
      if (r0 == DT_OK && rename(tmp, path) != 0)
        r0 = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__, "cannot rename %s to %s: %s",
                          tmp, path, strerror(errno));
      if (r0 == DT_OK) {
        char dir[4096];
        dir_of(path, dir, sizeof dir);
        r0 = fsync_path(dir, 1);
      }
      struct stat sb;
      if (r0 == DT_OK && stat(path, &sb) == 0) size = (int64_t)sb.st_size;
    }
    rc = dt_ckpt_agree(r0, comm);
    if (rc == DT_OK)
      rc = DT_MPI_RC(MPI_Bcast(&size, 1, MPI_INT64_T, 0, comm),
                     "MPI_Bcast of the checkpoint's size");
  }
  if (rc != DT_OK && rank == 0 && created_ok) unlink(tmp);
  if (rc == DT_OK && file_bytes) *file_bytes = size;
  (void)hdr;
  for (int k = 0; owned && k < nv; k++) free(owned[k]);
  free(owned);
  free(src);
  free(storage);
  free(sums);
  free(lo);
  free(hi);
  free(shsum);
  free(reqs);
  free(stats);
  free(posted);
  free(writer);
  free(roots);
  free(cover);
  free(vars);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* --- reading ------------------------------------------------------------- */

/* Text attribute into buf; 0 when absent, -1 on another error (recorded). */
static int get_text(int ncid, int varid, const char *name, char *buf, size_t cap,
                    const char *path) {
  MPI_Offset len = 0;
  nc_type type;
  buf[0] = 0;
  int e = ncmpi_inq_att(ncid, varid, name, &type, &len);
  if (e == NC_ENOTATT) return 0;
  if (e != NC_NOERR || type != NC_CHAR) {
    dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                 "%s: attribute %s is %s", path, name,
                 e != NC_NOERR ? ncmpi_strerror(e) : "not text");
    return -1;
  }
  char *tmp = malloc((size_t)len + 1);
  if (!tmp) {
    dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "%s: attribute %s of %lld bytes",
                 path, name, (long long)len);
    return -1;
  }
  e = len ? ncmpi_get_att_text(ncid, varid, name, tmp) : NC_NOERR;
  tmp[len] = 0;
  snprintf(buf, cap, "%s", tmp);
  free(tmp);
  if (e != NC_NOERR) {
    dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__, "%s: attribute %s: %s", path, name,
                 ncmpi_strerror(e));
    return -1;
  }
  return 1;
}

static int get_num(int ncid, const char *name, double *d, long long *ll) {
  MPI_Offset len = 0;
  nc_type type;
  if (ncmpi_inq_att(ncid, NC_GLOBAL, name, &type, &len) != NC_NOERR || len != 1) return 0;
  if (d && ncmpi_get_att_double(ncid, NC_GLOBAL, name, d) != NC_NOERR) return 0;
  if (ll && ncmpi_get_att_longlong(ncid, NC_GLOBAL, name, ll) != NC_NOERR) return 0;
  return 1;
}

static int64_t get_i64(int ncid, const char *name, int64_t dflt) {
  long long v;
  return get_num(ncid, name, NULL, &v) ? (int64_t)v : dflt;
}
static double get_f64(int ncid, const char *name) {
  double v;
  return get_num(ncid, name, &v, NULL) ? v : NAN;
}

static int read_globals(dt_ckpt_file *f) {
  const int ncid = f->ncid, G = NC_GLOBAL;
  dt_ckpt_info *i = &f->info;
  char fmt[128];
  int r = get_text(ncid, G, "format", fmt, sizeof fmt, f->path);
  if (r < 0) return dt_error_trace(DT_EINPUT, __FILE__, __LINE__, __func__);
  DT_CHECK(r == 1 && strcmp(fmt, DT_CKPT_FORMAT) == 0, DT_EINPUT,
           "%s: not a deltatune checkpoint (global attribute format is '%s', expected '%s')",
           f->path, r == 1 ? fmt : "(absent)", DT_CKPT_FORMAT);
  i->format_version = (int)get_i64(ncid, "format_version", -1);
  DT_CHECK(i->format_version >= 1 && i->format_version <= DT_CKPT_FORMAT_VERSION, DT_EINPUT,
           "%s: checkpoint format version %d; this deltatune (%s) reads versions 1 to %d",
           f->path, i->format_version, DT_VERSION, DT_CKPT_FORMAT_VERSION);
  struct {
    const char *name;
    char *buf;
    size_t cap;
  } texts[] = {
      {"deltatune_version", i->version, sizeof i->version},
      {"created", i->created, sizeof i->created},
      {"command", i->command, sizeof i->command},
      {"methods", i->methods, sizeof i->methods},
      {"options_given", i->options_given, sizeof i->options_given},
      {"backbone_kind", i->backbone.kind, sizeof i->backbone.kind},
      {"backbone_source", i->backbone.source, sizeof i->backbone.source},
      {"backbone_id", i->backbone.id, sizeof i->backbone.id},
      {"backbone_config_xxh3", i->backbone.config_xxh3, sizeof i->backbone.config_xxh3},
      {"backbone_files", i->backbone.desc, sizeof i->backbone.desc},
      {"backbone_arch", i->arch, sizeof i->arch},
      {"rank_layout", i->rank_layout, sizeof i->rank_layout},
      {"data_source", i->data_source, sizeof i->data_source},
  };
  for (size_t k = 0; k < sizeof texts / sizeof *texts; k++)
    if (get_text(ncid, G, texts[k].name, texts[k].buf, texts[k].cap, f->path) < 0)
      return dt_error_trace(DT_EINPUT, __FILE__, __LINE__, __func__);
  i->complete = (int)get_i64(ncid, "complete", 0);
  i->layers = (int)get_i64(ncid, "backbone_layers", 0);
  i->d_model = (int)get_i64(ncid, "backbone_d_model", 0);
  i->heads = (int)get_i64(ncid, "backbone_heads", 0);
  i->kv_heads = (int)get_i64(ncid, "backbone_kv_heads", 0);
  i->head_dim = (int)get_i64(ncid, "backbone_head_dim", 0);
  i->ffn = (int)get_i64(ncid, "backbone_ffn", 0);
  i->vocab = (int)get_i64(ncid, "backbone_vocab", 0);
  i->ctx = (int)get_i64(ncid, "backbone_ctx", 0);
  i->nranks = (int)get_i64(ncid, "nranks", 0);
  i->step = get_i64(ncid, "step", -1);
  DT_CHECK(i->step >= 0, DT_EINPUT, "%s: global attribute step is missing or negative",
           f->path);
  i->steps_total = get_i64(ncid, "steps_total", 0);
  i->lr_last = get_f64(ncid, "lr_last");
  i->lr_next = get_f64(ncid, "lr_next");
  i->loss_first = get_f64(ncid, "loss_first");
  i->loss_last = get_f64(ncid, "loss_last");
  i->batch_size = get_i64(ncid, "batch_size", 0);
  i->data_next_row = get_i64(ncid, "data_next_row", 0);
  i->data_rows = get_i64(ncid, "data_rows", 0);
  i->data_seq_len = get_i64(ncid, "data_seq_len", 0);
  i->has_optimizer = (int)get_i64(ncid, "has_optimizer", 0);

  /* options and counters: every attribute option.* / counters.* */
  int natts = 0;
  DT_CHECK(ncmpi_inq_natts(ncid, &natts) == NC_NOERR, DT_EINPUT, "%s: cannot list attributes",
           f->path);
  DT_CALL(dt_calloc(&i->opts, sizeof *i->opts * (size_t)(natts + 1), "checkpoint options"));
  for (int a = 0; a < natts; a++) {
    char an[NC_MAX_NAME + 1];
    if (ncmpi_inq_attname(ncid, G, a, an) != NC_NOERR) continue;
    if (strncmp(an, "option.", 7) == 0 && strlen(an + 7) < sizeof i->opts[0].name) {
      dt_ckpt_opt *o = &i->opts[i->n_opts];
      snprintf(o->name, sizeof o->name, "%s", an + 7);
      if (get_text(ncid, G, an, o->value, sizeof o->value, f->path) < 0)
        return dt_error_trace(DT_EINPUT, __FILE__, __LINE__, __func__);
      i->n_opts++;
    } else if (strncmp(an, "counters.", 9) == 0 && i->n_counters < DT_CKPT_MAX_METHODS) {
      MPI_Offset len = 0;
      nc_type type;
      dt_ckpt_counters *c = &i->counters[i->n_counters];
      if (ncmpi_inq_att(ncid, G, an, &type, &len) != NC_NOERR || len < 1 ||
          len > DT_CKPT_MAX_COUNTERS)
        DT_ERR(DT_EINPUT, "%s: attribute %s has %lld values (1 to %d expected)", f->path, an,
               (long long)len, DT_CKPT_MAX_COUNTERS);
      long long v[DT_CKPT_MAX_COUNTERS];
      DT_CHECK(ncmpi_get_att_longlong(ncid, G, an, v) == NC_NOERR, DT_EINPUT,
               "%s: cannot read attribute %s", f->path, an);
      snprintf(c->method, sizeof c->method, "%.*s", (int)sizeof c->method - 1, an + 9);
      c->n = (int)len;
      for (int j = 0; j < c->n; j++) c->v[j] = (int64_t)v[j];
      i->n_counters++;
    }
  }
  return DT_OK;
}

static int read_vars(dt_ckpt_file *f) {
  dt_ckpt_info *i = &f->info;
  int nvars = 0;
  DT_CHECK(ncmpi_inq_nvars(f->ncid, &nvars) == NC_NOERR, DT_EINPUT, "%s: cannot list variables",
           f->path);
  DT_CALL(dt_calloc(&i->vars, sizeof *i->vars * (size_t)(nvars + 1), "checkpoint variables"));
  for (int id = 0; id < nvars; id++) {
    dt_ckpt_var *x = &i->vars[i->n_vars];
    char role[32], hx[32];
    nc_type type;
    int ndims = 0, dimids[4];
    DT_CHECK(ncmpi_inq_varname(f->ncid, id, x->ncname) == NC_NOERR &&
                 ncmpi_inq_vartype(f->ncid, id, &type) == NC_NOERR &&
                 ncmpi_inq_varndims(f->ncid, id, &ndims) == NC_NOERR,
             DT_EINPUT, "%s: cannot read the definition of variable %d", f->path, id);
    int r = get_text(f->ncid, id, "role", role, sizeof role, f->path);
    if (r < 0) return dt_error_trace(DT_EINPUT, __FILE__, __LINE__, __func__);
    if (r == 0) continue; /* not one of ours: ignored */
    int k = 0;
    while (k < 3 && strcmp(role, k_role_name[k]) != 0) k++;
    DT_CHECK(k < 3, DT_EINPUT, "%s: variable %s has role '%s' (parameter, exp_avg or exp_avg_sq)",
             f->path, x->ncname, role);
    x->role = k;
    DT_CHECK(type == NC_FLOAT && ndims >= 1 && ndims <= 4 &&
                 ncmpi_inq_vardimid(f->ncid, id, dimids) == NC_NOERR,
             DT_EINPUT, "%s: variable %s is not a float tensor of 1 to 4 dimensions", f->path,
             x->ncname);
    if (get_text(f->ncid, id, "name", x->name, sizeof x->name, f->path) <= 0 ||
        get_text(f->ncid, id, "method", x->method, sizeof x->method, f->path) < 0 ||
        get_text(f->ncid, id, "xxh3", hx, sizeof hx, f->path) <= 0)
      DT_ERR(DT_EINPUT, "%s: variable %s lacks its name or xxh3 attribute", f->path, x->ncname);
    char *end = NULL;
    x->xxh3 = strtoull(hx, &end, 16);
    DT_CHECK(strlen(hx) == 16 && end && *end == 0, DT_EINPUT,
             "%s: variable %s: attribute xxh3 '%s' is not 16 hex digits", f->path, x->ncname, hx);
    x->ndim = ndims;
    x->numel = 1;
    for (int d = 0; d < ndims; d++) {
      MPI_Offset len = 0;
      DT_CHECK(ncmpi_inq_dimlen(f->ncid, dimids[d], &len) == NC_NOERR, DT_EINPUT,
               "%s: variable %s: cannot read dimension %d", f->path, x->ncname, d);
      /* the size in bytes must fit an int64 (a damaged header can say anything) */
      DT_CHECK(len >= 0 && (len == 0 || x->numel <= INT64_MAX / 4 / (int64_t)len), DT_EINPUT,
               "%s: variable %s: dimension %d of length %lld makes an impossible size (the "
               "file is corrupted)", f->path, x->ncname, d, (long long)len);
      x->shape[d] = (int64_t)len;
      x->numel *= (int64_t)len;
    }
    DT_CHECK(i->data_bytes <= INT64_MAX - x->numel * (int64_t)sizeof(float), DT_EINPUT,
             "%s: the variables' sizes add up to more than 2^63 bytes (the file is corrupted)",
             f->path);
    x->varid = id;
    i->data_bytes += x->numel * (int64_t)sizeof(float);
    i->n_vars++;
  }
  return DT_OK;
}

/* Every variable's bytes lie inside the file: a file cut short (a copy
 * that did not finish, a full disk) is named as such before any value is
 * read, instead of reading as zeros and failing its checksum. */
static int check_extent(dt_ckpt_file *f) {
  const dt_ckpt_info *i = &f->info;
  int64_t end = i->header_bytes;
  const dt_ckpt_var *last = NULL;
  for (int k = 0; k < i->n_vars; k++) {
    const dt_ckpt_var *x = &i->vars[k];
    MPI_Offset off = 0;
    DT_CHECK(ncmpi_inq_varoffset(f->ncid, x->varid, &off) == NC_NOERR && off >= 0, DT_EINPUT,
             "%s: variable %s: cannot read its offset in the file (the file is corrupted)",
             f->path, x->ncname);
    const int64_t bytes = x->numel * (int64_t)sizeof(float);
    DT_CHECK((int64_t)off <= INT64_MAX - bytes, DT_EINPUT,
             "%s: variable %s: offset %lld and %lld bytes pass 2^63 (the file is corrupted)",
             f->path, x->ncname, (long long)off, (long long)bytes);
    if ((int64_t)off + bytes > end) {
      end = (int64_t)off + bytes;
      last = x;
    }
  }
  if (end > i->file_bytes) {
    if (last)
      DT_ERR(DT_EINPUT,
             "%s: the file is truncated or corrupted: it has %lld bytes, but variable %s (%s) "
             "ends at byte %lld (an incomplete copy?)", f->path, (long long)i->file_bytes,
             last->ncname, last->name, (long long)end);
    DT_ERR(DT_EINPUT,
           "%s: the file is truncated or corrupted: it has %lld bytes, its header %lld",
           f->path, (long long)i->file_bytes, (long long)end);
  }
  return DT_OK;
}

/* --- the NetCDF header, walked before PnetCDF reads it ------------------ */

/* PnetCDF allocates what a header's counts say before it checks them
 * against the file (an attribute claiming 2^50 values is a 2^50-byte
 * malloc: found by tests/fuzz/fuzz_checkpoint). The header of a CDF-1, 2
 * or 5 file is walked here first and every count checked against the bytes
 * that remain, so that nothing PnetCDF then allocates exceeds the file. */
typedef struct {
  const unsigned char *b;
  int64_t n, at;
  int v; /* 1, 2 or 5 */
} cdf_rd;

static int cdf_u32(cdf_rd *r, uint64_t *x) {
  if (r->n - r->at < 4) return 0;
  const unsigned char *p = r->b + r->at;
  *x = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
  r->at += 4;
  return 1;
}
static int cdf_u64(cdf_rd *r, uint64_t *x) {
  uint64_t hi, lo;
  if (!cdf_u32(r, &hi) || !cdf_u32(r, &lo)) return 0;
  *x = hi << 32 | lo;
  return 1;
}
/* NON_NEG: 8 bytes in CDF-5, 4 otherwise */
static int cdf_count(cdf_rd *r, uint64_t *x) {
  if (r->v == 5) return cdf_u64(r, x) && *x <= (uint64_t)INT64_MAX;
  return cdf_u32(r, x) && *x <= (uint64_t)INT32_MAX;
}
/* bytes padded to 4, if that many remain */
static int cdf_skip(cdf_rd *r, uint64_t bytes) {
  const uint64_t padded = bytes + (-bytes & 3);
  if (padded < bytes || padded > (uint64_t)(r->n - r->at)) return 0;
  r->at += (int64_t)padded;
  return 1;
}
static int cdf_name(cdf_rd *r) {
  uint64_t len;
  return cdf_count(r, &len) && len <= NC_MAX_NAME && cdf_skip(r, len);
}
static int cdf_type_size(uint64_t t) {
  static const int size[] = {0, 1, 1, 2, 4, 4, 8, 1, 2, 4, 8, 8}; /* NC_BYTE..NC_UINT64 */
  return t >= 1 && t <= 11 ? size[t] : 0;
}
/* a list: ABSENT (0, 0) or tag and count; *n bounded by the bytes left,
 * each element taking at least min_bytes */
static int cdf_list(cdf_rd *r, uint64_t want_tag, uint64_t *n, int64_t min_bytes) {
  uint64_t tag;
  if (!cdf_u32(r, &tag) || !cdf_count(r, n)) return 0;
  if (tag == 0) return *n == 0;
  return tag == want_tag && *n <= (uint64_t)((r->n - r->at) / min_bytes);
}
static int cdf_atts(cdf_rd *r) {
  uint64_t n, type, len;
  if (!cdf_list(r, 0x0C, &n, 12)) return 0;
  for (uint64_t a = 0; a < n; a++) {
    if (!cdf_name(r) || !cdf_u32(r, &type) || !cdf_type_size(type) || !cdf_count(r, &len))
      return 0;
    const uint64_t sz = (uint64_t)cdf_type_size(type);
    if (len > (uint64_t)(r->n - r->at) / sz || !cdf_skip(r, len * sz)) return 0;
  }
  return 1;
}

/* "" when the header is sound (or not CDF at all: PnetCDF rejects that
 * without allocating); otherwise what is wrong, at which byte. */
static void cdf_header_check(const char *path, int64_t file_bytes, char *why, size_t cap) {
  why[0] = 0;
  const int64_t limit = (int64_t)64 << 20;
  const int64_t n = file_bytes < limit ? file_bytes : limit;
  unsigned char *b = malloc((size_t)(n > 0 ? n : 1));
  FILE *fp = b ? fopen(path, "rb") : NULL;
  if (!fp) {
    free(b);
    return; /* PnetCDF names the error */
  }
  const size_t got = fread(b, 1, (size_t)n, fp);
  fclose(fp);
  cdf_rd r = {b, (int64_t)got, 4, 0};
  if (got < 4 || b[0] != 'C' || b[1] != 'D' || b[2] != 'F' ||
      (b[3] != 1 && b[3] != 2 && b[3] != 5)) {
    free(b);
    return;
  }
  r.v = b[3];
  const char *what = NULL;
  uint64_t numrecs = 0, ndims = 0, nvars = 0, len, type, x;
  if (!cdf_count(&r, &numrecs) && !(r.v != 5 && numrecs == 0xFFFFFFFFu))
    what = "record count";
  else if (!cdf_list(&r, 0x0A, &ndims, r.v == 5 ? 16 : 8))
    what = "dimension list";
  for (uint64_t d = 0; !what && d < ndims; d++)
    if (!cdf_name(&r) || !cdf_count(&r, &len)) what = "dimension";
  if (!what && !cdf_atts(&r)) what = "global attribute list";
  if (!what && !cdf_list(&r, 0x0B, &nvars, r.v == 5 ? 48 : 24)) what = "variable list";
  for (uint64_t v = 0; !what && v < nvars; v++) {
    uint64_t nd;
    if (!cdf_name(&r) || !cdf_count(&r, &nd) ||
        nd > (uint64_t)((r.n - r.at) / (r.v == 5 ? 8 : 4))) {
      what = "variable dimension count";
      break;
    }
    for (uint64_t k = 0; !what && k < nd; k++)
      if (!(r.v == 5 ? cdf_u64(&r, &x) : cdf_u32(&r, &x)) || x >= ndims)
        what = "variable dimension id";
    if (!what && !cdf_atts(&r)) what = "variable attribute list";
    if (!what && (!cdf_u32(&r, &type) || !cdf_type_size(type) ||
                  !(r.v == 5 ? cdf_u64(&r, &x) : cdf_u32(&r, &x)) ||
                  !(r.v == 1 ? cdf_u32(&r, &x) : cdf_u64(&r, &x))))
      what = "variable type, size or offset";
  }
  if (what)
    snprintf(why, cap, "%s: the NetCDF header is corrupted or truncated: bad %s (invalid, or "
             "past the end of the file; near byte %lld of %lld%s)", path, what,
             (long long)r.at, (long long)file_bytes,
             file_bytes > limit ? "; headers over 64 MiB are not read" : "");
  free(b);
}

int dt_ckpt_open(dt_ckpt_file *f, const char *path, MPI_Comm comm) {
  memset(f, 0, sizeof *f);
  f->ncid = -1;
  f->comm = comm;
  snprintf(f->path, sizeof f->path, "%s", path);
  /* every rank must see the file; agreed, so a rank that cannot (another
   * node's file system) makes all of them report it once and stop */
  struct stat sb;
  int src = DT_OK;
  if (stat(path, &sb) != 0)
    src = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__, "%s: cannot open checkpoint: %s",
                       path, strerror(errno));
  DT_CALL(dt_ckpt_agree(src, comm));
  f->info.file_bytes = (int64_t)sb.st_size;
  /* rank 0 walks the header before PnetCDF allocates what it says */
  int rank, hrc = DT_OK;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    char why[1200];
    cdf_header_check(path, f->info.file_bytes, why, sizeof why);
    if (why[0]) hrc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__, "%s", why);
  }
  DT_CALL(dt_ckpt_agree(hrc, comm));
  int e = ncmpi_open(comm, path, NC_NOWRITE, MPI_INFO_NULL, &f->ncid);
  if (e != NC_NOERR) {
    f->ncid = -1;
    DT_ERR(DT_EINPUT, "%s: not a readable NetCDF checkpoint: %s", path, ncmpi_strerror(e));
  }
  MPI_Offset hdr = 0;
  ncmpi_inq_header_size(f->ncid, &hdr);
  f->info.header_bytes = (int64_t)hdr;
  int rc = read_globals(f);
  if (rc == DT_OK) rc = read_vars(f);
  if (rc == DT_OK) rc = check_extent(f);
  if (rc) {
    dt_ckpt_close(f);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  return DT_OK;
}

void dt_ckpt_close(dt_ckpt_file *f) {
  if (f->ncid >= 0) ncmpi_close(f->ncid);
  f->ncid = -1;
  dt_ckpt_info_free(&f->info);
}

const dt_ckpt_var *dt_ckpt_find(const dt_ckpt_file *f, const char *name, int role) {
  char want[DT_PARAM_NAME_MAX], have[DT_PARAM_NAME_MAX];
  dt_param_canonical(want, sizeof want, name);
  for (int k = 0; k < f->info.n_vars; k++) {
    const dt_ckpt_var *x = &f->info.vars[k];
    if (x->role != role) continue;
    dt_param_canonical(have, sizeof have, x->name);
    if (strcmp(want, have) == 0) return x;
  }
  return NULL;
}

/* Collective read of one variable; the checksum is checked, not agreed. */
static int read_one(dt_ckpt_file *f, const dt_ckpt_var *v, float *dst) {
  MPI_Offset start[4] = {0, 0, 0, 0}, count[4];
  for (int d = 0; d < v->ndim; d++) count[d] = (MPI_Offset)v->shape[d];
  int e = ncmpi_get_vara_float_all(f->ncid, v->varid, start, count, dst);
  DT_CHECK(e == NC_NOERR, DT_EINPUT, "%s: reading variable %s (%s): %s", f->path, v->ncname,
           v->name, ncmpi_strerror(e));
  const uint64_t h = checksum(dst, v->numel);
  DT_CHECK(h == v->xxh3, DT_EINPUT,
           "%s: variable %s (%s %s) is corrupted: its values hash to xxh3 %016llx, the file "
           "recorded %016llx", f->path, v->ncname, v->name, k_role_name[v->role],
           (unsigned long long)h, (unsigned long long)v->xxh3);
  return DT_OK;
}

int dt_ckpt_read_var(dt_ckpt_file *f, const dt_ckpt_var *v, float *dst) {
  int rc = read_one(f, v, dst);
  DT_CALL(dt_ckpt_agree(rc, f->comm));
  return DT_OK;
}

int dt_ckpt_verify(dt_ckpt_file *f) {
  int64_t mx = 1;
  for (int k = 0; k < f->info.n_vars; k++)
    if (f->info.vars[k].numel > mx) mx = f->info.vars[k].numel;
  float *buf = NULL;
  int rc = dt_malloc(&buf, sizeof(float) * (size_t)mx, "a checkpoint variable");
  rc = dt_ckpt_agree(rc, f->comm);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  int bad = DT_OK;
  for (int k = 0; k < f->info.n_vars; k++) {
    int r = read_one(f, &f->info.vars[k], buf); /* keep going: collective reads */
    if (r && !bad) bad = r;
  }
  free(buf);
  DT_CALL(dt_ckpt_agree(bad, f->comm));
  return DT_OK;
}

int dt_ckpt_read_params(dt_ckpt_file *f, dt_params *params, float *exp_avg,
                        float *exp_avg_sq) {
  const int with_opt = exp_avg != NULL && exp_avg_sq != NULL;
  const int nroles = with_opt ? 3 : 1;
  /* match and check everything before reading anything (same on every rank) */
  int64_t mx = 1;
  int any_shard = 0;
  for (int i = 0; i < params->n; i++) {
    const dt_param *p = &params->p[i];
    any_shard |= p->shard != NULL;
    for (int role = 0; role < nroles; role++) {
      const dt_ckpt_var *v = dt_ckpt_find(f, p->name, role);
      DT_CHECK(v, DT_EINPUT, "%s: %s of parameter '%s' (method %s) is not in the checkpoint%s",
               f->path, role == DT_CKPT_PARAM ? "the value" : k_role_name[role], p->name,
               p->method ? p->method : "?",
               role == DT_CKPT_PARAM ? "" : " (written with --save-optimizer no?)");
      int same = v->ndim == p->ndim;
      for (int d = 0; same && d < p->ndim; d++) same = v->shape[d] == p->shape[d];
      if (!same) {
        char a[96], b[96];
        shape_str(a, sizeof a, v->ndim, v->shape);
        shape_str(b, sizeof b, p->ndim, p->shape);
        DT_ERR(DT_EINPUT, "%s: variable %s (%s) has shape %s; this run's parameter has %s",
               f->path, v->ncname, v->name, a, b);
      }
    }
    if (p->numel > mx) mx = p->numel;
  }
  for (int k = 0; k < f->info.n_vars; k++) {
    const dt_ckpt_var *v = &f->info.vars[k];
    DT_CHECK(v->role != DT_CKPT_PARAM || dt_params_find(params, v->name), DT_EINPUT,
             "%s: the checkpoint holds parameter '%s' (variable %s, method %s), which this run "
             "does not train (other methods or method options?)", f->path, v->name, v->ncname,
             v->method);
  }
  float *buf = NULL, *full = NULL;
  int rc = dt_malloc(&buf, sizeof(float) * (size_t)mx, "a checkpoint variable");
  if (rc == DT_OK && any_shard)
    rc = dt_malloc(&full, sizeof(float) * (size_t)mx, "a checkpoint variable");
  rc = dt_ckpt_agree(rc, f->comm);
  if (rc) {
    free(buf);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  int bad = DT_OK;
  for (int role = 0; role < nroles; role++) {
    int64_t off = 0;
    for (int i = 0; i < params->n; i++) {
      dt_param *p = &params->p[i];
      const dt_ckpt_var *v = dt_ckpt_find(f, p->name, role);
      float *dst = role == DT_CKPT_PARAM ? p->data
                   : role == DT_CKPT_EXP_AVG ? exp_avg + off
                                             : exp_avg_sq + off;
      off += p->numel_l;
      int r = read_one(f, v, buf); /* keep going: collective reads */
      if (r) {
        if (!bad) bad = r;
        continue;
      }
      if (bad) continue;
      if (p->shard) { /* the whole tensor in storage order, then this rank's part */
        dt_param_from_external(p, buf, full);
        dt_param_full_to_local(p, full, dst);
      } else {
        dt_param_from_external(p, buf, dst);
      }
    }
  }
  free(buf);
  free(full);
  DT_CALL(dt_ckpt_agree(bad, f->comm));
  return DT_OK;
}

/* --- folders ------------------------------------------------------------- */

void dt_ckpt_path(char *out, size_t cap, const char *dir, int64_t step) {
  snprintf(out, cap, "%s/ckpt-%010lld.nc", dir, (long long)step);
}

/* Step of a name "ckpt-<digits>.nc" (tmp: "ckpt-<digits>.nc.tmp.*"), or -1. */
static int64_t name_step(const char *n, int tmp) {
  if (strncmp(n, "ckpt-", 5) != 0) return -1;
  const char *p = n + 5;
  int64_t s = 0;
  int digits = 0;
  while (*p >= '0' && *p <= '9' && digits < 18) s = s * 10 + (*p++ - '0'), digits++;
  if (digits == 0) return -1;
  if (!tmp) return strcmp(p, ".nc") == 0 ? s : -1;
  return strncmp(p, ".nc.tmp.", 8) == 0 ? s : -1;
}

/* Rank 0: steps of the checkpoints in dir, sorted descending. */
static int list_steps(const char *dir, int64_t **steps, int *n) {
  *steps = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return DT_OK;
    DT_ERR(DT_EIO, "%s: cannot list the checkpoint folder: %s", dir, strerror(errno));
  }
  int cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    int64_t s = name_step(e->d_name, 0);
    if (s < 0) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      int64_t *g = realloc(*steps, sizeof **steps * (size_t)cap);
      if (!g) {
        closedir(d);
        DT_ERR(DT_ENOMEM, "%s: listing checkpoints", dir);
      }
      *steps = g;
    }
    (*steps)[(*n)++] = s;
  }
  closedir(d);
  for (int i = 1; i < *n; i++) /* insertion sort, descending */
    for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
      int64_t t = (*steps)[j];
      (*steps)[j] = (*steps)[j - 1];
      (*steps)[j - 1] = t;
    }
  return DT_OK;
}

int dt_ckpt_find_newest(const char *dir, char *path, size_t cap, int64_t *step,
                        MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  int64_t best = -1;
  int rc = DT_OK;
  if (rank == 0) {
    int64_t *steps = NULL;
    int n = 0;
    rc = list_steps(dir, &steps, &n);
    if (rc == DT_OK && n > 0) best = steps[0];
    free(steps);
  }
  DT_CALL(dt_ckpt_agree(rc, comm));
  DT_MPI(MPI_Bcast(&best, 1, MPI_INT64_T, 0, comm), "MPI_Bcast of the newest checkpoint's step");
  *step = best;
  if (best >= 0)
    dt_ckpt_path(path, cap, dir, best);
  else if (cap)
    path[0] = 0;
  return DT_OK;
}

int dt_ckpt_list(const char *dir, int64_t **steps, int *n, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  *steps = NULL;
  *n = 0;
  int rc = rank == 0 ? list_steps(dir, steps, n) : DT_OK;
  DT_CALL(dt_ckpt_agree(rc, comm));
  DT_MPI(MPI_Bcast(n, 1, MPI_INT, 0, comm), "MPI_Bcast of the number of checkpoints");
  if (rank != 0 && *n > 0) rc = dt_malloc(steps, sizeof **steps * (size_t)*n, "checkpoint steps");
  rc = dt_ckpt_agree(rc, comm);
  if (rc) {
    free(*steps);
    *steps = NULL;
    *n = 0;
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  if (*n > 0) {
    rc = DT_MPI_RC(MPI_Bcast(*steps, *n, MPI_INT64_T, 0, comm), "MPI_Bcast of the checkpoints' steps");
    if (rc) {
      free(*steps);
      *steps = NULL;
      *n = 0;
      return dt_error_trace(rc, __FILE__, __LINE__, __func__);
    }
  }
  return DT_OK;
}

int dt_ckpt_prune(const char *dir, int keep, int64_t current, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  int rc = DT_OK;
  if (rank == 0) {
    int64_t *steps = NULL;
    int n = 0;
    rc = list_steps(dir, &steps, &n);
    int kept = 0;
    for (int i = 0; rc == DT_OK && i < n; i++) { /* descending steps */
      const int later = steps[i] > current; /* an earlier run's, past this one */
      if (!later && (keep == 0 || kept < keep || steps[i] == current)) {
        kept++;
        continue;
      }
      char p[4200];
      dt_ckpt_path(p, sizeof p, dir, steps[i]);
      if (unlink(p) != 0 && errno != ENOENT)
        rc = dt_error_set(DT_EIO, __FILE__, __LINE__, __func__,
                          "cannot remove the old checkpoint %s (--keep %d): %s", p, keep,
                          strerror(errno));
      else if (later)
        printf("checkpoint: removed %s of an earlier run (past this run's step %lld)\n", p,
               (long long)current);
    }
    free(steps);
    /* temporaries of interrupted writes */
    DIR *d = rc == DT_OK ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (name_step(e->d_name, 1) < 0) continue;
      char p[4200];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
    if (d) closedir(d);
    fflush(stdout);
  }
  DT_CALL(dt_ckpt_agree(rc, comm));
  return DT_OK;
}
