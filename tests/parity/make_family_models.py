#!/usr/bin/python3
"""Writes the tiny Qwen2 and Mistral model folders of tests/data/families from
the LLaMA parity fixture's weights (tests/data/hf-parity/llama/model), as
transformers 5.17's save_pretrained lays them out (config.json +
model.safetensors, tensors sorted by name):

  qwen2_zerobias  Qwen2 with q/k/v biases all zero: computes what the LLaMA
                  fixture computes, so every PEFT fixture of hf-parity/llama
                  that trains no bias is its reference.
  mistral_w16     Mistral with sliding_window 16: no query of the 12-token
                  batch (15 with 3 virtual tokens) reaches past the window,
                  so every fixture of hf-parity/llama is its reference.
  qwen2           Qwen2 with q/k/v biases drawn from N(0, 0.2^2), untied head.
  qwen2_tied      the same biases, tie_word_embeddings true (no lm_head).
  mistral         Mistral with sliding_window 4 (the window matters), and
                  batch150.safetensors: 2 rows of 150 tokens, so the
                  attention's blocks of 64 queries meet the window too.
  opt             OPT from the GPT-2 fixture's weights (hf-parity/gpt2/model):
                  its fused Conv1D c_attn split into q/k/v Linear weights,
                  the position table with OPT's 2 leading rows (drawn), ReLU
                  (so it computes something else than GPT-2), tied head.
  neox            GPT-NeoX from the GPT-2 fixture's weights: c_attn's q, k, v
                  rows regrouped per head into query_key_value
                  ([heads][q,k,v][head_dim]), rotary on half of each head
                  (rope_parameters.partial_rotary_factor 0.5, as transformers
                  5 writes it), parallel residual, GELU with erf, an untied
                  embed_out (drawn).
  neox_seq        the same weights, sequential residual
                  (use_parallel_residual false), the legacy keys rotary_pct
                  0.5 and rotary_emb_base 500, hidden_act gelu_fast, tied head.
  gemma           Gemma (drawn weights, head_dim 16 != hidden 48 / 4 heads,
                  norm weights around 0: scale 1 + w, tied head).
  gemma2          Gemma-2 with the same shapes and 3 layers: sliding window 4
                  in layers 0 and 2, soft-capping small enough to bend
                  (attention 2, logits 3), query_pre_attn_scalar 24.
  bloom           BLOOM from the GPT-2 fixture's weights: 4 heads (ALiBi
                  slopes of a power of two), c_attn's q, k, v rows regrouped
                  per head into query_key_value, a drawn
                  word_embeddings_layernorm, transformers' saved keys
                  (hidden_size, n_layer, n_head), tied head.
  bloom_h6        the same matrices read as 6 heads of 8 (the interleaved
                  extra slopes of a head count that is not a power of two),
                  BigScience's original keys (n_embed, num_attention_heads).

  falcon          Falcon (new_decoder_architecture, Falcon-40B/180B's block)
                  from the GPT-2 fixture's weights read as 8 heads of 6
                  dimensions with 4 key/value heads: query_key_value per
                  key/value group ([4][2 q heads, k, v][6]), ln_attn and
                  ln_mlp (ln_1 and ln_2), no linear biases (bias false), an
                  untied lm_head (drawn), rope_parameters.
  falcon_mq       Falcon-7B's block: multi_query (8 q heads, then one k and
                  one v head), parallel_attn with one input_layernorm feeding
                  both branches, biases on the linears, tied head.
  falcon_seq      the old block without multi_query: query_key_value per head
                  ([8][q,k,v][6]), a sequential block (parallel_attn false:
                  input_layernorm and post_attention_layernorm), biases,
                  the legacy top-level rope_theta 500, activation gelu_new,
                  an untied lm_head.

The qwen2, mistral, opt, neox, neox_seq, gemma, gemma2, bloom, bloom_h6,
falcon, falcon_mq and falcon_seq folders are the models of
tests/parity/make_fixtures.py's fixtures of those families and of the
reference forward pass (reference_forward.py).
Deterministic: running it again writes the same bytes.
usage: make_family_models.py [OUT_DIR (default tests/data/families)]"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")


def base_config(llama):
    keep = ["attention_dropout", "bos_token_id", "dtype", "eos_token_id", "hidden_act",
            "hidden_size", "initializer_range", "intermediate_size",
            "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
            "num_key_value_heads", "pad_token_id", "rms_norm_eps", "rope_parameters",
            "tie_word_embeddings", "transformers_version", "use_cache", "vocab_size"]
    return {k: llama[k] for k in keep}


def qwen2_config(llama, tied):
    c = base_config(llama)
    n = llama["num_hidden_layers"]
    c.update({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
              "layer_types": ["full_attention"] * n, "max_window_layers": n,
              "sliding_window": None, "use_sliding_window": False,
              "tie_word_embeddings": tied})
    return c


def mistral_config(llama, window):
    c = base_config(llama)
    c.update({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
              "head_dim": llama["head_dim"], "sliding_window": window})
    return c


def with_biases(w, cfg, scale, seed):
    """LLaMA's tensors plus q/k/v biases (zero when scale is 0)."""
    rng = np.random.default_rng(seed)
    out = dict(w)
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    sizes = {"q": cfg["num_attention_heads"] * hd, "k": cfg["num_key_value_heads"] * hd,
             "v": cfg["num_key_value_heads"] * hd}
    for layer in range(cfg["num_hidden_layers"]):
        for p in "qkv":
            b = rng.normal(0.0, 1.0, sizes[p]).astype(np.float32) * np.float32(scale)
            out[f"model.layers.{layer}.self_attn.{p}_proj.bias"] = b
    return out


