#!/usr/bin/python3
"""The PyTorch side of tests/bench/cpu_vs_torch.sh: GPT-2 124M in plain torch on the CPU.

The model is the one scalewise's executor runs for `model: {profile: gpt2-124m}` (12 layers,
768 wide, 12 heads, 3072 MLP, 1024 positions, LayerNorm eps 1e-5, GELU tanh, biases, tied head),
with the vocabulary padded to 50304 rows as the executor stores it (50257 rounded up to a
multiple of 128), so both frameworks do the same arithmetic. Weights are random (std 0.02);
nothing here checks numerics, only speed.

Torch 1.13 has no F.scaled_dot_product_attention, so attention is written out (scores,
causal mask, softmax, weighted sum): the "math" path. Linear layers go to BLAS (Debian's torch
calls libblas.so.3, which the bench expects to be OpenBLAS built with OpenMP).

Usage:
  torch_gpt2.py info   --threads N
  torch_gpt2.py train  --threads N --batch B --seq T --steps S --data FILE
  torch_gpt2.py generate --threads N --prompt-file FILE --new-tokens K
Each command prints one JSON object on stdout.
"""
import argparse
import ctypes
import ctypes.util
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 50257
VOCAB_PAD = 50304  # 50257 rounded up to a multiple of 128, as the executor stores it
LAYERS, HIDDEN, HEADS, FFN, MAX_POS = 12, 768, 12, 3072, 1024


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(HIDDEN, eps=1e-5)
        self.c_attn = nn.Linear(HIDDEN, 3 * HIDDEN)
        self.c_proj = nn.Linear(HIDDEN, HIDDEN)
        self.ln_2 = nn.LayerNorm(HIDDEN, eps=1e-5)
        self.c_fc = nn.Linear(HIDDEN, FFN)
        self.mlp_proj = nn.Linear(FFN, HIDDEN)

    def attn(self, x, cache=None):
        """Causal self-attention of x (B, T, C). With cache (a dict), the new keys and values
        are appended to cache['k'], cache['v'] and the queries attend to all of them."""
        B, T, C = x.shape
        hd = C // HEADS
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, HEADS, hd).transpose(1, 2)
        k = k.view(B, T, HEADS, hd).transpose(1, 2)
        v = v.view(B, T, HEADS, hd).transpose(1, 2)
        past = 0
        if cache is not None:
            if 'k' in cache:
                past = cache['k'].shape[2]
                k = torch.cat([cache['k'], k], dim=2)
                v = torch.cat([cache['v'], v], dim=2)
            cache['k'], cache['v'] = k, v
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        if T > 1:
            S = k.shape[2]
            mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=past)
            att = att.masked_fill(~mask, float('-inf'))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh'))


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB_PAD, HIDDEN)
        self.wpe = nn.Embedding(MAX_POS, HIDDEN)
        self.h = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.ln_f = nn.LayerNorm(HIDDEN, eps=1e-5)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith('bias'):
                nn.init.zeros_(p)

    def forward(self, idx, caches=None, pos0=0):
        T = idx.shape[1]
        pos = torch.arange(pos0, pos0 + T, dtype=torch.long)
        x = self.wte(idx) + self.wpe(pos)
        for i, blk in enumerate(self.h):
            x = blk(x, None if caches is None else caches[i])
        return F.linear(self.ln_f(x), self.wte.weight)  # tied head: (B, T, VOCAB_PAD)


def blas_info():
    """What BLAS torch's libblas.so.3 resolved to, read from the loaded OpenBLAS itself."""
    info = {'torch': torch.__version__, 'torch_threads': torch.get_num_threads(),
            'omp_num_threads': os.environ.get('OMP_NUM_THREADS')}
    libs = []
    with open('/proc/self/maps') as f:
        for line in f:
            path = line.split()[-1]
            if ('blas' in path or 'gomp' in path) and path not in libs:
                libs.append(path)
    info['blas_libs'] = libs
    try:
        ob = ctypes.CDLL('libopenblas.so.0')
        ob.openblas_get_config.restype = ctypes.c_char_p
        info['openblas_config'] = ob.openblas_get_config().decode().strip()
        info['openblas_threads'] = ob.openblas_get_num_threads()
        # 0: sequential, 1: pthreads, 2: OpenMP (OpenBLAS's openblas_get_parallel)
        info['openblas_parallel'] = {0: 'sequential', 1: 'pthreads', 2: 'openmp'}.get(
            ob.openblas_get_parallel(), 'unknown')
    except (OSError, AttributeError) as e:
        info['openblas_error'] = str(e)
    # A timing check that both threads work: one 1024^3 sgemm on 1 thread and on N.
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    n = torch.get_num_threads()
    gf = {}
    for t in sorted({1, n}):
        torch.set_num_threads(t)
        a @ b
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        gf[t] = 4 * 2 * 1024 ** 3 / (time.perf_counter() - t0) / 1e9
    torch.set_num_threads(n)
    info['sgemm_gflops'] = {str(k): round(v, 1) for k, v in gf.items()}
    return info


