#!/usr/bin/env python3
"""One AdamW step in PyTorch (fp32) from a scalewise GPT-2 checkpoint, compared with the
executor's checkpoint after that step: to tell a wrong optimizer step from AdamW's own dynamics.

  torch_adamw_step.py CKPT_BEFORE CKPT_AFTER RUN_DIR/data/train.bin STEP LR

CKPT_BEFORE holds the weights and AdamW moments before training step STEP (1-based: the
checkpoint of step STEP - 1), CKPT_AFTER the executor's weights after it, LR the learning rate
metrics.jsonl logged for STEP. Computes the loss and gradient of the loader's batch of STEP in
fp32 (micro-batch 16, T 1024, one process), clips to 1.0, applies AdamW (0.9, 0.95, 1e-8,
weight decay 0.1 on tensors of 2+ dimensions, bias correction at STEP), prints each tensor's
update size, ours and PyTorch's, with the largest relative differences, and the loss of the
first 4 rows of the same batch after PyTorch's step. Layout: the checkpoint's matrices are HF
Conv1D [C, OC]; optim.m and optim.v follow the executor's region ([OC, C], wte padded to a
multiple of 64 rows, tensors in the checkpoint's header order). Used in session 4 to show that
GPT-2 124M's loss spike at step 16 (lr 6e-4, 2 warm-up steps) is AdamW's (docs/cuda.md).
"""
import json, math, os, struct, sys
import numpy as np, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_checkpoint_loss import shard_tokens
torch.set_num_threads(2)
ck_a, ck_b, shard, S, lr = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
B1, B2, EPS, WD, T, B = 0.9, 0.95, 1e-8, 0.1, 1024, 16
def load_all(path):
    raw = open(path, 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
    head = json.loads(raw[8:8 + n]); meta = head.pop('__metadata__')
    out = {}
    for k, v in head.items():
        a, b = v['data_offsets']
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(v['shape']).copy()
    return meta, [k for k in head if not k.startswith('optim')], out
meta, names, A = load_all(ck_a)
L, NH = int(meta['model.layers']), int(meta['model.heads'])
V, C = A['wte.weight'].shape; Vp = (V + 63) // 64 * 64
offs, off = {}, 0
for k in names:
    offs[k] = off; off += A[k].size if k != 'wte.weight' else Vp * C
assert off == A['optim.m'].size, (off, A['optim.m'].size)
W = {k: torch.tensor(A[k], requires_grad=True) for k in names}
def gelu(x): return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
def ln(x, p): return torch.nn.functional.layer_norm(x, (C,), W[p + '.weight'], W[p + '.bias'], 1e-5)
mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
def fwd(ids, y):
    x = W['wte.weight'][ids] + W['wpe.weight'][:T]
    for l in range(L):
        p = 'h.%d.' % l
        a = ln(x, p + 'ln_1') @ W[p + 'attn.c_attn.weight'] + W[p + 'attn.c_attn.bias']
        q, k, v = (t.view(T, NH, -1).transpose(0, 1) for t in a.split(C, dim=1))
        att = ((q @ k.transpose(1, 2)) / math.sqrt(q.shape[-1])).masked_fill(mask, float('-inf')).softmax(-1)
        x = x + (att @ v).transpose(0, 1).reshape(T, C) @ W[p + 'attn.c_proj.weight'] + W[p + 'attn.c_proj.bias']
        x = x + gelu(ln(x, p + 'ln_2') @ W[p + 'mlp.c_fc.weight'] + W[p + 'mlp.c_fc.bias']) @ W[p + 'mlp.c_proj.weight'] + W[p + 'mlp.c_proj.bias']
    return torch.nn.functional.cross_entropy(ln(x, 'ln_f') @ W['wte.weight'].T, y)
toks = shard_tokens(shard); n = len(toks); o = int(meta['data_offset'])
tot = 0.0
for r in range(B):
    seq = (S - 1) * B + r; st = (o + (seq % n) * (T % n)) % n
    idx = [(st + i) % n for i in range(T + 1)]
    loss = fwd(torch.tensor(toks[idx[:-1]]), torch.tensor(toks[idx[1:]])) / B
    loss.backward(); tot += loss.item()
print('loss at step %d from the checkpoint: %.4f' % (S, tot), flush=True)
gn = math.sqrt(sum(float((W[k].grad.double() ** 2).sum()) for k in names))
clip = min(1.0, 1.0 / gn) if gn > 1.0 else 1.0
print('grad norm %.4f (clip factor %.4f)' % (gn, clip), flush=True)
m, v = A['optim.m'], A['optim.v']
_, _, Bk = load_all(ck_b)
bc1, bc2 = 1 - B1 ** S, 1 - B2 ** S
worst = []
with torch.no_grad():
    for k in names:
        g = W[k].grad.numpy().ravel() * clip; sz = g.size; o0 = offs[k]
        ms, vs = m[o0:o0 + sz], v[o0:o0 + sz]
        if A[k].ndim == 2 and not k.startswith(('wte', 'wpe')):  # internal [OC, C], file [C, OC]
            ms = ms.reshape(A[k].shape[::-1]).T.ravel(); vs = vs.reshape(A[k].shape[::-1]).T.ravel()
        mk = B1 * ms + (1 - B1) * g; vk = B2 * vs + (1 - B2) * g * g
        wd = WD if A[k].ndim >= 2 else 0.0
        p = A[k].ravel()
        new = p * (1 - lr * wd) - lr * (mk / bc1) / (np.sqrt(vk / bc2) + EPS)
        ours = Bk[k].ravel()
        d_t, d_o = new - p, ours - p
        rel = np.linalg.norm(d_t - d_o) / (np.linalg.norm(d_o) + 1e-30)
        worst.append((rel, k, float(np.linalg.norm(d_o)), float(np.linalg.norm(d_t))))
        W[k].data = torch.tensor(new.reshape(A[k].shape))
worst.sort(reverse=True)
for r_, k, no, nt in worst[:8]:
    print('  %-28s |update| ours %.4g torch %.4g, |difference|/|ours| %.3g' % (k, no, nt, r_))
with torch.no_grad():
    tot = 0.0
    for r in range(4):
        seq = (S - 1) * B + r; st = (o + (seq % n) * (T % n)) % n
        idx = [(st + i) % n for i in range(T + 1)]
        tot += fwd(torch.tensor(toks[idx[:-1]]), torch.tensor(toks[idx[1:]])).item() / 4
print('loss on step %d batch (4 rows) after the torch step: %.4f' % (S, tot), flush=True)
