/* Load a Hugging Face tokenizer.json (jansson) into the tokenizer pipeline
 * (text/tok_internal.h). Every field is checked; a model or component that
 * is not implemented is refused with a message naming the file, the place
 * in the file and the type. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "tok_internal.h"
#include "tokenizer.h"

typedef struct {
  const char *file;
} ctx;

static char *dupmem(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  if (n) memcpy(d, s, n);
  d[n] = 0;
  return d;
}

/* ---- typed field access, errors naming file and place ---- */
static int get_bool(const ctx *c, json_t *o, const char *where, const char *key, int def, int *out) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return DT_OK;
  }
  DT_CHECK(json_is_boolean(v), DT_EINPUT, "%s: %s.%s must be true or false", c->file, where, key);
  *out = json_is_true(v);
  return DT_OK;
}

static int get_int(const ctx *c, json_t *o, const char *where, const char *key, int def, int *out) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return DT_OK;
  }
  DT_CHECK(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < (1 << 30),
           DT_EINPUT, "%s: %s.%s must be a non-negative integer", c->file, where, key);
  *out = (int)json_integer_value(v);
  return DT_OK;
}

/* A string field: *s points into the JSON (valid while it lives); NULL when
 * absent or null and not required. */
static int get_str(const ctx *c, json_t *o, const char *where, const char *key, int required,
                   const char **s, size_t *n) {
  json_t *v = json_object_get(o, key);
  *s = NULL;
  if (n) *n = 0;
  if (!v || json_is_null(v)) {
    DT_CHECK(!required, DT_EINPUT, "%s: %s.%s is missing", c->file, where, key);
    return DT_OK;
  }
  DT_CHECK(json_is_string(v), DT_EINPUT, "%s: %s.%s must be a string", c->file, where, key);
  *s = json_string_value(v);
  if (n) *n = json_string_length(v);
  return DT_OK;
}

static int get_type(const ctx *c, json_t *o, const char *where, const char **type) {
  DT_CHECK(json_is_object(o), DT_EINPUT, "%s: %s must be an object or null", c->file, where);
  const char *t;
  DT_CALL(get_str(c, o, where, "type", 1, &t, NULL));
  *type = t;
  return DT_OK;
}

static int get_array(const ctx *c, json_t *o, const char *where, const char *key, json_t **a) {
  *a = json_object_get(o, key);
  DT_CHECK(*a && json_is_array(*a), DT_EINPUT, "%s: %s.%s must be an array", c->file, where, key);
  return DT_OK;
}

/* One character (Metaspace replacement, Strip content). */
static int get_char(const ctx *c, json_t *o, const char *where, const char *key, uint32_t *cp,
                    char utf8[8], size_t *n) {
  const char *s;
  size_t len;
  DT_CALL(get_str(c, o, where, key, 1, &s, &len));
  size_t i = 0;
  DT_CHECK(len > 0 && len <= 4 && tok_utf8_valid(s, len, NULL), DT_EINPUT,
           "%s: %s.%s must be one character, got '%s'", c->file, where, key, s);
  uint32_t ch = tok_utf8_next(s, &i);
  DT_CHECK(i == len, DT_EINPUT, "%s: %s.%s must be one character, got '%s'", c->file, where, key, s);
  if (cp) *cp = ch;
  if (utf8) {
    memcpy(utf8, s, len);
    utf8[len] = 0;
    *n = len;
  }
  return DT_OK;
}

/* {"String": s} or {"Regex": r} */
static int get_pattern(const ctx *c, json_t *o, const char *where, tok_regex **re) {
  json_t *p = json_object_get(o, "pattern");
  DT_CHECK(p && json_is_object(p), DT_EINPUT,
           "%s: %s.pattern must be {\"String\": ...} or {\"Regex\": ...}", c->file, where);
  json_t *s = json_object_get(p, "String"), *r = json_object_get(p, "Regex");
  json_t *v = s ? s : r;
  DT_CHECK(v && json_is_string(v), DT_EINPUT,
           "%s: %s.pattern must be {\"String\": ...} or {\"Regex\": ...}", c->file, where);
  char what[512];
  snprintf(what, sizeof what, "%s: %s.pattern", c->file, where);
  return tok_regex_compile(re, json_string_value(v), json_string_length(v), s != NULL, what);
}

