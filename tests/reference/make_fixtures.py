#!/usr/bin/python3
"""Reference fixtures for the CPU executor: a tiny GPT-2 and a tiny Llama in plain PyTorch.

Run with Debian's Python (torch 1.13; the pyenv python3 on PATH has no torch):

    /usr/bin/python3 tests/reference/make_fixtures.py

For each model (sizes from profiles/models/tiny-gpt2.yaml and tiny-llama.yaml) it draws random
weights with a fixed seed (std 0.02; biases and norm weights random and nonzero so that every
path carries signal), a batch of B=2 x T=16 tokens and next-token targets (one target is -1,
ignored), and computes in float64 the logits, the mean cross-entropy (ignore_index=-1) and the
gradient of every parameter. Everything is stored as F32 in a safetensors file under Hugging
Face names (GPT-2 Conv1D weights keep HF's (in, out) shape), so the C tests need no Python.

The modules below follow transformers' GPT2LMHeadModel and LlamaForCausalLM (transformers is not
installed here, so they are written out): GPT-2 = learned positions, pre-LayerNorm (eps 1e-5),
Conv1D projections (y = x @ W + b, W of shape (in, out)), GELU tanh approximation ("gelu_new"),
causal attention scaled by 1/sqrt(head_dim), head tied to wte. Llama = RMSNorm (eps 1e-5),
rotate-half RoPE (theta 10000) on q and k, GQA by repeat_kv (query head h reads kv head
h // (NH/NKV)), SwiGLU MLP, untied lm_head, no biases.

The output is deterministic (fixed seeds, one thread, a fixed tensor order in the file), so a
rerun writes the same bytes. The safetensors layout is written here by hand (the safetensors
package is not installed) the way the reference implementation does: 8-byte little-endian
header length, compact JSON header with "__metadata__" first, padded with spaces so the data
starts 8-byte aligned, tensors ordered by dtype (widest first) then name, contiguous.
"""

import json
import math
import os
import struct
import sys

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DIR = os.path.join(ROOT, "tests", "data", "reference")
B, T = 2, 16
IGNORED = (1, 5)  # (row, position) of the one target set to -1


def read_profile(name, defaults):
    """The flat `key: value` lines of profiles/models/<name>.yaml (no YAML library needed)."""
    cfg = dict(defaults)
    path = os.path.join(ROOT, "profiles", "models", name + ".yaml")
    if not os.path.exists(path):
        return cfg
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if ":" not in line:
                continue
            key, val = (s.strip() for s in line.split(":", 1))
            if key in cfg:
                cfg[key] = type(cfg[key])(float(val)) if not isinstance(cfg[key], str) else val
    return cfg


# ---------------------------------------------------------------------------------- GPT-2

def gpt2_params(cfg, gen):
    C, V, P, L, F = cfg["hidden"], cfg["vocab"], cfg["max_pos"], cfg["layers"], cfg["ffn"]

    def w(*shape):
        return torch.randn(*shape, generator=gen) * 0.02

    def bias(n):
        return torch.randn(n, generator=gen) * 0.05

    def norm_w(n):
        return 1.0 + torch.randn(n, generator=gen) * 0.1

    p = {"wte.weight": w(V, C), "wpe.weight": w(P, C)}
    for i in range(L):
        h = "h.%d." % i
        p[h + "ln_1.weight"] = norm_w(C)
        p[h + "ln_1.bias"] = bias(C)
        p[h + "attn.c_attn.weight"] = w(C, 3 * C)  # Conv1D: (in, out)
        p[h + "attn.c_attn.bias"] = bias(3 * C)
        p[h + "attn.c_proj.weight"] = w(C, C)
        p[h + "attn.c_proj.bias"] = bias(C)
        p[h + "ln_2.weight"] = norm_w(C)
        p[h + "ln_2.bias"] = bias(C)
        p[h + "mlp.c_fc.weight"] = w(C, F)
        p[h + "mlp.c_fc.bias"] = bias(F)
        p[h + "mlp.c_proj.weight"] = w(F, C)
        p[h + "mlp.c_proj.bias"] = bias(C)
    p["ln_f.weight"] = norm_w(C)
    p["ln_f.bias"] = bias(C)
    return p