def opt_from_gpt2(gcfg, g, seed):
    """OPT's config and tensors from GPT-2's."""
    rng = np.random.default_rng(seed)
    d, L = gcfg["n_embd"], gcfg["n_layer"]
    cfg = {"architectures": ["OPTForCausalLM"], "model_type": "opt", "activation_function": "relu",
           "attention_dropout": 0.0, "dropout": 0.0, "do_layer_norm_before": True,
           "dtype": "float32", "enable_bias": True, "ffn_dim": 4 * d, "hidden_size": d,
           "init_std": 0.02, "layer_norm_elementwise_affine": True, "layerdrop": 0.0,
           "max_position_embeddings": gcfg["n_positions"], "num_attention_heads": gcfg["n_head"],
           "num_hidden_layers": L, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 2,
           "tie_word_embeddings": True, "transformers_version": "5.17.0", "use_cache": True,
           "vocab_size": gcfg["vocab_size"], "word_embed_proj_dim": d}
    pre = "model.decoder."
    t = {pre + "embed_tokens.weight": g["transformer.wte.weight"],
         pre + "embed_positions.weight": np.concatenate(
             [rng.normal(0.0, 0.02, (2, d)).astype(np.float32), g["transformer.wpe.weight"]]),
         pre + "final_layer_norm.weight": g["transformer.ln_f.weight"],
         pre + "final_layer_norm.bias": g["transformer.ln_f.bias"]}
    for layer in range(L):
        h, o = f"transformer.h.{layer}.", f"{pre}layers.{layer}."
        w, b = g[h + "attn.c_attn.weight"].T, g[h + "attn.c_attn.bias"]  # [3d, d]
        for k, name in enumerate(("q_proj", "k_proj", "v_proj")):
            t[o + f"self_attn.{name}.weight"] = np.ascontiguousarray(w[k * d:(k + 1) * d])
            t[o + f"self_attn.{name}.bias"] = b[k * d:(k + 1) * d]
        t[o + "self_attn.out_proj.weight"] = np.ascontiguousarray(g[h + "attn.c_proj.weight"].T)
        t[o + "self_attn.out_proj.bias"] = g[h + "attn.c_proj.bias"]
        t[o + "self_attn_layer_norm.weight"] = g[h + "ln_1.weight"]
        t[o + "self_attn_layer_norm.bias"] = g[h + "ln_1.bias"]
        t[o + "fc1.weight"] = np.ascontiguousarray(g[h + "mlp.c_fc.weight"].T)
        t[o + "fc1.bias"] = g[h + "mlp.c_fc.bias"]
        t[o + "fc2.weight"] = np.ascontiguousarray(g[h + "mlp.c_proj.weight"].T)
        t[o + "fc2.bias"] = g[h + "mlp.c_proj.bias"]
        t[o + "final_layer_norm.weight"] = g[h + "ln_2.weight"]
        t[o + "final_layer_norm.bias"] = g[h + "ln_2.bias"]
    return cfg, t