static int get_prepend_scheme(const ctx *c, json_t *o, const char *where, tok_prepend_scheme *ps) {
  const char *s;
  DT_CALL(get_str(c, o, where, "prepend_scheme", 0, &s, NULL));
  *ps = TOK_PREPEND_ALWAYS;
  if (s) {
    if (!strcmp(s, "first")) *ps = TOK_PREPEND_FIRST;
    else if (!strcmp(s, "never")) *ps = TOK_PREPEND_NEVER;
    else DT_CHECK(!strcmp(s, "always"), DT_EINPUT,
                  "%s: %s.prepend_scheme must be first, always or never, got '%s'", c->file, where, s);
  }
  json_t *aps = json_object_get(o, "add_prefix_space");
  if (aps && json_is_false(aps)) {
    DT_CHECK(!s || *ps == TOK_PREPEND_NEVER, DT_EINPUT,
             "%s: %s: add_prefix_space false does not match prepend_scheme '%s'", c->file, where, s);
    *ps = TOK_PREPEND_NEVER;
  }
  return DT_OK;
}

/* ---- normalizers ---- */
static int parse_normalizer(const ctx *c, json_t *o, const char *where, tok_normalizer *nz) {
  const char *type;
  DT_CALL(get_type(c, o, where, &type));
  static const struct { const char *name; tok_norm_type t; } simple[] = {
      {"NFC", TOK_NORM_NFC}, {"NFD", TOK_NORM_NFD}, {"NFKC", TOK_NORM_NFKC},
      {"NFKD", TOK_NORM_NFKD}, {"Lowercase", TOK_NORM_LOWERCASE}};
  for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
    if (!strcmp(type, simple[i].name)) {
      nz->type = simple[i].t;
      return DT_OK;
    }
  const char *s;
  size_t n;
  if (!strcmp(type, "Prepend")) {
    nz->type = TOK_NORM_PREPEND;
    DT_CALL(get_str(c, o, where, "prepend", 1, &s, &n));
    nz->text = dupmem(s, n);
    nz->text_n = n;
    DT_CHECK(nz->text, DT_ENOMEM, "out of memory");
    return DT_OK;
  }
  if (!strcmp(type, "Replace")) {
    nz->type = TOK_NORM_REPLACE;
    DT_CALL(get_str(c, o, where, "content", 1, &s, &n));
    nz->text = dupmem(s, n);
    nz->text_n = n;
    DT_CHECK(nz->text, DT_ENOMEM, "out of memory");
    return get_pattern(c, o, where, &nz->re);
  }
  if (!strcmp(type, "Strip")) {
    nz->type = TOK_NORM_STRIP;
    DT_CALL(get_bool(c, o, where, "strip_left", 1, &nz->left));
    return get_bool(c, o, where, "strip_right", 1, &nz->right);
  }
  if (!strcmp(type, "Sequence")) {
    nz->type = TOK_NORM_SEQUENCE;
    json_t *a;
    DT_CALL(get_array(c, o, where, "normalizers", &a));
    nz->items = calloc(json_array_size(a) + 1, sizeof *nz->items);
    DT_CHECK(nz->items, DT_ENOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(a); i++) {
      char w[256];
      snprintf(w, sizeof w, "%s.normalizers[%zu]", where, i);
      nz->n_items = (int)i + 1;
      DT_CALL(parse_normalizer(c, json_array_get(a, i), w, &nz->items[i]));
    }
    return DT_OK;
  }
  DT_ERR(DT_EINPUT,
         "%s: %s type '%s' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
         "Prepend, Replace, Strip, Sequence)", c->file, where, type);
}

/* ---- pre-tokenizers ---- */
static int parse_behavior(const ctx *c, json_t *o, const char *where, tok_split_behavior def,
                          tok_split_behavior *b) {
  const char *s;
  DT_CALL(get_str(c, o, where, "behavior", 0, &s, NULL));
  *b = def;
  if (!s) return DT_OK;
  static const struct { const char *name; tok_split_behavior b; } k[] = {
      {"Removed", TOK_SPLIT_REMOVED}, {"Isolated", TOK_SPLIT_ISOLATED},
      {"MergedWithPrevious", TOK_SPLIT_MERGED_PREV}, {"MergedWithNext", TOK_SPLIT_MERGED_NEXT},
      {"Contiguous", TOK_SPLIT_CONTIGUOUS}};
  for (size_t i = 0; i < sizeof k / sizeof *k; i++)
    if (!strcmp(s, k[i].name)) {
      *b = k[i].b;
      return DT_OK;
    }
  DT_ERR(DT_EINPUT, "%s: %s.behavior '%s' is not one of Removed, Isolated, MergedWithPrevious, "
         "MergedWithNext, Contiguous", c->file, where, s);
}

