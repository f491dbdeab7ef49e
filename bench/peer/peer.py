#!/usr/bin/python3
"""PyTorch peer of deltatune's engine (issue 12, local part).

The same GPT-2 and LLaMA blocks as deltatune, in plain PyTorch (eager, fp32):
- gpt2:  learned positions, LayerNorm (eps 1e-5), fused qkv (Conv1D layout
         [in, out], addmm like transformers), GELU tanh, tied head;
- llama: RMSNorm (eps 1e-6), RoPE in the rotate_half convention, grouped-query
         attention, SwiGLU FFN, untied head;
with LoRA (delta = (alpha/r) B A x; A [r, in], B [out, r]) on the chosen
modules, AdamW on the LoRA tensors only (the backbone has requires_grad off,
so autograd computes input gradients but no weight gradients for it), and the
causal-LM loss as deltatune defines it: mean over every (b, t) whose
labels[b, t+1] != -100 of -log softmax(logits[b, t])[labels[b, t+1]]; the head
runs on those rows only (deltatune does the same).

Two subcommands:
  bench    synthetic N(0, 0.02) weights (norms 1, biases 0) and uniform random
           tokens, as deltatune's synthetic:... backbone and data; times
           --steps steps and prints one JSON object (median step over steps
           1.., tokens/s, peak RSS = VmHWM, loss of step 0).
  fixture  load a Hugging Face folder (config.json + model.safetensors) and a
           PEFT LoRA init file with a stdlib safetensors reader, and print the
           losses of --steps AdamW steps on a batch file (input_ids,
           labels) as JSON (loss0 = the step-0 loss).

Written for Debian's python3-torch (1.13) and python3-numpy; nothing else.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------- safetensors

_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16,
              "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
              "U8": np.uint8}


def read_safetensors(path):
    """8-byte little-endian header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt = meta["dtype"]
        if dt not in _ST_DTYPES:
            raise SystemExit(f"{path}: tensor {name} has dtype {dt} (reader knows {sorted(_ST_DTYPES)})")
        a, b = meta["data_offsets"]
        arr = np.frombuffer(buf, dtype=np.dtype(_ST_DTYPES[dt]).newbyteorder("<"),
                            count=(b - a) // np.dtype(_ST_DTYPES[dt]).itemsize, offset=base + a)
        out[name] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True)
                                     .reshape(meta["shape"]))
    return out


# --------------------------------------------------------------- models

class Config:
    def __init__(self, family, layers, d, heads, kv_heads, head_dim, ffn, vocab, ctx,
                 eps, theta):
        self.family, self.layers, self.d, self.heads = family, layers, d, heads
        self.kv_heads, self.head_dim, self.ffn, self.vocab = kv_heads, head_dim, ffn, vocab
        self.ctx, self.eps, self.theta = ctx, eps, theta

    @staticmethod
    def from_hf(path):
        with open(os.path.join(path, "config.json")) as f:
            c = json.load(f)
        if c["model_type"] == "gpt2":
            d, h = c["n_embd"], c["n_head"]
            return Config("gpt2", c["n_layer"], d, h, h, d // h, c.get("n_inner") or 4 * d,
                          c["vocab_size"], c["n_positions"], c.get("layer_norm_epsilon", 1e-5), 0.0)
        if c["model_type"] in ("llama", "mistral"):
            d, h = c["hidden_size"], c["num_attention_heads"]
            theta = c.get("rope_theta") or (c.get("rope_parameters") or {}).get("rope_theta", 10000.0)
            return Config("llama", c["num_hidden_layers"], d, h, c.get("num_key_value_heads", h),
                          c.get("head_dim") or d // h, c["intermediate_size"], c["vocab_size"],
                          c["max_position_embeddings"], c.get("rms_norm_eps", 1e-6), theta)
        raise SystemExit(f"{path}: model_type {c['model_type']} is not supported (gpt2, llama)")


def module_shapes(cfg):
    """(in, out) of each block module that LoRA may target, by HF suffix."""
    d, f = cfg.d, cfg.ffn
    if cfg.family == "gpt2":
        return {"c_attn": (d, 3 * d), "attn.c_proj": (d, d), "mlp.c_fc": (d, f), "mlp.c_proj": (f, d)}
    q, kv = cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    return {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d),
            "gate_proj": (d, f), "up_proj": (d, f), "down_proj": (f, d)}


