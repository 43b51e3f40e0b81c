#!/usr/bin/env bash
# SCALEWISE_PROFILE=1 (executor/backend_profile.c; docs/run.md, "Where the time goes"): a
# profiled `scalewise run` writes profile.yaml beside report.yaml with its keys (every class,
# entries sorted by time, the seconds adding up), says where in one line, and trains exactly as
# an unprofiled run: checkpoints byte for byte, the same losses. On the CPU backend, the device
# simulator (SCALEWISE_DEVSIM=1), bf16-mixed (conversions counted), an inference plan, a
# data-parallel run (profile.rank<R>.yaml per rank; skipped without mpirun), and the emulated
# GPU (build/cuda_emu/libscalewise-cuda-emu.so, a `device: cuda` plan; skipped when the .so is
# missing).
. "$(dirname "$0")/lib.sh"
REL=${SW_RELEASE:-$SW}
B=${SW_BUILD:-build}
EMU=$PWD/$B/cuda_emu/libscalewise-cuda-emu.so
PROF=(env SCALEWISE_PROFILE=1)

expect_rc 0 "data prepare" -- "$REL" data prepare --input data/tinyshakespeare.txt --out "$TMP/data"

# plan NAME PRECISION DEVICE [EXTRA STRATEGY KEYS]: 4 steps with evaluation and checkpoints
# (both paused out of the profile) on tiny GPT-2.
plan() {
  local hw=cpu-avx2-2c
  [ "$3" = cuda ] && hw=a100-40gb-pcie
  cat >"$TMP/$1.yaml" <<EOF
scalewise_plan: 1
name: $1
task: train
hardware: {profile: $hw}
model: {profile: tiny-gpt2}
data: {path: $TMP/data, tokenizer: byte, val_fraction: 0.1}
train: {steps: 4, seq: 32, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2, grad_clip: 1.0, eval_every: 2, eval_batches: 2, log_every: 1, checkpoint_every: 2}
strategy: {device: $3, precision: $2, optimizer: adamw, attention: flash, micro_batch: 2, grad_accum: 1, threads: 1${4:+, $4}}
EOF
}

# check_yaml FILE BACKEND STEPS [CLASS THAT MUST HAVE CALLS]: profile.yaml's keys and sums.
check_yaml() {
  if "$PY" - "$@" >"$TMP/yc" 2>&1 <<'EOF'
import sys, yaml
path, backend, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
must = sys.argv[4] if len(sys.argv) > 4 else None
d = yaml.safe_load(open(path))
top = {"scalewise_profile", "backend", "timing", "steps", "wall_s", "in_backend_s",
       "outside_backend_s", "wall_s_per_step", "calls", "classes", "entries"}
assert set(d) == top, "keys %s" % sorted(d)
assert d["backend"] == backend, d["backend"]
assert d["steps"] == steps, d["steps"]
names = [c["name"] for c in d["classes"]]
assert sorted(names) == sorted(["matmul", "attention", "norm", "activation", "embedding_loss",
                                "optimizer", "conversion", "copy_memset", "other"]), names
for rows, keys in ((d["classes"], {"name", "calls", "seconds", "percent", "mean_us",
                                   "seconds_per_step"}),
                   (d["entries"], {"name", "class", "calls", "seconds", "percent", "mean_us",
                                   "seconds_per_step"})):
    for r in rows:
        assert set(r) == keys, r
        assert r["seconds"] >= 0 and r["calls"] >= 0, r
    secs = [r["seconds"] for r in rows]
    assert secs == sorted(secs, reverse=True), "not sorted: %s" % secs
    assert abs(sum(secs) - d["in_backend_s"]) <= 1e-5 + 1e-4 * d["in_backend_s"], \
        (sum(secs), d["in_backend_s"])
    assert sum(r["calls"] for r in rows) == d["calls"]
assert d["calls"] > 0 and d["in_backend_s"] > 0
assert d["wall_s"] >= d["in_backend_s"] * 0.999
by = {c["name"]: c for c in d["classes"]}
assert by["matmul"]["calls"] > 0 and by["attention"]["calls"] > 0 and by["optimizer"]["calls"] > 0
if must:
    assert by[must]["calls"] > 0, "no %s calls" % must
ent = {e["name"]: e for e in d["entries"]}
# A 2-layer GPT-2: 5 layer norms forward and 5 backward per profiled step (4 steps; on the GPU
# 3, the first left out). On the GPU the bf16-mixed plan keeps bf16 activations
# (docs/cuda.md): its norms write bf16 (the _a16 entry).
if steps in (3, 4):
    fwd, other = "layernorm_forward", "layernorm_forward_a16"
    if backend == "cuda":
        fwd, other = other, fwd
    assert ent[fwd]["calls"] == 5 * steps, ent[fwd]
    assert ent.get(other, {"calls": 0})["calls"] == 0, ent[other]
    assert ent["layernorm_backward"]["calls"] == 5 * steps, ent["layernorm_backward"]
EOF
  then ok; else fail "$1: $(tail -n 3 "$TMP/yc")"; fi
}