static int parse_pretok(const ctx *c, json_t *o, const char *where, tok_pretok *pt) {
  const char *type;
  DT_CALL(get_type(c, o, where, &type));
  char what[512];
  snprintf(what, sizeof what, "%s: %s", c->file, where);
  if (!strcmp(type, "Split")) {
    pt->type = TOK_PRE_SPLIT;
    DT_CALL(get_pattern(c, o, where, &pt->re));
    DT_CALL(parse_behavior(c, o, where, TOK_SPLIT_ISOLATED, &pt->behavior));
    DT_CHECK(json_object_get(o, "behavior"), DT_EINPUT, "%s: %s.behavior is missing", c->file, where);
    return get_bool(c, o, where, "invert", 0, &pt->invert);
  }
  if (!strcmp(type, "ByteLevel")) {
    pt->type = TOK_PRE_BYTELEVEL;
    DT_CALL(get_bool(c, o, where, "add_prefix_space", 1, &pt->add_prefix_space));
    DT_CALL(get_bool(c, o, where, "use_regex", 1, &pt->use_regex));
    if (pt->use_regex)
      DT_CALL(tok_regex_compile(&pt->re, TOK_GPT2_PATTERN, strlen(TOK_GPT2_PATTERN), 0, what));
    return DT_OK;
  }
  if (!strcmp(type, "Metaspace")) {
    pt->type = TOK_PRE_METASPACE;
    DT_CALL(get_char(c, o, where, "replacement", NULL, pt->replacement, &pt->replacement_n));
    DT_CALL(get_prepend_scheme(c, o, where, &pt->prepend));
    return get_bool(c, o, where, "split", 1, &pt->split);
  }
  if (!strcmp(type, "Digits")) {
    pt->type = TOK_PRE_DIGITS;
    return get_bool(c, o, where, "individual_digits", 0, &pt->individual_digits);
  }
  if (!strcmp(type, "Punctuation")) {
    pt->type = TOK_PRE_PUNCTUATION;
    return parse_behavior(c, o, where, TOK_SPLIT_ISOLATED, &pt->behavior);
  }
  if (!strcmp(type, "Whitespace")) {
    pt->type = TOK_PRE_WHITESPACE;
    return tok_regex_compile(&pt->re, TOK_WHITESPACE_PATTERN, strlen(TOK_WHITESPACE_PATTERN), 0, what);
  }
  if (!strcmp(type, "WhitespaceSplit")) {
    pt->type = TOK_PRE_WHITESPACE_SPLIT;
    return DT_OK;
  }
  if (!strcmp(type, "Sequence")) {
    pt->type = TOK_PRE_SEQUENCE;
    json_t *a;
    DT_CALL(get_array(c, o, where, "pretokenizers", &a));
    pt->items = calloc(json_array_size(a) + 1, sizeof *pt->items);
    DT_CHECK(pt->items, DT_ENOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(a); i++) {
      char w[256];
      snprintf(w, sizeof w, "%s.pretokenizers[%zu]", where, i);
      pt->n_items = (int)i + 1;
      DT_CALL(parse_pretok(c, json_array_get(a, i), w, &pt->items[i]));
    }
    return DT_OK;
  }
  DT_ERR(DT_EINPUT,
         "%s: %s type '%s' is not supported (supported: Split, ByteLevel, Metaspace, Digits, "
         "Punctuation, Whitespace, WhitespaceSplit, Sequence)", c->file, where, type);
}

/* ---- post-processors ---- */
static int push_id(int32_t **v, int *n, int32_t id) {
  int32_t *p = realloc(*v, (size_t)(*n + 1) * sizeof *p);
  DT_CHECK(p, DT_ENOMEM, "out of memory");
  p[(*n)++] = id;
  *v = p;
  return DT_OK;
}