def synthetic_backbone(cfg, seed):
    """Frozen weights as deltatune's synthetic backbone draws them: matrices
    N(0, 0.02), norm weights 1, biases 0 (other values, same distribution).
    GPT-2 matrices in Conv1D layout [in, out]; LLaMA in Linear layout [out, in]."""
    g = torch.Generator().manual_seed(seed)

    def n(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    d, f, V = cfg.d, cfg.ffn, cfg.vocab
    P = {}
    if cfg.family == "gpt2":
        P["wte"], P["wpe"] = n(V, d), n(cfg.ctx, d)
        for l in range(cfg.layers):
            p = f"h.{l}."
            for ln in ("ln_1", "ln_2"):
                P[p + ln + ".w"], P[p + ln + ".b"] = torch.ones(d), torch.zeros(d)
            for m, (i, o) in module_shapes(cfg).items():
                P[p + m + ".w"], P[p + m + ".b"] = n(i, o), torch.zeros(o)
        P["ln_f.w"], P["ln_f.b"] = torch.ones(d), torch.zeros(d)
    else:
        P["embed"], P["lm_head"] = n(V, d), n(V, d)
        for l in range(cfg.layers):
            p = f"h.{l}."
            P[p + "in_norm"], P[p + "post_norm"] = torch.ones(d), torch.ones(d)
            for m, (i, o) in module_shapes(cfg).items():
                P[p + m + ".w"] = n(o, i)
        P["norm"] = torch.ones(d)
    return P


def hf_backbone(cfg, path):
    """The same dict from a Hugging Face model.safetensors."""
    T = read_safetensors(os.path.join(path, "model.safetensors"))
    P = {}
    if cfg.family == "gpt2":
        pre = "transformer." if "transformer.wte.weight" in T else ""
        P["wte"], P["wpe"] = T[pre + "wte.weight"], T[pre + "wpe.weight"]
        for l in range(cfg.layers):
            s, p = f"{pre}h.{l}.", f"h.{l}."
            for ln in ("ln_1", "ln_2"):
                P[p + ln + ".w"], P[p + ln + ".b"] = T[s + ln + ".weight"], T[s + ln + ".bias"]
            for m in module_shapes(cfg):
                full = m if "." in m else "attn." + m
                P[p + m + ".w"], P[p + m + ".b"] = T[s + full + ".weight"], T[s + full + ".bias"]
        P["ln_f.w"], P["ln_f.b"] = T[pre + "ln_f.weight"], T[pre + "ln_f.bias"]
    else:
        P["embed"] = T["model.embed_tokens.weight"]
        P["lm_head"] = T.get("lm_head.weight", P["embed"])
        for l in range(cfg.layers):
            s, p = f"model.layers.{l}.", f"h.{l}."
            P[p + "in_norm"] = T[s + "input_layernorm.weight"]
            P[p + "post_norm"] = T[s + "post_attention_layernorm.weight"]
            for m in module_shapes(cfg):
                sub = "mlp." if m in ("gate_proj", "up_proj", "down_proj") else "self_attn."
                P[p + m + ".w"] = T[s + sub + m + ".weight"]
        P["norm"] = T["model.norm.weight"]
    return P


def lora_full_name(cfg, l, m):
    if cfg.family == "gpt2":
        return f"transformer.h.{l}." + (m if "." in m else "attn." + m)
    sub = "mlp." if m in ("gate_proj", "up_proj", "down_proj") else "self_attn."
    return f"model.layers.{l}.{sub}{m}"


def lora_init(cfg, targets, r, seed, init_file=None):
    """{(layer, module): (A [r, in], B [out, r])}: PEFT's default init
    (A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0), or the values of a PEFT init file."""
    shapes = module_shapes(cfg)
    for m in targets:
        if m not in shapes:
            raise SystemExit(f"LoRA target {m} is not a {cfg.family} module ({', '.join(shapes)})")
    g = torch.Generator().manual_seed(seed + 1)
    T = read_safetensors(init_file) if init_file else None
    L = {}
    for l in range(cfg.layers):
        for m in targets:
            i, o = shapes[m]
            if T is not None:
                base = "base_model.model." + lora_full_name(cfg, l, m)
                def get(which):
                    for k in (f"{base}.{which}.default.weight", f"{base}.{which}.weight"):
                        if k in T:
                            return T[k]
                    raise SystemExit(f"{init_file}: no {base}.{which}[.default].weight")
                A, B = get("lora_A"), get("lora_B")
            else:
                bound = 1.0 / math.sqrt(i)
                A, B = (torch.rand(r, i, generator=g) * 2 - 1) * bound, torch.zeros(o, r)
            L[(l, m)] = (A.clone().requires_grad_(True), B.clone().requires_grad_(True))
    return L


class Peer:
    def __init__(self, cfg, P, lora, scale):
        self.cfg, self.P, self.lora, self.scale = cfg, P, lora, scale
        for t in P.values():
            t.requires_grad_(False)
        if cfg.family == "llama":
            hd = cfg.head_dim
            inv = 1.0 / (cfg.theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
            ang = torch.outer(torch.arange(cfg.ctx, dtype=torch.float32), inv)
            ang = torch.cat((ang, ang), dim=-1)
            self.cos, self.sin = ang.cos(), ang.sin()

    def params(self):
        return [t for ab in self.lora.values() for t in ab]

    def proj(self, l, m, x):
        """x @ W (+ b) of block l's module m, plus its LoRA delta."""
        w = self.P[f"h.{l}.{m}.w"]
        if self.cfg.family == "gpt2":  # Conv1D: W [in, out]
            b = self.P[f"h.{l}.{m}.b"]
            y = torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], w.shape[1])
        else:
            y = F.linear(x, w)
        ab = self.lora.get((l, m))
        if ab is not None:
            y = y + self.scale * F.linear(F.linear(x, ab[0]), ab[1])
        return y

    def attention(self, q, k, v):
        """q [B, H, T, hd], k, v [B, KV, T, hd]: causal softmax attention."""
        B, H, T, hd = q.shape
        rep = H // k.shape[1]
        if rep > 1:  # query head h reads key/value head h // rep
            k = k[:, :, None].expand(B, k.shape[1], rep, T, hd).reshape(B, H, T, hd)
            v = v[:, :, None].expand(B, v.shape[1], rep, T, hd).reshape(B, H, T, hd)
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        s = s.masked_fill(mask, float("-inf"))
        return torch.matmul(torch.softmax(s, dim=-1), v)

    def rope(self, x, T):
        cos, sin = self.cos[:T], self.sin[:T]
        h = x.shape[-1] // 2
        rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
        return x * cos + rot * sin

    def hidden(self, ids):
        c, P = self.cfg, self.P
        B, T = ids.shape
        H, KV, hd = c.heads, c.kv_heads, c.head_dim
        if c.family == "gpt2":
            x = F.embedding(ids, P["wte"]) + P["wpe"][:T]
            for l in range(c.layers):
                p = f"h.{l}."
                h = F.layer_norm(x, (c.d,), P[p + "ln_1.w"], P[p + "ln_1.b"], c.eps)
                q, k, v = self.proj(l, "c_attn", h).split(c.d, dim=-1)
                q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))
                a = self.attention(q, k, v).transpose(1, 2).reshape(B, T, c.d)
                x = x + self.proj(l, "attn.c_proj", a)
                h = F.layer_norm(x, (c.d,), P[p + "ln_2.w"], P[p + "ln_2.b"], c.eps)
                h = F.gelu(self.proj(l, "mlp.c_fc", h), approximate="tanh")
                x = x + self.proj(l, "mlp.c_proj", h)
            return F.layer_norm(x, (c.d,), P["ln_f.w"], P["ln_f.b"], c.eps), P["wte"]
        x = F.embedding(ids, P["embed"])
        for l in range(c.layers):
            p = f"h.{l}."
            h = rms_norm(x, P[p + "in_norm"], c.eps)
            q = self.proj(l, "q_proj", h).view(B, T, H, hd).transpose(1, 2)
            k = self.proj(l, "k_proj", h).view(B, T, KV, hd).transpose(1, 2)
            v = self.proj(l, "v_proj", h).view(B, T, KV, hd).transpose(1, 2)
            a = self.attention(self.rope(q, T), self.rope(k, T), v)
            x = x + self.proj(l, "o_proj", a.transpose(1, 2).reshape(B, T, H * hd))
            h = rms_norm(x, P[p + "post_norm"], c.eps)
            h = F.silu(self.proj(l, "gate_proj", h)) * self.proj(l, "up_proj", h)
            x = x + self.proj(l, "down_proj", h)
        return rms_norm(x, P["norm"], c.eps), P["lm_head"]

    def loss(self, ids, labels):
        h, head = self.hidden(ids)
        tgt = labels[:, 1:]
        keep = tgt != -100
        rows = h[:, :-1][keep]  # the head on scored rows only
        return F.cross_entropy(F.linear(rows, head), tgt[keep])


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def blas_core():
    """OpenBLAS kernel of the libopenblas that torch's libblas.so.3 resolved to."""
    import ctypes
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "not OpenBLAS"


