#!/usr/bin/python3
"""An independent forward pass of the LLaMA-like families (llama, qwen2,
mistral, gemma, gemma2), of OPT, of GPT-NeoX, of BLOOM and of Falcon in numpy
float64, from the Hugging Face folder and transformers'
documented semantics: RMSNorm (x * rsqrt(mean(x^2) + eps) * w), rotary
embeddings in the rotate_half convention, grouped key/value heads, q/k/v
biases where the file has them (Qwen2), the causal mask and Mistral's
sliding window (a key is visible when kv_idx > q_idx - sliding_window),
SwiGLU feed-forward, a tied or untied head, and the causal-LM loss over the
scored tokens (mean over every (b,t) with labels[b,t+1] != -100). OPT:
LayerNorm (eps 1e-5) before attention and FFN, q/k/v/out with biases, ReLU,
learned positions read at position + 2, tied head. GPT-NeoX: LayerNorm
(layer_norm_eps) with biases, the fused query_key_value read per head
([heads][q,k,v][head_dim]), rotary on the first int(head_dim * rotary_pct)
dimensions of each head (rope_parameters or the legacy rotary_pct /
rotary_emb_base), GELU (erf for "gelu", tanh for the others), the parallel
residual x + attn(ln1(x)) + mlp(ln2(x)) or the sequential one, embed_out or
the tied embedding. Gemma: RMSNorm scaling by 1 + w, embeddings times
sqrt(hidden_size), GeGLU with the tanh GELU
(0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * up), head_dim from the
config, tied head. Gemma-2 adds the norms of the attention and FFN outputs
(post_attention_layernorm, post_feedforward_layernorm; pre_feedforward_layernorm
before the FFN), scores scaled by query_pre_attn_scalar^-1/2 and soft-capped
(c tanh(s / c)) before the mask, the window only in the layers layer_types
calls sliding_attention (absent: the even ones), and soft-capped logits.
BLOOM: the word_embeddings_layernorm after the
embedding, ALiBi in transformers' form (head h's score of key j gets slope_h
* j, the key's position; slopes of build_alibi_tensor, the extra heads of a
count that is not a power of two interleaved), the per-head query_key_value,
the tanh GELU, sequential pre-LayerNorm blocks, the tied head.
Falcon: LayerNorm (layer_norm_epsilon) with biases, linears with biases only
where bias is true, the fused query_key_value read per key/value group
([kv][q heads of the group, k, v][head_dim]) with new_decoder_architecture,
as q heads then one k and one v with multi_query, else per head; rotary on
the whole head (rope_theta or rope_parameters); attention and MLP in
parallel from ln_attn / ln_mlp (or one shared input_layernorm,
num_ln_in_parallel_attn 1 or the old architecture), or sequential with
post_attention_layernorm; GELU (erf for "gelu"); lm_head or the tied
embedding.

It checks `deltatune eval` against itself: the printed loss within LOSS_TOL
and the dumped logits within 1e-4 (max abs). The reference is trusted because
the same code reproduces the transformers fixture hf-parity/llama (run it on
that folder: the check `family_reference_llama`).

usage: reference_forward.py DELTATUNE MODEL_DIR BATCH TMP_DIR [LOSS_TOL
                            [LAUNCHER... -- EVAL_OPTIONS...]] [--train="METHOD OPTIONS"]
With --train (LLaMA-like families), deltatune trains METHOD (lora, ia3, prompt,
prefix without projection) for 2 steps at 1 rank, exports it with `export
--format peft`, and the reference applies that adapter as PEFT does (LoRA
B A x alpha/r; IA3 scaling the output, or the input of feed-forward modules;
prompt tuning's rows before the token embeddings, as inputs_embeds; prefix
tuning's key/values at positions 0..P-1, the tokens at P..) to check `eval
--checkpoint`.
LAUNCHER (e.g. mpirun -np 2) runs deltatune, EVAL_OPTIONS (e.g. --tp 2) are
added to its eval options: the layouts of the tensor-parallel split.
TMP_DIR given as DIR:prefix=P (bloom, falcon): eval with --method prefix and P
prefix key/values drawn here from N(0, 1) (seed 7), given to deltatune as
PEFT's prompt_encoder.embedding.weight through --init-from and to the
reference as past key/values."""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def rope_theta(cfg):
    if cfg.get("rope_theta") is not None:
        return float(cfg["rope_theta"])
    return float((cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))


