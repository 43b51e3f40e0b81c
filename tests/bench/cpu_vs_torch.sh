#!/usr/bin/env bash
# CPU benchmark: scalewise's executor beside PyTorch on this machine (docs/benchmarks.md).
# GPT-2 124M (profile gpt2-124m, random init, fp32, AdamW) trained on the CPU with the same
# batch, sequence length and thread count in both, then greedy generation with a KV cache at
# batch 1 and 8 (64 prompt tokens, 32 new tokens). Figures are printed, never asserted.
#
# Environment:
#   SW=./scalewise        the binary
#   BENCH_THREADS=2       threads for both (OMP_NUM_THREADS, --threads, torch.set_num_threads)
#   BENCH_STEPS=8         training steps per framework; the first 2 are dropped (warm-up)
#   BENCH_LONG=0          1: also train at T=1024, B=1
#   BENCH_KEEP=DIR        keep the runs (plans, metrics, checkpoint, JSON) in DIR
#   OMP_WAIT_POLICY=PASSIVE  for both unless set: on a shared, oversubscribed VM spinning
#                         OpenMP waits make both frameworks several times slower (see the doc)
# Needs /usr/bin/python3 with torch (Debian's python3-torch) and python3 for the arithmetic.
set -u
cd "$(dirname "$0")/../.." || exit 2
SW=${SW:-./scalewise}
PY=/usr/bin/python3
THREADS=${BENCH_THREADS:-2}
STEPS=${BENCH_STEPS:-8}
DROP=2
[ -x "$SW" ] || { echo "bench: no $SW; run make first"; exit 2; }
"$PY" -c 'import torch' 2>/dev/null || { echo "bench: cpu vs torch skipped: $PY cannot import torch"; exit 0; }
[ "$STEPS" -gt "$DROP" ] || { echo "bench: BENCH_STEPS must be above $DROP"; exit 2; }
if [ -n "${BENCH_KEEP:-}" ]; then
  tmp=$BENCH_KEEP; mkdir -p "$tmp"
else
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fi
export OMP_NUM_THREADS=$THREADS
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=data/tinyshakespeare.txt

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo
echo "scalewise vs PyTorch on the CPU: GPT-2 124M, fp32, $THREADS threads, OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
echo "cpu: ${cpu:-unknown} ($(nproc) usable cores), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" tests/bench/torch_gpt2.py info --threads "$THREADS" >"$tmp/torch_info.json" 2>"$tmp/err" ||
  { echo "bench: torch info failed: $(tail -n 1 "$tmp/err")"; exit 1; }
python3 - "$tmp/torch_info.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
cfg = d.get('openblas_config', d.get('openblas_error', 'no OpenBLAS found'))
print('torch %s: %s, %s threads (%s); sgemm 1024^3: %s GFLOP/s by threads'
      % (d['torch'], cfg, d.get('openblas_threads', '?'), d.get('openblas_parallel', '?'),
         ', '.join('%s: %s' % kv for kv in d['sgemm_gflops'].items())))
EOF

# Rows of the result table: framework|config|tokens/s|ms/step|best ms/step
rows=$tmp/rows.txt; : >"$rows"

write_plan() { # file, seq, batch, steps, out
  cat >"$1" <<EOF
scalewise_plan: 1
name: bench-gpt2-124m
task: train
hardware: {probe: true}
model: {profile: gpt2-124m}   # vocab 50257 kept: byte ids (< 256) are valid ids
data: {path: $DATA, tokenizer: byte, val_fraction: 0.1}
train:
  steps: $4
  seq: $2
  lr: 6.0e-4
  schedule: constant
  warmup_steps: 0
  weight_decay: 0.1
  grad_clip: 1.0
  beta1: 0.9
  beta2: 0.95
  eval_every: 0
  log_every: 1
  out_dir: $5
strategy:
  device: cpu
  precision: fp32
  optimizer: adamw
  micro_batch: $3
  grad_accum: 1
  attention: flash
  threads: $THREADS
EOF
}

# steady FILE KIND: "tokens/s|ms/step|best ms/step" over the steps after the first $DROP.
# KIND sw: metrics.jsonl (one object per line); torch: torch_gpt2.py's JSON.
steady() {
  python3 - "$1" "$2" "$DROP" <<'EOF'
import json, sys
path, kind, drop = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == 'sw':
    steps = [json.loads(l) for l in open(path) if l.strip()]
else:
    steps = json.load(open(path))['steps']
s = [x for x in steps if x['step'] > drop]
tokens = sum(x['tokens_per_s'] * x['ms_per_step'] / 1e3 for x in s)
ms = sum(x['ms_per_step'] for x in s)
print('%.1f|%.0f|%.0f' % (tokens / (ms / 1e3), ms / len(s), min(x['ms_per_step'] for x in s)))
EOF
}

