/* SAID: structure-aware intrinsic-dimension tuning (Aghajanyan et al. 2021,
 * after Li et al. 2018). Every targeted 2-D weight of the blocks moves along
 * a random d-dimensional subspace shared by all of them, with one learned
 * scale per tensor:
 *
 *   W_i = W0_i + lam_i * reshape(y_i[:D_i]) / (sqrt(LL_i sum G_i^2) sqrt(D_i/LL_i))
 *   y_i = H(G_i * (H(B_i * pad(theta, LL_i)))[Pi_i])       (fastfood.h)
 *
 * D_i = elements of tensor i, LL_i = 2^ceil(log2 D_i); reshape is onto the
 * HF shape (GPT-2 Conv1D weights are [in,out] there, [out,in] in storage).
 * Trained: theta [d] (init 0, so the model is unchanged at init) and lam
 * [n_tensors] (init 1). The projection (B_i +-1, G_i ~ N(0,1), Pi_i a
 * permutation) comes from the counter-based generator keyed by (seed, i), so
 * every rank derives the same one, or from said.<i>.{B,G,Pi} tensors in a
 * file listed in --init-from.
 *
 * The backbone is changed in place: begin_forward writes W0 + delta into the
 * model's fp32 storage (only when theta or lam changed); the engine then
 * accumulates dW for these tensors in backward, and end_backward maps it
 * back through the transposed chain onto dtheta and dlam.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fastfood.h"
#include "method.h"
#include "modules.h"
#include "rng.h"
#include "safetensors.h"

static const dt_optdef said_opts[] = {
    {"said-dim", DT_OPT_INT, "1000", 1, 1073741824, NULL,
     "intrinsic dimension d (length of theta)"},
    {"said-targets", DT_OPT_STRING, NULL, 0, 0, NULL,
     "comma-separated module names (HF suffixes: c_attn, attn.c_proj, mlp.c_fc, "
     "c_proj, q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; a "
     "full name such as transformer.h.0.attn.c_attn selects one tensor); "
     "default every 2-D weight inside the blocks"},
    {"said-projection", DT_OPT_STRING, NULL, 0, 0, NULL,
     "safetensors file with the Fastfood projection said.<i>.B, said.<i>.G, "
     "said.<i>.Pi (I64) of every projected tensor, instead of generating it from "
     "--seed (a file in --init-from holding said.* tensors is used the same way)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL}};
static const dt_optgroup said_group = {
    "said", "SAID intrinsic-dimension tuning (--method said)", said_opts};

typedef struct {
  dt_tensor_ref ref;
  int64_t D, LL, m;
  int64_t hr, hc;   /* HF shape [hr, hc] */
  float *w, *dw;    /* the tensor's storage and gradient (dw NULL in eval) */
  float *w0;        /* [D] initial weights, storage layout */
  float *B, *G;     /* [m], [LL] */
  int32_t *Pi;      /* [LL] */
  double norm;      /* sqrt(LL sum G^2) sqrt(D / LL) */
  dt_fastfood ff;
} said_unit;

typedef struct {
  int d, n;
  said_unit *u;
  float *arena, *garena; /* theta [d] | lam [n] and their gradients */
  float *last;           /* [d + n] the values the weights were built from */
  int built;
  const dt_params *params; /* to refuse methods that train the same tensors */
  float *y;              /* [max LL] */
  double *h;             /* [2 max m] */
  int64_t n_weights;
  char source[300];      /* where the projection came from */
} said_state;

/* The next item of a comma-separated list being cut by strtok_r (str: the
 * list on the first call, then NULL), without surrounding spaces; empty
 * items are skipped. NULL at the end. */
static char *next_item(char *str, char **save) {
  for (char *t; (t = strtok_r(str, ",", save)) != NULL; str = NULL) {
    while (*t == ' ') t++;
    size_t l = strlen(t);
    while (l && t[l - 1] == ' ') t[--l] = 0;
    if (l) return t;
  }
  return NULL;
}

