#!/usr/bin/env bash
# fp16-mixed training with loss scaling (docs/run.md, "fp16-mixed and loss scaling"): on the
# CPU it runs as the executor's emulation of fp16 tensor cores. A dynamic scale started far too
# high skips steps and reports them (metrics.jsonl, report.yaml, the progress line); a
# checkpoint carries the scaler, so a resumed run is byte-identical to an uninterrupted one; a
# static scale stays put; the plan keys are refused outside fp16-mixed and checked with
# file:line:column; the advisor estimates it on the CPU with a reason and never picks it there;
# data parallelism (ZeRO-2, ZeRO-3) matches one process.
. "$(dirname "$0")/lib.sh"
REL=${SW_RELEASE:-$SW}
B=${SW_BUILD:-build}
export SCALEWISE_COMM_TIMEOUT=20

expect_rc 0 "data prepare" -- "$REL" data prepare --input data/tinyshakespeare.txt --out "$TMP/data"

# plan NAME PRECISION STEPS ACCUM TRAIN-EXTRA [STRATEGY-EXTRA]
plan() {
  cat >"$TMP/$1.yaml" <<EOF
scalewise_plan: 1
name: $1
task: train
hardware: {profile: cpu-avx2-2c}
model: {profile: tiny-gpt2}
data: {path: $TMP/data, tokenizer: byte, val_fraction: 0.1}
train: {steps: $3, seq: 32, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2, grad_clip: 1.0, log_every: 1, checkpoint_every: 6, out_dir: $TMP/$1${5:+, $5}}
strategy: {device: cpu, precision: $2, optimizer: adamw, recompute: none, attention: flash, micro_batch: 2, grad_accum: $4, threads: 1${6:+, $6}}
EOF
}

# Dynamic scaling from 2^23: the first steps overflow fp16 and are skipped.
plan dyn fp16-mixed 12 1 "loss_scale_init: 8388608, loss_scale_window: 3"
expect_rc 0 "fp16-mixed run, dynamic scale from 2^23" -- "$SW" run "$TMP/dyn.yaml"
expect_grep "precision: fp16-mixed: .*dynamic loss scaling; fp16 matmuls are emulated" "$TMP/err" \
  "the run names its precision and scaling"
expect_grep "scale 8.38861e\+06 skipped" "$TMP/err" "the progress line shows the skipped step"
"$PY" - "$TMP/dyn" >"$TMP/chk" 2>&1 <<'PY' && ok || fail "dynamic scaling: $(tail -n 3 "$TMP/chk")"
import json, sys, yaml
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert len(rows) == 12, len(rows)
scale, good, skipped = 2.0 ** 23, 0, 0
for r in rows:  # GradScaler's rule, replayed on the recorded skips
    assert r["loss_scale"] == scale, (r, scale)
    if r["skipped"]:
        skipped += 1; scale /= 2; good = 0
    else:
        good += 1
        if good == 3: scale *= 2; good = 0
assert rows[0]["skipped"] and not rows[-1]["skipped"], rows
assert skipped >= 2, skipped
rep = yaml.safe_load(open(d + "/report.yaml"))
ls = rep["loss_scaling"]
assert ls == {"mode": "dynamic", "final_scale": scale, "skipped_steps": skipped}, (ls, scale, skipped)
print("skipped", skipped, "final scale", scale)
PY

# Resume from step 6: the scaler comes back with the weights; the bytes of step 12 are the
# uninterrupted run's.
expect_rc 0 "resume from step 6" -- "$SW" run "$TMP/dyn.yaml" --quiet \
  --resume "$TMP/dyn/ckpt_6.safetensors" --out "$TMP/dyn.res"
cmp -s "$TMP/dyn/ckpt_12.safetensors" "$TMP/dyn.res/ckpt_12.safetensors" && ok ||
  fail "the resumed fp16 run differs from the uninterrupted one"
"$PY" -c "
import yaml, sys
a = yaml.safe_load(open('$TMP/dyn/report.yaml'))['loss_scaling']
b = yaml.safe_load(open('$TMP/dyn.res/report.yaml'))['loss_scaling']
sys.exit(a != b)" && ok || fail "the resumed run's loss_scaling differs"

# A static scale never moves; nothing overflows at 512.
plan stat fp16-mixed 6 2 "loss_scale: 512"
expect_rc 0 "static loss scale" -- "$SW" run "$TMP/stat.yaml" --quiet
expect_grep "mode: static" "$TMP/stat/report.yaml" "static mode in the report"
expect_grep "final_scale: 512" "$TMP/stat/report.yaml" "the static scale is unchanged"
expect_grep "skipped_steps: 0" "$TMP/stat/report.yaml" "no step skipped at 512"

