#!/usr/bin/python3
"""The double-quantized NF4 reference tensor of test_nf4_reference (src/quant.h:
bitsandbytes' compress_statistics=True), made by nf4_dq.py (PyTorch).

  /usr/bin/python3 tests/refs/nf4_dq_ref.py OUT.safetensors

Writes (float32 unless said)
  w             [48, 640]  N(0, 0.02), seed 1, a few outliers and one zero block
  map           [256]      bitsandbytes' signed dynamic map, by torch.linspace
  absmax        [480]      each 64-column block's absmax, flattened [48, 10]
  offset        [1]        their mean (float64 sum, rounded once)
  offset_torch  [1]        torch's float32 mean (bitsandbytes' offset)
  scodes        int64 [480] the 8-bit codes of absmax - offset
  nabs          [2]        the nested absmax of each 256 block scales
  scale         [480]      the dequantized scales map[code] * nabs + offset
  index         int64 [48, 640] each element's NF4 code
  deq           [48, 640]  the dequantized matrix NF4[index] * scale"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "parity"))
import nf4_dq  # noqa: E402
import st  # noqa: E402  (the repository's own safetensors reader and writer)


def main():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(48, 640, generator=g) * 0.02
    w[3, 17] = 0.31
    w[40, 200] = -0.27
    w[47, 600] = 0.12
    w[30, 128:192] = 0.0  # a zero block: absmax 0
    r = nf4_dq.quantize(w)
    out = {"w": w.numpy(), "map": r["map"].numpy(), "absmax": r["absmax"].numpy(),
           "offset": r["offset"].reshape(1).numpy(), "offset_torch": r["offset_torch"].reshape(1).numpy(),
           "scodes": r["scodes"].numpy(), "nabs": r["nabs"].numpy(), "scale": r["scale"].numpy(),
           "index": r["index"].numpy(), "deq": r["deq"].numpy()}
    st.write(sys.argv[1], out, metadata={"source": "tests/refs/nf4_dq.py, torch " + torch.__version__})
    print("offset %.9g (torch mean %.9g), nested absmax %s" % (float(r["offset"]), float(r["offset_torch"]),
                                                               r["nabs"].tolist()))


if __name__ == "__main__":
    main()
