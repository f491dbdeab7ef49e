/* Forbidden: the tokenizer (text/) is beside mpi/, not below it (io/ uses
 * it privately). Compiled by the layer_sideways test against the mpi
 * layer's include path, it must not build. */
#include "tokenizer.h"

int dt_layer_probe(void) { return dt_tokenizer_vocab_size(0); }
