/* Checkpoint files at the level of io/checkpoint.h, run under mpirun with
 * 1 to 4 ranks: a table of tensors (transposed storage, odd shapes, special
 * float values) and AdamW moments are written collectively and read back
 * bit for bit, by the same ranks and by rank 0 alone; a failure on one rank
 * fails the write on every rank and leaves the previous file; --keep and
 * the newest-checkpoint listing; fewer variables than ranks; replicas that
 * differ between ranks are refused; tensors sharded over tensor groups are
 * stored whole and read back into their shards.
 *
 * Every rank checks; the verdicts are reduced before any assertion so that
 * no rank is left waiting in a collective. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "error.h"
#include "rankcheck.h"
#include "testutil.h"

static char g_dir[512];

typedef struct {
  dt_params t;
  float *store[8];
  float *m, *v;
} table;

/* Values are the same on every rank (a replicated table). */
static float value(int tensor, int64_t j, int salt) {
  uint32_t x = (uint32_t)(tensor * 2654435761u) ^ (uint32_t)(j * 40503u) ^ (uint32_t)salt;
  x ^= x >> 13;
  x *= 0x5bd1e995u;
  x ^= x >> 15;
  float f;
  memcpy(&f, &x, sizeof f);
  if (!isfinite(f) || fabsf(f) > 1e30f) f = (float)((int32_t)x) * 1e-9f;
  return f;
}

static void make_table(table *tb, int n, int with_opt, int salt) {
  static const int64_t shapes[8][4] = {{3, 5}, {7}, {2, 3, 4}, {1, 1}, {130, 17},
                                       {5, 3}, {64}, {2, 2, 2, 2}};
  static const int ndims[8] = {2, 1, 3, 2, 2, 2, 1, 4};
  static const char *const names[8] = {"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
                                       "transformer.h.1.ln_1.bias",
                                       "a.b-c/d:e",
                                       "theta",
                                       "transformer.h.0.mlp.c_fc.weight",
                                       "a_b_c_d_e", /* sanitises like "a.b-c/d:e" */
                                       "lam",
                                       "0starts.with.digit"};
  memset(tb, 0, sizeof *tb);
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    int64_t numel = 1;
    for (int d = 0; d < ndims[i]; d++) numel *= shapes[i][d];
    tb->store[i] = calloc((size_t)numel, sizeof(float));
    for (int64_t j = 0; j < numel; j++) tb->store[i][j] = value(i, j, salt);
    total += numel;
    /* tensors 0 and 4 are stored transposed ([in,out] externally) */
    assert_int_equal(dt_params_add(&tb->t, i % 2 ? "bitfit" : "lora", names[i], ndims[i],
                                   shapes[i], tb->store[i], NULL, i == 0 || i == 4),
                     DT_OK);
  }
  /* special values: -0, inf, a NaN with payload, a denormal */
  if (n >= 2) {
    const uint32_t nan = 0x7fc01234u, den = 0x00000123u;
    tb->store[1][0] = -0.0f;
    tb->store[1][1] = INFINITY;
    memcpy(&tb->store[1][2], &nan, 4);
    memcpy(&tb->store[1][3], &den, 4);
  }
  if (with_opt) {
    tb->m = calloc((size_t)total + 1, sizeof(float));
    tb->v = calloc((size_t)total + 1, sizeof(float));
    for (int64_t j = 0; j < total; j++) {
      tb->m[j] = value(100, j, salt);
      tb->v[j] = fabsf(value(200, j, salt));
    }
  }
}

static void free_table(table *tb) {
  for (int i = 0; i < 8; i++) free(tb->store[i]);
  free(tb->m);
  free(tb->v);
  dt_params_free(&tb->t);
}

/* A zeroed table of the same shapes. */
static void empty_like(table *dst, const table *src, int with_opt) {
  memset(dst, 0, sizeof *dst);
  for (int i = 0; i < src->t.n; i++) {
    const dt_param *p = &src->t.p[i];
    dst->store[i] = calloc((size_t)p->numel, sizeof(float));
    assert_int_equal(dt_params_add(&dst->t, p->method, p->name, p->ndim, p->shape,
                                   dst->store[i], NULL, p->transposed),
                     DT_OK);
  }
  if (with_opt) {
    dst->m = calloc((size_t)src->t.numel + 1, sizeof(float));
    dst->v = calloc((size_t)src->t.numel + 1, sizeof(float));
  }
}

