/* Pre-tokenizers of tokenizer.json (Split, ByteLevel, Metaspace, Digits,
 * Punctuation, Whitespace, WhitespaceSplit, Sequence): each splits, and some
 * transform, the pieces that no added token has claimed. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tok_internal.h"

/* ---- GPT-2's byte-to-character table ---- */
static int bl_ready;
static char bl_utf8[256][3];
static unsigned char bl_len[256];
static int16_t bl_byte[324]; /* code point (< 324) -> byte, -1 */

static void bytelevel_init(void) {
  if (bl_ready) return;
  for (int i = 0; i < 324; i++) bl_byte[i] = -1;
  int n = 0;
  for (unsigned b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    unsigned cp = printable ? b : 256 + (unsigned)n++;
    bl_byte[cp] = (int16_t)b;
    if (cp < 0x80) {
      bl_utf8[b][0] = (char)cp;
      bl_len[b] = 1;
    } else {
      bl_utf8[b][0] = (char)(0xC0 | (cp >> 6));
      bl_utf8[b][1] = (char)(0x80 | (cp & 0x3F));
      bl_len[b] = 2;
    }
  }
  bl_ready = 1;
}

const char *tok_bytelevel_char(unsigned b, size_t *n) {
  bytelevel_init();
  *n = bl_len[b & 0xFF];
  return bl_utf8[b & 0xFF];
}

int tok_bytelevel_byte(uint32_t cp) {
  bytelevel_init();
  return cp < 324 ? bl_byte[cp] : -1;
}

/* ---- segment producers ---- */
static int regex_segs(tok_pieces *ps, tok_regex *re, const tok_piece *pc, int invert) {
  ps->seg_n = 0;
  size_t pos = 0, prev = 0;
  for (;;) {
    size_t ms, me;
    int found;
    /* the arena does not move while the segments are found */
    DT_CALL(tok_regex_find(re, ps->arena.s + pc->off, pc->len, pos, &ms, &me, &found));
    if (!found) break;
    if (prev != ms) DT_CALL(tok_seg_push(ps, prev, ms, invert));
    DT_CALL(tok_seg_push(ps, ms, me, !invert));
    prev = me;
    pos = me > ms ? me : me + (me < pc->len ? tok_utf8_len((unsigned char)ps->arena.s[pc->off + me]) : 1);
  }
  if (prev != pc->len) DT_CALL(tok_seg_push(ps, prev, pc->len, invert));
  return DT_OK;
}

typedef int (*char_test)(uint32_t cp, const tok_pretok *pt);

static int char_segs(tok_pieces *ps, const tok_piece *pc, char_test test, const tok_pretok *pt) {
  ps->seg_n = 0;
  const char *s = ps->arena.s + pc->off;
  size_t last = 0;
  for (size_t i = 0; i < pc->len;) {
    size_t b = i;
    uint32_t c = tok_utf8_next(s, &i);
    if (test(c, pt)) {
      if (last < b) DT_CALL(tok_seg_push(ps, last, b, 0));
      DT_CALL(tok_seg_push(ps, b, i, 1));
      last = i;
    }
  }
  if (last < pc->len) DT_CALL(tok_seg_push(ps, last, pc->len, 0));
  return DT_OK;
}

static int is_numeric(uint32_t c, const tok_pretok *pt) { (void)pt; return tok_is_numeric(c); }
static int is_punct(uint32_t c, const tok_pretok *pt) { (void)pt; return tok_is_punctuation(c); }
static int is_space(uint32_t c, const tok_pretok *pt) { (void)pt; return tok_is_whitespace(c); }
static int is_repl(uint32_t c, const tok_pretok *pt) {
  size_t i = 0;
  return c == tok_utf8_next(pt->replacement, &i);
}

/* ---- one stage over every piece without an id ---- */
static int bytelevel(const tok_pretok *pt, tok_pieces *ps, tok_buf *scratch) {
  if (pt->add_prefix_space || pt->use_regex) {
    for (size_t i = 0; i < ps->n; i++) {
      tok_piece pc = ps->p[i];
      if (pc.id >= 0) {
        DT_CALL(tok_pieces_push(ps, pc.off, pc.len, pc.id, pc.at_origin));
        continue;
      }
      if (pt->add_prefix_space && ps->arena.s[pc.off] != ' ') {
        scratch->n = 0;
        DT_CALL(tok_buf_append(scratch, " ", 1));
        DT_CALL(tok_buf_append(scratch, ps->arena.s + pc.off, pc.len));
        DT_CALL(tok_pieces_store(ps, scratch->s, scratch->n, &pc.off));
        pc.len = scratch->n;
        ps->p[i] = pc;
      }
      if (pt->use_regex) {
        DT_CALL(regex_segs(ps, pt->re, &pc, 0));
        DT_CALL(tok_pieces_split(ps, i, TOK_SPLIT_ISOLATED));
      } else {
        DT_CALL(tok_pieces_push(ps, pc.off, pc.len, -1, pc.at_origin));
      }
    }
    tok_pieces_commit(ps);
  }
  /* every byte becomes its character */
  bytelevel_init();
  for (size_t i = 0; i < ps->n; i++) {
    tok_piece *pc = &ps->p[i];
    if (pc->id >= 0) continue;
    scratch->n = 0;
    DT_CALL(tok_buf_reserve(scratch, 2 * pc->len + 1));
    const unsigned char *s = (const unsigned char *)ps->arena.s + pc->off;
    for (size_t k = 0; k < pc->len; k++) {
      memcpy(scratch->s + scratch->n, bl_utf8[s[k]], bl_len[s[k]]);
      scratch->n += bl_len[s[k]];
    }
    DT_CALL(tok_pieces_store(ps, scratch->s, scratch->n, &pc->off));
    pc->len = scratch->n;
  }
  return DT_OK;
}

