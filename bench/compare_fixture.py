#!/usr/bin/python3
"""Compare a deltatune run with an HF/PEFT parity fixture (developer aid).
usage: compare_fixture.py FIXTURE_METHOD_DIR metrics.jsonl grads.safetensors"""
import json, struct, sys
import numpy as np

def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        dt = {'F32': np.float32, 'I64': np.int64}[v['dtype']]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).reshape(v['shape'])
    return out

def canon(k):
    return k.replace('.default', '')

row = '--row' in sys.argv
args = [a for a in sys.argv[1:] if a != '--row']
fix, metrics, grads = args[:3]
out = print
if row:
    out = lambda *a, **k: None
exp = json.load(open(fix + '/expected.json'))
got = [json.loads(l)['loss'] for l in open(metrics)]
for k in range(min(5, len(got))):
    ref = exp['losses'][k]
    dref = ref - exp['losses'][0]
    dgot = got[k] - got[0]
    worst_loss = max(globals().get('worst_loss', 0), abs(got[k] - ref))
    worst_d = max(globals().get('worst_d', 0), abs(dgot - dref))
    out(f"step {k}: loss {got[k]:.7f} ref {ref:.7f} diff {got[k]-ref:+.2e}  dchange {dgot-dref:+.2e} (rel {abs(dgot-dref)/(abs(dref)+1e-12):.1e})")
g = {canon(k): v for k, v in load(grads).items()}
r = {canon(k): v for k, v in load(fix + '/grads.safetensors').items()}
worst = 0
for k, v in r.items():
    if k not in g:
        out('MISSING', k); continue
    e = np.linalg.norm(g[k].astype(np.float64) - v) / (np.linalg.norm(v) + 1e-30)
    worst = max(worst, e)
    if e > 1e-4: out(f'  grad {k}: rel err {e:.2e}')
out('extra:', sorted(set(g) - set(r)))
out(f'worst grad rel L2 err {worst:.2e} over {len(r)} tensors')
if row:
    print(f"| {worst_loss:.1e} | {worst_d:.1e} | {worst:.1e} | {len(r)} |")
