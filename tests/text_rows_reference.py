#!/usr/bin/env python3
"""Is a tokenized data file (safetensors, I32) the layout of text rows that
docs/usage.md describes? Built here independently of deltatune's layout code
from the ids of each row (a JSONL of {"ids": [...]}, as deltatune tokenize
writes them, in file order):
  unpacked: one row per text row, every token scored, right-padded with EOS
            (labels -100); rows longer than T and rows of fewer than 2 tokens
            are left out.
  packed:   each text row + EOS (scored), laid in file order into rows of T;
            a row that does not fit in what is left starts a new one.
usage: text_rows_reference.py IDS.jsonl DATA.safetensors T EOS pack|nopack"""
import json, struct, sys

ids_path, data_path, T, eos, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
segs = []
for line in open(ids_path):
    ids = json.loads(line)['ids']
    if mode == 'pack':
        ids = ids + [eos]
    if len(ids) > T or len(ids) < 2:
        continue
    segs.append(ids)
rows = []
for s in segs:
    if mode == 'pack' and rows and len(rows[-1]) + len(s) <= T:
        rows[-1].extend(s)
    else:
        rows.append(list(s))
want_in = [r + [eos] * (T - len(r)) for r in rows]
want_lab = [r + [-100] * (T - len(r)) for r in rows]

f = open(data_path, 'rb')
n = struct.unpack('<Q', f.read(8))[0]
h = json.loads(f.read(n))
d = f.read()
def tensor(name):
    v = h[name]
    assert v['dtype'] == 'I32' and v['shape'] == [len(rows), T], (name, v['shape'], len(rows), T)
    a, b = v['data_offsets']
    flat = struct.unpack('<%di' % ((b - a) // 4), d[a:b])
    return [list(flat[i * T:(i + 1) * T]) for i in range(len(rows))]
assert tensor('input_ids') == want_in, 'input_ids differ'
assert tensor('labels') == want_lab, 'labels differ'
print('%d rows of %d tokens from %d text rows: equal' % (len(rows), T, len(segs)))
