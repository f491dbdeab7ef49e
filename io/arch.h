/* Architecture as data: what differs between model families, one descriptor
 * per family (io/arch.c). The loader, the engine, the shard layout, the
 * methods, plan and merge ask the descriptor for features (norm kind,
 * position encoding, activation, gated FFN, Conv1D layout, module and tensor
 * names, PEFT's default targets); none of them tests a family by name. A new
 * family is one table entry plus the kernels it really lacks. */
#ifndef DT_ARCH_H
#define DT_ARCH_H

typedef enum {
  DT_ARCH_GPT2 = 1,
  DT_ARCH_LLAMA = 2,
  DT_ARCH_QWEN2 = 3,
  DT_ARCH_MISTRAL = 4,
  DT_ARCH_OPT = 5,
  DT_ARCH_GPT_NEOX = 6,
  DT_ARCH_GEMMA = 7,
  DT_ARCH_GEMMA2 = 8,
  DT_ARCH_BLOOM = 9,
  DT_ARCH_FALCON = 10
} dt_arch;

/* Where in a block a frozen linear sits (the four products of a block). */
typedef enum {
  DT_SITE_QKV = 0,  /* x[N,d] -> qkv[N,qkv_dim] (c_attn / q,k,v_proj) */
  DT_SITE_ATTN_OUT, /* att[N,q_dim] -> [N,d] (attn.c_proj / o_proj) */
  DT_SITE_FC,       /* ln2[N,d] -> [N,fc_dim] (mlp.c_fc / gate|up_proj) */
  DT_SITE_PROJ,     /* act[N,ffn] -> [N,d] (mlp.c_proj / down_proj) */
  DT_N_SITES
} dt_site;

typedef enum { DT_NORM_LAYER = 1, DT_NORM_RMS } dt_norm_kind;       /* LayerNorm (w, b) / RMSNorm (w) */
/* wpe table / rotary / ALiBi: a per-head linear bias slope * (key - query
 * position) on the attention scores (BLOOM), no position input */
typedef enum { DT_POS_LEARNED = 1, DT_POS_ROPE, DT_POS_ALIBI } dt_pos_kind;
/* gelu_new / silu(gate)*up / relu / gelu with erf (GPT-NeoX's "gelu") /
 * gelu_tanh(gate)*up (Gemma's GeGLU) */
typedef enum { DT_ACT_GELU_TANH = 1, DT_ACT_SWIGLU, DT_ACT_RELU, DT_ACT_GELU_ERF, DT_ACT_GEGLU } dt_act_kind;
/* The default FFN width of a synthetic model: 4 d, or LLaMA's 2/3 of 4 d
 * rounded up to a multiple of 256. */
typedef enum { DT_FFN_4D = 1, DT_FFN_LLAMA } dt_ffn_rule;

/* A size of the config, named so that tables can use it. */
typedef enum {
  DT_DIM_0 = 0,
  DT_DIM_D,      /* d_model */
  DT_DIM_Q,      /* n_head * head_dim */
  DT_DIM_KV,     /* n_kv_head * head_dim */
  DT_DIM_Q_KV,   /* q + kv: where v starts in a fused q|k|v */
  DT_DIM_QKV,    /* q + 2 kv */
  DT_DIM_F,      /* d_ffn */
  DT_DIM_2F,     /* 2 d_ffn: a fused gate|up */
  DT_DIM_VOCAB,  /* vocab */
  DT_DIM_CTX,    /* n_ctx */
  DT_DIM_POS,    /* n_ctx + the position offset: the rows of a learned table */
  DT_DIM_1
} dt_dim;

/* How a tensor is split over a tensor group (mpi/shard.c's segment lists). */
typedef enum {
  DT_SHARD_REPL = 0, /* replicated */
  DT_SHARD_QKV,      /* rows: heads of q|k|v */
  DT_SHARD_FC,       /* rows: blocks of the FFN (both halves of gate|up) */
  DT_SHARD_ATT_COLS, /* columns: heads of the attention output's input */
  DT_SHARD_FFN_COLS, /* columns: blocks of the FFN */
  DT_SHARD_VOCAB     /* rows: blocks of the vocabulary */
} dt_shard_kind;

/* Which storage of the model a checkpoint tensor fills. */
typedef enum {
  DT_SLOT_WTE = 1, DT_SLOT_WPE, DT_SLOT_HEAD, DT_SLOT_LNF_W, DT_SLOT_LNF_B, /* global */
  DT_SLOT_LN1_W, DT_SLOT_LN1_B, DT_SLOT_LN2_W, DT_SLOT_LN2_B,              /* per block */
  DT_SLOT_LIN,  /* the site's frozen matrix, rows [lo, hi) of it */
  DT_SLOT_BIAS, /* the site's bias */
  DT_SLOT_PN1_W, DT_SLOT_PN2_W, /* norms of the attention and FFN outputs (post_norms) */
  DT_SLOT_EMBN_W, DT_SLOT_EMBN_B /* the norm right after the embedding (BLOOM) */
} dt_slot;

/* When a tensor row of a family whose file layout the config picks exists
 * (Falcon): always (0), only with biases on the linears (Falcon's bias),
 * only with two norms feeding attention and FFN in parallel (ln_attn,
 * ln_mlp), only without them (input_layernorm), only with a sequential
 * block (post_attention_layernorm). */
