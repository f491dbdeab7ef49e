#!/usr/bin/env python3
"""Are the input_ids and labels of two tokenized data files (safetensors,
I32) equal? Read with struct, independently of deltatune's reader.
usage: compare_token_tensors.py A.safetensors B.safetensors"""
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
for k in ('input_ids', 'labels'):
    print(k, x[k][0], y[k][0], 'equal' if x[k] == y[k] else 'DIFFERENT')
    assert x[k] == y[k]
