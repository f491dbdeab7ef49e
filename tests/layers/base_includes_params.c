/* Forbidden: the base layer uses nothing. Compiled by the layer_base test
 * against the base layer's include path, it must not build. */
#include "params.h"

int dt_layer_probe(void) { return (int)sizeof(dt_params); }
