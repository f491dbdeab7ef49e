#include "pxgemm.h"

#include <mpi.h>
#include <string.h>

#include "error.h"
#include "shard.h"

void psgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,
             const float *alpha, const float *a, const int *ia, const int *ja,
             const int *desca, const float *b, const int *ib, const int *jb,
             const int *descb, const float *beta, float *c, const int *ic, const int *jc,
             const int *descc);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld,
               int *info);
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc,
            const int *nprocs);

/* The parts of a site: descriptor id and local column (row) offset. */
typedef struct {
  int which, off;
} part;

static int site_parts(const dt_shard *sh, const dt_config *c, int site, part *p) {
  const int ql = sh->n_head_l * c->head_dim, kvl = sh->n_kv_l * c->head_dim;
  switch (site) {
    case DT_SITE_QKV:
      p[0] = (part){0, 0}, p[1] = (part){1, ql}, p[2] = (part){2, ql + kvl};
      return 3;
    case DT_SITE_FC:
      p[0] = (part){3, 0};
      if (dt_cfg_arch(c)->gated_ffn) {
        p[1] = (part){4, sh->ffn_l};
        return 2;
      }
      return 1;
    case DT_SITE_ATTN_OUT: p[0] = (part){5, 0}; return 1;
    default: p[0] = (part){6, 0}; return 1;
  }
}

size_t dt_pxgemm_scratch(const dt_config *c, const dt_shard *sh, int N) {
  const size_t d = (size_t)c->d_model;
  size_t a = (size_t)N * d, b = 0;
  for (int s = 0; s < DT_N_SITES; s++) {
    size_t w = (size_t)dt_shard_site_in_l(sh, c, s) * dt_shard_site_out_l(sh, c, s);
    size_t y = (size_t)N * dt_shard_site_out_l(sh, c, s);
    size_t x = (size_t)N * dt_shard_site_in_l(sh, c, s);
    if (w > b) b = w;
    if (y > a) a = y;
    if (x > a) a = x;
  }
  return a + b + 64;
}

static int lld(int n) { return n > 1 ? n : 1; }

/* C [N, d] column-major on tensor rank 0 -> row-major y on every rank. */
static int finish_replicated(const dt_shard *sh, const dt_dist *D, float *y, const float *C, int N,
                             int d) {
  if (sh->tp_rank == 0)
    for (int i = 0; i < N; i++)
      for (int j = 0; j < d; j++) y[(size_t)i * d + j] = C[(size_t)j * N + i];
  DT_CHECK(MPI_Bcast(y, N * d, MPI_FLOAT, 0, D->tp) == MPI_SUCCESS, DT_EMPI,
           "broadcast of a PxGEMM product failed");
  return DT_OK;
}

int dt_pxgemm_forward(const dt_config *c, const dt_shard *sh, const dt_dist *D, int site,
                      float *y, const float *x, const float *W, int N, float *scratch) {
  const int d = c->d_model, zero = 0, one = 1, r = sh->tp_rank;
  const float f1 = 1.0f, f0 = 0.0f;
  part p[3];
  const int np = site_parts(sh, c, site, p);
  int info = 0;
  if (!dt_site_row_parallel(site)) {
    /* Y_part [N, out_part] = X [N, d] W_part^T: X as X^T [d, N] on process
     * column 0 of the 1 x T grid, W^T [d, out_part] in column blocks */
    const int out_l = dt_shard_site_out_l(sh, c, site);
    int dx[9];
    descinit_(dx, &d, &N, &d, &N, &zero, &zero, &D->blacs_ctx, &d, &info);
    DT_CHECK(info == 0, DT_EINTERNAL, "descinit of the PxGEMM input: info %d", info);
    for (int k = 0; k < np; k++) {
      int dw[9], dc[9];
      DT_CHECK(dt_shard_descriptor(sh, c, p[k].which, D->blacs_ctx, D->blacs_ctx_col, dw) == 0,
               DT_EINTERNAL, "shard descriptor %d", p[k].which);
      const int n = dw[3], nb = dw[5];
      const int Tn = D->tp_size, nl = numroc_(&n, &nb, &r, &zero, &Tn);
      descinit_(dc, &N, &n, &N, &nb, &zero, &zero, &D->blacs_ctx, &N, &info);
      DT_CHECK(info == 0, DT_EINTERNAL, "descinit of the PxGEMM output: info %d", info);
      psgemm_("T", "N", &N, &n, &d, &f1, x, &one, &one, dx, W + (size_t)p[k].off * d,
              &one, &one, dw, &f0, scratch, &one, &one, dc);
      for (int i = 0; i < N; i++)
        for (int j = 0; j < nl; j++) y[(size_t)i * out_l + p[k].off + j] = scratch[(size_t)j * N + i];
    }
    return DT_OK;
  }
  /* Y [N, d] = A [N, in] W^T: A^T [in, N] and W^T [in, d] in row blocks of
   * the T x 1 grid; the product lands on process row 0, then broadcast */
  const int in_l = dt_shard_site_in_l(sh, c, site);
  int dw[9], da[9], dc[9];
  DT_CHECK(dt_shard_descriptor(sh, c, p[0].which, D->blacs_ctx, D->blacs_ctx_col, dw) == 0,
           DT_EINTERNAL, "shard descriptor %d", p[0].which);
  const int in = dw[2], mb = dw[4];
  descinit_(da, &in, &N, &mb, &N, &zero, &zero, &D->blacs_ctx_col, &(int){lld(in_l)}, &info);
  DT_CHECK(info == 0, DT_EINTERNAL, "descinit of the PxGEMM input: info %d", info);
  descinit_(dc, &N, &d, &N, &d, &zero, &zero, &D->blacs_ctx_col, &(int){r == 0 ? N : 1}, &info);
  DT_CHECK(info == 0, DT_EINTERNAL, "descinit of the PxGEMM output: info %d", info);
  psgemm_("T", "N", &N, &d, &in, &f1, x, &one, &one, da, W, &one, &one, dw, &f0, scratch,
          &one, &one, dc);
  return finish_replicated(sh, D, y, scratch, N, d);
}