static void make_meta(dt_ckpt_info *m, int64_t step) {
  memset(m, 0, sizeof *m);
  snprintf(m->command, sizeof m->command, "train");
  snprintf(m->methods, sizeof m->methods, "lora,bitfit");
  m->n_opts = 2;
  m->opts = calloc(2, sizeof *m->opts);
  snprintf(m->opts[0].name, sizeof m->opts[0].name, "lora-rank");
  snprintf(m->opts[0].value, sizeof m->opts[0].value, "4");
  snprintf(m->opts[1].name, sizeof m->opts[1].name, "init-from");
  snprintf(m->options_given, sizeof m->options_given, "lora-rank");
  snprintf(m->backbone.kind, sizeof m->backbone.kind, "synthetic");
  snprintf(m->backbone.source, sizeof m->backbone.source, "synthetic:gpt2-small");
  snprintf(m->backbone.id, sizeof m->backbone.id, "0123456789abcdef");
  snprintf(m->backbone.desc, sizeof m->backbone.desc, "synthetic gpt2 layers=12 seed=1\n");
  snprintf(m->arch, sizeof m->arch, "gpt2");
  m->layers = 12;
  m->d_model = 768;
  snprintf(m->rank_layout, sizeof m->rank_layout, "%d ranks", g_size);
  m->step = step;
  m->steps_total = 100;
  m->lr_last = 1e-3;
  m->lr_next = 0.5e-3;
  m->loss_first = 4.5;
  m->loss_last = NAN;
  m->batch_size = 8;
  m->data_next_row = step * 8;
  m->n_counters = 1;
  snprintf(m->counters[0].method, sizeof m->counters[0].method, "lora");
  m->counters[0].n = 1;
  m->counters[0].v[0] = step;
}

