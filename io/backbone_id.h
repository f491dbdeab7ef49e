/* The identity of a backbone, stored in every checkpoint and compared on
 * resume and evaluation, so that deltas are never applied to another model.
 *
 *   HF folder   XXH3-64 of config.json, and for every weight file
 *               (model.safetensors, or model.safetensors.index.json and its
 *               shards) its name, size in bytes and XXH3-64 of its content;
 *               the folder's path is recorded but is not part of the
 *               identity (a moved or copied folder is the same backbone).
 *   synthetic   the resolved configuration (family and every size) and the
 *               seed of the generated weights.
 * `id` is the XXH3-64 of the canonical description text (`desc`). Files are
 * hashed by rank 0 and the result is broadcast. */
#ifndef DT_BACKBONE_ID_H
#define DT_BACKBONE_ID_H

#include <mpi.h>
#include <stdint.h>

#include "hf_config.h"

#define DT_BACKBONE_DESC_MAX 4096

typedef struct {
  char kind[16];     /* "hf" or "synthetic" */
  char source[512];  /* folder or spec, as given */
  char id[17];       /* XXH3-64 of desc, 16 hex digits */
  char config_xxh3[17]; /* hf: config.json; synthetic: "" */
  /* hf: "config.json <bytes> <xxh3>\n" then one line per weight file;
   * synthetic: "synthetic <family> layers=... seed=N\n" */
  char desc[DT_BACKBONE_DESC_MAX];
} dt_backbone_id;

/* Identify the backbone of config c (c->source is the folder or the
 * synthetic spec); seed is the seed of synthetic weights. Collective over
 * comm: rank 0 reads and hashes, everyone receives the result. Errors name
 * the file. */
int dt_backbone_identify(dt_backbone_id *b, const dt_config *c, uint64_t seed,
                         MPI_Comm comm);

/* XXH3-64 of a whole file (streamed); *bytes receives its size. */
int dt_file_xxh3(const char *path, uint64_t *hash, uint64_t *bytes);

/* One line saying how two identities differ ("" when they are equal):
 * which file changed (size or content), or the synthetic description. */
void dt_backbone_diff(const dt_backbone_id *want, const dt_backbone_id *have,
                      char *buf, size_t cap);

#endif