static int metaspace(const tok_pretok *pt, tok_pieces *ps, tok_buf *scratch) {
  for (size_t i = 0; i < ps->n; i++) {
    tok_piece pc = ps->p[i];
    if (pc.id >= 0) {
      DT_CALL(tok_pieces_push(ps, pc.off, pc.len, pc.id, pc.at_origin));
      continue;
    }
    scratch->n = 0;
    const char *s = ps->arena.s + pc.off;
    int starts = pc.len >= pt->replacement_n && !memcmp(s, pt->replacement, pt->replacement_n);
    /* after ' ' -> replacement, the piece starts with it when it started with ' ' */
    starts = starts || s[0] == ' ';
    int prepend = pt->prepend == TOK_PREPEND_ALWAYS ? !starts
                  : pt->prepend == TOK_PREPEND_FIRST ? !starts && pc.at_origin
                                                     : 0;
    if (prepend) DT_CALL(tok_buf_append(scratch, pt->replacement, pt->replacement_n));
    for (size_t k = 0; k < pc.len; k++) {
      if (s[k] == ' ') DT_CALL(tok_buf_append(scratch, pt->replacement, pt->replacement_n));
      else DT_CALL(tok_buf_append(scratch, s + k, 1));
    }
    DT_CALL(tok_pieces_store(ps, scratch->s, scratch->n, &pc.off));
    pc.len = scratch->n;
    ps->p[i] = pc;
    if (pt->split) {
      DT_CALL(char_segs(ps, &pc, is_repl, pt));
      DT_CALL(tok_pieces_split(ps, i, TOK_SPLIT_MERGED_NEXT));
    } else {
      DT_CALL(tok_pieces_push(ps, pc.off, pc.len, -1, pc.at_origin));
    }
  }
  tok_pieces_commit(ps);
  return DT_OK;
}

int tok_pretokenize(const tok_pretok *pt, tok_pieces *ps, tok_buf *scratch) {
  if (pt->type == TOK_PRE_SEQUENCE) {
    for (int i = 0; i < pt->n_items; i++) DT_CALL(tok_pretokenize(&pt->items[i], ps, scratch));
    return DT_OK;
  }
  if (pt->type == TOK_PRE_BYTELEVEL) return bytelevel(pt, ps, scratch);
  if (pt->type == TOK_PRE_METASPACE) return metaspace(pt, ps, scratch);
  for (size_t i = 0; i < ps->n; i++) {
    tok_piece pc = ps->p[i];
    if (pc.id >= 0) {
      DT_CALL(tok_pieces_push(ps, pc.off, pc.len, pc.id, pc.at_origin));
      continue;
    }
    tok_split_behavior beh;
    switch (pt->type) {
      case TOK_PRE_SPLIT:
        DT_CALL(regex_segs(ps, pt->re, &pc, pt->invert));
        beh = pt->behavior;
        break;
      case TOK_PRE_WHITESPACE: /* keep the matches, drop the rest */
        DT_CALL(regex_segs(ps, pt->re, &pc, 1));
        beh = TOK_SPLIT_REMOVED;
        break;
      case TOK_PRE_WHITESPACE_SPLIT:
        DT_CALL(char_segs(ps, &pc, is_space, pt));
        beh = TOK_SPLIT_REMOVED;
        break;
      case TOK_PRE_DIGITS:
        DT_CALL(char_segs(ps, &pc, is_numeric, pt));
        beh = pt->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS;
        break;
      case TOK_PRE_PUNCTUATION:
        DT_CALL(char_segs(ps, &pc, is_punct, pt));
        beh = pt->behavior;
        break;
      default:
        DT_ERR(DT_EINTERNAL, "unknown pre-tokenizer type %d", (int)pt->type);
    }
    DT_CALL(tok_pieces_split(ps, i, beh));
  }
  tok_pieces_commit(ps);
  return DT_OK;
}

void tok_pretok_clear(tok_pretok *pt) {
  if (!pt) return;
  tok_regex_free(&pt->re);
  for (int i = 0; i < pt->n_items; i++) tok_pretok_clear(&pt->items[i]);
  free(pt->items);
  memset(pt, 0, sizeof *pt);
}