static int same_bits(const float *a, const float *b, int64_t n) {
  return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

/* Read path back into a fresh table over comm and compare with src. */
static void read_back(const char *path, const table *src, int with_opt, MPI_Comm comm,
                      int64_t step) {
  dt_ckpt_file f;
  int rc = dt_ckpt_open(&f, path, comm);
  RANK_CHECK(rc == DT_OK, "open %s: %s", path, dt_error_message());
  if (rc) return;
  const dt_ckpt_info *i = &f.info;
  RANK_CHECK(i->complete == 1, "complete %d", i->complete);
  RANK_CHECK(i->step == step, "step %lld", (long long)i->step);
  RANK_CHECK(i->has_optimizer == with_opt, "has_optimizer %d", i->has_optimizer);
  RANK_CHECK(i->nranks == g_size, "nranks %d", i->nranks);
  RANK_CHECK(strcmp(i->methods, "lora,bitfit") == 0, "methods %s", i->methods);
  RANK_CHECK(i->lr_last == 1e-3 && i->lr_next == 0.5e-3 && i->loss_first == 4.5 && isnan(i->loss_last),
        "lr/loss %g %g %g %g", i->lr_last, i->lr_next, i->loss_first, i->loss_last);
  RANK_CHECK(i->data_next_row == step * 8, "data_next_row %lld", (long long)i->data_next_row);
  const char *r = dt_ckpt_info_opt(i, "lora-rank"), *ifr = dt_ckpt_info_opt(i, "init-from");
  RANK_CHECK(r && strcmp(r, "4") == 0 && ifr && ifr[0] == 0, "options %s %s", r ? r : "-",
        ifr ? ifr : "-");
  RANK_CHECK(strcmp(i->options_given, "lora-rank") == 0, "options_given %s", i->options_given);
  RANK_CHECK(strcmp(i->backbone.id, "0123456789abcdef") == 0, "backbone id %s", i->backbone.id);
  RANK_CHECK(strcmp(i->backbone.desc, "synthetic gpt2 layers=12 seed=1\n") == 0, "desc %s",
        i->backbone.desc);
  const dt_ckpt_counters *c = dt_ckpt_info_counters(i, "lora");
  RANK_CHECK(c && c->n == 1 && c->v[0] == step, "counters");
  RANK_CHECK(i->n_vars == src->t.n * (with_opt ? 3 : 1), "n_vars %d", i->n_vars);
  RANK_CHECK(i->file_bytes > i->data_bytes && i->file_bytes - i->data_bytes < 65536,
        "file %lld bytes, variables %lld", (long long)i->file_bytes, (long long)i->data_bytes);
  /* every variable stored whole in the external shape */
  for (int k = 0; k < src->t.n; k++) {
    const dt_ckpt_var *v = dt_ckpt_find(&f, src->t.p[k].name, DT_CKPT_PARAM);
    RANK_CHECK(v && v->ndim == src->t.p[k].ndim, "variable of %s", src->t.p[k].name);
    for (int d = 0; v && d < v->ndim; d++)
      RANK_CHECK(v->shape[d] == src->t.p[k].shape[d], "%s dim %d", v->name, d);
  }
  table back;
  empty_like(&back, src, with_opt);
  rc = dt_ckpt_read_params(&f, &back.t, with_opt ? back.m : NULL, with_opt ? back.v : NULL);
  RANK_CHECK(rc == DT_OK, "read %s: %s", path, dt_error_message());
  for (int k = 0; rc == DT_OK && k < src->t.n; k++)
    RANK_CHECK(same_bits(src->store[k], back.store[k], src->t.p[k].numel), "tensor %s differs",
          src->t.p[k].name);
  if (with_opt && rc == DT_OK) {
    RANK_CHECK(same_bits(src->m, back.m, src->t.numel), "exp_avg differs");
    RANK_CHECK(same_bits(src->v, back.v, src->t.numel), "exp_avg_sq differs");
  }
  rc = dt_ckpt_verify(&f);
  RANK_CHECK(rc == DT_OK, "verify: %s", dt_error_message());
  free_table(&back);
  dt_ckpt_close(&f);
}

static void test_roundtrip(void **state) {
  (void)state;
  for (int with_opt = 0; with_opt < 2; with_opt++) {
    table tb;
    make_table(&tb, 8, with_opt, 7 + with_opt);
    dt_ckpt_info meta;
    make_meta(&meta, 10 + with_opt);
    char path[1024];
    snprintf(path, sizeof path, "%s/rt-%d.nc", g_dir, with_opt);
    int64_t bytes = 0;
    int rc = dt_ckpt_write(path, &meta, &tb.t, tb.m, tb.v, MPI_COMM_WORLD, &bytes);
    RANK_CHECK(rc == DT_OK, "write: %s", dt_error_message());
    RANK_CHECK(bytes >= tb.t.numel * 4 * (with_opt ? 3 : 1), "size %lld", (long long)bytes);
    rank_verdict();
    read_back(path, &tb, with_opt, MPI_COMM_WORLD, 10 + with_opt);
    rank_verdict();
    /* another rank count: rank 0 alone */
    if (g_rank == 0) read_back(path, &tb, with_opt, MPI_COMM_SELF, 10 + with_opt);
    rank_verdict();
    dt_ckpt_info_free(&meta);
    free_table(&tb);
  }
}

/* Fewer variables than ranks: some ranks write nothing. */
static void test_few_variables(void **state) {
  (void)state;
  table tb;
  make_table(&tb, 1, 0, 3);
  dt_ckpt_info meta;
  make_meta(&meta, 1);
  char path[1024];
  snprintf(path, sizeof path, "%s/few.nc", g_dir);
  int rc = dt_ckpt_write(path, &meta, &tb.t, NULL, NULL, MPI_COMM_WORLD, NULL);
  RANK_CHECK(rc == DT_OK, "write: %s", dt_error_message());
  rank_verdict();
  dt_ckpt_file f;
  rc = dt_ckpt_open(&f, path, MPI_COMM_WORLD);
  RANK_CHECK(rc == DT_OK, "open: %s", dt_error_message());
  if (rc == DT_OK) {
    table back;
    empty_like(&back, &tb, 0);
    rc = dt_ckpt_read_params(&f, &back.t, NULL, NULL);
    RANK_CHECK(rc == DT_OK && same_bits(tb.store[0], back.store[0], tb.t.p[0].numel), "read back");
    free_table(&back);
    dt_ckpt_close(&f);
  }
  rank_verdict();
  dt_ckpt_info_free(&meta);
  free_table(&tb);
}

/* A write that fails on the last rank fails on every rank with the same
 * message, leaves no temporary and keeps the previous file. */
static void test_failure_agreed(void **state) {
  (void)state;
  table tb;
  make_table(&tb, 8, 1, 11);
  dt_ckpt_info meta;
  make_meta(&meta, 5);
  char path[1024];
  snprintf(path, sizeof path, "%s/fail.nc", g_dir);
  int rc = dt_ckpt_write(path, &meta, &tb.t, tb.m, tb.v, MPI_COMM_WORLD, NULL);
  RANK_CHECK(rc == DT_OK, "first write: %s", dt_error_message());
  rank_verdict();
  char fault[64];
  snprintf(fault, sizeof fault, "error:6:%d", g_size - 1);
  setenv("DT_TEST_CHECKPOINT_FAULT", fault, 1);
  meta.step = 6;
  table other;
  make_table(&other, 8, 1, 12);
  rc = dt_ckpt_write(path, &meta, &other.t, other.m, other.v, MPI_COMM_WORLD, NULL);
  unsetenv("DT_TEST_CHECKPOINT_FAULT");
  RANK_CHECK(rc == DT_EIO, "failed write returned %d", rc);
  RANK_CHECK(strstr(dt_error_message(), "simulated write failure") != NULL, "message: %s",
        dt_error_message());
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) { /* no temporary left */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", g_dir);
    char *out = NULL;
    dt_test_run(&out, "%s", cmd);
    RANK_CHECK(out && atoi(out) == 0, "temporaries left: %s", out ? out : "?");
    free(out);
  }
  rank_verdict();
  read_back(path, &tb, 1, MPI_COMM_WORLD, 5); /* the previous one, intact */
  rank_verdict();
  free_table(&other);
  dt_ckpt_info_free(&meta);
  free_table(&tb);
}