typedef enum {
  DT_WHEN_ALWAYS = 0,
  DT_WHEN_LIN_BIAS,
  DT_WHEN_TWO_NORMS,
  DT_WHEN_NOT_TWO_NORMS,
  DT_WHEN_SEQUENTIAL
} dt_tensor_when;

/* A Hugging Face tensor: its name (with %d for the block where per_layer),
 * where it goes, its shape [rows, cols] (cols DT_DIM_1: a vector), stored
 * transposed (Conv1D), its sharding and the rows [lo, hi) of a fused
 * owner it covers. Rows with untied_only exist only without a tied head;
 * when: which configs have the row (dt_tensor_when). */
typedef struct {
  const char *name;
  int per_layer;
  dt_slot slot;
  dt_site site;
  dt_dim rows, cols;
  int transposed;
  dt_shard_kind shard;
  dt_dim lo, hi;
  int untied_only;
  dt_tensor_when when;
  /* a global row's name in transformers 5's modules where the files keep
   * another (GPT-NeoX's head: embed_out.weight in the files, lm_head.weight
   * in named_parameters and state_dict): --init-from accepts it too */
  const char *alias;
} dt_arch_tensor;

/* A module of a block as PEFT names it (what --lora-targets matches): its
 * rows [row0, row0+out) of the site's output and its input width; whole:
 * the module is all of its site. */
typedef struct {
  const char *name; /* inside a block, e.g. "self_attn.k_proj" */
  dt_site site;
  dt_dim row0, out, in;
  int whole;
} dt_arch_module;

enum { DT_ARCH_MAX_MODULES = 8, DT_ARCH_MAX_TENSORS = 24 };

typedef struct {
  dt_arch id;
  const char *name;          /* "gpt2": checkpoints, backbone ids, plan */
  const char *title;         /* "GPT-2": messages */
  const char *module_prefix; /* the blocks' HF prefix, "transformer.h" */
  dt_norm_kind norm;
  dt_pos_kind pos;
  dt_act_kind act;
  int gated_ffn;             /* the first FFN product is gate|up: 2 d_ffn wide */
  int conv1d;                /* HF stores the block matrices as Conv1D [in, out] */
  /* the config's shape rules (io/hf_config.c: checks, synthetic models) */
  int grouped_kv;            /* fewer key/value heads than query heads allowed,
                                head_dim its own size (else d_model / n_head) */
  dt_ffn_rule ffn_rule;      /* a synthetic model's default d_ffn */
  float norm_eps;            /* a synthetic model's norm epsilon */
  int tied_head;             /* a synthetic model's head is the embedding */
  int has_bias;              /* the linears and norms have biases */
  int qkv_bias;              /* only q, k and v have biases (Qwen2) */
  int pos_offset;            /* learned positions: position p is row p + this
                                (OPT's offset of 2) */
  int sliding_window;        /* the config may set a sliding attention window
                                (Mistral's sliding_window; synthetic key window) */
  int qkv_per_head;          /* the fused q|k|v tensor is laid out per head,
                                [heads][q,k,v][head_dim] on its output axis
                                (GPT-NeoX), or per key/value group,
                                [kv heads][group q heads, k, v][head_dim]
                                (Falcon's new_decoder_architecture; a group
                                of one query head is GPT-NeoX's layout):
                                mpi/shard.c maps its rows */
  int parallel_residual;     /* a synthetic model's blocks add attention and
                                FFN of the same input (GPT-NeoX) */
  float rope_pct;            /* a synthetic model's rotary share of a head
                                (0: the whole head) */
  int embed_norm;            /* a norm (the family's kind) on the embedding
                                output, before the first block (BLOOM's
                                word_embeddings_layernorm) */
  int no_linear_bias;        /* a synthetic model's linears have no biases
                                while its LayerNorms have (Falcon) */
  int peft_prefix_per_query; /* PEFT's prefix tuning of the family has a
                                key/value per query head (Falcon: its config
                                has no num_key_value_heads for PEFT to read,
                                and its attention repeats key/value heads
                                before the cache): the prefix method keeps
                                one too (dt_cfg_prefix_heads) */
  int norm_plus_one;         /* RMSNorm scales by 1 + w (Gemma) */
  int embed_scale;           /* token (and prompt) embeddings times sqrt(d_model) (Gemma) */
  int post_norms;            /* a norm on the attention output and on the FFN output
                                before each residual add (Gemma-2's four norms) */
  /* a synthetic model's Gemma-2 values (HF folders: the config's) */
  int window_alternate;      /* the window in layers 0, 2, 4, ... only */
  float attn_softcap, final_softcap; /* soft-capping of scores and logits; 0: none */
  const char *lora_targets;  /* PEFT's default LoRA target modules */
  const char *ia3_targets;   /* PEFT's default IA3 targets ... */
  const char *ia3_ff;        /* ... and which of them are feed-forward */
  int n_modules;
  dt_arch_module modules[DT_ARCH_MAX_MODULES];
  int n_tensors;
  dt_arch_tensor tensors[DT_ARCH_MAX_TENSORS];
} dt_arch_desc;

/* The descriptor of a family; NULL for a value outside the table. */
const dt_arch_desc *dt_arch_get(dt_arch a);
/* The descriptor named "gpt2", "llama", ...; NULL when none is. */
const dt_arch_desc *dt_arch_by_name(const char *name);

#endif