def mm_gflops(n=1024, reps=5):
    """torch.mm n^3 fp32 rate at the current thread count (best of reps)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best * 1e-9


def vm_hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


# --------------------------------------------------------------- commands

def cmd_bench(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.family == "gpt2":
        cfg = Config("gpt2", a.layers, a.d, a.heads, a.heads, a.d // a.heads, a.ffn or 4 * a.d,
                     a.vocab, a.ctx, 1e-5, 0.0)
    else:
        kv = a.kv_heads or a.heads
        cfg = Config("llama", a.layers, a.d, a.heads, kv, a.d // a.heads,
                     a.ffn or (8 * a.d // 3 + 255) // 256 * 256, a.vocab, a.ctx, 1e-6, a.theta)
    targets = a.targets.split(",") if a.targets else (["c_attn"] if cfg.family == "gpt2"
                                                      else ["q_proj", "v_proj"])
    t_load = time.perf_counter()
    P = synthetic_backbone(cfg, a.seed)
    model = Peer(cfg, P, lora_init(cfg, targets, a.rank, a.seed), a.alpha / a.rank)
    opt = torch.optim.AdamW(model.params(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed + 2)
    data = torch.randint(0, cfg.vocab, (a.rows, a.seq), generator=g)
    t_load = time.perf_counter() - t_load
    times, losses = [], []
    for step in range(a.steps):
        t0 = time.perf_counter()
        rows = [(step * a.batch + i) % a.rows for i in range(a.batch)]
        ids = data[rows]
        opt.zero_grad(set_to_none=True)
        loss = model.loss(ids, ids)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    # deltatune's rule: drop step 0 (warm-up) when there are others; upper median
    rest = sorted(times[1:] if len(times) > 1 else times)
    med = rest[len(rest) // 2]
    n_frozen = sum(t.numel() for t in P.values())
    n_train = sum(t.numel() for t in model.params())
    print(json.dumps({
        "family": cfg.family, "layers": cfg.layers, "d": cfg.d, "heads": cfg.heads,
        "kv_heads": cfg.kv_heads, "ffn": cfg.ffn, "vocab": cfg.vocab, "seq": a.seq,
        "batch": a.batch, "threads": torch.get_num_threads(), "steps": a.steps,
        "median_step_s": med, "tokens_per_s": a.batch * a.seq / med,
        "step_times_s": [round(t, 4) for t in times], "loss0": losses[0], "loss_last": losses[-1],
        "peak_rss_mb": vm_hwm_mb(), "setup_s": t_load, "frozen_params": n_frozen,
        "trainable_params": n_train, "torch": torch.__version__, "blas_core": blas_core(),
        "mm1024_gflops": mm_gflops()}))


def cmd_fixture(a):
    torch.set_num_threads(1)
    cfg = Config.from_hf(a.model)
    P = hf_backbone(cfg, a.model)
    model = Peer(cfg, P, lora_init(cfg, a.targets.split(","), a.rank, 0, a.init_from),
                 a.alpha / a.rank)
    batch = read_safetensors(a.batch)
    ids = batch["input_ids"].long()
    labels = batch["labels"].long() if "labels" in batch else ids
    opt = torch.optim.AdamW(model.params(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    losses = []
    for _ in range(max(a.steps, 1)):  # whole batch every step, as the fixtures
        opt.zero_grad(set_to_none=True)
        loss = model.loss(ids, labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(json.dumps({"family": cfg.family, "loss0": losses[0], "losses": losses}))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="time LoRA steps on a synthetic backbone")
    b.add_argument("--family", choices=("gpt2", "llama"), default="gpt2")
    b.add_argument("--layers", type=int, default=12)
    b.add_argument("--d", type=int, default=768)
    b.add_argument("--heads", type=int, default=12)
    b.add_argument("--kv-heads", type=int, default=0, help="llama: key/value heads (0 = heads)")
    b.add_argument("--ffn", type=int, default=0, help="0 = 4d (gpt2), LLaMA rule (llama)")
    b.add_argument("--vocab", type=int, default=50257)
    b.add_argument("--ctx", type=int, default=1024)
    b.add_argument("--theta", type=float, default=10000.0)
    b.add_argument("--seq", type=int, default=512)
    b.add_argument("--rows", type=int, default=4)
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--steps", type=int, default=4)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--rank", type=int, default=8)
    b.add_argument("--alpha", type=float, default=16.0)
    b.add_argument("--targets", default="", help="default c_attn (gpt2) / q_proj,v_proj (llama)")
    b.add_argument("--lr", type=float, default=1e-3)
    b.add_argument("--seed", type=int, default=1)
    x = sub.add_parser("fixture", help="step-0 loss of a HF model + PEFT LoRA init on a batch")
    x.add_argument("--model", required=True)
    x.add_argument("--batch", required=True)
    x.add_argument("--init-from", required=True)
    x.add_argument("--rank", type=int, required=True)
    x.add_argument("--alpha", type=float, required=True)
    x.add_argument("--targets", required=True)
    x.add_argument("--steps", type=int, default=1, help="AdamW steps (losses before each update)")
    x.add_argument("--lr", type=float, default=1e-2)
    a = ap.parse_args(argv)
    if a.cmd == "bench":
        cmd_bench(a)
    else:
        cmd_fixture(a)


if __name__ == "__main__":
    main(sys.argv[1:])
