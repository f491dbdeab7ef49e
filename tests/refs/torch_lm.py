"""A small, independent PyTorch implementation of the two families deltatune
loads (GPT-2 and LLaMA) and of the delta methods, written from the
semantics in tests/data/hf-parity/README.md, for references that the HF
fixtures do not hold (greedy generation with every method, today).

It does not use deltatune's code and is checked against the fixtures first
(check_fixture: every method's loss at its init and final parameters equals
the loss transformers + PEFT computed). It recomputes the whole sequence for
every new token (no key/value cache), so a generation reference made with it
is independent of any cache.

Only PyTorch and numpy (Debian's python3-torch, python3-numpy)."""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import st  # noqa: E402  (tests/parity/st.py: safetensors with numpy)


def load_safetensors(path):
    """name -> torch tensor (float tensors as float64: the reference runs in
    double precision so that its argmax is the exact one)."""
    out = {}
    for name, arr in st.read(path)[0].items():
        t = torch.from_numpy(np.array(arr))
        out[name] = t.double() if t.is_floating_point() else t
    return out


def save_safetensors(path, tensors):
    """Write tensors as float32 safetensors."""
    st.write(path, {k: v.detach().float().contiguous().numpy() for k, v in sorted(tensors.items())})


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class Methods:
    """The delta methods' tensors, applied where the fixture README says."""

    def __init__(self, kind, cfg, tensors=None, peft_cfg=None):
        self.kind, self.cfg, self.t = kind, cfg, tensors or {}
        self.peft = peft_cfg or {}

    # name of a module in PEFT's naming, as the tensors carry it
    def _lora(self, mod):
        for sfx in (".default.weight", ".weight"):
            a = self.t.get("base_model.model." + mod + ".lora_A" + sfx)
            if a is not None:
                b = self.t["base_model.model." + mod + ".lora_B" + sfx]
                return a, b
        return None

    def linear_out(self, mod, x, y):
        """y = x W (+b) of module mod; LoRA adds scale*(x A^T) B^T, IA3 scales."""
        ab = self._lora(mod)
        if ab is not None:
            a, b = ab
            scale = self.peft["lora_alpha"] / self.peft["r"]
            y = y + scale * (x @ a.T) @ b.T
        l3 = self.t.get("base_model.model." + mod + ".ia3_l.default")
        if l3 is not None and l3.shape[1] == 1:
            y = y * l3[:, 0]
        return y

    def linear_in(self, mod, x):
        l3 = self.t.get("base_model.model." + mod + ".ia3_l.default")
        if l3 is not None and l3.shape[0] == 1:
            x = x * l3[0]
        return x

    def adapter(self, layer, where, x):
        p = "adapter_%d_%s." % (layer, where)
        if p + "down.weight" not in self.t:
            return x
        h = x @ self.t[p + "down.weight"].T + self.t[p + "down.bias"]
        return x + gelu_tanh(h) @ self.t[p + "up.weight"].T + self.t[p + "up.bias"]

    def prompt(self):
        if self.peft.get("peft_type") == "PROMPT_TUNING":
            return self.t["prompt_encoder.default.embedding.weight"]
        return None

    def prefix(self, n_layers, kv_heads, head_dim):
        """[L] of (k, v), each [P, kv_heads, head_dim], or None."""
        if self.peft.get("peft_type") != "PREFIX_TUNING":
            return None
        e = self.t["prompt_encoder.default.embedding.weight"]
        if self.peft.get("prefix_projection"):
            p = "prompt_encoder.default.transform."
            h = torch.tanh(e @ self.t[p + "0.weight"].T + self.t[p + "0.bias"])
            e = h @ self.t[p + "2.weight"].T + self.t[p + "2.bias"]
        P = e.shape[0]
        e = e.reshape(P, 2 * n_layers, kv_heads, head_dim)
        return [(e[:, 2 * l], e[:, 2 * l + 1]) for l in range(n_layers)]


def fwht(x):
    """Unnormalised Walsh-Hadamard transform of a power-of-two vector."""
    n = x.shape[0]
    y = x.clone()
    h = 1
    while h < n:
        y = y.reshape(-1, 2, h)
        a, b = y[:, 0, :], y[:, 1, :]
        y = torch.stack((a + b, a - b), dim=1)
        h *= 2
    return y.reshape(n)


