"""NF4 with double quantization of the block scales, written in PyTorch from
bitsandbytes' published algorithm (functional.py: create_dynamic_map,
quantize_4bit with compress_statistics=True, quantize_blockwise,
dequantize_4bit; the CPU kernel's nearest-code rounding), independently of
src/quant.c. Imported by nf4_dq_ref.py (the reference tensor of
test_nf4_reference) and make_quant_refs.py (the LoRA parity references).

  nf4 codes     per row, blocks of 64 columns (the last one shorter): a =
                absmax, x = w * (1 / a) (float32), the index of the nearest
                NF4 code (the first on a tie: torch.argmin)
  offset        the mean of the tensor's block absmax values a (flattened
                [out, blocks]), summed in float64 and rounded once to
                float32 (torch's float32 mean, bitsandbytes' own, may differ
                by an ulp: offset_torch)
  nested        a - offset (float32) in blocks of 256: n = absmax of the
                block, code = the index of the dynamic map's nearest value
                to clamp((a - offset) * (1 / n), -1, 1) (the first on a tie);
                n = 0: code 0
  scale         map[code] * n + offset (float32, in that order)
  dequantized   NF4[q] * scale (float32)"""
import torch

NF4 = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982608795166, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=torch.float32)


def dynamic_map():
    """bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7,
    total_bits=8) as its source describes it: for each exponent i = 0..6,
    2^i + 1 points over [0.1, 1] by torch.linspace (float32), their
    midpoints, scaled by 10^(i - 6), and the negatives; 0 and 1; sorted."""
    vals = []
    for i in range(7):
        pts = torch.linspace(0.1, 1.0, 2 ** i + 1, dtype=torch.float32)
        mids = (pts[:-1] + pts[1:]) / 2.0
        scaled = (10 ** (i - 6)) * mids
        vals += scaled.tolist() + (-scaled).tolist()
    vals += [0.0, 1.0]
    assert len(vals) == 256
    return torch.tensor(sorted(vals), dtype=torch.float32)


def nf4_codes(w):
    """w [out, in] float32 -> (codes [out, in] int64, absmax [out, blocks])."""
    w = w.float()
    out, n_in = w.shape
    codes = torch.empty(out, n_in, dtype=torch.int64)
    amax = []
    for c0 in range(0, n_in, 64):
        blk = w[:, c0:c0 + 64]
        a = blk.abs().amax(1, keepdim=True)
        inv = torch.where(a > 0, 1.0 / torch.where(a > 0, a, torch.ones_like(a)), torch.zeros_like(a))
        codes[:, c0:c0 + 64] = ((blk * inv)[..., None] - NF4).abs().argmin(-1)
        amax.append(a)
    return codes, torch.cat(amax, 1)


def double_quant(amax_flat, dmap):
    """-> offset (float32 0-d), offset_torch, scale codes (int64), nested absmax."""
    a = amax_flat.float().reshape(-1)
    offset = a.double().mean().float()
    offset_torch = a.mean()
    d = a - offset
    codes = torch.zeros(d.numel(), dtype=torch.int64)
    nabs = []
    for b0 in range(0, d.numel(), 256):
        blk = d[b0:b0 + 256]
        n = blk.abs().max()
        nabs.append(n)
        if n > 0:
            x = (blk * (1.0 / n)).clamp(-1.0, 1.0)
            codes[b0:b0 + 256] = (x[:, None] - dmap).abs().argmin(-1)
    return offset, offset_torch, codes, torch.stack(nabs)


def dq_scales(codes, nabs, offset, dmap):
    n = nabs.repeat_interleave(256)[:codes.numel()]
    return dmap[codes] * n + offset


def quantize(w, dmap=None):
    """The whole round trip of one tensor w [out, in]: a dict of every
    intermediate and 'deq', the dequantized float32 matrix."""
    dmap = dynamic_map() if dmap is None else dmap
    codes, amax = nf4_codes(w)
    offset, offset_torch, scodes, nabs = double_quant(amax.reshape(-1), dmap)
    scale = dq_scales(scodes, nabs, offset, dmap).reshape(amax.shape)
    out, n_in = w.shape
    cols_scale = scale.repeat_interleave(64, 1)[:, :n_in]
    deq = NF4[codes] * cols_scale
    return {"map": dmap, "index": codes, "absmax": amax.reshape(-1), "offset": offset,
            "offset_torch": offset_torch, "scodes": scodes, "nabs": nabs,
            "scale": scale.reshape(-1), "deq": deq}
