#!/usr/bin/env bash
# Device-readiness of the executor, without a GPU: the same runs on the CPU backend and on the
# device-simulating backend (SCALEWISE_DEVSIM=1, executor/backend_devsim.c), whose buffers the
# host cannot dereference — any host access to model memory faults, any host pointer handed to
# a kernel or a copy in the wrong direction aborts naming the entry. The numerics are the CPU
# kernels', so every pair must be byte-identical: checkpoints (weights and optimizer state),
# losses, generated text. Covers GPT-2 and Llama; fp32, bf16-mixed and fp16-mixed (with its
# loss scaler); every optimizer;
# recompute selective and full; flash and materialised attention; LoRA; accumulation;
# checkpoint save and resume; Hugging Face import (transposed Conv1D weights) and generation
# (KV cache, batch of prompts, int8); data parallelism (DDP, ZeRO-1/2/3 under mpirun -np 2,
# bytes staged through host memory because MPI takes host buffers), and bf16-mixed ZeRO-2/3
# against one process.
. "$(dirname "$0")/lib.sh"
REL=${SW_RELEASE:-$SW}
B=${SW_BUILD:-build}
export SCALEWISE_COMM_TIMEOUT=20
DS=(env SCALEWISE_DEVSIM=1)

expect_rc 0 "data prepare" -- "$REL" data prepare --input data/tinyshakespeare.txt --out "$TMP/data"

# plan NAME MODEL PRECISION OPTIMIZER RECOMPUTE ATTENTION ACCUM [EXTRA STRATEGY KEYS]
plan() {
  cat >"$TMP/$1.yaml" <<EOF
scalewise_plan: 1
name: $1
task: train
hardware: {profile: cpu-avx2-2c}
model: {profile: $2}
data: {path: $TMP/data, tokenizer: byte, val_fraction: 0.1}
train: {steps: 4, seq: 32, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2, grad_clip: 1.0, eval_every: 2, eval_batches: 2, log_every: 1, checkpoint_every: 2, out_dir: $TMP/$1}
strategy: {device: cpu, precision: $3, optimizer: $4, recompute: $5, attention: $6, micro_batch: 2, grad_accum: $7, threads: 1${8:+, $8}}
EOF
}
# same NAME: the CPU run and the device-simulator run of plan NAME agree byte for byte.
same() {
  local n=$1
  expect_rc 0 "$n on the CPU backend" -- "$SW" run "$TMP/$n.yaml" --quiet --out "$TMP/$n.cpu"
  expect_rc 0 "$n on the device simulator" -- "${DS[@]}" "$SW" run "$TMP/$n.yaml" --quiet \
    --out "$TMP/$n.dev"
  cmp -s "$TMP/$n.cpu/ckpt_4.safetensors" "$TMP/$n.dev/ckpt_4.safetensors" && ok ||
    fail "$n: the device simulator's checkpoint differs from the CPU's"
  local keys='[.step, .loss, .val_loss, .grad_norm, .loss_scale, .skipped]'
  if diff <(jq -c "$keys" "$TMP/$n.cpu/metrics.jsonl") \
          <(jq -c "$keys" "$TMP/$n.dev/metrics.jsonl") >/dev/null
  then ok; else fail "$n: losses differ between the CPU and the device simulator"; fi
}

plan g32 tiny-gpt2 fp32 adamw none flash 2
same g32
plan gbf tiny-gpt2 bf16-mixed adamw8bit selective naive 1
same gbf
plan lfull tiny-llama fp32 lion full flash 2
same lfull
plan lfac tiny-llama fp32 adafactor none naive 1
same lfac
plan gsgd tiny-gpt2 fp32 sgd-momentum full naive 1
same gsgd
plan glora tiny-gpt2 fp32 adamw none flash 1 "lora_rank: 4"
same glora
# fp16-mixed: the emulated fp16 matmuls and the loss scaler (from 2^23: the first steps skip).
plan gf16 tiny-gpt2 fp16-mixed adamw selective naive 2
sed -i 's/log_every: 1,/log_every: 1, loss_scale_init: 8388608,/' "$TMP/gf16.yaml"
same gf16
plan lf16 tiny-llama fp16-mixed lion none flash 1 "lora_rank: 4"
same lf16
grep -q "backend: devsim" "$TMP/g32.dev/report.yaml" && ok ||
  fail "report.yaml does not name the devsim backend"

# Resume from the step-2 checkpoint on the device simulator: the uninterrupted run's bytes.
expect_rc 0 "resume on the device simulator" -- "${DS[@]}" "$SW" run "$TMP/g32.yaml" --quiet \
  --resume "$TMP/g32.cpu/ckpt_2.safetensors" --out "$TMP/g32.res"
cmp -s "$TMP/g32.cpu/ckpt_4.safetensors" "$TMP/g32.res/ckpt_4.safetensors" && ok ||
  fail "resume on the device simulator differs from the uninterrupted run"

