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
