#!/usr/bin/env python3
"""The NF4 reference tensor for deltatune's quantizer (tests/test_nf4_reference.c),
made with PEFT's own NormalFloat quantizer (4 bits, blocks of 64, method
"normal": the code book of bitsandbytes' create_normal_map) where PEFT has
one (the 16-core machine: peft 0.21, scipy; bitsandbytes is not there), else
with FormulaQuantizer below (the same code book computed with scipy, nearest-
code rounding in PyTorch). The file's metadata "source" says which.

  python3 tests/refs/nf4_peft_ref.py OUT.safetensors

Writes
  w       float32 [48, 320]  the tensor: N(0, 0.02) with a few outliers, seed 0
  code    float32 [16]       PEFT's NF4 code book (ascending, -1 .. 1)
  index   int64   [48, 320]  each element's code (unpacked from PEFT's bytes)
  absmax  float32 [240]      each block's absmax: blocks of 64 of the flattened
                             tensor (a row of 320 is 5 whole blocks)
  packed  uint8   [7680]     PEFT's packed bytes as it writes them (two codes a
                             byte, the first in the LOW nibble; bitsandbytes
                             and deltatune put the first in the HIGH nibble)
tests/quant: deltatune's dt_qmat_quantize of w gives the same code book,
absmax and codes."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "parity"))
import st  # noqa: E402  (the repository's own safetensors reader and writer)


def find_quantizer():
    """PEFT's NormalFloat quantizer class, wherever this PEFT version keeps it
    (peft.utils.loftq_utils.NFQuantizer in the versions read when this was
    written; the module scan finds a moved or renamed one)."""
    import importlib
    import pkgutil

    try:
        import peft
    except ImportError:
        return None, "no peft here"
    for name in ("peft.utils.loftq_utils",):
        m = importlib.import_module(name)
        for attr in dir(m):
            if "nfquantizer" in attr.lower():
                return getattr(m, attr), name + "." + attr
    for info in pkgutil.walk_packages(peft.__path__, "peft."):
        try:
            m = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 (modules needing absent extras)
            continue
        for attr in dir(m):
            if "nfquantizer" in attr.lower() and isinstance(getattr(m, attr), type):
                return getattr(m, attr), info.name + "." + attr
    return None, "none in peft %s" % peft.__version__


class FormulaQuantizer:
    """Used only where PEFT has no quantizer (and then said so in the file's
    metadata): bitsandbytes' create_normal_map as published (QLoRA, appendix
    E: 8 positive and 7 negative normal quantiles at offset 0.9677083 with
    an exact 0, scaled to [-1, 1]) and nearest-code rounding of each block's
    values over its absmax."""

    def __init__(self, block_size=64):
        from scipy.stats import norm
        off = 0.9677083
        pos = norm.ppf(torch.linspace(off, 0.5, 9, dtype=torch.float64)[:-1].numpy()).tolist()
        neg = (-norm.ppf(torch.linspace(off, 0.5, 8, dtype=torch.float64)[:-1].numpy())).tolist()
        v = torch.tensor(sorted(pos + [0.0] + neg), dtype=torch.float64)
        self.norm_lookup_table = (v / v.abs().max()).to(torch.float32)
        self.block_size = block_size

    def quantize_block(self, w):
        b = w.reshape(-1, self.block_size)
        amax = b.abs().max(dim=1).values
        idx = (b / amax[:, None]).unsqueeze(-1).sub(self.norm_lookup_table).abs().argmin(dim=-1)
        idx = idx.reshape(-1, 2).to(torch.uint8)
        return (idx[:, 0] | (idx[:, 1] << 4)).reshape(-1, 1), amax, w.shape

    def dequantize_block(self, packed, amax, shape):
        p = packed.reshape(-1)
        idx = torch.stack((p & 15, p >> 4), dim=1).reshape(-1, self.block_size).long()
        return (self.norm_lookup_table[idx] * amax.reshape(-1, 1)).reshape(shape)


def main():
    NFQuantizer, where = find_quantizer()
    if NFQuantizer is None:
        NFQuantizer, where = (lambda **kw: FormulaQuantizer(kw["block_size"])), \
            "FormulaQuantizer (%s)" % where
    print("quantizer:", where)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, 320, generator=g) * 0.02
    w[3, 17] = 0.31
    w[40, 200] = -0.27
    q = NFQuantizer(num_bits=4, device="cpu", method="normal", block_size=64)
    code = q.norm_lookup_table.to(torch.float32).clone()
    packed, absmax, _ = q.quantize_block(w.clone())
    packed = packed.reshape(-1).to(torch.uint8)
    lo, hi = packed & 15, packed >> 4
    index = torch.stack((lo, hi), dim=1).reshape(48, 320)
    deq = q.dequantize_block(packed.reshape(-1, 1), absmax, w.shape)  # PEFT's own round trip
    assert torch.allclose(deq, code[index.long()] * absmax.reshape(-1).repeat_interleave(64).reshape(48, 320)), \
        "the unpacking order differs from PEFT's dequantize_block"
    st.write(sys.argv[1], {"w": w.numpy(), "code": code.numpy(), "index": index.to(torch.int64).numpy(),
                           "absmax": absmax.reshape(-1).to(torch.float32).numpy(), "packed": packed.numpy()},
             metadata={"source": where})
    print("code", [round(float(c), 7) for c in code])
    print("absmax[:4]", absmax.reshape(-1)[:4].tolist(), "codes of row 0:", index[0, :8].tolist())


if __name__ == "__main__":
    main()