/* ["<s>", 1] of RobertaProcessing/BertProcessing */
static int pair_id(const ctx *c, json_t *o, const char *where, const char *key, int32_t *id) {
  json_t *v = json_object_get(o, key);
  DT_CHECK(v && json_is_array(v) && json_array_size(v) == 2 &&
               json_is_integer(json_array_get(v, 1)) &&
               json_integer_value(json_array_get(v, 1)) >= 0 &&
               json_integer_value(json_array_get(v, 1)) < (1 << 30),
           DT_EINPUT, "%s: %s.%s must be [token, id]", c->file, where, key);
  *id = (int32_t)json_integer_value(json_array_get(v, 1));
  return DT_OK;
}

static int parse_post(const ctx *c, json_t *o, const char *where, tok_post *pp) {
  const char *type;
  DT_CALL(get_type(c, o, where, &type));
  if (!strcmp(type, "ByteLevel")) {
    pp->type = TOK_POST_BYTELEVEL;
    return DT_OK;
  }
  if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
    pp->type = TOK_POST_TEMPLATE;
    int32_t cls, sep;
    DT_CALL(pair_id(c, o, where, "cls", &cls));
    DT_CALL(pair_id(c, o, where, "sep", &sep));
    DT_CALL(push_id(&pp->before, &pp->n_before, cls));
    return push_id(&pp->after, &pp->n_after, sep);
  }
  if (!strcmp(type, "TemplateProcessing")) {
    pp->type = TOK_POST_TEMPLATE;
    json_t *single, *special = json_object_get(o, "special_tokens");
    DT_CALL(get_array(c, o, where, "single", &single));
    DT_CHECK(special && json_is_object(special), DT_EINPUT,
             "%s: %s.special_tokens must be an object", c->file, where);
    int seen_a = 0;
    for (size_t i = 0; i < json_array_size(single); i++) {
      json_t *it = json_array_get(single, i);
      json_t *st = json_object_get(it, "SpecialToken"), *sq = json_object_get(it, "Sequence");
      if (sq) {
        json_t *id = json_object_get(sq, "id");
        DT_CHECK(!seen_a && id && json_is_string(id) && !strcmp(json_string_value(id), "A"),
                 DT_EINPUT, "%s: %s.single[%zu]: a single-sequence template holds sequence A once",
                 c->file, where, i);
        seen_a = 1;
        continue;
      }
      json_t *name = st ? json_object_get(st, "id") : NULL;
      DT_CHECK(name && json_is_string(name), DT_EINPUT,
               "%s: %s.single[%zu] must be {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}",
               c->file, where, i);
      json_t *def = json_object_get(special, json_string_value(name));
      json_t *ids = def ? json_object_get(def, "ids") : NULL;
      DT_CHECK(ids && json_is_array(ids), DT_EINPUT,
               "%s: %s.special_tokens has no ids for '%s'", c->file, where, json_string_value(name));
      for (size_t k = 0; k < json_array_size(ids); k++) {
        json_t *v = json_array_get(ids, k);
        DT_CHECK(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < (1 << 30),
                 DT_EINPUT, "%s: %s.special_tokens['%s'].ids holds a bad id", c->file, where,
                 json_string_value(name));
        if (seen_a) DT_CALL(push_id(&pp->after, &pp->n_after, (int32_t)json_integer_value(v)));
        else DT_CALL(push_id(&pp->before, &pp->n_before, (int32_t)json_integer_value(v)));
      }
    }
    DT_CHECK(seen_a, DT_EINPUT, "%s: %s.single has no sequence A", c->file, where);
    return DT_OK;
  }
  if (!strcmp(type, "Sequence")) {
    pp->type = TOK_POST_SEQUENCE;
    json_t *a;
    DT_CALL(get_array(c, o, where, "processors", &a));
    pp->items = calloc(json_array_size(a) + 1, sizeof *pp->items);
    DT_CHECK(pp->items, DT_ENOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(a); i++) {
      char w[256];
      snprintf(w, sizeof w, "%s.processors[%zu]", where, i);
      pp->n_items = (int)i + 1;
      DT_CALL(parse_post(c, json_array_get(a, i), w, &pp->items[i]));
    }
    return DT_OK;
  }
  DT_ERR(DT_EINPUT,
         "%s: %s type '%s' is not supported (supported: TemplateProcessing, ByteLevel, "
         "RobertaProcessing, BertProcessing, Sequence)", c->file, where, type);
}

