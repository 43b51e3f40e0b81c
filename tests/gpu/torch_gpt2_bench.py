#!/usr/bin/env python3
"""The PyTorch side of tests/gpu/check.sh: GPT-2 124M on one NVIDIA GPU, for the ratio against
scalewise on the same GPU in the same run.

The model is the one scalewise runs for `model: {profile: gpt2-124m}` (12 layers, 768 wide, 12
heads, 3072 MLP, 1024 positions, LayerNorm eps 1e-5, GELU tanh, biases, tied head), with the
vocabulary padded to 50304 rows as scalewise stores it. Training is the usual fast PyTorch
recipe (nanoGPT's): bf16 autocast over fp32 master weights, flash attention through
F.scaled_dot_product_attention, fused AdamW, TF32 allowed, torch.compile when asked and when it
works. Weights are random (std 0.02); only speed and memory are measured.

Usage (each prints one JSON object on stdout):
  torch_gpt2_bench.py info
  torch_gpt2_bench.py train --batch B --seq T --steps S [--warmup W] [--compile]
  torch_gpt2_bench.py generate --batch B --prompt-tokens P --new-tokens K
  torch_gpt2_bench.py write-checkpoint PATH   (random GPT-2 124M, Hugging Face names/layout)

The checkpoint is for scalewise's generation benchmark, which decodes with the byte tokenizer
(the GPT-2 BPE files are not available offline): its final LayerNorm has weight 0 and bias e_0,
so every position's logits are column 0 of the embedding, which is 0 beyond the 256 byte ids and
largest for '~' (126). Greedy decoding then always emits a printable byte while doing exactly the
arithmetic of GPT-2 124M.

Model FLOPs per token (PaLM appendix B, as nanoGPT's estimate_mfu): 6·N + 12·L·C·T, N the
parameters without the position table; MFU = tokens/s · that / the GPU's dense bf16 peak.
"""
import argparse
import json
import math
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

L, C, NH, V, VP, MAXT = 12, 768, 12, 50257, 50304, 1024

# Dense bf16 tensor-core peaks (vendor datasheets, without sparsity), FLOP/s.
PEAKS = [("H200", 989.4e12), ("H100 PCIe", 756.0e12), ("H100 NVL", 835.0e12),
         ("H100", 989.4e12), ("GH200", 989.4e12), ("A100", 312.0e12), ("A10", 125.0e12),
         ("L40S", 362.0e12), ("L4", 121.0e12), ("RTX 4090", 165.2e12)]


def peak_flops(name):
    for key, v in PEAKS:
        if key in name:
            return v
    return None


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def forward(self, x, cache=None):
        B, T, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        # A single new token attends to everything cached: no mask needed then.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] > 1)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VP, C)
        self.wpe = nn.Embedding(MAXT, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets=None, caches=None, pos0=0):
        T = idx.shape[1]
        pos = torch.arange(pos0, pos0 + T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for i, blk in enumerate(self.h):
            x = blk(x, None if caches is None else caches[i])
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied head
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, VP), targets.view(-1))


def n_params_no_pos(model):
    return sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()


def device_info():
    name = torch.cuda.get_device_name(0)
    return {"gpu": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "peak_bf16_flops": peak_flops(name),
            "memory_bytes": torch.cuda.get_device_properties(0).total_memory}


def cmd_train(a):
    torch.manual_seed(1337)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = "cuda"
    model = GPT2().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    step_fn = model
    compiled, compile_error = False, None
    if a.compile:
        try:
            step_fn = torch.compile(model)
            compiled = True
        except Exception as e:  # noqa: BLE001 - report any failure and run eager
            compile_error = repr(e)[:300]
    x = torch.randint(0, V, (a.batch, a.seq), device=dev)
    y = torch.randint(0, V, (a.batch, a.seq), device=dev)

    def step():
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.time()
    try:
        for _ in range(a.warmup):
            step()
    except Exception as e:  # noqa: BLE001
        if not compiled:
            raise
        compile_error, compiled, step_fn = repr(e)[:300], False, model
        for _ in range(a.warmup):
            step()
    torch.cuda.synchronize()
    warm_s = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    for _ in range(a.steps):
        loss = step()
    torch.cuda.synchronize()
    dt = time.time() - t0
    tps = a.batch * a.seq * a.steps / dt
    info = device_info()
    fpt = 6 * n_params_no_pos(model) + 12 * L * C * a.seq
    peak = info["peak_bf16_flops"]
    print(json.dumps({**info, "batch": a.batch, "seq": a.seq, "steps": a.steps,
                      "compiled": compiled, "compile_error": compile_error,
                      "warmup_s": round(warm_s, 2), "ms_per_step": 1000 * dt / a.steps,
                      "tokens_per_s": tps, "flops_per_token": fpt,
                      "mfu": tps * fpt / peak if peak else None,
                      "peak_bytes": torch.cuda.max_memory_allocated(),
                      "loss": float(loss)}))


