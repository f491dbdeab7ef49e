#!/usr/bin/env python3
"""bitsandbytes' own 4-bit quantization of the checked-in references, for a
later comparison with deltatune's (nothing depends on it yet). For the
16-core machine: `bash bench/device.sh bnb4ref` runs it with $OUT set.

  python3 tests/refs/bnb4_device_ref.py OUT_DIR

If bitsandbytes imports, writes
  OUT_DIR/bnb4_nf4_dq.safetensors  bitsandbytes.functional.quantize_4bit
      (quant_type nf4, blocksize 64, compress_statistics=True) of the tensor
      w of tests/data/quant/nf4_dq.safetensors, on the CPU, as
      QuantState.as_dict(packed=True) names it: "weight" (the packed codes)
      and weight.absmax, weight.quant_map, weight.nested_absmax,
      weight.nested_quant_map, weight.quant_state.bitsandbytes__nf4; plus
      "dequantized" (dequantize_4bit) and "dynamic_map" (create_dynamic_map());
      metadata: the bitsandbytes and torch versions.
  OUT_DIR/bnb4_model/  tests/data/bnb4/model's block linears quantized the
      same way into transformers' layout (model.safetensors + config.json
      with quantization_config), comparable with tests/data/bnb4/bnb.
Otherwise writes OUT_DIR/bnb4_absent.txt saying why, and exits 0."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
sys.path.insert(0, os.path.join(ROOT, "tests", "refs"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    try:
        import bitsandbytes as bnb
        import bitsandbytes.functional as F
        import torch
    except Exception as e:  # noqa: BLE001 (any import failure: say so)
        with open(os.path.join(out, "bnb4_absent.txt"), "w") as f:
            f.write("bitsandbytes not importable: %r\n" % (e,))
        print("bitsandbytes not importable:", e)
        return
    import numpy as np
    import st
    from make_bnb4_folder import LINEARS, QCONFIG

    def quantize(w):
        q, state = F.quantize_4bit(torch.from_numpy(np.array(w, dtype=np.float32)), blocksize=64,
                                   compress_statistics=True, quant_type="nf4")
        d = {k: v.cpu().numpy() for k, v in state.as_dict(packed=True).items()}
        return q.cpu().numpy(), d, F.dequantize_4bit(q, state).cpu().numpy()

    meta = {"bitsandbytes": bnb.__version__, "torch": torch.__version__}
    ref, _ = st.read(os.path.join(ROOT, "tests", "data", "quant", "nf4_dq.safetensors"))
    q, d, deq = quantize(ref["w"])
    t = {"weight": q}
    t.update({"weight." + k: v for k, v in d.items()})
    t["dequantized"] = deq.astype(np.float32)
    t["dynamic_map"] = F.create_dynamic_map().cpu().numpy()
    st.write(os.path.join(out, "bnb4_nf4_dq.safetensors"), t, metadata=meta)

    src = os.path.join(ROOT, "tests", "data", "bnb4", "model")
    dst = os.path.join(out, "bnb4_model")
    os.makedirs(dst, exist_ok=True)
    w, _ = st.read(os.path.join(src, "model.safetensors"))
    o = {}
    for k, x in w.items():
        if any(k.endswith(m + ".weight") for m in LINEARS):
            q, d, _ = quantize(x)
            o[k] = q
            o.update({k + "." + n: v for n, v in d.items()})
        else:
            o[k] = x
    st.write(os.path.join(dst, "model.safetensors"), o, metadata=meta)
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg["quantization_config"] = QCONFIG
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    print("bitsandbytes %s: wrote %s" % (bnb.__version__, out))


if __name__ == "__main__":
    main()