def window_of(cfg, layer=0):
    if cfg["model_type"] == "mistral":
        return cfg.get("sliding_window", 4096) or 0
    if cfg["model_type"] == "gemma2":
        types = cfg.get("layer_types") or ["sliding_attention" if (i + 1) % 2 else "full_attention"
                                           for i in range(cfg["num_hidden_layers"])]
        return (cfg.get("sliding_window", 4096) or 0) if types[layer] == "sliding_attention" else 0
    return 0


def masked_softmax(s, visible):
    """Softmax over the last axis of the scores s where visible, 0 elsewhere."""
    s = np.where(visible, s, -np.inf)
    s = np.exp(s - s.max(axis=-1, keepdims=True))
    return s / s.sum(axis=-1, keepdims=True)


def forward_opt(cfg, w, ids):
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
    B, T = ids.shape
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = d // H

    def ln(x, p):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * g(p + ".weight") + g(p + ".bias")

    def lin(x, p):
        return x @ g(p + ".weight").T + g(p + ".bias")
    pre = "model.decoder."
    x = g(pre + "embed_tokens.weight")[ids] + g(pre + "embed_positions.weight")[np.arange(T) + 2]
    visible = np.arange(T)[None, :] <= np.arange(T)[:, None]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"{pre}layers.{layer}."
        h = ln(x, p + "self_attn_layer_norm")
        heads = lambda y: y.reshape(B, T, H, hd).transpose(0, 2, 1, 3)  # noqa: E731
        q = heads(lin(h, p + "self_attn.q_proj"))
        k = heads(lin(h, p + "self_attn.k_proj"))
        v = heads(lin(h, p + "self_attn.v_proj"))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        s = masked_softmax(s, visible)
        a = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
        x = x + lin(a, p + "self_attn.out_proj")
        h = ln(x, p + "final_layer_norm")
        x = x + lin(np.maximum(lin(h, p + "fc1"), 0.0), p + "fc2")
    x = ln(x, pre + "final_layer_norm")
    head = "lm_head.weight" if "lm_head.weight" in w else pre + "embed_tokens.weight"
    return x @ g(head).T


def neox_rope(cfg):
    """(theta, partial rotary factor): rope_parameters, else the legacy keys."""
    rp = cfg.get("rope_parameters") or {}
    theta = rp.get("rope_theta", cfg.get("rotary_emb_base", 10000.0))
    pct = rp.get("partial_rotary_factor", cfg.get("rotary_pct", 0.25))
    return float(theta), float(pct)