def neox_from_gpt2(gcfg, g, seed, parallel):
    """GPT-NeoX's config and tensors from GPT-2's."""
    rng = np.random.default_rng(seed)
    d, L, H, V = gcfg["n_embd"], gcfg["n_layer"], gcfg["n_head"], gcfg["vocab_size"]
    hd = d // H
    cfg = {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
           "attention_bias": True, "attention_dropout": 0.0, "bos_token_id": 0,
           "classifier_dropout": 0.1, "dtype": "float32", "eos_token_id": 2,
           "hidden_dropout": 0.0, "hidden_size": d, "initializer_range": 0.02,
           "intermediate_size": 4 * d, "layer_norm_eps": 1e-5,
           "max_position_embeddings": gcfg["n_positions"], "num_attention_heads": H,
           "num_hidden_layers": L, "transformers_version": "5.17.0", "use_cache": True,
           "vocab_size": V}
    if parallel:
        cfg.update({"hidden_act": "gelu", "tie_word_embeddings": False,
                    "use_parallel_residual": True,
                    "rope_parameters": {"partial_rotary_factor": 0.5, "rope_theta": 10000.0,
                                        "rope_type": "default"}})
    else:
        cfg.update({"hidden_act": "gelu_fast", "tie_word_embeddings": True,
                    "use_parallel_residual": False, "rotary_pct": 0.5,
                    "rotary_emb_base": 500})
    pre = "gpt_neox."
    t = {pre + "embed_in.weight": g["transformer.wte.weight"],
         pre + "final_layer_norm.weight": g["transformer.ln_f.weight"],
         pre + "final_layer_norm.bias": g["transformer.ln_f.bias"]}
    if parallel:
        t["embed_out.weight"] = rng.normal(0.0, 0.2, (V, d)).astype(np.float32)
    for layer in range(L):
        h, o = f"transformer.h.{layer}.", f"{pre}layers.{layer}."
        w, b = g[h + "attn.c_attn.weight"].T, g[h + "attn.c_attn.bias"]  # [3d, d], q|k|v
        # q|k|v [3, H, hd] -> per head [H, 3, hd]
        t[o + "attention.query_key_value.weight"] = np.ascontiguousarray(
            w.reshape(3, H, hd, d).transpose(1, 0, 2, 3).reshape(3 * d, d))
        t[o + "attention.query_key_value.bias"] = np.ascontiguousarray(
            b.reshape(3, H, hd).transpose(1, 0, 2).reshape(3 * d))
        t[o + "attention.dense.weight"] = np.ascontiguousarray(g[h + "attn.c_proj.weight"].T)
        t[o + "attention.dense.bias"] = g[h + "attn.c_proj.bias"]
        t[o + "input_layernorm.weight"] = g[h + "ln_1.weight"]
        t[o + "input_layernorm.bias"] = g[h + "ln_1.bias"]
        t[o + "post_attention_layernorm.weight"] = g[h + "ln_2.weight"]
        t[o + "post_attention_layernorm.bias"] = g[h + "ln_2.bias"]
        t[o + "mlp.dense_h_to_4h.weight"] = np.ascontiguousarray(g[h + "mlp.c_fc.weight"].T)
        t[o + "mlp.dense_h_to_4h.bias"] = g[h + "mlp.c_fc.bias"]
        t[o + "mlp.dense_4h_to_h.weight"] = np.ascontiguousarray(g[h + "mlp.c_proj.weight"].T)
        t[o + "mlp.dense_4h_to_h.bias"] = g[h + "mlp.c_proj.bias"]
    return cfg, t


