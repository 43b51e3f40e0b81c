#!/usr/bin/env bash
# Benchmarks (`make bench`): figures are printed, never asserted.
# Strategy search time: best of 5 runs of `scalewise plan` for 1024 GPUs (llama-3.1-405b on
# 128 nodes x 8 H100) and for 8 GPUs (llama-3-8b on one node), read from the elapsed_s the
# search reports, with the number of candidates it evaluated.
set -u
cd "$(dirname "$0")/../.."
SW=${SW:-./scalewise}
[ -x "$SW" ] || { echo "bench: no $SW; run make first"; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

bench_plan() { # label, plan flags...
  local label=$1; shift
  local best="" cands=""
  for _ in 1 2 3 4 5; do
    if ! "$SW" plan "$@" --format json >"$tmp/p.json" 2>"$tmp/err"; then
      echo "bench: $label: plan failed: $(tail -n 1 "$tmp/err")"; return 1
    fi
    read -r el cand < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["elapsed_s"], d["candidates_evaluated"])' "$tmp/p.json")
    cands=$cand
    best=$(python3 -c 'import sys; a=sys.argv[1]; b=float(sys.argv[2]); print(b if a=="" else min(float(a), b))' "$best" "$el")
  done
  python3 -c 'import sys; print("%-44s best of 5: %8.2f ms   %s candidates evaluated" % (sys.argv[1], float(sys.argv[2])*1e3, sys.argv[3]))' "$label" "$best" "$cands"
}

echo "strategy search ($(nproc) cores)"
bench_plan "plan: llama-3.1-405b, 1024 GPUs (128x8 H100)" --model llama-3.1-405b --gpu h100-sxm --nodes 128 --gpus-per-node 8 --task train
bench_plan "plan: llama-3-8b, 8 GPUs (1x8 H100)" --model llama-3-8b --gpu h100-sxm --nodes 1 --gpus-per-node 8 --task train
bench_plan "plan: llama-3-70b inference, 8 GPUs" --model llama-3-70b --gpu h100-sxm --gpus-per-node 8 --task infer --batch 8

# bf16 matmuls (tests/bench/bench_bf16.c): GFLOP/s of fp32 sgemm, the native AVX512-BF16 kernel
# and the emulated path (widen the bf16 weight to fp32, then sgemm) on GPT-2 124M's linear
# layers at 1024 tokens and at 1 (decode), forward, input and weight gradients. Built here
# against build/libsw.a.
echo
if cc -std=c11 -O2 -fopenmp -I. -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
     -o "$tmp/bench_bf16" tests/bench/bench_bf16.c build/libsw.a \
     $(pkg-config --libs openblas 2>/dev/null) -lm -ldl -lpthread 2>"$tmp/err"; then
  "$tmp/bench_bf16" 1024 3
  echo
  "$tmp/bench_bf16" 1 5 # one token: a decode step's GEMVs (the forward's packing-free path)
else
  echo "bench: bench_bf16: build failed: $(tail -n 1 "$tmp/err")"
fi

echo
echo "terminal interface (100x30 off-screen terminal)"
"$SW" tui --bench || echo "bench: scalewise tui --bench failed"

# Data parallelism on the CPU (docs/distributed.md): tokens/s of GPT-2 124M (fp32, AdamW, 2
# sequences of 64 tokens per step, 4 steps; the first step is left out as warm-up) in one
# process with 2 threads against 2 processes with 1 thread each (DDP, ZeRO-1 and ZeRO-2, same
# global batch), the communication time per step that rank 0 measured beside the advisor's
# prediction for the link (shared memory, strategy reference 7.5), and rank 0's gradient and
# optimizer bytes (measured; ZeRO-1 shards the optimizer, ZeRO-2 the gradients too). The
# hardware is probed, so the ranks run unbound (--bind-to none): bound to one core each, each
# rank's probe would see one usable core and refuse dp 2. Skipped without mpirun or the plugin.
echo
if command -v mpirun >/dev/null 2>&1 && [ -f build/libscalewise-mpi.so ]; then
  echo "data parallel: gpt2-124m fp32 adamw, 2 x 64 tokens per step ($(nproc) cores)"
  "$SW" data prepare --input data/tinyshakespeare.txt --out "$tmp/dpdata" >/dev/null
  bench_dp() { # tag label dp zero grad_accum threads
    local tag=$1; shift
    cat >"$tmp/dp.yaml" <<EOY
scalewise_plan: 1
name: bench-dp
task: train
hardware: {probe: true}
model: {profile: gpt2-124m}
data: {path: $tmp/dpdata, tokenizer: byte}
train: {steps: 4, seq: 64, lr: 3.0e-4, warmup_steps: 0, log_every: 1, checkpoint_every: 0, out_dir: $tmp/dp_$tag}
strategy: {device: cpu, precision: fp32, optimizer: adamw, micro_batch: 1, grad_accum: $4, dp: $2, zero: $3, threads: $5}
EOY
    local run=("$SW" run "$tmp/dp.yaml" --quiet)
    [ "$2" -gt 1 ] && run=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$2" "${run[@]}")
    if ! "${run[@]}" >/dev/null 2>"$tmp/err"; then
      echo "bench: $1: run failed: $(grep -m 1 scalewise "$tmp/err")"; return 1
    fi
    python3 - "$1" "$tmp/dp_$tag" <<'PY'
import json, sys, yaml
label, d = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")][1:]
tps = sum(r["tokens_per_s"] for r in rows) / len(rows)
line = "%-32s %8.1f tokens/s" % (label, tps)
if "comm_ms" in rows[0]:
    rep = yaml.safe_load(open(d + "/report.rank0.yaml"))["distributed"]
    comm = sum(r["comm_ms"] for r in rows) / len(rows) / 1e3
    line += "   comm %.3f s/step (predicted %.3f s/step, %s)" % (
        comm, rep["predicted_comm_s_per_step"] or float("nan"), rep["link"])
    mem = yaml.safe_load(open(d + "/report.rank0.yaml"))["measured"]["per_device_bytes"]
    line += "   rank 0: gradients %.0f MB, optimizer %.0f MB" % (
        mem["gradients"] / 1e6, mem["optimizer"] / 1e6)
print(line)
PY
  }
  bench_dp one "1 process x 2 threads" 1 0 2 2
  bench_dp ddp "2 processes x 1 thread, DDP" 2 0 1 1
  bench_dp zero1 "2 processes x 1 thread, ZeRO-1" 2 1 1 1
  bench_dp zero2 "2 processes x 1 thread, ZeRO-2" 2 2 1 1
else
  echo "data parallel: skipped (mpirun or build/libscalewise-mpi.so missing)"
fi
# The CPU executor beside PyTorch: GPT-2 124M training and generation, about 5 minutes (docs/benchmarks.md).
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then SW="$SW" tests/bench/cpu_vs_torch.sh; else echo "bench: scalewise vs torch skipped: /usr/bin/python3 cannot import torch"; fi
