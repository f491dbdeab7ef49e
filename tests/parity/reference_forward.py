#!/usr/bin/python3
"""An independent forward pass of the LLaMA-like families (llama, qwen2,
mistral) and of OPT in numpy float64, from the Hugging Face folder and transformers'
documented semantics: RMSNorm (x * rsqrt(mean(x^2) + eps) * w), rotary
embeddings in the rotate_half convention, grouped key/value heads, q/k/v
biases where the file has them (Qwen2), the causal mask and Mistral's
sliding window (a key is visible when kv_idx > q_idx - sliding_window),
SwiGLU feed-forward, a tied or untied head, and the causal-LM loss over the
scored tokens (mean over every (b,t) with labels[b,t+1] != -100). OPT:
LayerNorm (eps 1e-5) before attention and FFN, q/k/v/out with biases, ReLU,
learned positions read at position + 2, tied head. Gemma: RMSNorm scaling
by 1 + w, embeddings times sqrt(hidden_size), GeGLU with the tanh GELU
(0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * up), head_dim from the
config, tied head. Gemma-2 adds the norms of the attention and FFN outputs
(post_attention_layernorm, post_feedforward_layernorm; pre_feedforward_layernorm
before the FFN), scores scaled by query_pre_attn_scalar^-1/2 and soft-capped
(c tanh(s / c)) before the mask, the window only in the layers layer_types
calls sliding_attention (absent: the even ones), and soft-capped logits.

It checks `deltatune eval` against itself: the printed loss within LOSS_TOL
and the dumped logits within 1e-4 (max abs). The reference is trusted because
the same code reproduces the transformers fixture hf-parity/llama (run it on
that folder: the check `family_reference_llama`).

usage: reference_forward.py DELTATUNE MODEL_DIR BATCH TMP_DIR [LOSS_TOL
                            [LAUNCHER... -- EVAL_OPTIONS...]]
LAUNCHER (e.g. mpirun -np 2) runs deltatune, EVAL_OPTIONS (e.g. --tp 2) are
added to its eval options: the layouts of the tensor-parallel split."""
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
        s = np.where(visible, s, -np.inf)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s = s / s.sum(axis=-1, keepdims=True)
        a = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
        x = x + lin(a, p + "self_attn.out_proj")
        h = ln(x, p + "final_layer_norm")
        x = x + lin(np.maximum(lin(h, p + "fc1"), 0.0), p + "fc2")
    x = ln(x, pre + "final_layer_norm")
    head = "lm_head.weight" if "lm_head.weight" in w else pre + "embed_tokens.weight"
    return x @ g(head).T


def forward(cfg, w, ids):
    if cfg["model_type"] == "opt":
        return forward_opt(cfg, w, ids)
    """logits [B, T, V] (float64)."""
    g = lambda name: w[name].astype(np.float64)  # noqa: E731
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

    inv = 1.0 / rope_theta(cfg) ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.outer(np.arange(T, dtype=np.float64), inv)        # [T, hd/2]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)            # [T, hd]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)

    def rot(x):  # x [B, h, T, hd]
        half = hd // 2
        r = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + r * sin

    qi = np.arange(T)[:, None]
    ki = np.arange(T)[None, :]
    x = g("model.embed_tokens.weight")[ids]                      # [B, T, d]
    if gemma:
        x = x * np.sqrt(d)
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        W = window_of(cfg, layer)
        visible = ki <= qi
        if W:
            visible = visible & (ki > qi - W)
        h = rms(x, g(p + "input_layernorm.weight"))

        def proj(name, inp):
            y = inp @ g(p + name + ".weight").T
            if p + name + ".bias" in w:
                y = y + g(p + name + ".bias")
            return y
        q = proj("self_attn.q_proj", h).reshape(B, T, H, hd).transpose(0, 2, 1, 3)
        k = proj("self_attn.k_proj", h).reshape(B, T, KV, hd).transpose(0, 2, 1, 3)
        v = proj("self_attn.v_proj", h).reshape(B, T, KV, hd).transpose(0, 2, 1, 3)
        q, k = rot(q), rot(k)
        k = np.repeat(k, H // KV, axis=1)
        v = np.repeat(v, H // KV, axis=1)
        s = q @ k.transpose(0, 1, 3, 2) * scale
        if acap:
            s = acap * np.tanh(s / acap)
        s = np.where(visible, s, -np.inf)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s = s / s.sum(axis=-1, keepdims=True)
        a = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, H * hd)
        o = a @ g(p + "self_attn.o_proj.weight").T
        if v2:
            o = rms(o, g(p + "post_attention_layernorm.weight"))
        x = x + o
        h = rms(x, g(p + ("pre_feedforward_layernorm" if v2 else "post_attention_layernorm")
                     + ".weight"))
        gate = h @ g(p + "mlp.gate_proj.weight").T
        up = h @ g(p + "mlp.up_proj.weight").T
        o = (act(gate) * up) @ g(p + "mlp.down_proj.weight").T
        if v2:
            o = rms(o, g(p + "post_feedforward_layernorm.weight"))
        x = x + o
    x = rms(x, g("model.norm.weight"))
    head = "lm_head.weight" if "lm_head.weight" in w else "model.embed_tokens.weight"
    z = x @ g(head).T
    return fcap * np.tanh(z / fcap) if fcap else z


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
    binary, model, batch, tmp = sys.argv[1:5]
    tol = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-5
    rest = sys.argv[6:]
    launcher, extra = (rest[:rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest \
        else (rest, [])
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    w, _ = st.read(os.path.join(model, "model.safetensors"))
    data, _ = st.read(batch)
    ids, labels = data["input_ids"], data["labels"]
    ref = forward(cfg, w, ids)
    ref_loss = loss_of(ref, labels)
    os.makedirs(tmp, exist_ok=True)
    dump = os.path.join(tmp, "logits.safetensors")
    out = subprocess.run(launcher + [binary, "eval", "--model", model, "--data", batch,
                                     "--method", "none", "--batch-size", str(ids.shape[0]),
                                     "--dump-logits", dump] + extra,
                         capture_output=True, text=True)
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
    if os.path.basename(os.path.dirname(model)) == os.path.basename(os.path.dirname(batch)) and \
            os.path.exists(fixture):
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