bench_train() { # seq, batch
  local T=$1 B=$2 cfg="train B=$2 T=$1" out=$tmp/sw_T$1_B$2
  write_plan "$tmp/plan_T${T}_B${B}.yaml" "$T" "$B" "$STEPS" "$out"
  echo "  scalewise run: $cfg, $STEPS steps ..."
  if ! "$SW" run "$tmp/plan_T${T}_B${B}.yaml" --quiet --threads "$THREADS" >"$tmp/sw.log" 2>&1; then
    echo "bench: scalewise run failed: $(tail -n 1 "$tmp/sw.log")"; return 1
  fi
  echo "scalewise|$cfg|$(steady "$out/metrics.jsonl" sw)" >>"$rows"
  echo "  torch: $cfg, $STEPS steps ..."
  if ! "$PY" tests/bench/torch_gpt2.py train --threads "$THREADS" --batch "$B" --seq "$T" \
      --steps "$STEPS" --data "$DATA" --quiet >"$tmp/torch_T${T}_B${B}.json" 2>"$tmp/err"; then
    echo "bench: torch train failed: $(tail -n 1 "$tmp/err")"; return 1
  fi
  echo "torch|$cfg|$(steady "$tmp/torch_T${T}_B${B}.json" torch)" >>"$rows"
}

# gen_rows FILE FRAMEWORK BATCH: prefill and decode rows from a generation JSON (both tools
# print the same keys). ms/step: the prefill call (TTFT), or one decode step of the batch.
gen_rows() {
  python3 - "$1" "$2" "$3" <<'EOF' >>"$rows"
import json, sys
d = json.load(open(sys.argv[1]))
fw, b = sys.argv[2], sys.argv[3]
print('%s|prefill b=%s (64 tok)|%.1f|%.0f|' % (fw, b, d['prefill_tokens_per_s'], d['ttft_s'] * 1e3))
print('%s|decode b=%s (32 new)|%.1f|%.0f|' % (fw, b, d['decode_tokens_per_s'],
                                              d['decode_s_per_token'] * 1e3))
EOF
}

bench_generate() { # checkpoint
  # 64-byte prompts: slices of the corpus with newlines as spaces, one per line.
  python3 - "$DATA" "$tmp" <<'EOF'
import sys
txt = open(sys.argv[1], 'rb').read().replace(b'\n', b' ')
lines = [txt[i * 4096:i * 4096 + 64].decode('ascii') for i in range(8)]
open(sys.argv[2] + '/prompts_8.txt', 'w').write('\n'.join(lines) + '\n')
open(sys.argv[2] + '/prompts_1.txt', 'w').write(lines[0] + '\n')
EOF
  local b
  for b in 1 8; do
    echo "  scalewise generate: batch $b ..."
    if ! "$SW" generate --checkpoint "$1" --prompt-file "$tmp/prompts_$b.txt" --max-new-tokens 32 \
        --temperature 0 --threads "$THREADS" --format json >"$tmp/sw_gen_$b.json" 2>"$tmp/err"; then
      echo "bench: scalewise generate failed: $(tail -n 1 "$tmp/err")"; return 1
    fi
    gen_rows "$tmp/sw_gen_$b.json" scalewise "$b"
    echo "  torch generate: batch $b ..."
    if ! "$PY" tests/bench/torch_gpt2.py generate --threads "$THREADS" \
        --prompt-file "$tmp/prompts_$b.txt" --new-tokens 32 >"$tmp/torch_gen_$b.json" 2>"$tmp/err"; then
      echo "bench: torch generate failed: $(tail -n 1 "$tmp/err")"; return 1
    fi
    gen_rows "$tmp/torch_gen_$b.json" torch "$b"
  done
}

start=$(date +%s)
bench_train 256 4 || exit 1
# The training run's final checkpoint (random init + a few steps) serves as the weights.
ckpt="$tmp/sw_T256_B4/$(cat "$tmp/sw_T256_B4/latest.txt")"
bench_generate "$ckpt" || exit 1
if [ "${BENCH_LONG:-0}" = 1 ]; then bench_train 1024 1 || exit 1; fi

python3 - "$rows" "$DROP" "$STEPS" "$(( $(date +%s) - start ))" <<'EOF'
import sys
rows = [l.rstrip('\n').split('|') for l in open(sys.argv[1]) if l.strip()]
torch = {r[1]: float(r[2]) for r in rows if r[0] == 'torch'}
print()
print('%-10s %-24s %12s %10s %12s %8s' % ('framework', 'config', 'tokens/s', 'ms/step',
                                          'best ms/step', 'ratio'))
for fw, cfg, tps, ms, best in rows:
    ratio = float(tps) / torch[cfg] if torch.get(cfg) else float('nan')
    print('%-10s %-24s %12s %10s %12s %7.2fx' % (fw, cfg, tps, ms, best or '-', ratio))
print('training: mean over steps %d..%s (first %s dropped); ratio: scalewise tokens/s over '
      'torch tokens/s for the same config; bench took %s s'
      % (int(sys.argv[2]) + 1, sys.argv[3], sys.argv[2], sys.argv[4]))
EOF
