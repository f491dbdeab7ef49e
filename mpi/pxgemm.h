/* The PxGEMM formulation of the tensor-parallel linears: the same products
 * as the default column-then-row scheme (local GEMM + one tensor-group sum),
 * computed by ScaLAPACK's psgemm on the block-cyclic descriptors of
 * mpi/shard.h, which moves the operands itself. Selected with
 * --tp-gemm pxgemm; tested equal to the default, measured against it in
 * docs/performance.md. Collective over the tensor group. `scratch` needs
 * dt_pxgemm_scratch floats. Activations are row-major as in the engine;
 * ScaLAPACK sees their column-major transposes. */
#ifndef DT_PXGEMM_H
#define DT_PXGEMM_H

#include <stddef.h>

#include "dist.h"
#include "shard.h"

/* c: the backbone's config, sh: this rank's shard of it, D: the layout. */
size_t dt_pxgemm_scratch(const dt_config *c, const dt_shard *sh, int N);
/* site output y [N, out_l] from input x: column-parallel sites get their
 * local columns, row-parallel ones the complete sum (no bias added). */
int dt_pxgemm_forward(const dt_config *c, const dt_shard *sh, const dt_dist *D, int site,
                      float *y, const float *x, const float *W, int N, float *scratch);
/* dx [N, in_l] = dy W (complete for column-parallel sites: no further sum). */
int dt_pxgemm_backward_input(const dt_config *c, const dt_shard *sh, const dt_dist *D,
                             int site, float *dx, const float *dy, const float *W, int N,
                             float *scratch);
/* W: the site's local weight [out_l, in_l] (fp32). */

#endif