/* "transformer.h.0.attn.c_attn.weight" -> "transformer.h.0.attn.c_attn" */
static void module_of(char *out, size_t cap, const char *tensor) {
  snprintf(out, cap, "%s", tensor);
  size_t l = strlen(out);
  if (l > 7 && strcmp(out + l - 7, ".weight") == 0) out[l - 7] = 0;
}

/* Pick the targeted matrices (HF named_parameters order). */
static int select_targets(said_state *s, const dt_model *m,
                          const dt_tensor_ref *refs, int nref, const char *targets,
                          int *pick) {
  int n = 0;
  for (int i = 0; i < nref; i++) pick[i] = 0;
  if (!*targets) {
    for (int i = 0; i < nref; i++) n += pick[i] = refs[i].is_matrix;
    s->n = n;
    return DT_OK;
  }
  char buf[DT_OPTVAL_MAX];
  snprintf(buf, sizeof buf, "%s", targets);
  char *save = NULL;
  for (char *t = next_item(buf, &save); t; t = next_item(NULL, &save)) {
    int any = 0;
    for (int i = 0; i < nref; i++) {
      if (!refs[i].is_matrix) continue;
      char mod[160];
      module_of(mod, sizeof mod, refs[i].name);
      if (dt_module_matches(mod, t) || dt_module_matches(refs[i].name, t)) pick[i] = any = 1;
    }
    if (!any) {
      char names[512];
      dt_module_names(&m->bb->cfg, names, sizeof names);
      DT_ERR(DT_EUSAGE,
             "--said-targets: '%s' matches no 2-D weight of this %s model (modules of "
             "each block: %s)",
             t, dt_family_name(&m->bb->cfg), names);
    }
  }
  for (int i = 0; i < nref; i++) n += pick[i];
  s->n = n;
  return DT_OK;
}

/* Fresh projection of tensor i from (seed, i). */
static void generate(said_unit *u, uint64_t seed, int i) {
  const uint64_t kB = dt_rng_key(seed, 0x5a1d0000ull + 3 * (uint64_t)i);
  const uint64_t kG = dt_rng_key(seed, 0x5a1d0000ull + 3 * (uint64_t)i + 1);
  const uint64_t kP = dt_rng_key(seed, 0x5a1d0000ull + 3 * (uint64_t)i + 2);
  for (int64_t j = 0; j < u->m; j++) u->B[j] = (dt_rng_u64(kB, (uint64_t)j) >> 63) ? -1.0f : 1.0f;
  for (int64_t k = 0; k < u->LL; k++) u->G[k] = (float)dt_rng_normal(kG, (uint64_t)k);
  for (int64_t k = 0; k < u->LL; k++) u->Pi[k] = (int32_t)k;
  for (int64_t k = u->LL - 1; k > 0; k--) { /* Fisher-Yates */
    const int64_t r = (int64_t)(dt_rng_u64(kP, (uint64_t)k) % (uint64_t)(k + 1));
    const int32_t t = u->Pi[k];
    u->Pi[k] = u->Pi[r];
    u->Pi[r] = t;
  }
}

