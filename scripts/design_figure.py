#!/usr/bin/env python3
"""Writes docs/design-layers.svg: the layers of deltatune (left) and the data
flow of one training step across them (right). Plain SVG written by hand,
no dependency; run by hand after a change of the layers and commit the
output:  python3 scripts/design_figure.py docs/design-layers.svg
"""
import sys

# (layer, folder, colour, what it holds); top to bottom = drivers to base
LAYERS = [
    ("drivers", "src/ (commands)", "#f4d6d6",
     "train, eval, gradcheck, sweep, plan, export, merge, inspect, tokenize"),
    ("engine", "src/, src/methods/", "#f7e7c6",
     "backbone (dt_model), forward/backward, methods, optimizer"),
    ("mpi", "mpi/", "#d9ead3",
     "rank layout, shard layout, tp sums, grad sync, PxGEMM, shared windows"),
    ("io", "io/", "#d0e0f0",
     "safetensors, config.json + family descriptors, params, checkpoints, data"),
    ("text", "text/", "#e4dcf0", "tokenizer.json, BPE, normalizers, decoders"),
    ("base", "base/", "#e8e8e8",
     "errors, MPI errors, agreement, options, rng, bf16, timer, segments, test hooks"),
]

# one step: (label, layer, detail)
STEP = [
    ("batch", "io", "rows of the dataset (io/dataset)"),
    ("forward", "engine", "blocks with method hooks (src/forward.c)"),
    ("tp sums", "mpi", "dt_tp_sum: shared window or MPI_Allreduce"),
    ("loss, backward", "engine", "input gradients, method gradients"),
    ("grad sync", "mpi", "dt_grad_sync over replicas and groups"),
    ("optimizer", "engine", "AdamW on the parameter table"),
    ("checkpoint", "io", "PnetCDF, every --save-every steps"),
]


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main(out):
    W, H = 1040, 560
    colour = {name: c for name, _, c, _ in LAYERS}
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif">',
         '<defs><marker id="a" markerWidth="10" markerHeight="8" refX="9" refY="4" '
         'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#444"/></marker></defs>',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         '<text x="20" y="30" font-size="18" font-weight="bold">Layers (each looks only '
         'down; the build enforces it)</text>',
         '<text x="600" y="30" font-size="18" font-weight="bold">One training step</text>']
    # layers: boxes stacked, arrows "uses" between neighbours
    x0, y0, bw, bh, gap = 20, 50, 540, 62, 18
    for i, (name, folder, c, what) in enumerate(LAYERS):
        y = y0 + i * (bh + gap)
        o.append(f'<rect x="{x0}" y="{y}" width="{bw}" height="{bh}" rx="8" fill="{c}" '
                 'stroke="#555"/>')
        o.append(f'<text x="{x0 + 12}" y="{y + 24}" font-size="16" font-weight="bold">'
                 f'{esc(name)}</text>')
        o.append(f'<text x="{x0 + 110}" y="{y + 24}" font-size="13" fill="#333">'
                 f'{esc(folder)}</text>')
        o.append(f'<text x="{x0 + 12}" y="{y + 47}" font-size="11">{esc(what)}</text>')
        if i + 1 < len(LAYERS):
            ya, yb = y + bh, y + bh + gap
            o.append(f'<line x1="{x0 + bw / 2}" y1="{ya}" x2="{x0 + bw / 2}" y2="{yb - 1}" '
                     'stroke="#444" stroke-width="1.5" marker-end="url(#a)"/>')
    o.append(f'<text x="{x0 + bw / 2 + 8}" y="{y0 + bh + 13}" font-size="11" fill="#444">'
             'uses (PRIVATE / PUBLIC link, own include folder)</text>')
    # the step: a column of boxes coloured by the layer that runs them
    sx, sy, sw, sh, sg = 600, 50, 420, 52, 16
    for i, (label, layer, detail) in enumerate(STEP):
        y = sy + i * (sh + sg)
        o.append(f'<rect x="{sx}" y="{y}" width="{sw}" height="{sh}" rx="8" '
                 f'fill="{colour[layer]}" stroke="#555"/>')
        o.append(f'<text x="{sx + 12}" y="{y + 21}" font-size="14" font-weight="bold">'
                 f'{esc(label)}</text>')
        o.append(f'<text x="{sx + sw - 12}" y="{y + 21}" font-size="12" fill="#333" '
                 f'text-anchor="end">{esc(layer)}</text>')
        o.append(f'<text x="{sx + 12}" y="{y + 41}" font-size="12">{esc(detail)}</text>')
        if i + 1 < len(STEP):
            o.append(f'<line x1="{sx + sw / 2}" y1="{y + sh}" x2="{sx + sw / 2}" '
                     f'y2="{y + sh + sg - 1}" stroke="#444" stroke-width="1.5" '
                     'marker-end="url(#a)"/>')
    o.append(f'<text x="{sx}" y="{H - 16}" font-size="11" fill="#444">the driver (train / '
             'sweep) calls each box in turn; the colour is the layer that runs it</text>')
    o.append('</svg>')
    with open(out, "w") as f:
        f.write("\n".join(o) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/design-layers.svg")