def falcon_from_gpt2(gcfg, g, seed, variant):
    """Falcon's config and tensors from GPT-2's: the d = 48 rows of q, k and v
    read as 8 heads of 6; variant new (grouped, 4 kv heads), mq (multi_query)
    or seq (per head, sequential)."""
    rng = np.random.default_rng(seed)
    d, L, V = gcfg["n_embd"], gcfg["n_layer"], gcfg["vocab_size"]
    H, hd = 8, 6
    KV = {"new": 4, "mq": 1, "seq": H}[variant]
    cfg = {"architectures": ["FalconForCausalLM"], "model_type": "falcon",
           "activation": "gelu", "alibi": False, "attention_dropout": 0.0,
           "bias": variant != "new", "bos_token_id": 11, "dtype": "float32",
           "eos_token_id": 11, "ffn_hidden_size": 4 * d, "hidden_dropout": 0.0,
           "hidden_size": d, "initializer_range": 0.02, "layer_norm_epsilon": 1e-5,
           "max_position_embeddings": gcfg["n_positions"],
           "multi_query": variant == "mq", "new_decoder_architecture": variant == "new",
           "num_attention_heads": H, "num_hidden_layers": L, "num_kv_heads": KV,
           "num_ln_in_parallel_attn": 2 if variant == "new" else None,
           "parallel_attn": variant != "seq", "tie_word_embeddings": variant == "mq",
           "transformers_version": "5.17.0", "use_cache": True, "vocab_size": V}
    if variant == "seq":
        cfg.update({"rope_theta": 500.0, "activation": "gelu_new"})
    else:
        cfg["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default"}
    pre = "transformer."
    t = {pre + "word_embeddings.weight": g["transformer.wte.weight"],
         pre + "ln_f.weight": g["transformer.ln_f.weight"],
         pre + "ln_f.bias": g["transformer.ln_f.bias"]}
    if variant != "mq":
        t["lm_head.weight"] = rng.normal(0.0, 0.2, (V, d)).astype(np.float32)
    for layer in range(L):
        h, o = f"transformer.h.{layer}.", f"{pre}h.{layer}."
        w, b = g[h + "attn.c_attn.weight"].T, g[h + "attn.c_attn.bias"]  # [3d, d], q|k|v
        q, k, v = (w[i * d:(i + 1) * d].reshape(H, hd, d) for i in range(3))
        qb, kb, vb = (b[i * d:(i + 1) * d].reshape(H, hd) for i in range(3))
        if variant == "new":  # [KV][H/KV q, k, v][hd]
            grp = H // KV
            rows = [np.concatenate([q[j * grp:(j + 1) * grp], k[j:j + 1], v[j:j + 1]])
                    for j in range(KV)]
            brows = [np.concatenate([qb[j * grp:(j + 1) * grp], kb[j:j + 1], vb[j:j + 1]])
                     for j in range(KV)]
        elif variant == "mq":  # [H q, 1 k, 1 v][hd]
            rows, brows = [q, k[:1], v[:1]], [qb, kb[:1], vb[:1]]
        else:  # [H][q, k, v][hd]
            rows = [np.stack([q[j], k[j], v[j]]) for j in range(H)]
            brows = [np.stack([qb[j], kb[j], vb[j]]) for j in range(H)]
        t[o + "self_attention.query_key_value.weight"] = np.ascontiguousarray(
            np.concatenate(rows).reshape(-1, d))
        t[o + "self_attention.dense.weight"] = np.ascontiguousarray(g[h + "attn.c_proj.weight"].T)
        t[o + "mlp.dense_h_to_4h.weight"] = np.ascontiguousarray(g[h + "mlp.c_fc.weight"].T)
        t[o + "mlp.dense_4h_to_h.weight"] = np.ascontiguousarray(g[h + "mlp.c_proj.weight"].T)
        if variant != "new":
            t[o + "self_attention.query_key_value.bias"] = np.ascontiguousarray(
                np.concatenate(brows).reshape(-1))
            t[o + "self_attention.dense.bias"] = g[h + "attn.c_proj.bias"]
            t[o + "mlp.dense_h_to_4h.bias"] = g[h + "mlp.c_fc.bias"]
            t[o + "mlp.dense_4h_to_h.bias"] = g[h + "mlp.c_proj.bias"]
        norms = {"new": ("ln_attn", "ln_mlp"), "mq": ("input_layernorm", None),
                 "seq": ("input_layernorm", "post_attention_layernorm")}[variant]
        for src, name in zip(("ln_1", "ln_2"), norms):
            if name:
                t[o + name + ".weight"] = g[h + src + ".weight"]
                t[o + name + ".bias"] = g[h + src + ".bias"]
    return cfg, t


