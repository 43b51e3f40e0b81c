#!/usr/bin/env python3
"""ckdiff.py A B TOL: every tensor of two safetensors checkpoints is present in both with the
same dtype and size; F32 tensors within TOL absolute, other dtypes (8-bit optimizer state)
equal. Prints the largest difference; exit 1 when it exceeds TOL. Used by tests/cli/lib.sh."""
import sys, json, struct, array
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    out = {}
    for k, v in h.items():
        s, e = v['data_offsets']
        a = array.array('f' if v['dtype'] == 'F32' else 'B'); a.frombytes(b[8 + n + s:8 + n + e])
        out[k] = (v['dtype'], a)
    return out
a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
assert set(a) == set(b), sorted(set(a) ^ set(b))[:5]
worst, where = 0.0, ''
for k in a:
    assert a[k][0] == b[k][0] and len(a[k][1]) == len(b[k][1]), k
    if a[k][0] == 'F32':
        d = max((abs(x - y) for x, y in zip(a[k][1], b[k][1])), default=0.0)
    else:
        d = 0.0 if a[k][1] == b[k][1] else float('inf')
    if d > worst: worst, where = d, k
print("max |diff| %.3g (%s)" % (worst, where or '-'))
sys.exit(0 if worst <= tol else 1)
