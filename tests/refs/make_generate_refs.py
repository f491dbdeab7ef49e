#!/usr/bin/python3
"""Greedy-generation references for `deltatune generate`, made with the
independent PyTorch implementation in torch_lm.py (float64, whole sequence
recomputed per token, no key/value cache).

  python3 tests/refs/make_generate_refs.py [OUT_DIR]   (default tests/data/generate)

Before it writes anything it checks torch_lm against the HF fixtures: for
every method, the loss at init.safetensors and final.safetensors equals
expected.json's loss0 and losses[5] (what transformers + PEFT computed)
within 1e-6. It refuses to write references when one differs.

Writes
  hf-parity/<gpt2|llama>/<method>.json  {"max_new_tokens", "rows": [{"prompt_ids", "ids", "margin"}]}
      the method's final.safetensors applied (deltatune: the parity test's
      method options and --init-from <method>/final.safetensors)
  models/<tiny-gpt2|tiny-llama>-<base|lora>.json
      {"max_new_tokens", "adapter", "args", "rows": [{"prompt", "prompt_ids", "ids", "margin"}]}
  models/<tiny-gpt2|tiny-llama>-lora/adapter_model.safetensors, adapter_config.json
      a PEFT-layout LoRA adapter with random A and B (seed 0), so that the
      tuned model's output differs from the base model's
"margin" is the smallest top-1 minus top-2 logit gap over the row's steps:
a token is only as certain as that gap is large against float32 rounding.

prompt_ids of the shipped models are the tokenizer's ids of the prompt
text with add_special_tokens=True; they are read from `deltatune tokenize`
output given as --prompt-ids FILE (rows {"ids": [...]} for PROMPTS below),
which test_tokenizer_* check against HF tokenizers."""
import argparse
import ast
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_lm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "data", "hf-parity")
METHODS = ["base", "full", "lora", "prefix", "prefix_proj", "prompt", "ia3", "bitfit",
           "lastlayer", "adapter", "said"]
N_NEW_FIXTURE = 12
N_NEW_MODEL = 16
# The first three rows of the shipped supersense task's test split.
PROMPTS = [
    "Word: pillory\nMeaning: a wooden instrument of punishment on a post with holes for the wrists and neck\nClass:",
    "Word: carol\nMeaning: joyful religious song celebrating the birth of Christ\nClass:",
    "Word: sharpshooter\nMeaning: an athlete noted for accurate aim\nClass:",
]


def peft_config(exp):
    c = dict(exp.get("config") or {})
    for k, v in list(c.items()):
        if isinstance(v, str) and v.startswith("{"):
            c[k] = sorted(ast.literal_eval(v))
    return c


def fixture_method(lm, fam, method):
    d = os.path.join(FIX, fam, method)
    exp = json.load(open(os.path.join(d, "expected.json")))
    cfg = peft_config(exp)
    batch = torch_lm.load_safetensors(os.path.join(FIX, fam, "batch.safetensors"))
    ids = batch["input_ids"].tolist()
    labels = batch["labels"].tolist()

    def build(which):
        if method == "base":
            return torch_lm.Methods(fam, cfg), None
        t = torch_lm.load_safetensors(os.path.join(d, which + ".safetensors"))
        if method in ("full", "bitfit", "lastlayer"):
            w = dict(lm.w)
            for k, v in t.items():
                assert k in w, "%s/%s: %s is no model weight" % (fam, method, k)
                w[k] = v
            if lm.kind == "gpt2":
                w["lm_head.weight"] = w["transformer.wte.weight"]
            return torch_lm.Methods(fam, cfg), w
        if method == "said":
            proj = torch_lm.load_safetensors(os.path.join(d, "projection.safetensors"))
            w = torch_lm.said_weights(lm.w, t, proj, cfg["tensors"])
            return torch_lm.Methods(fam, cfg), w
        return torch_lm.Methods(fam, cfg, t, cfg), None

    m0, w0 = build("init")
    loss0 = lm.loss(ids, labels, m0, w0)
    m5, w5 = build("final")
    loss5 = lm.loss(ids, labels, m5, w5)
    want0 = exp["loss0"]
    want5 = exp["losses"][5] if "losses" in exp else want0
    ok = abs(loss0 - want0) < 1e-6 and abs(loss5 - want5) < 1e-6
    print("%-5s %-11s loss0 %.7f (HF %.7f)  final %.7f (HF %.7f)  %s"
          % (fam, method, loss0, want0, loss5, want5, "ok" if ok else "DIFFERS"))
    return ok, m5, w5, ids


