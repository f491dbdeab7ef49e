#!/usr/bin/env python3
"""Makes the HF-parity fixture set of one model family with transformers 5.17,
peft 0.21 and torch 2.11 (CPU, float32, eager attention, deterministic), laid
out as tests/data/hf-parity/README.md describes:

  OUT/<family>/model/              save_pretrained of the model
  OUT/<family>/batch.safetensors   input_ids, labels [2, 12] int64
  OUT/<family>/<method>/expected.json, init, grads, final, logits0 (.safetensors),
                         projection.safetensors (said)

for the methods base, full, lora, prefix, prefix_proj, prompt, ia3, lastlayer,
adapter, said (and bitfit where the family has biases). It runs where those
libraries are (the 16-core machine of ../shared/device/README.md), not in the
test suite.

usage: make_fixtures.py FAMILY OUT [--model-dir DIR] [--batch FILE]
                        [--init-dir DIR] [--compare DIR] [--methods a,b,...]
                        [--name NAME]
  FAMILY       gpt2, llama, qwen2, mistral, opt, gpt_neox, gemma, gemma2,
               bloom or falcon
  --model-dir  load this Hugging Face folder (e.g. tests/data/families/qwen2/model)
               instead of making a tiny model from the seed
  --batch      use this batch instead of drawing one
  --init-dir   start each method from DIR/<method>/init.safetensors (and
               projection.safetensors) instead of drawn values: with the
               shipped fixture folder this reproduces the shipped numbers
  --compare    check loss0 and losses against DIR/<method>/expected.json
               (within 1e-5) and the model's weights against DIR/model;
               exit 1 on any difference
  --name       write OUT/NAME instead of OUT/FAMILY (two models of one family,
               e.g. gpt_neox_seq for tests/data/families/neox_seq/model,
               bloom_h6 for tests/data/families/bloom_h6/model)
"""
import argparse
import copy
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

SEED = 1
STEPS = 5
LR = 1e-2
TOL = 1e-5

FAMILIES = {
    "gpt2": dict(blocks="transformer.h", lora=["c_attn", "mlp.c_fc"],
                 ia3=["c_attn", "mlp.c_proj"], ia3_ff=["mlp.c_proj"],
                 adapter=("attn.c_proj", "mlp.c_proj"), fan_in_fan_out=True),
    "llama": dict(blocks="model.layers", lora=["q_proj", "v_proj", "down_proj"],
                  ia3=["k_proj", "v_proj", "down_proj"], ia3_ff=["down_proj"],
                  adapter=("self_attn.o_proj", "mlp.down_proj"), fan_in_fan_out=False),
}
FAMILIES["qwen2"] = FAMILIES["llama"]
FAMILIES["mistral"] = FAMILIES["llama"]
FAMILIES["opt"] = dict(blocks="model.decoder.layers", lora=["q_proj", "v_proj", "fc1"],
                       ia3=["q_proj", "k_proj", "fc2"], ia3_ff=["fc2"],
                       adapter=("self_attn.out_proj", "fc2"), fan_in_fan_out=False)
# GPT-NeoX: PEFT's default LoRA target query_key_value (the fused per-head
# rows) plus the FFN's output dense_4h_to_h; IA3 PEFT's gpt_neox mapping
FAMILIES["gpt_neox"] = dict(blocks="gpt_neox.layers",
                            lora=["query_key_value", "dense_4h_to_h"],
                            ia3=["query_key_value", "dense_4h_to_h"], ia3_ff=["dense_4h_to_h"],
                            adapter=("attention.dense", "mlp.dense_4h_to_h"),
                            fan_in_fan_out=False)
# Falcon: PEFT's falcon mapping (LoRA query_key_value; IA3 query_key_value
# and the feed-forward dense_4h_to_h) with the FFN's output for LoRA too
FAMILIES["falcon"] = dict(blocks="transformer.h",
                          lora=["query_key_value", "dense_4h_to_h"],
                          ia3=["query_key_value", "dense_4h_to_h"], ia3_ff=["dense_4h_to_h"],
                          adapter=("self_attention.dense", "mlp.dense_4h_to_h"),
                          fan_in_fan_out=False)