def gelu_new(x):
    # transformers.activations.NewGELUActivation (GPT-2's "gelu_new").
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def causal_attention(q, k, v):
    """q (B,NH,T,hs), k/v (B,NH,T,hs): softmax(q k^T / sqrt(hs) + causal mask) v."""
    Tq, hs = q.shape[-2], q.shape[-1]
    att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
    mask = torch.ones(Tq, Tq, dtype=torch.bool).tril()
    att = att.masked_fill(~mask, float("-inf"))
    return torch.softmax(att, dim=-1) @ v


def gpt2_forward(p, cfg, idx):
    C, NH, L = cfg["hidden"], cfg["heads"], cfg["layers"]
    eps = cfg["norm_eps"]
    Bn, Tn = idx.shape
    hs = C // NH
    x = p["wte.weight"][idx] + p["wpe.weight"][torch.arange(Tn)]
    for i in range(L):
        h = "h.%d." % i
        a = torch.nn.functional.layer_norm(x, (C,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
        qkv = a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(Bn, Tn, NH, hs).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + (y @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"])
        m = torch.nn.functional.layer_norm(x, (C,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        m = gelu_new(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])
        x = x + (m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"])
    x = torch.nn.functional.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].t()  # tied head


# ---------------------------------------------------------------------------------- Llama

def llama_params(cfg, gen):
    C, V, L, F = cfg["hidden"], cfg["vocab"], cfg["layers"], cfg["ffn"]
    hs = cfg["head_dim"]
    NH, NKV = cfg["heads"], cfg["kv_heads"]

    def w(*shape):
        return torch.randn(*shape, generator=gen) * 0.02

    def norm_w(n):
        return 1.0 + torch.randn(n, generator=gen) * 0.1

    p = {"model.embed_tokens.weight": w(V, C)}
    for i in range(L):
        h = "model.layers.%d." % i
        p[h + "input_layernorm.weight"] = norm_w(C)
        p[h + "self_attn.q_proj.weight"] = w(NH * hs, C)  # nn.Linear: (out, in)
        p[h + "self_attn.k_proj.weight"] = w(NKV * hs, C)
        p[h + "self_attn.v_proj.weight"] = w(NKV * hs, C)
        p[h + "self_attn.o_proj.weight"] = w(C, NH * hs)
        p[h + "post_attention_layernorm.weight"] = norm_w(C)
        p[h + "mlp.gate_proj.weight"] = w(F, C)
        p[h + "mlp.up_proj.weight"] = w(F, C)
        p[h + "mlp.down_proj.weight"] = w(C, F)
    p["model.norm.weight"] = norm_w(C)
    p["lm_head.weight"] = w(V, C)
    return p


def rms_norm(x, weight, eps):
    # transformers LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * weight.
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def llama_forward(p, cfg, idx):
    C, L = cfg["hidden"], cfg["layers"]
    NH, NKV, hs = cfg["heads"], cfg["kv_heads"], cfg["head_dim"]
    eps, theta = cfg["norm_eps"], cfg["rope_theta"]
    Bn, Tn = idx.shape
    # LlamaRotaryEmbedding: inv_freq_j = theta^(-2j/hs); emb = cat(freqs, freqs).
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    freqs = torch.outer(torch.arange(Tn, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x = p["model.embed_tokens.weight"][idx]
    for i in range(L):
        h = "model.layers.%d." % i
        a = rms_norm(x, p[h + "input_layernorm.weight"], eps)
        q = (a @ p[h + "self_attn.q_proj.weight"].t()).view(Bn, Tn, NH, hs).transpose(1, 2)
        k = (a @ p[h + "self_attn.k_proj.weight"].t()).view(Bn, Tn, NKV, hs).transpose(1, 2)
        v = (a @ p[h + "self_attn.v_proj.weight"].t()).view(Bn, Tn, NKV, hs).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = NH // NKV  # repeat_kv
        k = k[:, :, None].expand(Bn, NKV, rep, Tn, hs).reshape(Bn, NH, Tn, hs)
        v = v[:, :, None].expand(Bn, NKV, rep, Tn, hs).reshape(Bn, NH, Tn, hs)
        y = causal_attention(q, k, v).transpose(1, 2).reshape(Bn, Tn, NH * hs)
        x = x + y @ p[h + "self_attn.o_proj.weight"].t()
        m = rms_norm(x, p[h + "post_attention_layernorm.weight"], eps)
        g = torch.nn.functional.silu(m @ p[h + "mlp.gate_proj.weight"].t())
        u = m @ p[h + "mlp.up_proj.weight"].t()
        x = x + (g * u) @ p[h + "mlp.down_proj.weight"].t()
    x = rms_norm(x, p["model.norm.weight"], eps)
    return x @ p["lm_head.weight"].t()


# ---------------------------------------------------------------------------------- safetensors

DTYPES = {  # torch dtype -> (safetensors name, rank in the reference's dtype order)
    torch.int64: ("I64", 17), torch.float64: ("F64", 16), torch.float32: ("F32", 15),
    torch.int32: ("I32", 13), torch.bfloat16: ("BF16", 12), torch.float16: ("F16", 11),
    torch.int8: ("I8", 5), torch.uint8: ("U8", 4),
}


def save_safetensors(path, tensors, metadata):
    items = sorted(tensors.items(), key=lambda kv: (-DTYPES[kv[1].dtype][1], kv[0]))
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name, t in items:
        data = t.contiguous().numpy().tobytes()  # little-endian host
        header[name] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return os.path.getsize(path)


# ---------------------------------------------------------------------------------- driver

def make_batch(vocab, seed):
    gen = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, vocab, (B, T + 1), generator=gen)
    tokens, targets = seq[:, :T].clone(), seq[:, 1:].clone()
    targets[IGNORED] = -1
    return tokens, targets


def run_model(name, arch, cfg, make_params, forward, seed):
    gen = torch.Generator().manual_seed(seed)
    params32 = make_params(cfg, gen)  # drawn in float32: the stored weights are exact inputs
    params = {k: v.to(torch.float64).requires_grad_(True) for k, v in params32.items()}
    tokens, targets = make_batch(cfg["vocab"], seed + 1)
    logits = forward(params, cfg, tokens)
    V = cfg["vocab"]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                             ignore_index=-1)
    loss.backward()

    out = {k: v.to(torch.float32) for k, v in params32.items()}
    out["inputs.tokens"] = tokens.to(torch.int32)
    out["inputs.targets"] = targets.to(torch.int32)
    out["out.logits"] = logits.detach().to(torch.float32)
    out["out.loss"] = loss.detach().reshape(1).to(torch.float32)
    for k, v in params.items():
        out["grad." + k] = v.grad.to(torch.float32)
    meta = {
        "arch": arch, "layers": cfg["layers"], "hidden": cfg["hidden"], "heads": cfg["heads"],
        "kv_heads": cfg["kv_heads"], "head_dim": cfg["head_dim"], "ffn": cfg["ffn"],
        "vocab": cfg["vocab"], "max_pos": cfg["max_pos"], "eps": cfg["norm_eps"],
        "rope_theta": cfg["rope_theta"], "tied_head": arch == "gpt2", "bias": arch == "gpt2",
        "batch": B, "seq_len": T, "ignore_index": -1, "seed": seed,
        "torch_version": torch.__version__, "generator": "tests/reference/make_fixtures.py",
    }
    meta = {k: (str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, float)
                else str(v)) for k, v in meta.items()}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    size = save_safetensors(path, out, meta)
    n_params = sum(v.numel() for v in params32.values())
    print("wrote %s: %d tensors, %d parameters, %d bytes, loss %.6f"
          % (os.path.relpath(path, ROOT), len(out), n_params, size, loss.item()))


def main():
    torch.set_num_threads(1)  # fixed reduction order: same bytes on every run
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)
    base = {"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 4, "head_dim": 0, "ffn": 256,
            "vocab": 256, "max_pos": 64, "norm_eps": 1e-5, "rope_theta": 10000.0}
    gpt2 = read_profile("tiny-gpt2", base)
    llama = read_profile("tiny-llama", dict(base, kv_heads=2, ffn=176))
    for cfg in (gpt2, llama):
        if cfg["head_dim"] == 0:
            cfg["head_dim"] = cfg["hidden"] // cfg["heads"]
    run_model("tiny_gpt2", "gpt2", gpt2, gpt2_params, gpt2_forward, 1234)
    run_model("tiny_llama", "llama", llama, llama_params, llama_forward, 5678)
    return 0


if __name__ == "__main__":
    sys.exit(main())
