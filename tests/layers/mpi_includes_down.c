/* Allowed: mpi/ may use io/ and base/ (the control of the layer_* tests:
 * the same build command succeeds for an include that looks down). */
#include "error.h"
#include "hf_config.h"
#include "shard.h"

int dt_layer_probe(void) { return (int)sizeof(dt_shard) + DT_OK; }