# Gemma and Gemma-2: LLaMA's module names; IA3 with PEFT's gemma / gemma2
# defaults (q_proj, v_proj, down_proj). The adapter hooks the outputs of o_proj
# and down_proj: in Gemma-2 before the post-attention / post-feedforward norms
FAMILIES["gemma"] = dict(FAMILIES["llama"], ia3=["q_proj", "v_proj", "down_proj"])
FAMILIES["gemma2"] = FAMILIES["gemma"]
# BLOOM: PEFT's default LoRA target query_key_value (the fused per-head
# rows) plus the FFN's output dense_4h_to_h; IA3 PEFT's bloom mapping
FAMILIES["bloom"] = dict(blocks="transformer.h",
                         lora=["query_key_value", "dense_4h_to_h"],
                         ia3=["query_key_value", "mlp.dense_4h_to_h"],
                         ia3_ff=["mlp.dense_4h_to_h"],
                         adapter=("self_attention.dense", "mlp.dense_4h_to_h"),
                         fan_in_fan_out=False)

METHODS = ["base", "full", "lora", "prefix", "prefix_proj", "prompt", "ia3", "bitfit",
           "lastlayer", "adapter", "said"]
LOSS_DEF = ("mean over (b,t) with labels[b,t+1] != -100 of "
            "-log softmax(logits[b,t])[labels[b,t+1]]")


# ----------------------------------------------------------------- the model

def tiny_config(family):
    from transformers import AutoConfig
    common = dict(num_hidden_layers=2, hidden_size=48, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=12, intermediate_size=128, vocab_size=96,
                  max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  attention_dropout=0.0)
    if family == "gpt2":
        return AutoConfig.for_model("gpt2", n_layer=2, n_embd=48, n_head=4, vocab_size=96,
                                    n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                                    attn_pdrop=0.0)
    if family == "llama":
        return AutoConfig.for_model("llama", **common)
    if family == "qwen2":
        c = dict(common)
        c.pop("head_dim")
        return AutoConfig.for_model("qwen2", use_sliding_window=False, **c)
    if family == "mistral":  # the window (4) shorter than the batch's 12 tokens
        return AutoConfig.for_model("mistral", sliding_window=4, **common)
    if family in ("gemma", "gemma2"):  # Gemma-2: the window (4) in layers 0 and 2
        c = dict(common, head_dim=16, tie_word_embeddings=True, hidden_act="gelu_pytorch_tanh",
                 hidden_activation="gelu_pytorch_tanh")
        if family == "gemma2":
            c.update(num_hidden_layers=3, sliding_window=4, query_pre_attn_scalar=24,
                     attn_logit_softcapping=2.0, final_logit_softcapping=3.0)
        return AutoConfig.for_model(family, **c)
    if family == "opt":
        return AutoConfig.for_model("opt", num_hidden_layers=2, hidden_size=48,
                                    num_attention_heads=4, ffn_dim=192, vocab_size=96,
                                    max_position_embeddings=64, word_embed_proj_dim=48,
                                    dropout=0.0, attention_dropout=0.0, layerdrop=0.0)
    if family == "gpt_neox":  # half of each head rotates (an even 6 of 12)
        return AutoConfig.for_model("gpt_neox", num_hidden_layers=2, hidden_size=48,
                                    num_attention_heads=4, intermediate_size=192,
                                    vocab_size=96, max_position_embeddings=64,
                                    rotary_pct=0.5, hidden_dropout=0.0, attention_dropout=0.0,
                                    tie_word_embeddings=False)
    if family == "falcon":  # Falcon-40B/180B's block: 4 key/value groups of 2 heads
        return AutoConfig.for_model("falcon", num_hidden_layers=2, hidden_size=48,
                                    num_attention_heads=8, num_kv_heads=4,
                                    new_decoder_architecture=True, parallel_attn=True,
                                    bias=False, vocab_size=96, max_position_embeddings=64,
                                    hidden_dropout=0.0, attention_dropout=0.0,
                                    tie_word_embeddings=False)
    if family == "bloom":  # 6 heads: ALiBi's interleaved extra slopes
        return AutoConfig.for_model("bloom", n_layer=2, hidden_size=48, n_head=6,
                                    vocab_size=96, hidden_dropout=0.0, attention_dropout=0.0)
    raise SystemExit(f"unknown family {family}")