/* One said.<i>.<part> tensor: present, 1-D of LL elements, right dtype. */
static int find_part(const dt_st_file *f, int i, const char *part, const said_unit *u,
                     int integer, const dt_st_tensor **out) {
  char nm[64];
  snprintf(nm, sizeof nm, "said.%d.%s", i, part);
  const dt_st_tensor *t = dt_st_find(f, nm);
  DT_CHECK(t, DT_EINPUT,
           "%s: tensor '%s' (projection of %s, [%lld]) is missing; the file holds "
           "said.* tensors, so it must hold B, G and Pi of every projected tensor",
           f->path, nm, u->ref.name, (long long)u->LL);
  DT_CHECK(t->ndim == 1 && t->shape[0] == u->LL, DT_EINPUT,
           "%s: tensor '%s' has %d dims [%lld%s]; the projection of %s (%lld elements) "
           "needs [%lld]",
           f->path, nm, t->ndim, t->ndim ? (long long)t->shape[0] : 0LL,
           t->ndim > 1 ? ",..." : "", u->ref.name, (long long)u->D, (long long)u->LL);
  if (integer)
    DT_CHECK(t->dtype == DT_DTYPE_I64 || t->dtype == DT_DTYPE_I32, DT_EINPUT,
             "%s: tensor '%s' has dtype %s; a permutation needs I64 (or I32)", f->path,
             nm, dt_dtype_name(t->dtype));
  else
    DT_CHECK(t->dtype == DT_DTYPE_F32 || t->dtype == DT_DTYPE_F64 ||
                 t->dtype == DT_DTYPE_F16 || t->dtype == DT_DTYPE_BF16,
             DT_EINPUT, "%s: tensor '%s' has dtype %s; expected a float type", f->path,
             nm, dt_dtype_name(t->dtype));
  *out = t;
  return DT_OK;
}

/* Read the projection of every unit from f (which holds said.* tensors). */
static int import_file(said_state *s, const dt_st_file *f) {
  /* no said.<k>.* beyond the projected tensors */
  for (int k = 0; k < f->n; k++) {
    int idx = -1;
    if (sscanf(f->t[k].name, "said.%d.", &idx) == 1)
      DT_CHECK(idx >= 0 && idx < s->n, DT_EINPUT,
               "%s: tensor '%s' is the projection of tensor %d, but %d tensors are "
               "projected (check --said-targets)",
               f->path, f->t[k].name, idx, s->n);
  }
  int64_t max_ll = 0;
  for (int i = 0; i < s->n; i++) max_ll = s->u[i].LL > max_ll ? s->u[i].LL : max_ll;
  int64_t *tmp = NULL;
  unsigned char *seen = NULL;
  DT_CALL(dt_malloc(&tmp, sizeof(int64_t) * 65536, "said projection import"));
  int rc = dt_calloc(&seen, (size_t)max_ll, "said permutation check");
  for (int i = 0; rc == DT_OK && i < s->n; i++) {
    said_unit *u = &s->u[i];
    const dt_st_tensor *tB, *tG, *tP;
    rc = find_part(f, i, "B", u, 0, &tB);
    if (!rc) rc = find_part(f, i, "G", u, 0, &tG);
    if (!rc) rc = find_part(f, i, "Pi", u, 1, &tP);
    if (!rc) rc = dt_st_read_f32(f, tB, 0, u->m, u->B);
    if (!rc) rc = dt_st_read_f32(f, tG, 0, u->LL, u->G);
    for (int64_t j = 0; !rc && j < u->m; j++)
      if (u->B[j] != 1.0f && u->B[j] != -1.0f)
        rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                          "%s: said.%d.B[%lld] is %g; B must hold +1 or -1", f->path, i,
                          (long long)j, (double)u->B[j]);
    if (!rc) memset(seen, 0, (size_t)u->LL);
    for (int64_t k0 = 0; !rc && k0 < u->LL; k0 += 65536) {
      const int64_t cnt = u->LL - k0 < 65536 ? u->LL - k0 : 65536;
      rc = dt_st_read_i64(f, tP, k0, cnt, tmp);
      for (int64_t k = 0; !rc && k < cnt; k++) {
        const int64_t v = tmp[k];
        if (v < 0 || v >= u->LL || seen[v])
          rc = dt_error_set(DT_EINPUT, __FILE__, __LINE__, __func__,
                            "%s: said.%d.Pi[%lld] = %lld; Pi must be a permutation of "
                            "0..%lld",
                            f->path, i, (long long)(k0 + k), (long long)v,
                            (long long)u->LL - 1);
        else {
          seen[v] = 1;
          u->Pi[k0 + k] = (int32_t)v;
        }
      }
    }
  }
  free(tmp);
  free(seen);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  return DT_OK;
}