/* ---- decoders ---- */
static int parse_decoder(const ctx *c, json_t *o, const char *where, tok_decoder *d) {
  const char *type;
  DT_CALL(get_type(c, o, where, &type));
  if (!strcmp(type, "ByteLevel")) {
    d->type = TOK_DEC_BYTELEVEL;
    return DT_OK;
  }
  if (!strcmp(type, "ByteFallback")) {
    d->type = TOK_DEC_BYTEFALLBACK;
    return DT_OK;
  }
  if (!strcmp(type, "Fuse")) {
    d->type = TOK_DEC_FUSE;
    return DT_OK;
  }
  if (!strcmp(type, "Metaspace")) {
    d->type = TOK_DEC_METASPACE;
    DT_CALL(get_char(c, o, where, "replacement", &d->ch, NULL, NULL));
    return get_prepend_scheme(c, o, where, &d->prepend);
  }
  if (!strcmp(type, "Replace")) {
    d->type = TOK_DEC_REPLACE;
    const char *s;
    size_t n;
    DT_CALL(get_str(c, o, where, "content", 1, &s, &n));
    d->content = dupmem(s, n);
    d->content_n = n;
    DT_CHECK(d->content, DT_ENOMEM, "out of memory");
    return get_pattern(c, o, where, &d->re);
  }
  if (!strcmp(type, "Strip")) {
    d->type = TOK_DEC_STRIP;
    DT_CALL(get_char(c, o, where, "content", &d->ch, NULL, NULL));
    DT_CALL(get_int(c, o, where, "start", 0, &d->start));
    return get_int(c, o, where, "stop", 0, &d->stop);
  }
  if (!strcmp(type, "Sequence")) {
    d->type = TOK_DEC_SEQUENCE;
    json_t *a;
    DT_CALL(get_array(c, o, where, "decoders", &a));
    d->items = calloc(json_array_size(a) + 1, sizeof *d->items);
    DT_CHECK(d->items, DT_ENOMEM, "out of memory");
    for (size_t i = 0; i < json_array_size(a); i++) {
      char w[256];
      snprintf(w, sizeof w, "%s.decoders[%zu]", where, i);
      d->n_items = (int)i + 1;
      DT_CALL(parse_decoder(c, json_array_get(a, i), w, &d->items[i]));
    }
    return DT_OK;
  }
  DT_ERR(DT_EINPUT,
         "%s: %s type '%s' is not supported (supported: ByteLevel, Metaspace, Replace, "
         "ByteFallback, Fuse, Strip, Sequence)", c->file, where, type);
}

