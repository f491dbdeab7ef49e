#!/usr/bin/env python3
"""Are the input_ids and labels of two tokenized data files (safetensors,
I32) equal? Read with struct, independently of deltatune's reader.
With "prefix": the shorter file's rows are the first rows of the longer one (a file capped at N rows).
usage: compare_token_tensors.py A.safetensors B.safetensors [prefix]"""
import json, struct, sys
def load(p):
    f = open(p, 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); d = f.read()
    out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        assert v['dtype'] == 'I32', v
        a, b = v['data_offsets']
        out[k] = (v['shape'], d[a:b])
    return out
x, y = load(sys.argv[1]), load(sys.argv[2])
prefix = len(sys.argv) > 3 and sys.argv[3] == 'prefix'
for k in ('input_ids', 'labels'):
    a, b = x[k], y[k]
    if prefix:
        assert a[0][1] == b[0][1], (a[0], b[0])
        n = min(a[0][0], b[0][0])
        a = ([n, a[0][1]], a[1][:n * a[0][1] * 4])
        b = ([n, b[0][1]], b[1][:n * b[0][1] * 4])
    print(k, x[k][0], y[k][0], 'equal' if a == b else 'DIFFERENT')
    assert a == b