def load_model(family, model_dir):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(SEED)
    if model_dir:
        m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation="eager")
    else:
        m = AutoModelForCausalLM.from_config(tiny_config(family), attn_implementation="eager")
        m = m.float()
        with torch.no_grad():  # biases and norm weights away from 0 / 1
            for n, p in m.named_parameters():
                if n.endswith(".bias"):
                    p.normal_(0.0, 0.2)
                elif p.dim() == 1:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
    m.eval()  # no dropout anywhere; gradients still flow
    return m


def make_batch(vocab):
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, vocab, (2, 12), generator=g, dtype=torch.int64)
    labels = ids.clone()
    labels[:, :4] = -100
    labels[1, 10:] = -100
    return ids, labels


def loss_of(logits, labels):
    z = logits[:, :-1].reshape(-1, logits.shape[-1])
    y = labels[:, 1:].reshape(-1)
    keep = y != -100
    return F.cross_entropy(z[keep], y[keep], reduction="mean")


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


# ------------------------------------------------------- SAID's projection

def fwht(x):
    """Unnormalised Walsh-Hadamard transform of a power-of-two vector."""
    n = x.shape[0]
    h = 1
    while h < n:
        x = x.view(-1, 2, h)
        x = torch.stack((x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]), dim=1).reshape(n)
        h *= 2
    return x


class Said:
    """W_i = W0_i + lam_i * reshape(y[:D]) / (sqrt(LL sum G^2) sqrt(D / LL)),
    y = H(G (H(B pad(theta, LL)))[Pi]) (tests/data/hf-parity/README.md)."""

    def __init__(self, model, blocks, dim, init, proj):
        self.names = [n for n, p in model.named_parameters()
                      if n.startswith(blocks + ".") and p.dim() == 2]
        params = dict(model.named_parameters())
        self.w0 = {n: params[n].detach().clone() for n in self.names}
        g = torch.Generator().manual_seed(SEED + 7)
        self.B, self.G, self.Pi = [], [], []
        for i, n in enumerate(self.names):
            D = self.w0[n].numel()
            LL = 1 << (D - 1).bit_length()
            if proj is not None:
                self.B.append(proj[f"said.{i}.B"].float())
                self.G.append(proj[f"said.{i}.G"].float())
                self.Pi.append(proj[f"said.{i}.Pi"].long())
            else:
                self.B.append(torch.randint(0, 2, (LL,), generator=g).float() * 2 - 1)
                self.G.append(torch.randn(LL, generator=g))
                self.Pi.append(torch.randperm(LL, generator=g))
        if init is not None:
            theta, lam = init["theta"].clone(), init["lam"].clone()
        else:
            theta = 0.02 * torch.randn(dim, generator=g)
            lam = 1.0 + 0.1 * torch.randn(len(self.names), generator=g)
        self.theta = torch.nn.Parameter(theta)
        self.lam = torch.nn.Parameter(lam)

    def weights(self):
        out = {}
        for i, n in enumerate(self.names):
            D = self.w0[n].numel()
            LL = self.B[i].numel()
            v = torch.zeros(LL)
            v = torch.cat((self.theta, v[self.theta.numel():]))
            y = fwht(self.G[i] * fwht(self.B[i] * v)[self.Pi[i]])
            norm = math.sqrt(LL) * torch.sqrt((self.G[i] ** 2).sum()) * math.sqrt(D / LL)
            out[n] = self.w0[n] + self.lam[i] * y[:D].reshape(self.w0[n].shape) / norm
        return out

    def projection(self):
        t = {}
        for i in range(len(self.names)):
            t[f"said.{i}.B"] = self.B[i]
            t[f"said.{i}.G"] = self.G[i]
            t[f"said.{i}.Pi"] = self.Pi[i]
        return t


# ------------------------------------------------------------ the methods

def peft_config_dict(cfg):
    d = cfg.to_dict()
    return {k: (str(v) if isinstance(v, (set, frozenset)) else v) for k, v in d.items()}


def set_trainable(model, names):
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)