# versus NAME [ENV...]: the plan unprofiled and profiled under the same environment: the same
# checkpoints and losses, profile.yaml and its note only in the profiled run.
versus() {
  local n=$1; shift
  local env=(env "$@")
  expect_rc 0 "$n unprofiled" -- "${env[@]}" "$SW" run "$TMP/$n.yaml" --quiet --out "$TMP/$n.plain"
  expect_rc 0 "$n profiled" -- "${PROF[@]}" "${env[@]}" "$SW" run "$TMP/$n.yaml" --out "$TMP/$n.prof"
  expect_grep "^profile: $TMP/$n.prof/profile.yaml \(" "$TMP/err" "$n: the note saying where"
  for s in 2 4; do
    cmp -s "$TMP/$n.plain/ckpt_$s.safetensors" "$TMP/$n.prof/ckpt_$s.safetensors" && ok ||
      fail "$n: the profiled run's ckpt_$s differs from the unprofiled one's"
  done
  local keys='[.step, .loss, .val_loss, .grad_norm, .lr]'
  if diff <(jq -c "$keys" "$TMP/$n.plain/metrics.jsonl") <(jq -c "$keys" "$TMP/$n.prof/metrics.jsonl") >/dev/null
  then ok; else fail "$n: the profiled run's losses differ"; fi
  [ -f "$TMP/$n.plain/profile.yaml" ] && fail "$n: an unprofiled run wrote profile.yaml" || ok
}

# 1. CPU, fp32.
plan g32 fp32 cpu
versus g32
check_yaml "$TMP/g32.prof/profile.yaml" cpu 4
# 2. The device simulator (its numerics are the CPU's: the checkpoints match the CPU's too).
versus g32 SCALEWISE_DEVSIM=1
check_yaml "$TMP/g32.prof/profile.yaml" devsim 4
cmp -s "$TMP/g32.prof/ckpt_4.safetensors" "$TMP/g32.plain/ckpt_4.safetensors" && ok ||
  fail "g32: the profiled device simulator's checkpoint differs from the CPU's"
# 3. bf16-mixed on the simulator: the conversions show up.
plan gbf bf16-mixed cpu
versus gbf SCALEWISE_DEVSIM=1
check_yaml "$TMP/gbf.prof/profile.yaml" devsim 4 conversion

# 4. Inference: profile.yaml beside report.yaml, the same text.
cat >"$TMP/inf.yaml" <<EOF
scalewise_plan: 1
name: inf
task: infer
hardware: {profile: cpu-avx2-2c}
model: {profile: tiny-gpt2}
data: {tokenizer: byte}
infer: {checkpoint: $TMP/g32.plain/ckpt_4.safetensors, prompt: "To be", batch: 2, prompt_len: 8, gen_len: 8, temperature: 0}
strategy: {device: cpu, threads: 1}
EOF
expect_rc 0 "infer unprofiled" -- "$SW" run "$TMP/inf.yaml" --out "$TMP/inf.plain"
grep -v -e '^prefill:' -e '^profile:' "$TMP/out" >"$TMP/inf.plain.txt"
expect_rc 0 "infer profiled" -- "${PROF[@]}" "$SW" run "$TMP/inf.yaml" --out "$TMP/inf.prof"
expect_grep "^profile: $TMP/inf.prof/profile.yaml$" "$TMP/out" "infer: the line saying where"
grep -v -e '^prefill:' -e '^profile:' "$TMP/out" | cmp -s - "$TMP/inf.plain.txt" && ok ||
  fail "infer: the profiled run generated other text"
if "$PY" -c 'import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
assert d["steps"] is None and d["calls"] > 0
assert any(e["name"] == "attention_decode" for e in d["entries"])' "$TMP/inf.prof/profile.yaml" 2>"$TMP/yc"
then ok; else fail "infer profile.yaml: $(tail -n 2 "$TMP/yc")"; fi

# 5. Data parallel, 2 processes: one profile per rank, rank 0's also as profile.yaml.
if command -v mpirun >/dev/null 2>&1 && [ -f "$B/libscalewise-mpi.so" ]; then
  plan dp fp32 cpu "dp: 2"
  NOLEAK="ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0" # Open MPI's leaks (tests/cli/dp.sh)
  export SCALEWISE_COMM_TIMEOUT=20
  expect_rc 0 "dp 2 unprofiled" -- env "$NOLEAK" "$SW" run --nproc 2 "$TMP/dp.yaml" --quiet --out "$TMP/dp.plain"
  expect_rc 0 "dp 2 profiled" -- "${PROF[@]}" "$NOLEAK" "$SW" run --nproc 2 "$TMP/dp.yaml" --quiet --out "$TMP/dp.prof"
  for f in profile.yaml profile.rank0.yaml profile.rank1.yaml; do
    [ -f "$TMP/dp.prof/$f" ] && ok || fail "dp 2: no $f"
  done
  check_yaml "$TMP/dp.prof/profile.rank1.yaml" cpu 4
  cmp -s "$TMP/dp.prof/profile.yaml" "$TMP/dp.prof/profile.rank0.yaml" && ok ||
    fail "dp 2: profile.yaml is not rank 0's"
  cmp -s "$TMP/dp.plain/ckpt_4.safetensors" "$TMP/dp.prof/ckpt_4.safetensors" && ok ||
    fail "dp 2: the profiled run's checkpoint differs"
else
  echo "profile.sh: data-parallel part skipped: mpirun or $B/libscalewise-mpi.so missing"
fi

# 6. The emulated GPU: the CUDA plugin's kernels behind the wrapper, synchronized per call; the
# first of the 4 steps (one-time work) left out of the profile.
if [ -f "$EMU" ]; then
  plan gpu bf16-mixed cuda
  versus gpu SCALEWISE_CUDA_PLUGIN="$EMU" OMP_NUM_THREADS=1
  check_yaml "$TMP/gpu.prof/profile.yaml" cuda 3 conversion
else
  echo "profile.sh: emulated-GPU part skipped: $EMU missing (make $B/cuda_emu/libscalewise-cuda-emu.so)"
fi
cli_finish