def fixture_refs(out, fam):
    lm = torch_lm.LM(os.path.join(FIX, fam, "model"))
    gen = json.load(open(os.path.join(FIX, fam, "model", "generation_config.json")))
    eos = gen.get("eos_token_id")
    eos = None if eos is None else (eos if isinstance(eos, list) else [eos])
    good, refs = True, {}
    for method in METHODS:
        if not os.path.isdir(os.path.join(FIX, fam, method)):
            continue
        ok, m, w, ids = fixture_method(lm, fam, method)
        good &= ok
        rows = []
        for r, n in ((0, 4), (1, 7)):
            new, margin = lm.greedy(ids[r][:n], m, N_NEW_FIXTURE, eos, w)
            rows.append({"prompt_ids": ids[r][:n], "ids": new, "margin": round(margin, 6)})
        refs[method] = {"max_new_tokens": N_NEW_FIXTURE, "rows": rows}
    if not good:
        sys.exit("make_generate_refs: torch_lm differs from the HF fixtures of %s; nothing written" % fam)
    os.makedirs(os.path.join(out, "hf-parity", fam), exist_ok=True)
    for method, ref in refs.items():
        with open(os.path.join(out, "hf-parity", fam, method + ".json"), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")


def lora_adapter(lm, folder):
    """A PEFT LoRA adapter on the family's default targets, random A and B."""
    g = torch.Generator().manual_seed(0)
    if lm.kind == "gpt2":
        mods = ["transformer.h.%d.attn.c_attn" % l for l in range(lm.L)]
        shapes = [(lm.d, 3 * lm.d)] * lm.L
        targets, fifo = ["c_attn"], True
    else:
        mods, shapes = [], []
        for l in range(lm.L):
            for p, o in (("q_proj", lm.H * lm.hd), ("v_proj", lm.KV * lm.hd)):
                mods.append("model.layers.%d.self_attn.%s" % (l, p))
                shapes.append((lm.d, o))
        targets, fifo = ["q_proj", "v_proj"], False
    r, alpha = 8, 16
    t = {}
    for mod, (din, dout) in zip(mods, shapes):
        t["base_model.model." + mod + ".lora_A.weight"] = torch.randn(r, din, generator=g, dtype=torch.float64) / din ** 0.5
        t["base_model.model." + mod + ".lora_B.weight"] = torch.randn(dout, r, generator=g, dtype=torch.float64) * 0.05
    os.makedirs(folder, exist_ok=True)
    torch_lm.save_safetensors(os.path.join(folder, "adapter_model.safetensors"), t)
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha,
           "lora_dropout": 0.0, "target_modules": targets, "fan_in_fan_out": fifo, "bias": "none"}
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    # what is used is what was written (float32)
    t = torch_lm.load_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    args = ["--method", "lora", "--lora-rank", str(r), "--lora-alpha", str(alpha),
            "--lora-targets", ",".join(targets)]
    return torch_lm.Methods(lm.kind, None, t, cfg), args


def model_refs(out, name, prompt_ids):
    folder = os.path.join(ROOT, "data", "models", name)
    lm = torch_lm.LM(folder)
    gen = json.load(open(os.path.join(folder, "generation_config.json")))
    eos = gen.get("eos_token_id")
    eos = None if eos is None else (eos if isinstance(eos, list) else [eos])
    adir = os.path.join(out, "models", name + "-lora")
    lora, args = lora_adapter(lm, adir)
    for tag, m, adapter, a in (("base", torch_lm.Methods(lm.kind, None), None, []),
                               ("lora", lora, os.path.relpath(adir, ROOT), args)):
        rows = []
        for text, ids in zip(PROMPTS, prompt_ids):
            new, margin = lm.greedy(ids, m, N_NEW_MODEL, eos)
            rows.append({"prompt": text, "prompt_ids": ids, "ids": new, "margin": round(margin, 6)})
            print("%-10s %-4s margin %.4f  %s" % (name, tag, margin, new))
        ref = {"max_new_tokens": N_NEW_MODEL, "adapter": adapter, "args": a, "rows": rows}
        with open(os.path.join(out, "models", "%s-%s.json" % (name, tag)), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "tests", "data", "generate"))
    ap.add_argument("--prompt-ids", required=True,
                    help="deltatune tokenize output for PROMPTS (rows {\"ids\": [...]})")
    a = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    pids = [json.loads(l)["ids"] for l in open(a.prompt_ids)]
    assert len(pids) == len(PROMPTS)
    for fam in ("gpt2", "llama"):
        fixture_refs(a.out, fam)
    os.makedirs(os.path.join(a.out, "models"), exist_ok=True)
    for name in ("tiny-gpt2", "tiny-llama"):
        model_refs(a.out, name, pids)


if __name__ == "__main__":
    main()