/* Import the projection from the one file of the list that holds said.*
 * tensors; *found stays 0 when none does (set on entry when an earlier list
 * gave it: a second source is an error). */
static int import_projection(said_state *s, const char *csv, int *found) {
  char list[DT_OPTVAL_MAX];
  snprintf(list, sizeof list, "%s", csv);
  char *save = NULL;
  for (char *p = next_item(list, &save); p; p = next_item(NULL, &save)) {
    dt_st_file f;
    DT_CALL(dt_st_open(&f, p));
    int has = 0;
    for (int k = 0; k < f.n && !has; k++) has = strncmp(f.t[k].name, "said.", 5) == 0;
    int rc = DT_OK;
    if (has && *found)
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                        "both %s and %s hold said.* projection tensors (--said-projection, "
                        "--init-from); give one",
                        s->source, p);
    else if (has) {
      rc = import_file(s, &f);
      snprintf(s->source, sizeof s->source, "%s", p);
      *found = 1;
    }
    dt_st_close(&f);
    if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);
  }
  return DT_OK;
}

/* The projection of every unit: imported from --said-projection or from an
 * --init-from file holding said.* tensors, generated otherwise; then each
 * unit's normalisation. */
static int said_projection(said_state *s, const dt_options *opt, uint64_t seed) {
  int found = 0;
  if (dt_opt_is_set(opt, "said-projection")) {
    DT_CALL(import_projection(s, dt_opt_str(opt, "said-projection"), &found));
    DT_CHECK(found, DT_EINPUT, "--said-projection: %s holds no said.<i>.B/G/Pi tensors",
             dt_opt_str(opt, "said-projection"));
  }
  if (dt_opt_is_set(opt, "init-from"))
    DT_CALL(import_projection(s, dt_opt_str(opt, "init-from"), &found));
  if (!found) {
    for (int i = 0; i < s->n; i++) generate(&s->u[i], seed, i);
    snprintf(s->source, sizeof s->source, "generated from seed %llu",
             (unsigned long long)seed);
  }
  for (int i = 0; i < s->n; i++) {
    said_unit *u = &s->u[i];
    double g2 = 0;
    for (int64_t k = 0; k < u->LL; k++) g2 += (double)u->G[k] * u->G[k];
    u->norm = sqrt((double)u->LL * g2) * sqrt((double)u->D / (double)u->LL);
    DT_CHECK(u->norm > 0 && isfinite(u->norm), DT_EINPUT,
             "said: the Gaussian diagonal G of %s (%s) has norm %g",
             u->ref.name, s->source, u->norm);
    u->ff = (dt_fastfood){u->LL, u->B, u->G, u->Pi};
  }
  return DT_OK;
}

