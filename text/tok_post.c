/* Post-processors of tokenizer.json for a single sequence:
 * TemplateProcessing (and RobertaProcessing/BertProcessing, which the loader
 * writes as templates), ByteLevel (offsets only: the ids are unchanged) and
 * Sequence. Applied only when special tokens are asked for. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_internal.h"

int tok_post_process(const tok_post *pp, tok_ids *ids) {
  switch (pp->type) {
    case TOK_POST_BYTELEVEL:
      return DT_OK;
    case TOK_POST_SEQUENCE:
      for (int i = 0; i < pp->n_items; i++) DT_CALL(tok_post_process(&pp->items[i], ids));
      return DT_OK;
    case TOK_POST_TEMPLATE: {
      size_t n = ids->n;
      for (int i = 0; i < pp->n_before + pp->n_after; i++) DT_CALL(tok_ids_push(ids, 0));
      memmove(ids->v + pp->n_before, ids->v, n * sizeof *ids->v);
      if (pp->n_before) memcpy(ids->v, pp->before, (size_t)pp->n_before * sizeof *ids->v);
      if (pp->n_after)
        memcpy(ids->v + pp->n_before + n, pp->after, (size_t)pp->n_after * sizeof *ids->v);
      return DT_OK;
    }
  }
  DT_ERR(DT_EINTERNAL, "unknown post-processor type %d", (int)pp->type);
}

void tok_post_clear(tok_post *pp) {
  if (!pp) return;
  free(pp->before);
  free(pp->after);
  for (int i = 0; i < pp->n_items; i++) tok_post_clear(&pp->items[i]);
  free(pp->items);
  memset(pp, 0, sizeof *pp);
}
