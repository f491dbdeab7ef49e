/* eval's generated exact match (--data FILE.jsonl of prompt/completion
 * rows): for each row of the tokenized layout, greedy generation from its
 * prompt (the tokens before the first scored one) through the key/value
 * cache must reproduce its completion (the scored tokens that follow, the
 * EOS last): the decoded texts equal (with a tokenizer; the ids without
 * one) and the EOS generated. Unlike the teacher-forced exact match, a
 * completion tokenized otherwise but spelled the same counts. */
#ifndef DT_GENMATCH_H
#define DT_GENMATCH_H

#include <stdint.h>

#include "dataset.h"
#include "dist.h"
#include "model.h"
#include "tokenizer.h"

/* Rows [0, rows) of d, each data-parallel replica a contiguous block; m is
 * replanned (its methods attached and loaded). *match and *scored (rows
 * with a completion) are summed over the replicas. tok may be NULL.
 * Collective over dist's world. */
int dt_generated_match(dt_model *m, dt_dist *dist, const dt_dataset *d, int64_t rows,
                       dt_tokenizer *tok, int64_t *match, int64_t *scored);

#endif