static int said_create(dt_method *me, const dt_options *opt, dt_model *m,
                       dt_params *params, uint64_t seed) {
  said_state *s;
  DT_CALL(dt_calloc(&s, sizeof *s, "said state"));
  me->state = s;
  s->d = dt_opt_int(opt, "said-dim");
  s->params = params;
  /* a describe_only model (deltatune plan) sizes a training run */
  const int train = m->bb->describe_only || !(opt->command && strcmp(opt->command, "eval") == 0);

  dt_tensor_ref *refs = NULL;
  int nref = 0, *pick = NULL;
  DT_CALL(dt_model_tensors(m, &refs, &nref));
  int rc = dt_calloc(&pick, sizeof(int) * (size_t)(nref ? nref : 1), "said targets");
  if (!rc) rc = select_targets(s, m, refs, nref, dt_opt_str(opt, "said-targets"), pick);
  if (!rc && s->n == 0)
    rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                      "--method said: this model has no 2-D weight inside its blocks");
  if (!rc) rc = dt_calloc(&s->u, sizeof(said_unit) * (size_t)s->n, "said tensors");
  int64_t max_ll = 1, max_m = 1;
  for (int i = 0, k = 0; !rc && i < nref; i++) {
    if (!pick[i]) continue;
    said_unit *u = &s->u[k++];
    u->ref = refs[i];
    if (m->bb->describe_only ? m->bb->weights_bf16 || m->bb->wquant : !refs[i].mat->w) {
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                        "--method said rewrites %s (W0 + delta) before every forward "
                        "and needs fp32 weights: use --weights-dtype fp32 (not bf16, int8 or nf4)",
                        refs[i].name);
      break;
    }
    u->D = refs[i].numel;
    u->LL = dt_pow2_ceil(u->D);
    u->m = dt_fastfood_inner(u->LL, s->d);
    u->hr = refs[i].shape[0];
    u->hc = refs[i].shape[1];
    if (u->LL > ((int64_t)1 << 31)) {
      rc = dt_error_set(DT_EUSAGE, __FILE__, __LINE__, __func__,
                        "--method said: %s has %lld elements; the Fastfood size 2^%d "
                        "exceeds the supported 2^31 (narrow --said-targets)",
                        refs[i].name, (long long)u->D, (int)log2((double)u->LL));
      break;
    }
    if (train)
      rc = dt_model_require_grad(m, &refs[i], &u->w, &u->dw);
    else if ((rc = dt_model_unshare(m, refs[i].mat)) == DT_OK) /* rewritten below */
      u->w = refs[i].mat->w + refs[i].offset;
    /* (a describe_only model only counts these: deltatune plan) */
    if (!rc) rc = dt_model_alloc(m, &u->w0, sizeof(float) * (size_t)refs[i].numel_l, refs[i].name);
    if (!rc) rc = dt_model_alloc(m, &u->B, sizeof(float) * (size_t)u->m, "said B");
    if (!rc) rc = dt_model_alloc(m, &u->G, sizeof(float) * (size_t)u->LL, "said G");
    if (!rc) rc = dt_model_alloc(m, &u->Pi, sizeof(int32_t) * (size_t)u->LL, "said Pi");
    if (rc) break;
    if (u->w0) memcpy(u->w0, u->w, sizeof(float) * (size_t)u->ref.numel_l);
    s->n_weights += u->D;
    if (u->LL > max_ll) max_ll = u->LL;
    if (u->m > max_m) max_m = u->m;
  }
  free(refs);
  free(pick);
  if (rc) return dt_error_trace(rc, __FILE__, __LINE__, __func__);

  if (!m->bb->describe_only) DT_CALL(said_projection(s, opt, seed));

  /* parameters: theta (0: the model is unchanged at init) and lam (1) */
  const size_t np = (size_t)s->d + (size_t)s->n;
  DT_CALL(dt_model_alloc(m, &s->arena, sizeof(float) * np, "said parameters"));
  DT_CALL(dt_model_alloc(m, &s->garena, sizeof(float) * np, "said gradients"));
  DT_CALL(dt_model_alloc(m, &s->last, sizeof(float) * np, "said parameters"));
  for (int i = 0; s->arena && i < s->n; i++) s->arena[s->d + i] = 1.0f;
  int64_t shT[1] = {s->d}, shL[1] = {s->n};
  DT_CALL(dt_params_add(params, "said", "theta", 1, shT, s->arena, s->garena, 0));
  DT_CALL(dt_params_add(params, "said", "lam", 1, shL, dt_at(s->arena, s->d),
                        dt_at(s->garena, s->d), 0));
  DT_CALL(dt_model_alloc(m, &s->y, sizeof(float) * (size_t)max_ll, "said scratch"));
  DT_CALL(dt_model_alloc(m, &s->h, sizeof(double) * 2 * (size_t)max_m, "said scratch"));
  return DT_OK;
}

