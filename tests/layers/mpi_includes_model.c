/* Forbidden: mpi/ knows nothing of the model. Compiled by the layer_up
 * test against the mpi layer's include path (dt_mpi), it must not build. */
#include "model.h"

int dt_layer_probe(void) { return (int)sizeof(dt_model); }
