#!/usr/bin/python3
"""References for LoRA and IA3 on quantized frozen backbones (--weights-dtype int8 |
nf4), made with the independent PyTorch model of torch_lm.py.

  /usr/bin/python3 tests/refs/make_quant_refs.py [OUT_DIR]   (default tests/data/hf-parity-quant)

For each fixture family (gpt2, llama) and each of int8 and nf4, the block
matrices (attention qkv and output, FFN in and out) are quantized here as
src/quant.h describes, written out in float32 from torch (not by deltatune):

  int8  per output row: s = absmax(row) / 127 (float32), q = round-half-even(w / s)
        clamped to [-127, 127], w' = q * s
  nf4   per output row, blocks of 64 (the last one shorter): a = absmax(block),
        x = w * (1 / a) in float32, q = the index of the nearest NF4 code (the
        lower on a tie); the block scales of each HF tensor double quantized
        as bitsandbytes does (nf4_dq.py: offset = their mean, 8-bit dynamic
        codes of a - offset in blocks of 256 with a nested absmax each),
        w' = code[q] * (map[scale code] * nested absmax + offset)

(rows = outputs: GPT-2's Conv1D weights are quantized on their transpose).
Then the fixture's LoRA (r 4, alpha 8, its init.safetensors) and IA3 (its
targets and feed-forward modules, its init.safetensors) each train 5 AdamW
steps on that dequantized backbone in float64, as the HF fixtures did, and
OUT_DIR/<fam>-<dtype>/ gets what test_parity reads: model and
batch.safetensors (links to the fixture's), METHOD/expected.json (losses),
METHOD/grads.safetensors (step-0 gradients), METHOD/logits0.safetensors.

Checked first: the same code with no quantization reproduces the HF
fixture's losses of each method (within 1e-6), so the training loop and the
loss are the fixtures'."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nf4_dq  # noqa: E402
import torch_lm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "data", "hf-parity")


def quant_int8(w):
    w = w.float()
    s = w.abs().amax(1, keepdim=True) / 127.0
    q = torch.where(s > 0, torch.round(w / torch.where(s > 0, s, torch.ones_like(s))),
                    torch.zeros_like(w)).clamp(-127, 127)
    return (q * s).double()


def quant_nf4(w):
    return nf4_dq.quantize(w.float())["deq"].double()


def block_matrices(lm):
    """HF names of the quantized matrices and whether HF stores them [in, out]."""
    names = []
    for l in range(lm.L):
        if lm.kind == "gpt2":
            p = "transformer.h.%d." % l
            names += [(p + m, True) for m in ("attn.c_attn.weight", "attn.c_proj.weight",
                                               "mlp.c_fc.weight", "mlp.c_proj.weight")]
        else:
            p = "model.layers.%d." % l
            names += [(p + m, False) for m in (
                "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                "mlp.down_proj.weight")]
    return names


def quantized_weights(lm, kind):
    w = dict(lm.w)
    if kind is None:
        return w
    f = quant_int8 if kind == "int8" else quant_nf4
    for name, conv1d in block_matrices(lm):
        m = w[name].T if conv1d else w[name]
        m = f(m)
        w[name] = m.T.contiguous() if conv1d else m
    return w


def train(lm, fam, method, w):
    d = os.path.join(FIX, fam, method)
    exp = json.load(open(os.path.join(d, "expected.json")))
    cfg = {k: exp["config"][k] for k in ("r", "lora_alpha") if k in exp["config"]}
    init = torch_lm.load_safetensors(os.path.join(d, "init.safetensors"))
    params = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    m = torch_lm.Methods(fam, cfg, params, cfg)
    batch = torch_lm.load_safetensors(os.path.join(FIX, fam, "batch.safetensors"))
    ids, labels = batch["input_ids"].tolist(), batch["labels"].tolist()
    opt = torch.optim.AdamW(list(params.values()), lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.0)
    losses, grads, logits0 = [], None, None
    for step in range(6):
        opt.zero_grad()
        loss, lg = lm.loss_tensor(ids, labels, m, w)
        losses.append(float(loss))
        if step == 5:
            break
        loss.backward()
        if step == 0:
            grads = {k: v.grad.detach().clone() for k, v in params.items()}
            logits0 = torch.stack([x.detach() for x in lg])
        opt.step()
    return exp, losses, grads, logits0


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "hf-parity-quant")
    torch.set_default_dtype(torch.float64)
    for fam in ("gpt2", "llama"):
        lm = torch_lm.LM(os.path.join(FIX, fam, "model"))
        for method in ("lora", "ia3"):
            exp, losses, _, _ = train(lm, fam, method, quantized_weights(lm, None))
            diff = max(abs(a - b) for a, b in zip(losses, exp["losses"]))
            print("%s %s unquantized: losses %s, HF %s, max diff %.2e"
                  % (fam, method, ["%.6f" % x for x in losses], ["%.6f" % x for x in exp["losses"]],
                     diff))
            if diff > 1e-6:
                sys.exit("make_quant_refs: the training loop differs from the HF fixture; nothing written")
        for kind, method in ((k, m) for k in ("int8", "nf4") for m in ("lora", "ia3")):
            exp, losses, grads, logits0 = train(lm, fam, method, quantized_weights(lm, kind))
            print("%s %s %s: losses %s" % (fam, method, kind, ["%.6f" % x for x in losses]))
            d = os.path.join(out, "%s-%s" % (fam, kind))
            os.makedirs(os.path.join(d, method), exist_ok=True)
            for link, target in (("model", "model"), ("batch.safetensors", "batch.safetensors")):
                p = os.path.join(d, link)
                if not os.path.islink(p):
                    os.symlink(os.path.join("..", "..", "hf-parity", fam, target), p)
            e = {"kind": fam, "method": method, "weights_dtype": kind, "config": exp["config"],
                 "optimizer": exp["optimizer"], "loss0": losses[0], "losses": losses,
                 "made_by": "tests/refs/make_quant_refs.py"}
            with open(os.path.join(d, method, "expected.json"), "w") as f:
                json.dump(e, f, indent=1)
                f.write("\n")
            torch_lm.save_safetensors(os.path.join(d, method, "grads.safetensors"), grads)
            torch_lm.save_safetensors(os.path.join(d, method, "logits0.safetensors"),
                                      {"logits": logits0})


if __name__ == "__main__":
    main()