def cmd_train(a):
    torch.manual_seed(1337)
    model = GPT2()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    # The plan's settings: AdamW lr 6e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on
    # matrices only, global-norm clipping at 1.0.
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1},
                             {'params': no_decay, 'weight_decay': 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    data = torch.frombuffer(bytearray(open(a.data, 'rb').read()), dtype=torch.uint8)
    g = torch.Generator().manual_seed(1)
    steps = []
    for step in range(1, a.steps + 1):
        ix = torch.randint(len(data) - a.seq - 1, (a.batch,), generator=g)
        x = torch.stack([data[i:i + a.seq] for i in ix]).long()
        y = torch.stack([data[i + 1:i + 1 + a.seq] for i in ix]).long()
        t0 = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits[..., :VOCAB].reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        steps.append({'step': step, 'loss': round(loss.item(), 5), 'ms_per_step': dt * 1e3,
                      'tokens_per_s': a.batch * a.seq / dt})
        if not a.quiet:
            print('torch step %d/%d loss %.4f %.0f ms' % (step, a.steps, loss.item(), dt * 1e3),
                  file=sys.stderr, flush=True)
    print(json.dumps({'batch': a.batch, 'seq': a.seq, 'threads': torch.get_num_threads(),
                      'steps': steps}))


@torch.no_grad()
def cmd_generate(a):
    """Greedy generation with a KV cache, timed as `scalewise generate` times it: prefill is
    the batched prompt pass plus choosing each sequence's first token; decode is every later
    step (one token per sequence, reading the cache)."""
    torch.manual_seed(1337)
    model = GPT2().eval()
    prompts = [l.rstrip('\n') for l in open(a.prompt_file, encoding='utf-8') if l.strip()]
    ids = [list(p.encode('utf-8')) for p in prompts]
    n = min(len(x) for x in ids)
    idx = torch.tensor([x[:n] for x in ids], dtype=torch.long)  # byte tokens, same length
    B = idx.shape[0]
    caches = [dict() for _ in range(LAYERS)]
    t0 = time.perf_counter()
    logits = model(idx, caches, 0)
    tok = logits[:, -1, :VOCAB].argmax(dim=-1, keepdim=True)
    t1 = time.perf_counter()
    for i in range(a.new_tokens - 1):
        logits = model(tok, caches, n + i)
        tok = logits[:, -1, :VOCAB].argmax(dim=-1, keepdim=True)
    t2 = time.perf_counter()
    dec = B * (a.new_tokens - 1)
    print(json.dumps({'batch': B, 'prompt_tokens': n, 'threads': torch.get_num_threads(),
                      'prefill_tokens': B * n, 'prefill_tokens_per_s': B * n / (t1 - t0),
                      'decode_tokens': dec,
                      'decode_tokens_per_s': dec / (t2 - t1) if dec else None,
                      'decode_s_per_token': (t2 - t1) / max(1, a.new_tokens - 1),
                      'ttft_s': t1 - t0}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('command', choices=['info', 'train', 'generate'])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--seq', type=int, default=256)
    ap.add_argument('--steps', type=int, default=12)
    ap.add_argument('--data', default='data/tinyshakespeare.txt')
    ap.add_argument('--prompt-file')
    ap.add_argument('--new-tokens', type=int, default=32)
    ap.add_argument('--quiet', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.command == 'info':
        print(json.dumps(blas_info()))
    elif a.command == 'train':
        cmd_train(a)
    else:
        cmd_generate(a)


if __name__ == '__main__':
    main()