def bloom_from_gpt2(gcfg, g, seed, H, legacy):
    """BLOOM's config and tensors from GPT-2's, with H heads."""
    rng = np.random.default_rng(seed)
    d, L, V = gcfg["n_embd"], gcfg["n_layer"], gcfg["vocab_size"]
    hd = d // H
    cfg = {"architectures": ["BloomForCausalLM"], "model_type": "bloom",
           "apply_residual_connection_post_layernorm": False, "attention_dropout": 0.0,
           "bos_token_id": 1, "dtype": "float32", "eos_token_id": 2, "hidden_dropout": 0.0,
           "initializer_range": 0.02, "layer_norm_epsilon": 1e-5, "pad_token_id": 3,
           "pretraining_tp": 1, "slow_but_exact": False, "transformers_version": "5.17.0",
           "use_cache": True, "vocab_size": V}
    if legacy:
        cfg.update({"n_embed": d, "n_layer": L, "num_attention_heads": H})
    else:
        cfg.update({"hidden_size": d, "n_layer": L, "n_head": H})
    pre = "transformer."
    t = {pre + "word_embeddings.weight": g["transformer.wte.weight"],
         pre + "word_embeddings_layernorm.weight":
             (1.0 + rng.normal(0.0, 0.1, d)).astype(np.float32),
         pre + "word_embeddings_layernorm.bias": rng.normal(0.0, 0.1, d).astype(np.float32),
         pre + "ln_f.weight": g["transformer.ln_f.weight"],
         pre + "ln_f.bias": g["transformer.ln_f.bias"]}
    for layer in range(L):
        h, o = f"transformer.h.{layer}.", f"{pre}h.{layer}."
        w, b = g[h + "attn.c_attn.weight"].T, g[h + "attn.c_attn.bias"]  # [3d, d], q|k|v
        t[o + "self_attention.query_key_value.weight"] = np.ascontiguousarray(
            w.reshape(3, H, hd, d).transpose(1, 0, 2, 3).reshape(3 * d, d))
        t[o + "self_attention.query_key_value.bias"] = np.ascontiguousarray(
            b.reshape(3, H, hd).transpose(1, 0, 2).reshape(3 * d))
        t[o + "self_attention.dense.weight"] = np.ascontiguousarray(g[h + "attn.c_proj.weight"].T)
        t[o + "self_attention.dense.bias"] = g[h + "attn.c_proj.bias"]
        t[o + "input_layernorm.weight"] = g[h + "ln_1.weight"]
        t[o + "input_layernorm.bias"] = g[h + "ln_1.bias"]
        t[o + "post_attention_layernorm.weight"] = g[h + "ln_2.weight"]
        t[o + "post_attention_layernorm.bias"] = g[h + "ln_2.bias"]
        t[o + "mlp.dense_h_to_4h.weight"] = np.ascontiguousarray(g[h + "mlp.c_fc.weight"].T)
        t[o + "mlp.dense_h_to_4h.bias"] = g[h + "mlp.c_fc.bias"]
        t[o + "mlp.dense_4h_to_h.weight"] = np.ascontiguousarray(g[h + "mlp.c_proj.weight"].T)
        t[o + "mlp.dense_4h_to_h.bias"] = g[h + "mlp.c_proj.bias"]
    return cfg, t