@torch.no_grad()
def cmd_generate(a):
    torch.manual_seed(1337)
    model = GPT2().to("cuda").to(torch.bfloat16).eval()
    prompt = torch.randint(0, V, (a.batch, a.prompt_tokens), device="cuda")

    def run():
        caches = [[None, None] for _ in range(L)]
        t0 = time.time()
        logits = model(prompt, caches=caches)
        nxt = logits[:, -1, :V].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        t1 = time.time()
        for i in range(a.new_tokens - 1):
            logits = model(nxt, caches=caches, pos0=a.prompt_tokens + i)
            nxt = logits[:, -1, :V].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        return t1 - t0, time.time() - t1

    run()  # warm-up (kernel selection, allocator)
    torch.cuda.reset_peak_memory_stats()
    prefill_s, decode_s = run()
    print(json.dumps({**device_info(), "batch": a.batch, "prompt_tokens": a.prompt_tokens,
                      "new_tokens": a.new_tokens, "weights": "bf16",
                      "prefill_tokens_per_s": a.batch * a.prompt_tokens / prefill_s,
                      "decode_tokens_per_s": a.batch * (a.new_tokens - 1) / decode_s,
                      "total_s": prefill_s + decode_s,
                      "peak_bytes": torch.cuda.max_memory_allocated()}))


def cmd_write_checkpoint(a):
    """Random GPT-2 124M as Hugging Face stores it (Conv1D weights (in, out), 50257 rows)."""
    torch.manual_seed(1234)
    m = GPT2()
    with torch.no_grad():
        m.wte.weight[256:].zero_()
        m.wte.weight[:256, 0] = 0.5
        m.wte.weight[32:127, 0] = 1.0 + 1e-3 * torch.arange(32, 127, dtype=torch.float32)
        m.ln_f.weight.zero_()
        m.ln_f.bias.zero_()
        m.ln_f.bias[0] = 1.0
    t = {"wte.weight": m.wte.weight[:V], "wpe.weight": m.wpe.weight,
         "ln_f.weight": m.ln_f.weight, "ln_f.bias": m.ln_f.bias}
    for i, b in enumerate(m.h):
        p = f"h.{i}."
        t.update({p + "ln_1.weight": b.ln_1.weight, p + "ln_1.bias": b.ln_1.bias,
                  p + "attn.c_attn.weight": b.c_attn.weight.t(), p + "attn.c_attn.bias": b.c_attn.bias,
                  p + "attn.c_proj.weight": b.c_proj.weight.t(), p + "attn.c_proj.bias": b.c_proj.bias,
                  p + "ln_2.weight": b.ln_2.weight, p + "ln_2.bias": b.ln_2.bias,
                  p + "mlp.c_fc.weight": b.c_fc.weight.t(), p + "mlp.c_fc.bias": b.c_fc.bias,
                  p + "mlp.c_proj.weight": b.mlp_proj.weight.t(), p + "mlp.c_proj.bias": b.mlp_proj.bias})
    header, blobs, off = {}, [], 0
    for name, x in t.items():
        raw = x.detach().float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(x.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(a.path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)
    print(json.dumps({"path": a.path, "bytes": 8 + len(h) + off, "tensors": len(t)}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info")
    t = sub.add_parser("train")
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--seq", type=int, default=1024)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--warmup", type=int, default=5)
    t.add_argument("--compile", action="store_true")
    g = sub.add_parser("generate")
    g.add_argument("--batch", type=int, default=1)
    g.add_argument("--prompt-tokens", type=int, default=128)
    g.add_argument("--new-tokens", type=int, default=128)
    w = sub.add_parser("write-checkpoint")
    w.add_argument("path")
    a = ap.parse_args()
    if a.cmd == "write-checkpoint":
        return cmd_write_checkpoint(a)
    if not torch.cuda.is_available():
        print(json.dumps({"error": "torch sees no CUDA device"}))
        return 3
    if a.cmd == "info":
        print(json.dumps(device_info()))
    elif a.cmd == "train":
        cmd_train(a)
    else:
        cmd_generate(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