# fp16-mixed follows fp32 (the same data and weights; fp16 operands move the third decimal).
plan f32 fp32 6 2
expect_rc 0 "fp32 reference" -- "$SW" run "$TMP/f32.yaml" --quiet
paste <(jq -r .loss "$TMP/stat/metrics.jsonl") <(jq -r .loss "$TMP/f32/metrics.jsonl") |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 0.02) bad = 1 } END { exit bad || NR != 6 }' &&
  ok || fail "fp16-mixed losses stray from fp32's: $(paste "$TMP/stat/metrics.jsonl" "$TMP/f32/metrics.jsonl" | head -c 600)"
grep -q loss_scale "$TMP/f32/metrics.jsonl" && fail "fp32 metrics carry a loss scale" || ok
grep -q loss_scaling "$TMP/f32/report.yaml" && fail "fp32 report has loss_scaling" || ok

# Bad input: the keys outside fp16-mixed, a word that is not dynamic, a scale out of range.
plan badp bf16-mixed 4 1 "loss_scale: 1024"
expect_rc 2 "loss_scale on bf16-mixed" -- "$SW" run "$TMP/badp.yaml"
expect_grep "badp.yaml:7:[0-9]+: .*loss scaling applies to fp16-mixed only" "$TMP/err" \
  "refused with its place"
plan badw fp16-mixed 4 1 "loss_scale: sometimes"
expect_rc 2 "loss_scale: sometimes" -- "$SW" run "$TMP/badw.yaml"
expect_grep "badw.yaml:7:[0-9]+: .*expected dynamic or a positive number, got 'sometimes'" \
  "$TMP/err" "a word other than dynamic"
plan badn fp16-mixed 4 1 "loss_scale_init: -4"
expect_rc 2 "negative loss_scale_init" -- "$SW" run "$TMP/badn.yaml"
expect_grep "badn.yaml:7:[0-9]+: .*loss_scale_init.*out of range" "$TMP/err" "a negative init"

# The advisor plans fp16-mixed on the CPU (an emulation, with its reason) and writes the keys.
expect_rc 0 "estimate fp16-mixed on a CPU" -- "$REL" estimate --model tiny-gpt2 \
  --gpu cpu-avx2-2c --task train --seq 32 --micro-batch 2 --precision fp16-mixed \
  --device cpu --format json
expect_grep "an emulation of fp16 tensor cores" "$TMP/out" "the CPU fp16 reason"
expect_rc 0 "explain an fp16 plan" -- "$REL" explain "$TMP/dyn.yaml"
expect_rc 0 "plan searches a CPU" -- "$REL" plan --model tiny-gpt2 --gpu cpu-avx2-2c --task train \
  --seq 32 --top 5 --format json
grep -q fp16-mixed "$TMP/out" && fail "the search picked the fp16 emulation on a CPU" || ok
# On a GPU without bf16 (T4, compute capability 7.5) the search picks fp16-mixed, and the plan
# it writes carries the scaler's keys, which load back.
expect_rc 0 "plan for a T4" -- "$REL" plan --model gpt2-124m --gpu t4 --task train --seq 1024 \
  --top 1 -o "$TMP/t4.yaml"
expect_grep "precision: fp16-mixed" "$TMP/t4.yaml" "T4 plan is fp16-mixed"
expect_grep "loss_scale: dynamic" "$TMP/t4.yaml" "T4 plan has loss_scale"
expect_grep "loss_scale_window: 2000" "$TMP/t4.yaml" "T4 plan has loss_scale_window"
expect_rc 0 "explain the T4 plan" -- "$REL" explain "$TMP/t4.yaml"

# ZeRO-2 and ZeRO-3 on two ranks against one process on the same global batch.
if command -v mpirun >/dev/null 2>&1 && [ -f "$B/libscalewise-mpi.so" ]; then
  NOLEAK="ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0"
  MPI=(env "$NOLEAK" timeout 90 mpirun --allow-run-as-root --oversubscribe -np 2)
  plan one fp16-mixed 4 4
  expect_rc 0 "fp16-mixed in one process" -- "$SW" run "$TMP/one.yaml" --quiet
  for z in 2 3; do # ZeRO-3: each gathered layer gets its fp16 copy
    plan "z$z" fp16-mixed 4 2 "" "dp: 2, zero: $z"
    expect_rc 0 "fp16-mixed zero $z on 2 ranks" -- "${MPI[@]}" "$SW" run "$TMP/z$z.yaml" --quiet
    same_losses "$TMP/z$z/metrics.jsonl" "$TMP/one/metrics.jsonl" "fp16 zero $z vs one process"
    ckdiff "$TMP/one/ckpt_4.safetensors" "$TMP/z$z/ckpt_4.safetensors" 1e-4 \
      "fp16 zero $z final checkpoint vs one process"
  done
else
  echo "fp16.sh: data-parallel case skipped: no mpirun or MPI plugin"
fi
cli_finish