# Generation: a trained checkpoint and the PyTorch-made HF GPT-2 file (transposed Conv1D
# weights), a batch of two prompts, greedy and sampled, fp32 and int8.
printf 'First Citizen:\nBefore we proceed\n' >"$TMP/prompts"
for args in "--checkpoint $TMP/g32.cpu/ckpt_4.safetensors --temperature 0" \
            "--checkpoint $TMP/lfull.cpu/ckpt_4.safetensors --temperature 0.8 --top-k 20" \
            "--checkpoint tests/data/reference/tiny_gpt2.safetensors --temperature 0 --int8" \
            "--checkpoint $TMP/g32.cpu/ckpt_4.safetensors --temperature 0 --weights fp16"; do
  # shellcheck disable=SC2086
  expect_rc 0 "generate ($args) on the CPU" -- "$SW" generate $args --prompt-file "$TMP/prompts" \
    --max-new-tokens 12 --threads 1 --format json
  jq -c '.sequences // .outputs // .' "$TMP/out" >"$TMP/gen.cpu"
  # shellcheck disable=SC2086
  expect_rc 0 "generate ($args) on the device simulator" -- "${DS[@]}" "$SW" generate $args \
    --prompt-file "$TMP/prompts" --max-new-tokens 12 --threads 1 --format json
  jq -c '.sequences // .outputs // .' "$TMP/out" >"$TMP/gen.dev"
  cmp -s "$TMP/gen.cpu" "$TMP/gen.dev" && ok || fail "generate ($args): texts differ"
done

# The run and generate suites again with every process on the device simulator: their other
# paths (interrupt and resume, kill -9, refusals, reports, inference plans) must not touch
# device memory from the host either.
for suite in run generate; do
  if SCALEWISE_DEVSIM=1 bash "$(dirname "$0")/$suite.sh" >"$TMP/suite.out" 2>&1 &&
     grep -qE "^$suite.sh: [0-9]+ passed, 0 failed" "$TMP/suite.out"; then ok
  else fail "$suite.sh on the device simulator: $(grep -E 'FAIL|passed' "$TMP/suite.out" | head -n 5)"; fi
done

# Data parallelism over MPI with device memory: staged through host buffers.
if command -v mpirun >/dev/null 2>&1 && [ -f "$B/libscalewise-mpi.so" ]; then
  NOLEAK="ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0"
  MPI=(env "$NOLEAK" timeout 90 mpirun --allow-run-as-root --oversubscribe -np 2)
  for z in 0 1 2 3; do
    plan "dp$z" tiny-gpt2 fp32 adamw none flash 2 "dp: 2, zero: $z"
    expect_rc 0 "zero $z on 2 CPU ranks" -- "${MPI[@]}" "$SW" run "$TMP/dp$z.yaml" --quiet \
      --out "$TMP/dp$z.cpu"
    expect_rc 0 "zero $z on 2 device-simulator ranks" -- "${MPI[@]}" -x SCALEWISE_DEVSIM=1 "$SW" \
      run "$TMP/dp$z.yaml" --quiet --out "$TMP/dp$z.dev"
    cmp -s "$TMP/dp$z.cpu/ckpt_4.safetensors" "$TMP/dp$z.dev/ckpt_4.safetensors" && ok ||
      fail "zero $z: the device simulator's checkpoint differs from the CPU's"
  done
  # ZeRO-2 and ZeRO-3 in bf16-mixed (bf16 copies of the gathered layers) against one process
  # on the same global batch: losses within 1e-5 relative, weights within 1e-4 absolute.
  plan bf1 tiny-gpt2 bf16-mixed adamw none flash 4
  expect_rc 0 "bf16-mixed in one process" -- "$SW" run "$TMP/bf1.yaml" --quiet
  for z in 2 3; do
    plan "bfz$z" tiny-gpt2 bf16-mixed adamw none flash 2 "dp: 2, zero: $z"
    expect_rc 0 "bf16-mixed zero $z on 2 device-simulator ranks" -- "${MPI[@]}" \
      -x SCALEWISE_DEVSIM=1 "$SW" run "$TMP/bfz$z.yaml" --quiet
    same_losses "$TMP/bfz$z/metrics.jsonl" "$TMP/bf1/metrics.jsonl" "bf16 zero $z vs one process"
    ckdiff "$TMP/bf1/ckpt_4.safetensors" "$TMP/bfz$z/ckpt_4.safetensors" 1e-4 \
      "bf16 zero $z final checkpoint vs one process"
  done
  # LoRA under ZeRO-2: the adapters' gradients sharded too (one layer's adapters kept); same
  # losses and adapters as one process, and rank 0's bytes equal the advisor's prediction.
  plan lo1 tiny-gpt2 fp32 adamw none flash 4 "lora_rank: 4"
  expect_rc 0 "LoRA in one process" -- "$SW" run "$TMP/lo1.yaml" --quiet
  plan loz2 tiny-gpt2 fp32 adamw none flash 2 "lora_rank: 4, dp: 2, zero: 2"
  expect_rc 0 "LoRA zero 2 on 2 device-simulator ranks" -- "${MPI[@]}" -x SCALEWISE_DEVSIM=1 \
    "$SW" run "$TMP/loz2.yaml" --quiet
  same_losses "$TMP/loz2/metrics.jsonl" "$TMP/lo1/metrics.jsonl" "LoRA zero 2 vs one process"
  ckdiff "$TMP/lo1/ckpt_4.safetensors" "$TMP/loz2/ckpt_4.safetensors" 1e-4 \
    "LoRA zero 2 final checkpoint vs one process"
  "$PY" - "$TMP/loz2/report.rank0.yaml" >"$TMP/lomem" 2>&1 <<'PY' && ok || fail "LoRA zero 2 rank 0 bytes: $(tail -n 2 "$TMP/lomem")"
import sys, yaml
r = yaml.safe_load(open(sys.argv[1]))
m, p = r["measured"]["per_device_bytes"], r["predicted"]["per_device_bytes"]
for k in ("weights", "gradients", "optimizer", "workspace"):
    assert m[k] == p[k], (k, m[k], p[k])
PY
else
  echo "devsim.sh: data-parallel part skipped: mpirun or $B/libscalewise-mpi.so missing"
fi
cli_finish
