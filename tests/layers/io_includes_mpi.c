/* Forbidden: io/ is below mpi/ (files know nothing of rank layouts).
 * Compiled by the layer_io test against the io layer's include path, it
 * must not build. */
#include "dist.h"

int dt_layer_probe(void) { return (int)sizeof(dt_dist); }
