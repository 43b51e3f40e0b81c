#!/usr/bin/env python3
"""An independent forward of a scalewise GPT-2 checkpoint in PyTorch (fp32), on the batches the
training loader gave at the named steps: to tell a wrong forward from bad weights.

  torch_checkpoint_loss.py CKPT.safetensors RUN_DIR/data/train.bin STEPS [--batch B] [--seq T]

STEPS are 1-based training steps, comma-separated (step s reads the loader's batch s - 1: row r
is global sequence (s-1)·B + r, starting at data_offset + seq_index·T modulo the shard, as
executor/data.c's loader_batch). Prints each row's mean cross-entropy and the batch mean, which
is the loss `scalewise run` logged for that step when CKPT holds the weights before it (the
checkpoint of step s - 1). GPT-2 only (learned positions, LayerNorm, tanh GELU, tied head);
needs numpy and torch, not safetensors or transformers. Single process, world size 1.
"""
import argparse
import json
import math
import struct

import numpy as np
import torch


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    tensors = {}
    for name, v in head.items():
        if name.startswith("optim"):
            continue
        if v["dtype"] != "F32":
            raise SystemExit("%s: %s is %s; expected F32" % (path, name, v["dtype"]))
        a, b = v["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(v["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    return meta, tensors


def shard_tokens(path):
    raw = open(path, "rb").read()
    if raw[:8] != b"SWTOKENS":
        raise SystemExit("%s: not a scalewise token shard" % path)
    n = struct.unpack("<Q", raw[16:24])[0]
    width = (len(raw) - 64) // n
    dtype = {2: np.uint16, 4: np.uint32}.get(width)
    if dtype is None:
        raise SystemExit("%s: %d bytes per token; expected 2 or 4" % (path, width))
    return np.frombuffer(raw[64:64 + width * n], dtype=dtype).astype(np.int64)


def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


@torch.no_grad()
def row_loss(W, L, NH, ids, targets, eps):
    T = ids.shape[0]
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (x.shape[-1],), W[p + ".weight"],
                                                     W[p + ".bias"], eps)
    x = W["wte.weight"][ids] + W["wpe.weight"][:T]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(L):
        p = "h.%d." % l
        C = x.shape[1]
        a = ln(x, p + "ln_1") @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = (t.view(T, NH, -1).transpose(0, 1) for t in a.split(C, dim=1))
        att = (q @ k.transpose(1, 2)) / math.sqrt(q.shape[-1])
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + y @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        h = gelu(ln(x, p + "ln_2") @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"])
        x = x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    logits = ln(x, "ln_f") @ W["wte.weight"].T
    return torch.nn.functional.cross_entropy(logits, targets).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("shard")
    ap.add_argument("steps")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    a = ap.parse_args()
    meta, W = load(a.checkpoint)
    if meta.get("model.arch") != "gpt2":
        raise SystemExit("%s: model.arch %s; only gpt2" % (a.checkpoint, meta.get("model.arch")))
    L, NH = int(meta["model.layers"]), int(meta["model.heads"])
    eps = float(dict(kv.split("=") for kv in meta.get("plan_numerics", "").split(";")
                     if "=" in kv).get("model.norm_eps", 1e-5))
    toks = shard_tokens(a.shard)
    n, off, T = len(toks), int(meta["data_offset"]), a.seq
    for step in (int(s) for s in a.steps.split(",")):
        total = 0.0
        for r in range(a.batch):
            seq = (step - 1) * a.batch + r
            start = (off + (seq % n) * (T % n)) % n
            idx = [(start + i) % n for i in range(T + 1)]
            loss = row_loss(W, L, NH, torch.tensor(toks[idx[:-1]]), torch.tensor(toks[idx[1:]]),
                            eps)
            total += loss
            print("step %d row %d: %.4f" % (step, r, loss), flush=True)
        print("step %d: mean loss %.4f" % (step, total / a.batch), flush=True)


if __name__ == "__main__":
    main()