/* Replicated tensors that differ between ranks are refused, naming one
 * (run on 2 ranks or more). */
static void test_replicas_differ(void **state) {
  (void)state;
  table tb;
  make_table(&tb, 8, 1, 13);
  if (g_rank == g_size - 1) tb.store[4][7] += 1.0f;
  dt_ckpt_info meta;
  make_meta(&meta, 3);
  char path[1024];
  snprintf(path, sizeof path, "%s/diverged.nc", g_dir);
  int rc = dt_ckpt_write(path, &meta, &tb.t, tb.m, tb.v, MPI_COMM_WORLD, NULL);
  RANK_CHECK(rc == DT_EINTERNAL && strstr(dt_error_message(), "transformer.h.0.mlp.c_fc.weight") &&
            strstr(dt_error_message(), "differs between ranks"),
        "diverged replicas: rc %d: %s", rc, dt_error_message());
  struct stat sb;
  RANK_CHECK(stat(path, &sb) != 0, "%s was written", path);
  rank_verdict();
  dt_ckpt_info_free(&meta);
  free_table(&tb);
}

/* Checkpoints of a folder: newest by step, --keep, temporaries removed. */
static void test_folder(void **state) {
  (void)state;
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/run", g_dir);
  if (g_rank == 0) mkdir(dir, 0755);
  MPI_Barrier(MPI_COMM_WORLD);
  char path[1200];
  int64_t step = 0;
  int rc = dt_ckpt_find_newest(dir, path, sizeof path, &step, MPI_COMM_WORLD);
  RANK_CHECK(rc == DT_OK && step == -1 && path[0] == 0, "empty folder: step %lld", (long long)step);
  table tb;
  make_table(&tb, 3, 0, 1);
  const int64_t steps[4] = {2, 10, 4, 9};
  for (int k = 0; k < 4; k++) {
    dt_ckpt_info meta;
    make_meta(&meta, steps[k]);
    dt_ckpt_path(path, sizeof path, dir, steps[k]);
    rc = dt_ckpt_write(path, &meta, &tb.t, NULL, NULL, MPI_COMM_WORLD, NULL);
    RANK_CHECK(rc == DT_OK, "write %s: %s", path, dt_error_message());
    dt_ckpt_info_free(&meta);
  }
  if (g_rank == 0) { /* a left-over temporary and an unrelated file */
    char p[1300];
    snprintf(p, sizeof p, "%s/ckpt-0000000011.nc.tmp.123", dir);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    f = fopen(p, "w");
    if (f) fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  rc = dt_ckpt_find_newest(dir, path, sizeof path, &step, MPI_COMM_WORLD);
  RANK_CHECK(rc == DT_OK && step == 10 && strstr(path, "ckpt-0000000010.nc"), "newest %s", path);
  rc = dt_ckpt_prune(dir, 2, 10, MPI_COMM_WORLD);
  RANK_CHECK(rc == DT_OK, "prune: %s", dt_error_message());
  if (g_rank == 0) {
    char *out = NULL;
    dt_test_run(&out, "ls %s | tr '\\n' ' '", dir);
    RANK_CHECK(out && strcmp(out, "ckpt-0000000009.nc ckpt-0000000010.nc notes.txt ") == 0,
          "after --keep 2: '%s'", out ? out : "?");
    free(out);
  }
  rank_verdict();
  /* a new run at step 3 in the same folder: the later steps are an earlier
   * run's and go, whatever --keep says, and step 3 itself stays */
  dt_ckpt_info meta;
  make_meta(&meta, 3);
  dt_ckpt_path(path, sizeof path, dir, 3);
  rc = dt_ckpt_write(path, &meta, &tb.t, NULL, NULL, MPI_COMM_WORLD, NULL);
  RANK_CHECK(rc == DT_OK, "write %s: %s", path, dt_error_message());
  dt_ckpt_info_free(&meta);
  rc = dt_ckpt_prune(dir, 0, 3, MPI_COMM_WORLD);
  RANK_CHECK(rc == DT_OK, "prune: %s", dt_error_message());
  rc = dt_ckpt_find_newest(dir, path, sizeof path, &step, MPI_COMM_WORLD);
  RANK_CHECK(rc == DT_OK && step == 3, "newest after a new run: %s", path);
  rank_verdict();
  free_table(&tb);
}

/* Tensors sharded by tensor parallelism (as full / lastlayer / bitfit train
 * them under --tp > 1): tensor groups of T ranks (T = 2 at 4 ranks, else
 * every rank), row shards in cyclic blocks of 2 (one of them a transposed
 * Conv1D weight), column shards in uneven contiguous blocks, and a
 * replicated tensor beside them. The file must hold every tensor whole in
 * its external layout, bit for bit (-0, NaN payloads and denormals in a
 * shard included), with the same checksums as the same table written
 * unsharded; it reads back into the shards, and whole on one rank. */
typedef struct {
  dt_params t;
  float *full[4]; /* storage order, whole */
  float *local[4];
  float *m, *v;   /* moments: local elements, table order */
} sharded_table;

static void add_seg(dt_segs *s, int g0, int len, int l0) {
  if (s->n && s->s[s->n - 1].g0 + s->s[s->n - 1].len == g0 &&
      s->s[s->n - 1].l0 + s->s[s->n - 1].len == l0)
    s->s[s->n - 1].len += len;
  else
    s->s[s->n++] = (dt_seg){g0, len, l0};
}

/* tp rank r of T: rows in cyclic blocks of 2 (shard_dim 0), or columns in
 * contiguous blocks of ceil(cols / T) (shard_dim 1). T == 1: unsharded. */
static void make_sharded(sharded_table *st, int r, int T) {
  static const char *const names[4] = {"transformer.h.0.mlp.c_fc.weight",
                                       "transformer.wte.weight", "transformer.h.0.ln_1.bias",
                                       "model.layers.0.self_attn.o_proj.weight"};
  static const int64_t shapes[4][2] = {{6, 11}, {9, 5}, {7, 1}, {4, 10}}; /* external */
  static const int ndims[4] = {2, 2, 1, 2};
  static const int dims[4] = {0, 0, -1, 1}; /* sharded storage dimension; -1 replicated */
  memset(st, 0, sizeof *st);
  int64_t total_l = 0;
  for (int i = 0; i < 4; i++) {
    const int transposed = i == 0;
    const int64_t numel = shapes[i][0] * (ndims[i] == 2 ? shapes[i][1] : 1);
    /* storage [rows, cols] */
    const int64_t rows = transposed ? shapes[i][1] : shapes[i][0];
    const int64_t cols = ndims[i] == 2 ? (transposed ? shapes[i][0] : shapes[i][1]) : 1;
    st->full[i] = calloc((size_t)numel, sizeof(float));
    for (int64_t j = 0; j < numel; j++) st->full[i][j] = value(50 + i, j, 5);
    if (i == 1) { /* special values inside shards */
      const uint32_t nan = 0x7fc04321u, den = 0x00000077u;
      st->full[1][0] = -0.0f;
      memcpy(&st->full[1][7], &nan, 4);
      memcpy(&st->full[1][12], &den, 4);
      st->full[1][13] = -INFINITY;
    }
    st->local[i] = calloc((size_t)numel, sizeof(float));
    if (dims[i] < 0 || T == 1) {
      memcpy(st->local[i], st->full[i], sizeof(float) * (size_t)numel);
      assert_int_equal(dt_params_add(&st->t, "full", names[i], ndims[i], shapes[i],
                                     st->local[i], NULL, transposed), DT_OK);
      total_l += numel;
      continue;
    }
    dt_param_shard sh;
    memset(&sh, 0, sizeof sh);
    sh.shard_dim = dims[i];
    sh.rows = rows;
    sh.cols = cols;
    int64_t numel_l = 0;
    if (dims[i] == 0) {
      int l = 0;
      for (int g = 0; g < rows; g += 2)
        if ((g / 2) % T == r) {
          const int len = (int)(g + 2 <= rows ? 2 : rows - g);
          add_seg(&sh.segs, g, len, l);
          l += len;
        }
      sh.first_l0 = 0;
      sh.local_cols = (int)cols;
      numel_l = (int64_t)l * cols;
    } else {
      const int nb = (int)((cols + T - 1) / T);
      const int c0 = r * nb < cols ? r * nb : (int)cols;
      const int c1 = c0 + nb < cols ? c0 + nb : (int)cols;
      if (c1 > c0) add_seg(&sh.segs, c0, c1 - c0, 0);
      sh.local_cols = c1 - c0;
      numel_l = rows * (c1 - c0);
    }
    assert_int_equal(dt_params_add_shard(&st->t, "full", names[i], ndims[i], shapes[i],
                                         st->local[i], NULL, transposed, numel_l, &sh),
                     DT_OK);
    /* the local elements of the whole (storage-order) tensor */
    dt_param_full_to_local(&st->t.p[st->t.n - 1], st->full[i], st->local[i]);
    total_l += numel_l;
  }
  /* moments: the same split of other values */
  st->m = calloc((size_t)total_l + 1, sizeof(float));
  st->v = calloc((size_t)total_l + 1, sizeof(float));
  int64_t off = 0;
  for (int i = 0; i < 4; i++) {
    const dt_param *p = &st->t.p[i];
    float *a = calloc((size_t)p->numel, sizeof(float)), *b = calloc((size_t)p->numel, sizeof(float));
    for (int64_t j = 0; j < p->numel; j++) {
      a[j] = value(150 + i, j, 5);
      b[j] = fabsf(value(250 + i, j, 5));
    }
    dt_param_full_to_local(p, a, st->m + off);
    dt_param_full_to_local(p, b, st->v + off);
    off += p->numel_l;
    free(a);
    free(b);
  }
}

static void free_sharded(sharded_table *st) {
  for (int i = 0; i < 4; i++) {
    free(st->full[i]);
    free(st->local[i]);
  }
  free(st->m);
  free(st->v);
  dt_params_free(&st->t);
}

/* Read path into a table of layout (r, T) over comm; compare with the
 * written one. */
static void sharded_read_back(const char *path, const sharded_table *ref, int r, int T,
                              MPI_Comm comm) {
  sharded_table back;
  make_sharded(&back, r, T);
  for (int i = 0; i < 4; i++) memset(back.local[i], 0, sizeof(float) * (size_t)back.t.p[i].numel_l);
  memset(back.m, 0, sizeof(float) * (size_t)back.t.numel_l);
  memset(back.v, 0, sizeof(float) * (size_t)back.t.numel_l);
  dt_ckpt_file f;
  int rc = dt_ckpt_open(&f, path, comm);
  RANK_CHECK(rc == DT_OK, "open %s: %s", path, dt_error_message());
  if (rc == DT_OK) {
    rc = dt_ckpt_read_params(&f, &back.t, back.m, back.v);
    RANK_CHECK(rc == DT_OK, "read %s: %s", path, dt_error_message());
    dt_ckpt_close(&f);
  }
  /* ref and back have the same layout: compare the local elements */
  for (int i = 0; rc == DT_OK && i < 4; i++)
    RANK_CHECK(same_bits(ref->local[i], back.local[i], back.t.p[i].numel_l),
          "tensor %s differs after reading back (tp %d of %d)", back.t.p[i].name, r, T);
  if (rc == DT_OK) {
    RANK_CHECK(same_bits(ref->m, back.m, back.t.numel_l), "exp_avg differs (tp %d of %d)", r, T);
    RANK_CHECK(same_bits(ref->v, back.v, back.t.numel_l), "exp_avg_sq differs (tp %d of %d)", r, T);
  }
  free_sharded(&back);
}

static void test_sharded(void **state) {
  (void)state;
  const int T = g_size == 4 ? 2 : g_size;
  MPI_Comm tp;
  MPI_Comm_split(MPI_COMM_WORLD, g_rank / T, g_rank, &tp);
  int r;
  MPI_Comm_rank(tp, &r);
  sharded_table st;
  make_sharded(&st, r, T);
  dt_ckpt_info meta;
  make_meta(&meta, 4);
  char path[1024], whole[1024];
  snprintf(path, sizeof path, "%s/sharded.nc", g_dir);
  snprintf(whole, sizeof whole, "%s/unsharded.nc", g_dir);
  int rc = dt_ckpt_write_tp(path, &meta, &st.t, st.m, st.v, MPI_COMM_WORLD,
                            T > 1 ? tp : MPI_COMM_NULL, NULL);
  RANK_CHECK(rc == DT_OK, "sharded write: %s", dt_error_message());
  rank_verdict();
  /* the same table unsharded, written by rank 0 alone */
  if (g_rank == 0) {
    sharded_table one;
    make_sharded(&one, 0, 1);
    rc = dt_ckpt_write(whole, &meta, &one.t, one.m, one.v, MPI_COMM_SELF, NULL);
    RANK_CHECK(rc == DT_OK, "unsharded write: %s", dt_error_message());
    /* same variables, shapes and checksums */
    dt_ckpt_file a, b;
    if (rc == DT_OK && dt_ckpt_open(&a, path, MPI_COMM_SELF) == DT_OK) {
      if (dt_ckpt_open(&b, whole, MPI_COMM_SELF) == DT_OK) {
        RANK_CHECK(a.info.n_vars == b.info.n_vars && a.info.n_vars == 12, "%d and %d variables",
              a.info.n_vars, b.info.n_vars);
        for (int k = 0; k < a.info.n_vars && k < b.info.n_vars; k++) {
          const dt_ckpt_var *x = &a.info.vars[k], *y = &b.info.vars[k];
          RANK_CHECK(strcmp(x->name, y->name) == 0 && x->role == y->role && x->ndim == y->ndim &&
                    x->shape[0] == y->shape[0] && x->xxh3 == y->xxh3,
                "variable %d: %s %016llx vs %s %016llx", k, x->name,
                (unsigned long long)x->xxh3, y->name, (unsigned long long)y->xxh3);
        }
        dt_ckpt_close(&b);
      } else {
        RANK_CHECK(0, "open %s: %s", whole, dt_error_message());
      }
      dt_ckpt_close(&a);
    } else {
      RANK_CHECK(0, "open %s: %s", path, dt_error_message());
    }
    /* read whole by one rank */
    sharded_read_back(path, &one, 0, 1, MPI_COMM_SELF);
    free_sharded(&one);
  }
  rank_verdict();
  /* read back into the same shards by every rank */
  sharded_read_back(path, &st, r, T, MPI_COMM_WORLD);
  rank_verdict();
  /* shards that do not cover their tensor are refused on every rank */
  if (T > 1) {
    st.t.p[1].numel_l -= r == 0; /* rank 0 of each group claims one element less */
    rc = dt_ckpt_write_tp(path, &meta, &st.t, NULL, NULL, MPI_COMM_WORLD, tp, NULL);
    st.t.p[1].numel_l += r == 0;
    RANK_CHECK(rc == DT_EINTERNAL && strstr(dt_error_message(), "transformer.wte.weight"),
          "uncovered shard: rc %d: %s", rc, dt_error_message());
    rank_verdict();
  }
  dt_ckpt_info_free(&meta);
  free_sharded(&st);
  MPI_Comm_free(&tp);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  if (g_rank == 0) snprintf(g_dir, sizeof g_dir, "%s", dt_test_tmpdir());
  MPI_Bcast(g_dir, sizeof g_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  const struct CMUnitTest all[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_few_variables),
      cmocka_unit_test(test_failure_agreed),
      cmocka_unit_test(test_replicas_differ),
      cmocka_unit_test(test_folder),
      cmocka_unit_test(test_sharded),
  };
  /* test_replicas_differ needs two ranks: on one it is not listed (a skip
   * would read as a component that could not run) */
  struct CMUnitTest tests[sizeof all / sizeof all[0]];
  size_t n = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (g_size > 1 || all[i].test_func != test_replicas_differ) tests[n++] = all[i];
  int fails = _cmocka_run_group_tests("test_ckpt_roundtrip", tests, n, NULL, NULL);
  MPI_Finalize();
  return fails;
}