static void said_destroy(dt_method *me) {
  said_state *s = me->state;
  if (!s) return;
  for (int i = 0; s->u && i < s->n; i++) {
    free(s->u[i].w0);
    free(s->u[i].B);
    free(s->u[i].G);
    free(s->u[i].Pi);
  }
  free(s->u);
  free(s->arena);
  free(s->garena);
  free(s->last);
  free(s->y);
  free(s->h);
  free(s);
}

/* Under tensor parallelism a rank holds part of a projected tensor: visit
 * its local elements li with the HF flat index hf of each (the tensor's
 * storage is [rows, cols]; GPT-2 Conv1D tensors are the transpose of HF). */
#define FOR_LOCAL(u, BODY)                                                          \
  do {                                                                              \
    const dt_tensor_ref *r_ = &(u)->ref;                                            \
    const int64_t R_ = r_->rows, C_ = r_->cols;                                     \
    const int64_t lc_ = r_->mat->cols, f0_ = r_->segs.n ? dt_segs_at(&r_->segs, 0)->l0 : 0; \
    for (int s_ = 0; s_ < r_->segs.n; s_++) {                                       \
      const dt_seg *g_ = dt_segs_at(&r_->segs, s_);                                 \
      const int64_t nr_ = r_->shard_dim == 0 ? g_->len : R_;                        \
      const int64_t nc_ = r_->shard_dim == 0 ? C_ : g_->len;                        \
      for (int64_t a_ = 0; a_ < nr_; a_++)                                          \
        for (int64_t b_ = 0; b_ < nc_; b_++) {                                      \
          const int64_t row_ = r_->shard_dim == 0 ? g_->g0 + a_ : a_;               \
          const int64_t col_ = r_->shard_dim == 0 ? b_ : g_->g0 + b_;               \
          const int64_t li = r_->shard_dim == 0 ? (g_->l0 - f0_ + a_) * C_ + b_     \
                                                : a_ * lc_ + g_->l0 + b_;           \
          const int64_t hf = r_->transposed ? col_ * R_ + row_ : row_ * C_ + col_;  \
          BODY;                                                                     \
        }                                                                           \
    }                                                                               \
  } while (0)

/* W = W0 + c * reshape(y[:D]) onto the HF shape, written in storage layout. */
static void write_weight(const said_unit *u, const float *y, float c) {
  if (u->ref.sharded) {
    FOR_LOCAL(u, u->w[li] = u->w0[li] + c * y[hf]);
    return;
  }
  if (!u->ref.transposed) {
    for (int64_t j = 0; j < u->D; j++) u->w[j] = u->w0[j] + c * y[j];
    return;
  }
  /* HF [in, out] element (i, o) = y[i*out + o] lives at storage o*in + i;
   * 16 x 16 tiles, contiguous writes */
  const int64_t in = u->hr, out = u->hc;
  for (int64_t o0 = 0; o0 < out; o0 += 16)
    for (int64_t i0 = 0; i0 < in; i0 += 16) {
      const int64_t i1 = i0 + 16 < in ? i0 + 16 : in, o1 = o0 + 16 < out ? o0 + 16 : out;
      for (int64_t o = o0; o < o1; o++)
        for (int64_t i = i0; i < i1; i++)
          u->w[o * in + i] = u->w0[o * in + i] + c * y[i * out + o];
    }
}

/* g [LL] = pad(dW in HF order); a shard fills its own elements (zeros
 * elsewhere), so theta's and lam's gradients are partial sums. */
static void gather_grad(const said_unit *u, float *g) {
  if (u->ref.sharded) {
    memset(g, 0, sizeof(float) * (size_t)u->LL);
    FOR_LOCAL(u, g[hf] = u->dw[li]);
    return;
  }
  if (!u->ref.transposed) {
    memcpy(g, u->dw, sizeof(float) * (size_t)u->D);
  } else {
    const int64_t in = u->hr, out = u->hc;
    for (int64_t i0 = 0; i0 < in; i0 += 16)
      for (int64_t o0 = 0; o0 < out; o0 += 16) {
        const int64_t i1 = i0 + 16 < in ? i0 + 16 : in, o1 = o0 + 16 < out ? o0 + 16 : out;
        for (int64_t i = i0; i < i1; i++)
          for (int64_t o = o0; o < o1; o++) g[i * out + o] = u->dw[o * in + i];
      }
  }
  memset(g + u->D, 0, sizeof(float) * (size_t)(u->LL - u->D));
}

