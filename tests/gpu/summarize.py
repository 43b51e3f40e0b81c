#!/usr/bin/env python3
"""One summary line from a scalewise run's files, for tests/gpu/check.sh.

  summarize.py train RUN_DIR FLOPS_PER_TOKEN PEAK_FLOPS   (metrics.jsonl + report.yaml)
  summarize.py generate REPORT_YAML
  summarize.py gen-ratio REPORT_A REPORT_B   (prefill and decode tokens/s of A over B)

Reads report.yaml with PyYAML when the python running it has it (the GPU machine's torch
environment may not), else with a small reader of the block maps scalewise writes (common/emit.c:
"key: value" lines, two-space indentation, no lists or flow style in these reports).
Training tokens/s is the median over the steps after the 5th (the first ones allocate and
choose kernels); MFU = tokens/s x FLOPs per token / peak, the same formula as the PyTorch side.
Beside them: the advisor's predictions from the same report (tokens/s, MFU, per-device bytes;
report.yaml's `predicted` for training, `estimate` for generation) and the measured peak bytes
(the backend's per-category counters).
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
    return "n/a" if b is None else "%.2f GiB" % (float(b) / 2**30)


def pct(measured, predicted):
    """How far the prediction is from the measurement, as a signed percentage."""
    if not measured or predicted is None:
        return "n/a"
    return "%+.1f%%" % (100.0 * (float(predicted) - float(measured)) / float(measured))


def mem_line(measured, predicted, used=None):
    """Peak bytes measured (the backend's counters) against the advisor's total, with and
    without the advisor's runtime overhead term (CUDA context, allocator slack), which the
    counters cannot see; and, when the report has it, everything in use on the GPU at the end
    (device_used_bytes: the counters plus the context, libraries and allocator rounding)."""
    m = (measured or {}).get("total")
    p = (predicted or {}).get("total")
    dev = ""
    if used and m:
        dev = "; in use on the GPU %s, %s beyond the counters" % (gib(used),
                                                                   gib(float(used) - float(m)))
    if p is None:
        return "peak memory measured %s, predicted n/a%s" % (gib(m), dev)
    o = (predicted or {}).get("overhead") or 0.0
    return "peak memory measured %s, predicted %s (%s; without its %s overhead term %s)%s" % (
        gib(m), gib(p), pct(m, p), gib(o), pct(m, float(p) - float(o)), dev)


def train(run_dir, fpt, peak):
    rows = [json.loads(l) for l in open(run_dir + "/metrics.jsonl") if l.strip()]
    late = [r for r in rows if r.get("step", 0) > 5 and r.get("tokens_per_s")] or rows
    tps = statistics.median(r["tokens_per_s"] for r in late)
    own = statistics.median((r.get("mfu") or 0.0) for r in late)
    r = read_yaml(run_dir + "/report.yaml")
    meas, pred = r.get("measured") or {}, r.get("predicted") or {}
    mfu = "%.1f%%" % (100.0 * tps * fpt / peak) if peak > 0 else "n/a"
    ptps, pmfu = pred.get("tokens_per_s"), pred.get("mfu")
    print("%.0f tokens/s (median of steps > 5; predicted %s), MFU %s (scalewise's own figure "
          "%.1f%%, predicted %s), %s, backend %s" % (
              tps, "%.0f" % ptps if ptps else "n/a", mfu, 100.0 * own,
              "%.1f%%" % (100.0 * pmfu) if pmfu else "n/a",
              mem_line(meas.get("per_device_bytes"), pred.get("per_device_bytes"),
                       meas.get("device_used_bytes")),
              r.get("backend", "?")))
    print("TPS %.3f" % tps, file=sys.stderr)


def generate(path):
    r = read_yaml(path)
    m, est = r.get("measured") or {}, r.get("estimate") or {}
    dec, pdec = m.get("decode_s_per_token"), est.get("decode_s_per_token")
    print("prefill %.0f tokens/s, decode %.0f tokens/s (%s ms per decode step, predicted %s), "
          "TTFT %s ms (predicted %s)%s, %s, device %s" % (
              m.get("prefill_tokens_per_s") or 0, m.get("decode_tokens_per_s") or 0,
              "%.2f" % (1e3 * dec) if dec else "n/a", "%.2f" % (1e3 * pdec) if pdec else "n/a",
              "%.1f" % (1e3 * m["ttft_s"]) if m.get("ttft_s") else "n/a",
              "%.1f" % (1e3 * est["ttft_s"]) if est.get("ttft_s") else "n/a",
              ", after a %.0f ms warm-up" % (1e3 * m["warmup_s"]) if m.get("warmup_s") else "",
              mem_line(m.get("per_device_bytes"), est.get("per_device_bytes"),
                       m.get("device_used_bytes")),
              r.get("device", "?")))


def gen_ratio(path_a, path_b):
    a = read_yaml(path_a).get("measured") or {}
    b = read_yaml(path_b).get("measured") or {}

    def ratio(key):
        return "%.2f" % (a[key] / b[key]) if a.get(key) and b.get(key) else "n/a"
    print("prefill %s, decode %s" % (ratio("prefill_tokens_per_s"), ratio("decode_tokens_per_s")))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "train":
        train(sys.argv[2], float(sys.argv[3]), float(sys.argv[4] or 0))
    elif len(sys.argv) == 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "gen-ratio":
        gen_ratio(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