/* ---- the model ---- */
static int parse_model(const ctx *c, json_t *o, tok_bpe **model) {
  DT_CHECK(o && json_is_object(o), DT_EINPUT, "%s: model is missing", c->file);
  json_t *jt = json_object_get(o, "type");
  const char *type = jt && json_is_string(jt) ? json_string_value(jt) : NULL;
  if (!type && json_object_get(o, "merges")) type = "BPE";
  DT_CHECK(type, DT_EINPUT, "%s: model.type is missing", c->file);
  DT_CHECK(!strcmp(type, "BPE"), DT_EINPUT,
           "%s: model type '%s' is not supported (supported: BPE)", c->file, type);
  json_t *dropout = json_object_get(o, "dropout");
  DT_CHECK(!dropout || json_is_null(dropout) || (json_is_number(dropout) && json_number_value(dropout) == 0),
           DT_EINPUT, "%s: model.dropout is set: BPE dropout (random merges) is not supported", c->file);
  tok_bpe_config cfg = {0};
  DT_CALL(get_bool(c, o, "model", "byte_fallback", 0, &cfg.byte_fallback));
  DT_CALL(get_bool(c, o, "model", "fuse_unk", 0, &cfg.fuse_unk));
  DT_CALL(get_bool(c, o, "model", "ignore_merges", 0, &cfg.ignore_merges));
  DT_CALL(get_str(c, o, "model", "unk_token", 0, &cfg.unk_token, NULL));
  DT_CALL(get_str(c, o, "model", "continuing_subword_prefix", 0, &cfg.continuing_subword_prefix, NULL));
  DT_CALL(get_str(c, o, "model", "end_of_word_suffix", 0, &cfg.end_of_word_suffix, NULL));
  json_t *vocab = json_object_get(o, "vocab"), *merges = json_object_get(o, "merges");
  DT_CHECK(vocab && json_is_object(vocab), DT_EINPUT, "%s: model.vocab must be an object", c->file);
  DT_CHECK(merges && json_is_array(merges), DT_EINPUT, "%s: model.merges must be an array", c->file);
  DT_CALL(tok_bpe_create(model, &cfg, json_object_size(vocab)));
  const char *key;
  json_t *v;
  void *iter = json_object_iter(vocab);
  while (iter) {
    key = json_object_iter_key(iter);
    v = json_object_iter_value(iter);
    size_t klen = json_object_iter_key_len(iter);
    DT_CHECK(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < (1 << 30),
             DT_EINPUT, "%s: model.vocab['%.*s'] must be an id (an integer in [0, 2^30))", c->file,
             (int)(klen > 64 ? 64 : klen), key);
    DT_CALL(tok_bpe_add_vocab(*model, key, klen, (int32_t)json_integer_value(v)));
    iter = json_object_iter_next(vocab, iter);
  }
  size_t i;
  json_t *m;
  json_array_foreach(merges, i, m) {
    if (json_is_string(m)) {
      const char *s = json_string_value(m);
      size_t n = json_string_length(m);
      const char *sp = memchr(s, ' ', n);
      DT_CHECK(sp && !memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)), DT_EINPUT,
               "%s: model.merges[%zu] '%.*s' must be two tokens separated by one space", c->file,
               i, (int)(n > 64 ? 64 : n), s);
      DT_CALL(tok_bpe_add_merge(*model, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), c->file));
    } else {
      json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
      DT_CHECK(json_is_array(m) && json_array_size(m) == 2 && json_is_string(a) && json_is_string(b),
               DT_EINPUT, "%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", c->file, i);
      DT_CALL(tok_bpe_add_merge(*model, json_string_value(a), json_string_length(a),
                                json_string_value(b), json_string_length(b), c->file));
    }
  }
  return tok_bpe_finish(*model, c->file);
}

static int parse_added(const ctx *c, json_t *root, dt_tokenizer *t) {
  json_t *a = json_object_get(root, "added_tokens");
  if (!a || json_is_null(a)) return DT_OK;
  DT_CHECK(json_is_array(a), DT_EINPUT, "%s: added_tokens must be an array", c->file);
  t->added.t = calloc(json_array_size(a) + 1, sizeof *t->added.t);
  DT_CHECK(t->added.t, DT_ENOMEM, "out of memory");
  size_t i;
  json_t *o;
  json_array_foreach(a, i, o) {
    char w[64];
    snprintf(w, sizeof w, "added_tokens[%zu]", i);
    DT_CHECK(json_is_object(o), DT_EINPUT, "%s: %s must be an object", c->file, w);
    tok_added_token *tk = &t->added.t[i];
    t->added.n = (int)i + 1;
    const char *s;
    size_t n;
    int id;
    DT_CALL(get_str(c, o, w, "content", 1, &s, &n));
    DT_CHECK(n > 0, DT_EINPUT, "%s: %s.content is empty", c->file, w);
    json_t *jid = json_object_get(o, "id");
    DT_CHECK(jid && json_is_integer(jid), DT_EINPUT, "%s: %s.id must be an integer", c->file, w);
    DT_CALL(get_int(c, o, w, "id", 0, &id));
    tk->content = dupmem(s, n);
    DT_CHECK(tk->content, DT_ENOMEM, "out of memory");
    tk->content_n = n;
    tk->pattern = tk->content;
    tk->pattern_n = n;
    tk->id = id;
    DT_CALL(get_bool(c, o, w, "special", 0, &tk->special));
    DT_CALL(get_bool(c, o, w, "lstrip", 0, &tk->lstrip));
    DT_CALL(get_bool(c, o, w, "rstrip", 0, &tk->rstrip));
    DT_CALL(get_bool(c, o, w, "single_word", 0, &tk->single_word));
    DT_CALL(get_bool(c, o, w, "normalized", !tk->special, &tk->normalized));
    if (tk->normalized && t->normalizer) { /* matched in its normalized form */
      tok_buf b = {0}, sc = {0};
      int rc = tok_buf_append(&b, s, n);
      if (rc == DT_OK) rc = tok_normalize(t->normalizer, &b, &sc);
      tok_buf_free(&sc);
      if (rc != DT_OK) {
        tok_buf_free(&b);
        return dt_error_trace(rc, __FILE__, __LINE__, __func__);
      }
      tk->pattern = b.s ? b.s : dupmem("", 0);
      tk->pattern_n = b.n;
    }
  }
  return tok_added_prepare(&t->added);
}

