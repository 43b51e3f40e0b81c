#!/usr/bin/env python3
"""One summary line from a scalewise run's files, for tests/gpu/check.sh.

  summarize.py train RUN_DIR FLOPS_PER_TOKEN PEAK_FLOPS   (metrics.jsonl + report.yaml)
  summarize.py generate REPORT_YAML

Reads report.yaml with PyYAML when the python running it has it (the GPU machine's torch
environment may not), else with a small reader of the block maps scalewise writes (common/emit.c:
"key: value" lines, two-space indentation, no lists or flow style in these reports).
Training tokens/s is the median over the steps after the 5th (the first ones allocate and
choose kernels); MFU = tokens/s x FLOPs per token / peak, the same formula as the PyTorch side.
"""
import json
import statistics
import sys


def read_yaml(path):
    try:
        import yaml
        with open(path) as f:
            return yaml.safe_load(f)
    except ImportError:
        pass
    root, stack = {}, [(-1, None)]
    stack[0] = (-1, root)
    with open(path) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            ind = len(line) - len(line.lstrip(" "))
            key, _, val = line.strip().partition(":")
            while stack[-1][0] >= ind:
                stack.pop()
            parent = stack[-1][1]
            val = val.strip()
            if val == "":
                parent[key] = {}
                stack.append((ind, parent[key]))
                continue
            try:
                parent[key] = float(val) if any(c in val for c in ".e") else int(val)
            except ValueError:
                parent[key] = None if val in ("null", "~") else val.strip('"')
    return root


def gib(b):
    return "%.2f GiB" % (float(b) / 2**30)


def train(run_dir, fpt, peak):
    rows = [json.loads(l) for l in open(run_dir + "/metrics.jsonl") if l.strip()]
    late = [r for r in rows if r.get("step", 0) > 5 and r.get("tokens_per_s")] or rows
    tps = statistics.median(r["tokens_per_s"] for r in late)
    own = statistics.median((r.get("mfu") or 0.0) for r in late)
    r = read_yaml(run_dir + "/report.yaml")
    m = r["measured"]["per_device_bytes"]["total"]
    p = r["predicted"]["per_device_bytes"]["total"]
    mfu = "%.1f%%" % (100.0 * tps * fpt / peak) if peak > 0 else "n/a"
    print("%.0f tokens/s, MFU %s (scalewise's own figure %.1f%%), peak memory measured %s, "
          "predicted %s (%+.1f%%)" % (tps, mfu, 100.0 * own, gib(m), gib(p),
                                      100.0 * (p - m) / m if m else 0.0))
    print("TPS %.3f" % tps, file=sys.stderr)


def generate(path):
    m = read_yaml(path)["measured"]
    print("prefill %.0f tokens/s, decode %.0f tokens/s, peak %s" % (
        m.get("prefill_tokens_per_s") or 0, m.get("decode_tokens_per_s") or 0,
        gib(m["per_device_bytes"]["total"])))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "train":
        train(sys.argv[2], float(sys.argv[3]), float(sys.argv[4] or 0))
    elif len(sys.argv) == 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