def gelu(x, act):
    if act == "gelu":  # erf form
        from math import erf
        return 0.5 * x * (1.0 + np.vectorize(erf)(x / np.sqrt(2.0)))
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def forward_neox(cfg, w, ids):
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
    B, T = ids.shape
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = d // H
    eps = cfg.get("layer_norm_eps", 1e-5)
    theta, pct = neox_rope(cfg)
    rd = int(hd * pct)
    inv = 1.0 / theta ** (np.arange(0, rd, 2, dtype=np.float64) / rd)
    ang = np.outer(np.arange(T, dtype=np.float64), inv)        # [T, rd/2]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)            # [T, rd]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)

    def rot(x):  # x [B, H, T, hd]: the first rd dimensions rotate
        xr, xp = x[..., :rd], x[..., rd:]
        half = rd // 2
        r = np.concatenate([-xr[..., half:], xr[..., :half]], axis=-1)
        return np.concatenate([xr * cos + r * sin, xp], axis=-1)

    def ln(x, p):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g(p + ".weight") + g(p + ".bias")

    def lin(x, p):
        return x @ g(p + ".weight").T + g(p + ".bias")
    act = cfg.get("hidden_act", "gelu")
    visible = np.arange(T)[None, :] <= np.arange(T)[:, None]
    x = g("gpt_neox.embed_in.weight")[ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"gpt_neox.layers.{layer}."
        qkv = lin(ln(x, p + "input_layernorm"), p + "attention.query_key_value")
        qkv = qkv.reshape(B, T, H, 3, hd).transpose(3, 0, 2, 1, 4)  # [3, B, H, T, hd]
        q, k, v = rot(qkv[0]), rot(qkv[1]), qkv[2]
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        s = masked_softmax(s, visible)
        a = lin((s @ v).transpose(0, 2, 1, 3).reshape(B, T, d), p + "attention.dense")

        def mlp(h):
            return lin(gelu(lin(h, p + "mlp.dense_h_to_4h"), act), p + "mlp.dense_4h_to_h")
        if cfg.get("use_parallel_residual", True):
            x = x + a + mlp(ln(x, p + "post_attention_layernorm"))
        else:
            x = x + a
            x = x + mlp(ln(x, p + "post_attention_layernorm"))
    x = ln(x, "gpt_neox.final_layer_norm")
    head = "embed_out.weight" if "embed_out.weight" in w else "gpt_neox.embed_in.weight"
    return x @ g(head).T


def alibi_slopes(n):
    """transformers' build_alibi_tensor slopes of n heads."""
    p = 2 ** int(np.floor(np.log2(n)))
    base = 2.0 ** (-(2.0 ** -(np.log2(p) - 3)))
    s = [base ** k for k in range(1, p + 1)]
    if p != n:
        extra = 2.0 ** (-(2.0 ** -(np.log2(2 * p) - 3)))
        s += [extra ** k for k in range(1, 1 + 2 * min(p, n - p), 2)]
    return np.array(s, dtype=np.float64)


def forward_bloom(cfg, w, ids, prefix=None):
    """prefix: PEFT's prefix table [P, 2 L d] (layer l's keys in block 2l,
    its values in 2l+1, each [heads, head_dim]) as past key/values: the keys
    at positions 0..P-1, seen by every token, the tokens at P..; ALiBi counts
    positions over the whole mask as transformers does with PEFT's extended
    attention mask."""
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
    B, T = ids.shape
    d = cfg.get("hidden_size") or cfg["n_embed"]
    H = cfg.get("n_head") or cfg["num_attention_heads"]
    hd = d // H
    eps = cfg.get("layer_norm_epsilon", 1e-5)

    def ln(x, p):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g(p + ".weight") + g(p + ".bias")

    def lin(x, p):
        return x @ g(p + ".weight").T + g(p + ".bias")
    P = 0 if prefix is None else prefix.shape[0]
    visible = np.arange(P + T)[None, :] <= P + np.arange(T)[:, None]      # [T, P+T]
    bias = alibi_slopes(H)[:, None, None] * np.arange(P + T, dtype=np.float64)[None, None, :]
    if P:
        pkv = prefix.astype(np.float64).reshape(P, 2 * cfg["n_layer"], H, hd).transpose(1, 2, 0, 3)
    x = ln(g("transformer.word_embeddings.weight")[ids], "transformer.word_embeddings_layernorm")
    for layer in range(cfg["n_layer"]):
        p = f"transformer.h.{layer}."
        qkv = lin(ln(x, p + "input_layernorm"), p + "self_attention.query_key_value")
        q, k, v = qkv.reshape(B, T, H, 3, hd).transpose(3, 0, 2, 1, 4)  # [B, H, T, hd] each
        if P:  # [H, P, hd] before the tokens' keys and values
            k = np.concatenate([np.broadcast_to(pkv[2 * layer], (B, H, P, hd)), k], axis=2)
            v = np.concatenate([np.broadcast_to(pkv[2 * layer + 1], (B, H, P, hd)), v], axis=2)
        s = bias[None] + q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        s = masked_softmax(s, visible)
        x = x + lin((s @ v).transpose(0, 2, 1, 3).reshape(B, T, d), p + "self_attention.dense")
        h = lin(ln(x, p + "post_attention_layernorm"), p + "mlp.dense_h_to_4h")
        x = x + lin(gelu(h, "gelu_new"), p + "mlp.dense_4h_to_h")
    x = ln(x, "transformer.ln_f")
    head = "lm_head.weight" if "lm_head.weight" in w else "transformer.word_embeddings.weight"
    return x @ g(head).T


def forward_falcon(cfg, w, ids, prefix=None):
    """prefix: PEFT's prefix table [P, 2 L d] (layer l's keys in block 2l,
    its values in 2l+1, each [heads, head_dim]: one per QUERY head, as PEFT
    sizes it for Falcon, whose config has no num_key_value_heads) as past
    key/values, which transformers' Falcon attention meets after repeating
    its own key/value heads up to the query heads: query head h attends to
    prefix head h; the prefix keys are not rotated, the tokens rotate at
    positions P.."""
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
    B, T = ids.shape
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = d // H
    P = 0 if prefix is None else prefix.shape[0]
    if P:
        pkv = prefix.astype(np.float64).reshape(P, 2 * cfg["num_hidden_layers"], H, hd) \
            .transpose(1, 2, 0, 3)  # [2L, H, P, hd]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    nda = cfg.get("new_decoder_architecture", False)
    mq = cfg.get("multi_query", True)
    par = cfg.get("parallel_attn", True)
    nln = cfg.get("num_ln_in_parallel_attn") or (2 if nda else 1)
    inv = 1.0 / rope_theta(cfg) ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.outer(np.arange(P, P + T, dtype=np.float64), inv)
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)

    def rot(x):
        half = hd // 2
        return x * cos + np.concatenate([-x[..., half:], x[..., :half]], axis=-1) * sin

    def ln(x, p):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g(p + ".weight") + g(p + ".bias")

    def lin(x, p):
        y = x @ g(p + ".weight").T
        return y + g(p + ".bias") if p + ".bias" in w else y
    act = cfg.get("activation", "gelu")
    visible = np.arange(P + T)[None, :] <= P + np.arange(T)[:, None]  # [T, P+T]
    x = g("transformer.word_embeddings.weight")[ids]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"transformer.h.{layer}."
        if nda and nln == 2:
            h_att, h_mlp = ln(x, p + "ln_attn"), ln(x, p + "ln_mlp")
        else:
            h_att = h_mlp = ln(x, p + "input_layernorm")
        qkv = lin(h_att, p + "self_attention.query_key_value")
        if nda:
            KV = cfg.get("num_kv_heads") or H
            qkv = qkv.reshape(B, T, KV, H // KV + 2, hd)
            q = qkv[:, :, :, :-2].reshape(B, T, H, hd)
            k = np.repeat(qkv[:, :, :, -2], H // KV, axis=2)
            v = np.repeat(qkv[:, :, :, -1], H // KV, axis=2)
        elif mq:
            qkv = qkv.reshape(B, T, H + 2, hd)
            q = qkv[:, :, :H]
            k = np.repeat(qkv[:, :, H:H + 1], H, axis=2)
            v = np.repeat(qkv[:, :, H + 1:], H, axis=2)
        else:
            qkv = qkv.reshape(B, T, H, 3, hd)
            q, k, v = qkv[:, :, :, 0], qkv[:, :, :, 1], qkv[:, :, :, 2]
        q, k, v = (y.transpose(0, 2, 1, 3) for y in (q, k, v))  # [B, H, T, hd]
        q, k = rot(q), rot(k)
        if P:  # [H, P, hd] before the tokens' (repeated) keys and values
            k = np.concatenate([np.broadcast_to(pkv[2 * layer], (B, H, P, hd)), k], axis=2)
            v = np.concatenate([np.broadcast_to(pkv[2 * layer + 1], (B, H, P, hd)), v], axis=2)
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        s = masked_softmax(s, visible)
        a = lin((s @ v).transpose(0, 2, 1, 3).reshape(B, T, d), p + "self_attention.dense")

        def mlp(h):
            return lin(gelu(lin(h, p + "mlp.dense_h_to_4h"), act), p + "mlp.dense_4h_to_h")
        if nda or par:
            x = x + a + mlp(h_mlp)
        else:
            x = x + a
            x = x + mlp(ln(x, p + "post_attention_layernorm"))
    x = ln(x, "transformer.ln_f")
    head = "lm_head.weight" if "lm_head.weight" in w else "transformer.word_embeddings.weight"
    return x @ g(head).T


def forward(cfg, w, ids, ad=None, prefix=None):
    """logits [B, T, V] (float64); with ad (a PEFT adapter: read_adapter) the
    logits of the backbone with the adapter, [B, P + T, V] for prompt tuning;
    prefix (bloom, falcon): forward_bloom's or forward_falcon's prefix table."""
    if cfg["model_type"] == "bloom":
        assert ad is None, "adapters: the LLaMA-like families only"
        return forward_bloom(cfg, w, ids, prefix)
    if cfg["model_type"] == "falcon":
        assert ad is None, "adapters: the LLaMA-like families only"
        return forward_falcon(cfg, w, ids, prefix)
    if prefix is not None:
        sys.exit("reference_forward.py: --prefix is for bloom and falcon only")
    if cfg["model_type"] == "opt":
        assert ad is None, "adapters: the LLaMA-like families only"
        return forward_opt(cfg, w, ids)
    if cfg["model_type"] == "gpt_neox":
        assert ad is None, "adapters: the LLaMA-like families only"
        return forward_neox(cfg, w, ids)
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
    ad = ad or {"kind": None}
    B, T = ids.shape
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or d // H
    eps = cfg["rms_norm_eps"]
    gemma = cfg["model_type"] in ("gemma", "gemma2")
    v2 = cfg["model_type"] == "gemma2"
    scale = (cfg.get("query_pre_attn_scalar", 256) if v2 else hd) ** -0.5
    acap = cfg.get("attn_logit_softcapping", 50.0) if v2 else None
    fcap = cfg.get("final_logit_softcapping", 30.0) if v2 else None

    def rms(x, wt):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + wt if gemma else wt)

    def act(gate):
        if gemma:
            return 0.5 * gate * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (gate + 0.044715 * gate ** 3)))
        return gate / (1.0 + np.exp(-gate))

    # prompt tuning: P virtual tokens before the data (positions 0..P-1);
    # prefix tuning: P key/values before them in every layer, the tokens at
    # positions P..P+T-1
    P = ad["P"] if ad["kind"] in ("PROMPT_TUNING", "PREFIX_TUNING") else 0
    T0 = P if ad["kind"] == "PREFIX_TUNING" else 0
    if ad["kind"] == "PROMPT_TUNING":
        T += P
    inv = 1.0 / rope_theta(cfg) ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.outer(np.arange(T0, T0 + T, dtype=np.float64), inv)  # [T, hd/2]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)            # [T, hd]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)

    def rot(x):  # x [B, h, T, hd]
        half = hd // 2
        r = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + r * sin

    qi = np.arange(T)[:, None] + T0  # positions
    ki = np.arange(T)[None, :] + T0
    x = g("model.embed_tokens.weight")[ids]                      # [B, T, d]
    if gemma:  # transformers 5: inside embed_tokens (GemmaTextScaledWordEmbedding)
        x = x * np.sqrt(d)
    if ad["kind"] == "PROMPT_TUNING":  # PEFT passes them as inputs_embeds, unscaled
        x = np.concatenate([np.repeat(ad["emb"][None], B, axis=0), x], axis=1)
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        W = window_of(cfg, layer)
        visible = ki <= qi
        if W:
            visible = visible & (ki > qi - W)
        h = rms(x, g(p + "input_layernorm.weight"))

        def proj(name, inp):
            a = "base_model.model." + p + name
            if ad["kind"] == "IA3" and a + ".ia3_l" in ad["t"] and ad["ff"](name):
                inp = inp * ad["t"][a + ".ia3_l"].reshape(-1)  # feed-forward: the input
            y = inp @ g(p + name + ".weight").T
            if p + name + ".bias" in w:
                y = y + g(p + name + ".bias")
            if ad["kind"] == "LORA" and a + ".lora_A.weight" in ad["t"]:
                y = y + (inp @ ad["t"][a + ".lora_A.weight"].T) @ ad["t"][a + ".lora_B.weight"].T \
                    * ad["scaling"]
            if ad["kind"] == "IA3" and a + ".ia3_l" in ad["t"] and not ad["ff"](name):
                y = y * ad["t"][a + ".ia3_l"].reshape(-1)  # the output
            return y
        q = proj("self_attn.q_proj", h).reshape(B, T, H, hd).transpose(0, 2, 1, 3)
        k = proj("self_attn.k_proj", h).reshape(B, T, KV, hd).transpose(0, 2, 1, 3)
        v = proj("self_attn.v_proj", h).reshape(B, T, KV, hd).transpose(0, 2, 1, 3)
        q, k = rot(q), rot(k)
        vis = visible
        if ad["kind"] == "PREFIX_TUNING":  # PEFT's past key/values, not rotated again
            kv = ad["emb"].reshape(P, -1, 2, KV, hd)[:, layer]          # [P, 2, KV, hd]
            pk = np.repeat(kv[:, 0].transpose(1, 0, 2)[None], B, axis=0)  # [B, KV, P, hd]
            pv = np.repeat(kv[:, 1].transpose(1, 0, 2)[None], B, axis=0)
            k = np.concatenate([pk, k], axis=2)
            v = np.concatenate([pv, v], axis=2)
            pvis = np.ones((T, P), dtype=bool)
            if W:
                pvis &= np.arange(P)[None, :] > qi - W
            vis = np.concatenate([pvis, visible], axis=1)
        k = np.repeat(k, H // KV, axis=1)
        v = np.repeat(v, H // KV, axis=1)
        s = q @ k.transpose(0, 1, 3, 2) * scale
        if acap:
            s = acap * np.tanh(s / acap)
        s = masked_softmax(s, vis)
        a = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, H * hd)
        o = proj("self_attn.o_proj", a)
        if v2:
            o = rms(o, g(p + "post_attention_layernorm.weight"))
        x = x + o
        h = rms(x, g(p + ("pre_feedforward_layernorm" if v2 else "post_attention_layernorm")
                     + ".weight"))
        gate = proj("mlp.gate_proj", h)
        up = proj("mlp.up_proj", h)
        o = proj("mlp.down_proj", act(gate) * up)
        if v2:
            o = rms(o, g(p + "post_feedforward_layernorm.weight"))
        x = x + o
    x = rms(x, g("model.norm.weight"))
    head = "lm_head.weight" if "lm_head.weight" in w else "model.embed_tokens.weight"
    z = x @ g(head).T
    return fcap * np.tanh(z / fcap) if fcap else z


def read_adapter(folder):
    """A PEFT folder as export --format peft writes it (LoRA, IA3, prompt and
    prefix tuning; PEFT's tensor names and adapter_config.json), float64."""
    with open(os.path.join(folder, "adapter_config.json")) as f:
        c = json.load(f)
    t, _ = st.read(os.path.join(folder, "adapter_model.safetensors"))
    t = {k: v.astype(np.float64) for k, v in t.items()}
    ad = {"kind": c["peft_type"], "t": t}
    if c["peft_type"] == "LORA":
        r, alpha = c["r"], c["lora_alpha"]
        ad["scaling"] = alpha / (np.sqrt(r) if c.get("use_rslora") else r)
    if c["peft_type"] == "IA3":
        ff = c.get("feedforward_modules") or []
        ad["ff"] = lambda name: any(name == m or name.endswith("." + m) for m in ff)
    if c["peft_type"] in ("PROMPT_TUNING", "PREFIX_TUNING"):
        ad["emb"] = t["prompt_embeddings"]
        ad["P"] = c["num_virtual_tokens"]
    return ad


def loss_of(logits, labels):
    tot, n = 0.0, 0
    B, T, _ = logits.shape
    for b in range(B):
        for t in range(T - 1):
            y = labels[b, t + 1]
            if y == -100:
                continue
            z = logits[b, t]
            m = z.max()
            tot += m + np.log(np.exp(z - m).sum()) - z[y]
            n += 1
    return tot / n


def main():
    argv = [a for a in sys.argv if not a.startswith("--train=")]
    train = [a[len("--train="):] for a in sys.argv if a.startswith("--train=")]
    binary, model, batch, tmp = argv[1:5]
    n_prefix = 0
    if ":prefix=" in tmp:
        tmp, n_prefix = tmp.split(":prefix=")[0], int(tmp.split(":prefix=")[1])
        if train:
            sys.exit("reference_forward.py: :prefix= and --train= exclude each other")
    tol = float(argv[5]) if len(argv) > 5 else 1e-5
    rest = argv[6:]
    launcher, extra = (rest[:rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest \
        else (rest, [])
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    w, _ = st.read(os.path.join(model, "model.safetensors"))
    data, _ = st.read(batch)
    ids, labels = data["input_ids"], data["labels"]
    os.makedirs(tmp, exist_ok=True)
    dump = os.path.join(tmp, "logits.safetensors")
    if train:
        # --train="METHOD OPTIONS": 2 steps of deltatune train at 1 rank, its
        # export --format peft read back here, its checkpoint evaluated
        def run(args):
            r = subprocess.run([binary] + args, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"deltatune {args[0]} exited {r.returncode}:\n{r.stdout}{r.stderr}")
        out_dir = os.path.join(tmp, "run")
        run(["train", "--model", model, "--data", batch, "--batch-size", str(ids.shape[0]),
             "--steps", "2", "--lr", "1e-2", "--log-every", "1000", "--out", out_dir,
             "--method"] + train[0].split())
        ckpt = os.path.join(out_dir, "ckpt-0000000002.nc")
        run(["export", "--checkpoint", ckpt, "--format", "peft", "--out",
             os.path.join(tmp, "peft")])
        ad = read_adapter(os.path.join(tmp, "peft"))
        ev = ["eval", "--checkpoint", ckpt]
    else:
        ad = None
        ev = ["eval", "--model", model, "--method", "none"]
    prefix = None
    if n_prefix:
        width = 2 * (cfg.get("n_layer") or cfg["num_hidden_layers"]) * \
            (cfg.get("hidden_size") or cfg["n_embed"])
        prefix = np.random.default_rng(7).normal(0.0, 1.0, (n_prefix, width)).astype(np.float32)
        init = os.path.join(tmp, "prefix.safetensors")
        st.write(init, {"prompt_encoder.embedding.weight": prefix})
        ev = ["eval", "--model", model, "--method", "prefix", "--prefix-tokens", str(n_prefix),
              "--init-from", init]
    ref = forward(cfg, w, ids, ad, prefix)
    if ad and ad["kind"] == "PROMPT_TUNING":  # the virtual tokens are not scored
        labels = np.concatenate([np.full((labels.shape[0], ad["P"]), -100, labels.dtype), labels],
                                axis=1)
    ref_loss = loss_of(ref, labels)
    out = subprocess.run(launcher + [binary] + ev + ["--data", batch, "--batch-size",
                                                     str(ids.shape[0]), "--dump-logits", dump]
                         + extra, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"deltatune eval exited {out.returncode}:\n{out.stdout}{out.stderr}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("loss ")]
    got_loss = float(line[0].split()[1])
    got, _ = st.read(dump)
    got = next(iter(got.values())).reshape(ref.shape)
    err = float(np.max(np.abs(got - ref)))
    print(f"{model}: loss {got_loss:.9f} reference {ref_loss:.9f}; logits max abs error {err:.2e}")
    ok = abs(got_loss - ref_loss) <= tol and err <= 1e-4
    # the references of the fixture folders, where the folder has them
    fixture = os.path.join(os.path.dirname(batch), "base", "expected.json")
    if not train and not n_prefix and os.path.basename(os.path.dirname(model)) == \
            os.path.basename(os.path.dirname(batch)) and os.path.exists(fixture):
        with open(fixture) as f:
            hf = json.load(f)["loss0"]
        hl, _ = st.read(os.path.join(os.path.dirname(batch), "base", "logits0.safetensors"))
        hl = next(iter(hl.values())).reshape(ref.shape)
        herr = float(np.max(np.abs(hl - ref)))
        print(f"  transformers' fixture: loss0 {hf:.9f}, logits max abs error {herr:.2e}")
        ok &= abs(hf - ref_loss) <= 1e-5 and herr <= 1e-4
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
