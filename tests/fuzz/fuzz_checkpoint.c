/* libFuzzer: the bytes as a deltatune checkpoint (CDF-5 NetCDF through
 * PnetCDF), read as `train --resume`, `eval --checkpoint` and `inspect` do:
 * dt_ckpt_open (format, version, attributes, variables, the file's size
 * against its variables), the stored options and counters looked up, every
 * variable read and its checksum verified (dt_ckpt_verify), and the
 * parameters restored into a table made from the file's own variables
 * (dt_ckpt_read_params, with the optimizer moments when the file says it
 * holds them). PnetCDF needs MPI: one process, MPI_COMM_SELF. */
#include <mpi.h>

#include "checkpoint.h"
#include "error.h"
#include "fuzz_util.h"
#include "params.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  int done = 0;
  MPI_Initialized(&done);
  if (!done) MPI_Init(NULL, NULL); /* never finalized: libFuzzer exits */
  return 0;
}

/* Open MPI, PMIx, hwloc and libevent keep some memory until exit on purpose
 * (tests/lsan.supp), some of it in their dlopen'ed components, whose frames
 * the fast unwinder cannot name: no leak check at exit (MPI is never
 * finalized), only libFuzzer's check after each input, where deltatune's
 * own leaks show. One string of Open MPI's (37 bytes, made by vasprintf)
 * surfaced there once in CI under load: glibc's vasprintf uses the frame
 * pointer register for data, so the stack above it is garbage and no module
 * rule can match it. deltatune calls no (v)asprintf (`grep -rn asprintf`
 * over base, io, mpi, src and text finds none), so a rule on vasprintf
 * itself hides only the libraries' strings. The same happened with a
 * 1-byte strdup (an empty string) in CI on 2026-12-06, its caller an
 * unknown module, not reproduced by running the saved input again: the
 * checkpoint path calls no strdup (`grep -rn strdup` finds it only in
 * io/dataset.c, io/safetensors.c, src/generate.c and src/textdata.c, none
 * of which this target reaches), so a rule on strdup hides only theirs. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "leak_check_at_exit=0"; }
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
  return "leak:libmpi.so\nleak:libopen-pal.so\nleak:libopen-rte.so\nleak:libpmix.so\n"
         "leak:libhwloc.so\nleak:libevent\nleak:libpnetcdf.so\nleak:mca_\nleak:vasprintf\n"
         "leak:strdup\n";
}

static void restore(dt_ckpt_file *f) {
  dt_params t = {0};
  float *bufs[64] = {0};
  int nb = 0, ok = 1;
  int64_t total = 0;
  for (int k = 0; k < f->info.n_vars && ok; k++) {
    const dt_ckpt_var *v = &f->info.vars[k];
    if (v->role != DT_CKPT_PARAM) continue;
    if (nb == 64 || v->numel > (1 << 18) || total + v->numel > (1 << 20)) {
      ok = 0;
      break;
    }
    float *d = malloc(sizeof(float) * (size_t)(v->numel ? v->numel : 1));
    if (!d) {
      ok = 0;
      break;
    }
    bufs[nb++] = d;
    total += v->numel;
    if (dt_params_add(&t, v->method, v->name, v->ndim, v->shape, d, NULL, 0) != DT_OK) ok = 0;
  }
  if (ok && t.n > 0) {
    float *m = NULL, *s = NULL;
    if (f->info.has_optimizer) {
      m = malloc(sizeof(float) * (size_t)(total ? total : 1));
      s = malloc(sizeof(float) * (size_t)(total ? total : 1));
    }
    if (!f->info.has_optimizer || (m && s)) (void)dt_ckpt_read_params(f, &t, m, s);
    free(m);
    free(s);
  }
  dt_params_free(&t);
  for (int i = 0; i < nb; i++) free(bufs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("c.nc", data, size);
  dt_ckpt_file f;
  if (dt_ckpt_open(&f, path, MPI_COMM_SELF) != DT_OK) {
    dt_error_clear();
    return 0;
  }
  const dt_ckpt_info *i = &f.info;
  if (i->step < 0 || i->n_vars < 0 || i->n_opts < 0) abort();
  int64_t bytes = 0;
  for (int k = 0; k < i->n_vars; k++) {
    const dt_ckpt_var *v = &i->vars[k];
    if (v->role < 0 || v->role > 2 || v->ndim < 1 || v->ndim > 4) abort();
    int64_t n = 1;
    for (int d = 0; d < v->ndim; d++) n *= v->shape[d];
    if (n != v->numel) abort();
    const dt_ckpt_var *w = dt_ckpt_find(&f, v->name, v->role);
    if (!w || w->role != v->role) abort(); /* every listed variable is found */
    bytes += v->numel * 4;
  }
  if (bytes != i->data_bytes) abort();
  for (int k = 0; k < i->n_opts; k++)
    if (dt_ckpt_info_opt(i, i->opts[k].name) == NULL) abort();
  for (int k = 0; k < i->n_counters; k++)
    if (dt_ckpt_info_counters(i, i->counters[k].method) == NULL) abort();
  if (i->data_bytes <= (16 << 20)) { /* the bytes are in the file: bounded */
    if (dt_ckpt_verify(&f) == DT_OK) restore(&f);
  }
  dt_ckpt_close(&f);
  dt_error_clear();
  return 0;
}