int dt_pxgemm_backward_input(const dt_config *c, const dt_shard *sh, const dt_dist *D,
                             int site, float *dx, const float *dy, const float *W, int N,
                             float *scratch) {
  const int d = c->d_model, zero = 0, one = 1, r = sh->tp_rank;
  const float f1 = 1.0f, f0 = 0.0f;
  part p[3];
  const int np = site_parts(sh, c, site, p);
  int info = 0;
  if (!dt_site_row_parallel(site)) {
    /* dX [N, d] = sum_part dY_part W_part: dY_part^T [out_part, N] and
     * W_part [out_part, d] (a transposed copy of the local rows) in row
     * blocks of the T x 1 grid; the sum lands on process row 0 */
    const int out_l = dt_shard_site_out_l(sh, c, site);
    float *C = scratch, *Wt = scratch + (size_t)N * d;
    int dc[9];
    descinit_(dc, &N, &d, &N, &d, &zero, &zero, &D->blacs_ctx_col, &(int){r == 0 ? N : 1}, &info);
    for (int k = 0; k < np; k++) {
      int dw[9], dg[9], dwt[9];
      DT_CHECK(dt_shard_descriptor(sh, c, p[k].which, D->blacs_ctx, D->blacs_ctx_col, dw) == 0,
               DT_EINTERNAL, "shard descriptor %d", p[k].which);
      const int n = dw[3], nb = dw[5], Tn = D->tp_size;
      const int nl = numroc_(&n, &nb, &r, &zero, &Tn);
      const float *Wl = W + (size_t)p[k].off * d; /* row-major [nl, d] */
      for (int i = 0; i < nl; i++)
        for (int j = 0; j < d; j++) Wt[(size_t)j * nl + i] = Wl[(size_t)i * d + j];
      descinit_(dg, &n, &N, &nb, &N, &zero, &zero, &D->blacs_ctx_col, &(int){lld(out_l)}, &info);
      descinit_(dwt, &n, &d, &nb, &d, &zero, &zero, &D->blacs_ctx_col, &(int){lld(nl)}, &info);
      const float beta = k == 0 ? f0 : f1;
      psgemm_("T", "N", &N, &d, &n, &f1, dy + p[k].off, &one, &one, dg, Wt, &one, &one, dwt,
              &beta, C, &one, &one, dc);
    }
    return finish_replicated(sh, D, dx, C, N, d);
  }
  /* dA^T [in, N] = W^T [in, d] dY^T [d, N]: lands in row blocks, i.e. each
   * rank's dA [N, in_l] row-major */
  const int in_l = dt_shard_site_in_l(sh, c, site);
  int dw[9], dg[9], dc[9];
  DT_CHECK(dt_shard_descriptor(sh, c, p[0].which, D->blacs_ctx, D->blacs_ctx_col, dw) == 0,
           DT_EINTERNAL, "shard descriptor %d", p[0].which);
  const int in = dw[2], mb = dw[4];
  descinit_(dg, &d, &N, &d, &N, &zero, &zero, &D->blacs_ctx_col, &(int){r == 0 ? d : 1}, &info);
  descinit_(dc, &in, &N, &mb, &N, &zero, &zero, &D->blacs_ctx_col, &(int){lld(in_l)}, &info);
  psgemm_("N", "N", &in, &N, &d, &f1, W, &one, &one, dw, dy, &one, &one, dg, &f0, dx,
          &one, &one, dc);
  return DT_OK;
}