def gemma_model(v2, seed):
    """A tiny Gemma / Gemma-2: config (every key transformers 5.17 writes
    that the arithmetic reads) and drawn tensors."""
    rng = np.random.default_rng(seed)
    d, H, KV, hd, F, V, L = 48, 4, 2, 16, 128, 96, 3 if v2 else 2
    cfg = {"architectures": ["Gemma2ForCausalLM" if v2 else "GemmaForCausalLM"],
           "model_type": "gemma2" if v2 else "gemma", "attention_bias": False,
           "attention_dropout": 0.0, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
           "dtype": "float32", "head_dim": hd, "hidden_act": "gelu_pytorch_tanh",
           "hidden_activation": "gelu_pytorch_tanh", "hidden_size": d,
           "initializer_range": 0.02, "intermediate_size": F, "max_position_embeddings": 64,
           "num_attention_heads": H, "num_hidden_layers": L, "num_key_value_heads": KV,
           "rms_norm_eps": 1e-6, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
           "tie_word_embeddings": True, "transformers_version": "5.17.0", "use_cache": True,
           "vocab_size": V}
    if v2:
        cfg.update({"attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0,
                    "query_pre_attn_scalar": 24, "sliding_window": 4,
                    "layer_types": ["sliding_attention" if (i + 1) % 2 else "full_attention"
                                    for i in range(L)],
                    "use_bidirectional_attention": None})
    f32 = lambda *shape, s=0.15: (rng.normal(0.0, 1.0, shape) * s).astype(np.float32)  # noqa: E731
    t = {"model.embed_tokens.weight": f32(V, d, s=0.1), "model.norm.weight": f32(d, s=0.1)}
    norms = ["input_layernorm", "post_attention_layernorm"]
    if v2:
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    for layer in range(L):
        p = f"model.layers.{layer}."
        t[p + "self_attn.q_proj.weight"] = f32(H * hd, d, s=0.25)
        t[p + "self_attn.k_proj.weight"] = f32(KV * hd, d, s=0.25)
        t[p + "self_attn.v_proj.weight"] = f32(KV * hd, d)
        t[p + "self_attn.o_proj.weight"] = f32(d, H * hd)
        t[p + "mlp.gate_proj.weight"] = f32(F, d)
        t[p + "mlp.up_proj.weight"] = f32(F, d)
        t[p + "mlp.down_proj.weight"] = f32(d, F, s=0.1)
        for n in norms:
            t[p + n + ".weight"] = f32(d, s=0.1)
    return cfg, t


def save(folder, cfg, tensors):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")
    st.write(os.path.join(folder, "model.safetensors"),
             {k: tensors[k] for k in sorted(tensors)}, {"format": "pt"})


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(DATA, "families")
    src = os.path.join(DATA, "hf-parity", "llama", "model")
    with open(os.path.join(src, "config.json")) as f:
        llama = json.load(f)
    w, _ = st.read(os.path.join(src, "model.safetensors"))
    w = {k: np.array(v) for k, v in w.items()}
    zero = with_biases(w, llama, 0.0, 0)
    biased = with_biases(w, llama, 0.2, 24)
    tied = {k: v for k, v in biased.items() if k != "lm_head.weight"}
    save(os.path.join(out, "qwen2_zerobias", "model"), qwen2_config(llama, False), zero)
    save(os.path.join(out, "mistral_w16", "model"), mistral_config(llama, 16), w)
    save(os.path.join(out, "qwen2", "model"), qwen2_config(llama, False), biased)
    save(os.path.join(out, "qwen2_tied", "model"), qwen2_config(llama, True), tied)
    save(os.path.join(out, "mistral", "model"), mistral_config(llama, 4), w)
    rng = np.random.default_rng(150)
    ids = rng.integers(0, llama["vocab_size"], (2, 150), dtype=np.int64)
    labels = ids.copy()
    labels[:, :4] = -100
    labels[1, 140:] = -100
    st.write(os.path.join(out, "mistral", "batch150.safetensors"),
             {"input_ids": ids, "labels": labels})
    gsrc = os.path.join(DATA, "hf-parity", "gpt2", "model")
    with open(os.path.join(gsrc, "config.json")) as f:
        gcfg = json.load(f)
    g, _ = st.read(os.path.join(gsrc, "model.safetensors"))
    save(os.path.join(out, "opt", "model"), *opt_from_gpt2(gcfg, g, 5))
    save(os.path.join(out, "neox", "model"), *neox_from_gpt2(gcfg, g, 20, True))
    save(os.path.join(out, "neox_seq", "model"), *neox_from_gpt2(gcfg, g, 20, False))
    save(os.path.join(out, "gemma", "model"), *gemma_model(False, 7))
    save(os.path.join(out, "gemma2", "model"), *gemma_model(True, 9))
    save(os.path.join(out, "bloom", "model"), *bloom_from_gpt2(gcfg, g, 176, 4, False))
    save(os.path.join(out, "bloom_h6", "model"), *bloom_from_gpt2(gcfg, g, 176, 6, True))
    for variant, name in (("new", "falcon"), ("mq", "falcon_mq"), ("seq", "falcon_seq")):
        save(os.path.join(out, name, "model"), *falcon_from_gpt2(gcfg, g, 40, variant))


if __name__ == "__main__":
    main()