/* Another method training (part of) a tensor that SAID rewrites every
 * forward would lose its updates: refuse the combination. */
static int check_shared(const said_state *s) {
  for (int i = 0; i < s->n; i++) {
    const dt_mat *a = s->u[i].ref.mat;
    const float *lo = a->w, *hi = a->w + (size_t)a->rows * a->cols;
    for (int k = 0; k < s->params->n; k++) {
      const dt_param *p = &s->params->p[k];
      DT_CHECK(!(p->data < hi && p->data + p->numel_l > lo), DT_EUSAGE,
               "--method: '%s' (method %s) trains %s, which said rewrites as W0 + delta "
               "before every forward; combine said with methods that leave the 2-D "
               "block weights alone, or narrow --said-targets",
               p->name, p->method ? p->method : "?", s->u[i].ref.name);
    }
  }
  return DT_OK;
}

static int said_begin_forward(dt_method *me, int train) {
  (void)train;
  said_state *s = me->state;
  const size_t np = (size_t)s->d + (size_t)s->n;
  if (!s->built) DT_CALL(check_shared(s));
  if (s->built && memcmp(s->last, s->arena, sizeof(float) * np) == 0) return DT_OK;
  const float *theta = s->arena, *lam = s->arena + s->d;
  for (int i = 0; i < s->n; i++) {
    const said_unit *u = &s->u[i];
    dt_fastfood_forward(&u->ff, theta, s->d, s->y, s->h);
    write_weight(u, s->y, (float)(lam[i] / u->norm));
  }
  memcpy(s->last, s->arena, sizeof(float) * np);
  s->built = 1;
  return DT_OK;
}

/* dlam_i = <dW_i, y_i> / norm_i ; dtheta += (lam_i / norm_i) J_i^T dW_i.
 * The consumed block of dW is zeroed, so each backward is counted once. */
static int said_end_backward(dt_method *me) {
  said_state *s = me->state;
  const float *theta = s->arena, *lam = s->arena + s->d;
  float *dtheta = s->garena, *dlam = s->garena + s->d;
  for (int i = 0; i < s->n; i++) {
    const said_unit *u = &s->u[i];
    DT_CHECK(u->dw, DT_EINTERNAL, "said: backward without gradients of %s", u->ref.name);
    gather_grad(u, s->y);
    const double dot = dt_fastfood_backward(&u->ff, theta, s->d, s->y,
                                            (float)(lam[i] / u->norm), dtheta, s->h);
    dlam[i] += (float)(dot / u->norm);
    memset(u->dw, 0, sizeof(float) * (size_t)u->ref.numel_l);
  }
  return DT_OK;
}

static void said_describe(const dt_method *me, char *buf, size_t cap) {
  const said_state *s = me->state;
  snprintf(buf, cap, "SAID d=%d over %d matrices (%lld weights), Fastfood projection %s",
           s->d, s->n, (long long)s->n_weights, s->source);
}

const dt_method_ops dt_method_said = {
    .name = "said",
    .summary = "intrinsic-dimension tuning: Fastfood subspace + one scale per tensor "
               "(Aghajanyan et al. 2021)",
    .options = &said_group,
    .flags = DT_METHOD_WRITES_MATRICES,
    .merge_refusal = "its update is generated by a Fastfood projection that the merge does not "
                     "rebuild",
    .create = said_create,
    .destroy = said_destroy,
    .begin_forward = said_begin_forward,
    .end_backward = said_end_backward,
    .describe = said_describe,
};
