#!/usr/bin/env python3
"""Greedy generation with transformers' generate() + PEFT on the 16-core
machine (../shared/device/README.md: transformers 5.17, peft 0.21, torch
2.11), compared token for token with tests/data/generate (the rows that
`deltatune generate` is tested against; make_generate_refs.py made them with
the independent float64 model of torch_lm.py).

  python3 tests/refs/hf_generate_check.py OUT.json

- hf-parity/<gpt2|llama>/<method>.json: the fixture model with the method
  built as make_fixtures.py builds it (PEFT for lora, prefix, prefix_proj,
  prompt and ia3; the fixture's own modules for adapter and said), its
  final.safetensors loaded, generate() on the reference's prompts;
- models/<tiny-gpt2|tiny-llama>-<base|lora>.json: the shipped model from
  data/models, with PeftModel.from_pretrained of the reference's adapter
  folder for -lora.
float32, eager attention, do_sample=False, the key/value cache on (what a
user of generate() gets), EOS from the model's generation_config.json.
OUT.json: {"versions", "rows": [{"ref", "row", "want", "got", "equal"}]};
exit 1 when a row differs."""
import json
import os
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
import make_fixtures as mf  # noqa: E402

FIX = os.path.join(ROOT, "tests", "data", "hf-parity")
REFS = os.path.join(ROOT, "tests", "data", "generate")


def eos_of(folder):
    g = json.load(open(os.path.join(folder, "generation_config.json")))
    e = g.get("eos_token_id")
    return None if e is None else (e if isinstance(e, list) else [e])


def greedy(net, prompt, n_new, eos):
    ids = torch.tensor([prompt], dtype=torch.long)
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
              do_sample=False, num_beams=1, use_cache=True)
    if eos is not None:
        kw.update(eos_token_id=eos, pad_token_id=eos[0])
    with torch.no_grad():
        out = net.generate(**kw)
    return out[0, len(prompt):].tolist()


def fixture_net(fam, method, base):
    d = os.path.join(FIX, fam, method)
    init = None
    if method != "base":
        init = {"params": load_file(os.path.join(d, "final.safetensors"))}
        if os.path.exists(os.path.join(d, "projection.safetensors")):
            init["projection"] = load_file(os.path.join(d, "projection.safetensors"))
    net, _, _, extra = mf.setup(method, fam, base, init)
    if method == "said":  # the SAID weights written into the model itself
        w = {k: v.detach() for k, v in extra["said"].weights().items()}
        with torch.no_grad():
            params = dict(net.named_parameters())
            for k, v in w.items():
                if k in params:
                    params[k].copy_(v)
    net.eval()
    return net


def main():
    import peft
    import transformers
    out_path = sys.argv[1]
    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))
    rows, bad = [], 0

    def check(ref_name, ref, net, eos):
        nonlocal bad
        for i, r in enumerate(ref["rows"]):
            got = greedy(net, r["prompt_ids"], ref["max_new_tokens"], eos)
            eq = got == r["ids"]
            bad += not eq
            rows.append({"ref": ref_name, "row": i, "want": r["ids"], "got": got, "equal": eq})
            print("%-34s row %d %s" % (ref_name, i, "equal" if eq else "DIFFERS: %s vs %s" % (got, r["ids"])),
                  flush=True)

    for fam in ("gpt2", "llama"):
        base = mf.load_model(fam, os.path.join(FIX, fam, "model"))
        eos = eos_of(os.path.join(FIX, fam, "model"))
        for f in sorted(os.listdir(os.path.join(REFS, "hf-parity", fam))):
            method = f[:-len(".json")]
            ref = json.load(open(os.path.join(REFS, "hf-parity", fam, f)))
            check("hf-parity/%s/%s" % (fam, method), ref, fixture_net(fam, method, base), eos)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    for name in ("tiny-gpt2", "tiny-llama"):
        folder = os.path.join(ROOT, "data", "models", name)
        eos = eos_of(folder)
        for tag in ("base", "lora"):
            ref = json.load(open(os.path.join(REFS, "models", "%s-%s.json" % (name, tag))))
            m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                     attn_implementation="eager")
            if ref["adapter"]:
                m = PeftModel.from_pretrained(m, os.path.join(ROOT, ref["adapter"]))
            m.eval()
            check("models/%s-%s" % (name, tag), ref, m, eos)

    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "peft": peft.__version__}
    with open(out_path, "w") as f:
        json.dump({"versions": versions, "rows": rows}, f, indent=1)
        f.write("\n")
    print("%d rows equal, %d differ (%s)" % (len(rows) - bad, bad, versions))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