static int parse_root(const ctx *c, json_t *root, dt_tokenizer *t) {
  DT_CHECK(json_is_object(root), DT_EINPUT, "%s: not a tokenizer.json (the top level is not an object)",
           c->file);
  json_t *tr = json_object_get(root, "truncation"), *pad = json_object_get(root, "padding");
  DT_CHECK(!tr || json_is_null(tr), DT_EINPUT,
           "%s: truncation is set: truncation inside the tokenizer is not supported", c->file);
  DT_CHECK(!pad || json_is_null(pad), DT_EINPUT,
           "%s: padding is set: padding inside the tokenizer is not supported", c->file);
  json_t *o;
  if ((o = json_object_get(root, "normalizer")) && !json_is_null(o)) {
    t->normalizer = calloc(1, sizeof *t->normalizer);
    DT_CHECK(t->normalizer, DT_ENOMEM, "out of memory");
    DT_CALL(parse_normalizer(c, o, "normalizer", t->normalizer));
  }
  if ((o = json_object_get(root, "pre_tokenizer")) && !json_is_null(o)) {
    t->pretok = calloc(1, sizeof *t->pretok);
    DT_CHECK(t->pretok, DT_ENOMEM, "out of memory");
    DT_CALL(parse_pretok(c, o, "pre_tokenizer", t->pretok));
  }
  if ((o = json_object_get(root, "post_processor")) && !json_is_null(o)) {
    t->post = calloc(1, sizeof *t->post);
    DT_CHECK(t->post, DT_ENOMEM, "out of memory");
    DT_CALL(parse_post(c, o, "post_processor", t->post));
  }
  if ((o = json_object_get(root, "decoder")) && !json_is_null(o)) {
    t->decoder = calloc(1, sizeof *t->decoder);
    DT_CHECK(t->decoder, DT_ENOMEM, "out of memory");
    DT_CALL(parse_decoder(c, o, "decoder", t->decoder));
  }
  DT_CALL(parse_model(c, json_object_get(root, "model"), &t->model));
  return parse_added(c, root, t);
}

int dt_tokenizer_load(dt_tokenizer **out, const char *path) {
  *out = NULL;
  struct stat st;
  DT_CHECK(stat(path, &st) == 0, DT_EINPUT, "tokenizer '%s' does not exist", path);
  size_t len = strlen(path);
  char *file = malloc(len + 32);
  DT_CHECK(file, DT_ENOMEM, "out of memory");
  if (S_ISDIR(st.st_mode)) {
    snprintf(file, len + 32, "%s/tokenizer.json", path);
    if (stat(file, &st) != 0) {
      int rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                            "model folder '%s' has no tokenizer.json", path);
      free(file);
      return rc;
    }
  } else {
    memcpy(file, path, len + 1);
  }
  json_error_t jerr;
  json_t *root = json_load_file(file, JSON_ALLOW_NUL, &jerr);
  if (!root) {
    int rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                          "%s: not valid JSON: %s (line %d, column %d)", file, jerr.text,
                          jerr.line, jerr.column);
    free(file);
    return rc;
  }
  dt_tokenizer *t = calloc(1, sizeof *t);
  int rc = t ? DT_OK : dt_error_set(DT_ENOMEM, __FILE__, __LINE__, __func__, "out of memory");
  if (rc == DT_OK) {
    t->path = file;
    file = NULL;
    ctx c = {t->path};
    rc = parse_root(&c, root, t);
  }
  json_decref(root);
  free(file);
  if (rc != DT_OK) {
    dt_tokenizer_free(&t);
    return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  *out = t;
  return DT_OK;
}
