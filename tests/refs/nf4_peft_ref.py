#!/usr/bin/env python3
"""The NF4 reference tensor for deltatune's quantizer, made with PEFT's own
NormalFloat quantizer (peft.utils.loftq_utils.NFQuantizer, 4 bits, blocks of
64, method "normal": the code book of bitsandbytes' create_normal_map) on the
16-core machine, where peft 0.21 and scipy are (bitsandbytes is not).

  python3 tests/refs/nf4_peft_ref.py OUT.safetensors

Writes
  w       float32 [48, 320]  the tensor: N(0, 0.02) with a few outliers, seed 0
  code    float32 [16]       PEFT's NF4 code book (ascending, -1 .. 1)
  index   uint8   [48, 320]  each element's code (unpacked from PEFT's bytes)
  absmax  float32 [240]      each block's absmax: blocks of 64 of the flattened
                             tensor (a row of 320 is 5 whole blocks)
  packed  uint8   [7680]     PEFT's packed bytes as it writes them (two codes a
                             byte, the first in the LOW nibble; bitsandbytes
                             and deltatune put the first in the HIGH nibble)
tests/quant: deltatune's dt_qmat_quantize of w gives the same code book,
absmax and codes."""
import sys

import torch
from safetensors.torch import save_file


def main():
    from peft.utils.loftq_utils import NFQuantizer
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
    save_file({"w": w.contiguous(), "code": code.contiguous(), "index": index.contiguous(),
               "absmax": absmax.reshape(-1).to(torch.float32).contiguous(), "packed": packed.contiguous()},
              sys.argv[1])
    print("code", [round(float(c), 7) for c in code])
    print("absmax[:4]", absmax.reshape(-1)[:4].tolist(), "codes of row 0:", index[0, :8].tolist())


if __name__ == "__main__":
    main()