def said_weights(weights, tensors, proj, names):
    """W_i = W0_i + lam_i * y[:D_i] / (sqrt(LL_i sum G_i^2) sqrt(D_i/LL_i))."""
    theta, lam = tensors["theta"], tensors["lam"]
    out = dict(weights)
    for i, name in enumerate(names):
        w0 = weights[name]
        D = w0.numel()
        LL = 1 << (D - 1).bit_length()
        B, G, Pi = proj["said.%d.B" % i], proj["said.%d.G" % i], proj["said.%d.Pi" % i]
        v = torch.zeros(LL, dtype=torch.float64)
        v[:theta.shape[0]] = theta
        v = fwht(B * v)[Pi.long()]
        y = fwht(G * v)
        y = y[:D] / (math.sqrt(LL * float((G * G).sum())) * math.sqrt(D / LL))
        out[name] = w0 + lam[i] * y.reshape(w0.shape)
    return out


class LM:
    """GPT-2 or LLaMA forward from HF weights (float64)."""

    def __init__(self, folder):
        self.cfg = json.load(open(folder + "/config.json"))
        self.kind = self.cfg["model_type"]
        if self.kind not in ("gpt2", "llama"):
            raise ValueError("torch_lm: model_type %r not implemented" % self.kind)
        self.w = load_safetensors(folder + "/model.safetensors")
        c = self.cfg
        if self.kind == "gpt2":
            self.L, self.d, self.H = c["n_layer"], c["n_embd"], c["n_head"]
            self.KV, self.hd = self.H, self.d // self.H
            self.eps = c["layer_norm_epsilon"]
            if "lm_head.weight" not in self.w:
                self.w["lm_head.weight"] = self.w["transformer.wte.weight"]
        else:
            self.L, self.d, self.H = c["num_hidden_layers"], c["hidden_size"], c["num_attention_heads"]
            self.KV = c.get("num_key_value_heads", self.H)
            self.hd = c.get("head_dim") or self.d // self.H
            self.eps = c["rms_norm_eps"]
            rp = c.get("rope_parameters") or {}
            self.theta = rp.get("rope_theta", c.get("rope_theta", 10000.0))
            if "lm_head.weight" not in self.w:
                self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]

    # -- pieces ----------------------------------------------------------
    def _ln(self, x, p):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def _rms(self, x, p):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.w[p + ".weight"]

    def _rope(self, x, pos):
        # x [T, heads, hd]; rotate_half convention
        half = self.hd // 2
        inv = 1.0 / (self.theta ** (torch.arange(0, half, dtype=torch.float64) * 2 / self.hd))
        ang = pos.double()[:, None] * inv[None, :]
        cos = torch.cat((ang.cos(), ang.cos()), -1)[:, None, :]
        sin = torch.cat((ang.sin(), ang.sin()), -1)[:, None, :]
        rot = torch.cat((-x[..., half:], x[..., :half]), -1)
        return x * cos + rot * sin

    def _attend(self, q, k, v, n_past):
        # q [T,H,hd], k/v [n_past+T, KV, hd]; causal over the T new rows
        T = q.shape[0]
        rep = self.H // self.KV
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(self.hd)
        mask = torch.ones(T, n_past + T, dtype=torch.bool)
        mask[:, n_past:] = torch.tril(torch.ones(T, T, dtype=torch.bool))
        s = s.masked_fill(~mask[None], float("-inf"))
        a = torch.softmax(s, -1)
        return torch.einsum("hts,shd->thd", a, v).reshape(T, self.H * self.hd)

    def logits(self, ids, m, w=None):
        """ids: list of token ids of one row; m: Methods. -> [T_total, vocab]
        (prompt-tuning rows come first when the method has them)."""
        w = w or self.w
        saved, self.w = self.w, w
        try:
            return self._logits(ids, m)
        finally:
            self.w = saved

    def _logits(self, ids, m):
        w = self.w
        ids = torch.tensor(ids, dtype=torch.long)
        pre = m.prefix(self.L, self.KV, self.hd)
        P = pre[0][0].shape[0] if pre else 0
        if self.kind == "gpt2":
            x = w["transformer.wte.weight"][ids]
        else:
            x = w["model.embed_tokens.weight"][ids]
        pr = m.prompt()
        if pr is not None:
            x = torch.cat((pr, x), 0)
        T = x.shape[0]
        pos = torch.arange(P, P + T)
        if self.kind == "gpt2":
            x = x + w["transformer.wpe.weight"][pos]
        for l in range(self.L):
            x = self._block(l, x, pos, pre[l] if pre else None, m)
        if self.kind == "gpt2":
            x = self._ln(x, "transformer.ln_f")
        else:
            x = self._rms(x, "model.norm")
        return x @ w["lm_head.weight"].T

    def _lin(self, mod, x, m, conv1d):
        w = self.w
        x = m.linear_in(mod, x)
        W = w[mod + ".weight"]
        y = x @ W if conv1d else x @ W.T
        if mod + ".bias" in w:
            y = y + w[mod + ".bias"]
        return m.linear_out(mod, x, y)

    def _block(self, l, x, pos, pre, m):
        T = x.shape[0]
        if self.kind == "gpt2":
            p = "transformer.h.%d." % l
            a = self._ln(x, p + "ln_1")
            qkv = self._lin(p + "attn.c_attn", a, m, True)
            q, k, v = qkv.split(self.d, -1)
            q = q.reshape(T, self.H, self.hd)
            k = k.reshape(T, self.KV, self.hd)
            v = v.reshape(T, self.KV, self.hd)
        else:
            p = "model.layers.%d." % l
            a = self._rms(x, p + "input_layernorm")
            q = self._lin(p + "self_attn.q_proj", a, m, False).reshape(T, self.H, self.hd)
            k = self._lin(p + "self_attn.k_proj", a, m, False).reshape(T, self.KV, self.hd)
            v = self._lin(p + "self_attn.v_proj", a, m, False).reshape(T, self.KV, self.hd)
            q, k = self._rope(q, pos), self._rope(k, pos)
        n_past = 0
        if pre is not None:
            k = torch.cat((pre[0], k), 0)
            v = torch.cat((pre[1], v), 0)
            n_past = pre[0].shape[0]
        o = self._attend(q, k, v, n_past)
        if self.kind == "gpt2":
            o = self._lin(p + "attn.c_proj", o, m, True)
            x = x + m.adapter(l, "attn", o)
            f = self._ln(x, p + "ln_2")
            f = gelu_tanh(self._lin(p + "mlp.c_fc", f, m, True))
            f = self._lin(p + "mlp.c_proj", f, m, True)
        else:
            o = self._lin(p + "self_attn.o_proj", o, m, False)
            x = x + m.adapter(l, "attn", o)
            f = self._rms(x, p + "post_attention_layernorm")
            g = self._lin(p + "mlp.gate_proj", f, m, False)
            u = self._lin(p + "mlp.up_proj", f, m, False)
            f = self._lin(p + "mlp.down_proj", torch.nn.functional.silu(g) * u, m, False)
        return x + m.adapter(l, "mlp", f)

    # -- uses ------------------------------------------------------------
    def loss_tensor(self, batch_ids, batch_labels, m, w=None):
        """The fixture's loss (mean over every scored token of the batch) as
        a tensor, differentiable in the method's tensors; and the logits."""
        tot, n, all_logits = 0.0, 0, []
        for ids, lab in zip(batch_ids, batch_labels):
            lg = self.logits(ids, m, w)
            all_logits.append(lg)
            if m.prompt() is not None:
                lab = [-100] * m.prompt().shape[0] + list(lab)
            lp = torch.log_softmax(lg, -1)
            for t in range(len(lab) - 1):
                if lab[t + 1] != -100:
                    tot = tot - lp[t, lab[t + 1]]
                    n += 1
        return tot / n, all_logits

    def loss(self, batch_ids, batch_labels, m, w=None):
        """The fixture's loss as a float."""
        return float(self.loss_tensor(batch_ids, batch_labels, m, w)[0])

    def greedy(self, ids, m, n_new, eos, w=None):
        """Greedy continuation recomputing the whole row per token. Returns
        (new ids, smallest top-1 minus top-2 logit margin)."""
        seq, new, margin = list(ids), [], float("inf")
        for _ in range(n_new):
            lg = self.logits(seq, m, w)[-1]
            top = torch.topk(lg, 2)
            margin = min(margin, float(top.values[0] - top.values[1]))
            t = int(top.indices[0])
            new.append(t)
            seq.append(t)
            if eos is not None and t in eos:
                break
        return new, margin