def setup(method, family, base, init):
    """(module to call, {name: parameter} trained, config dict, extra state)."""
    fam = FAMILIES[family]
    blocks = fam["blocks"]
    model = copy.deepcopy(base)
    torch.manual_seed(SEED)
    cfg, extra = {}, {}
    if method in ("base", "full", "bitfit", "lastlayer"):
        n_layer = model.config.num_hidden_layers
        keep = {
            "base": lambda n: False,
            "full": lambda n: True,
            "bitfit": lambda n: n.endswith(".bias"),
            "lastlayer": lambda n: n.startswith(f"{blocks}.{n_layer - 1}."),
        }[method]
        names = {n for n, _ in model.named_parameters() if keep(n)}
        set_trainable(model, names)
        if method == "lastlayer":
            cfg = {"trainable": f"every parameter of the last transformer block: "
                                f"{blocks}.{n_layer - 1}."}
        if method == "bitfit":
            cfg = {"trainable": "every parameter whose name ends in .bias"}
        net = model
    elif method in ("lora", "prefix", "prefix_proj", "prompt", "ia3"):
        from peft import (IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig,
                          get_peft_model)
        if method == "lora":
            pc = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
                            target_modules=fam["lora"], init_lora_weights=False,
                            fan_in_fan_out=fam["fan_in_fan_out"])
        elif method == "ia3":
            pc = IA3Config(task_type="CAUSAL_LM", target_modules=fam["ia3"],
                           feedforward_modules=fam["ia3_ff"], init_ia3_weights=False,
                           fan_in_fan_out=fam["fan_in_fan_out"])
        elif method == "prompt":
            pc = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3,
                                    prompt_tuning_init="RANDOM")
        else:
            pc = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3,
                                    prefix_projection=method == "prefix_proj",
                                    encoder_hidden_size=32)
        net = get_peft_model(model, pc)
        net.eval()
        cfg = peft_config_dict(pc)
    elif method == "adapter":
        set_trainable(model, set())
        d = model.config.hidden_size
        adapters = torch.nn.ModuleDict()
        mods = dict(model.named_modules())
        for layer in range(model.config.num_hidden_layers):
            for where, site in zip(("attn", "mlp"), fam["adapter"]):
                a = torch.nn.Module()
                a.down = torch.nn.Linear(d, 8)
                a.up = torch.nn.Linear(8, d)
                with torch.no_grad():
                    for p in list(a.down.parameters()) + list(a.up.parameters()):
                        p.normal_(0.0, 0.05)
                adapters[f"adapter_{layer}_{where}"] = a

                def hook(_m, _i, out, a=a):
                    return out + a.up(gelu_tanh(a.down(out)))
                mods[f"{blocks}.{layer}.{site}"].register_forward_hook(hook)
        extra["adapters"] = adapters
        net = model
        cfg = {"bottleneck": 8, "activation": "gelu_tanh",
               "placement": "output of attention out-proj and of FFN down/out-proj, before "
                            "the residual add: y = x + up(gelu(down(x)))"}
    elif method == "said":
        set_trainable(model, set())
        proj = init.get("projection") if init else None
        said = Said(model, blocks, 24, init.get("params") if init else None, proj)
        extra["said"] = said
        net = model
        cfg = {"intrinsic_dim": 24, "said": True, "tensors": said.names}
    else:
        raise SystemExit(f"unknown method {method}")

    if method == "adapter":
        trained = {}
        for k, a in extra["adapters"].items():
            for n, p in a.named_parameters():
                trained[f"{k}.{n}"] = p
    elif method == "said":
        trained = {"lam": extra["said"].lam, "theta": extra["said"].theta}
    else:
        trained = {n: p for n, p in net.named_parameters() if p.requires_grad}
    if init and init.get("params") is not None and method != "said":
        with torch.no_grad():
            for n, p in trained.items():
                p.copy_(init["params"][n])
    return net, trained, cfg, extra


def forward(net, method, extra, ids):
    if method == "said":
        from torch.func import functional_call
        return functional_call(net, extra["said"].weights(), args=(), kwargs={"input_ids": ids},
                               strict=False).logits
    return net(input_ids=ids).logits


def run_method(method, family, base, ids, labels, out, init):
    net, trained, cfg, extra = setup(method, family, base, init)
    names = sorted(trained)
    save = lambda path, t: save_file({k: v.detach().contiguous().clone() for k, v in t.items()},  # noqa: E731
                                     path)
    os.makedirs(out, exist_ok=True)
    save(os.path.join(out, "init.safetensors"), {n: trained[n] for n in names})  # base: empty
    if method == "said":
        save(os.path.join(out, "projection.safetensors"), extra["said"].projection())
    opt = torch.optim.AdamW([trained[n] for n in names], lr=LR, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0) if names else None
    losses = []
    for step in range(STEPS + 1):
        logits = forward(net, method, extra, ids)
        lab = labels
        if logits.shape[1] != labels.shape[1]:  # prompt tuning: virtual positions unscored
            pad = torch.full((labels.shape[0], logits.shape[1] - labels.shape[1]), -100,
                             dtype=labels.dtype)
            lab = torch.cat((pad, labels), dim=1)
        loss = loss_of(logits, lab)
        losses.append(loss.item())
        if step == 0:
            save(os.path.join(out, "logits0.safetensors"), {"logits": logits})
        if step == STEPS or not names:
            break
        opt.zero_grad()
        loss.backward()
        if step == 0:
            save(os.path.join(out, "grads.safetensors"),
                 {n: trained[n].grad if trained[n].grad is not None
                  else torch.zeros_like(trained[n]) for n in names})
        opt.step()
    if names:
        save(os.path.join(out, "final.safetensors"), {n: trained[n] for n in names})
    exp = {"kind": family, "method": method, "seed": SEED, "config": cfg,
           "optimizer": {"name": "AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8,
                         "weight_decay": 0.0},
           "loss_definition": LOSS_DEF, "loss0": losses[0]}
    if names:
        exp["losses"] = losses
        exp["n_trainable"] = sum(trained[n].numel() for n in names)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, default=str)
    return exp


# ----------------------------------------------------------------- driver

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("out")
    ap.add_argument("--model-dir")
    ap.add_argument("--batch")
    ap.add_argument("--init-dir")
    ap.add_argument("--compare")
    ap.add_argument("--methods")
    ap.add_argument("--name")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))

    root = os.path.join(a.out, a.name or a.family)
    base = load_model(a.family, a.model_dir)
    base.save_pretrained(os.path.join(root, "model"))
    if a.batch:
        b = load_file(a.batch)
        ids, labels = b["input_ids"].long(), b["labels"].long()
    else:
        ids, labels = make_batch(base.config.vocab_size)
    save_file({"input_ids": ids, "labels": labels}, os.path.join(root, "batch.safetensors"))

    has_bias = any(n.endswith(".bias") for n, _ in base.named_parameters())
    methods = a.methods.split(",") if a.methods else [
        m for m in METHODS if m != "bitfit" or has_bias]
    bad = 0
    if a.compare:  # the weights of the reference model
        ref = load_file(os.path.join(a.compare, "model", "model.safetensors"))
        mine = load_file(os.path.join(root, "model", "model.safetensors"))
        for n, t in ref.items():
            if n not in mine or mine[n].shape != t.shape or not torch.equal(mine[n], t):
                print(f"model: tensor {n} differs from {a.compare}")
                bad += 1
    for m in methods:
        init = None
        if a.init_dir:
            d = os.path.join(a.init_dir, m)
            init = {"params": load_file(os.path.join(d, "init.safetensors"))
                    if os.path.exists(os.path.join(d, "init.safetensors")) else None}
            if os.path.exists(os.path.join(d, "projection.safetensors")):
                init["projection"] = load_file(os.path.join(d, "projection.safetensors"))
        try:  # a method transformers or PEFT cannot run for the family fails alone
            exp = run_method(m, a.family, base, ids, labels, os.path.join(root, m), init)
        except Exception as e:  # noqa: BLE001 (reported, counted, the next method runs)
            print(f"{a.family} {m}: FAILED: {type(e).__name__}: {e}", flush=True)
            bad += 1
            continue
        line = f"{a.family} {m}: loss0 {exp['loss0']:.9f}"
        if "losses" in exp:
            line += " losses " + " ".join(f"{x:.6f}" for x in exp["losses"])
        if a.compare:
            with open(os.path.join(a.compare, m, "expected.json")) as f:
                ref = json.load(f)
            d0 = abs(ref["loss0"] - exp["loss0"])
            dl = max((abs(x - y) for x, y in zip(ref.get("losses", []), exp.get("losses", []))),
                     default=0.0)
            ok = d0 <= TOL and dl <= TOL and len(ref.get("losses", [])) == len(exp.get("losses", []))
            line += f"  vs reference: loss0 {d0:.1e}, losses {dl:.1e} {'ok' if ok else 'DIFFERENT'}"
            bad += not ok
        print(line, flush=True)
    print(f"{len(methods) - bad} passed, {bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
