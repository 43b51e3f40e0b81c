#!/usr/bin/env bash
# The one script a GPU machine runs (issue 5). From the repository root:
#   tests/gpu/check.sh            # summary in $OUT/gpu-summary.txt when $OUT is set, else ./gpu-summary.txt
# Steps, each recorded in the summary, the whole under 8 minutes on one H100:
#   1. build (make -j: the core, the CUDA plugin, the GPU test programs);
#   2. every GPU test program build/gpu/*: test_cuda_backend and test_cuda_kernels (each kernel
#      against the CPU one), test_cuda_model (tiny GPT-2 and Llama: memory counters, loss,
#      gradients, 50 training steps and generation against the CPU executor); a test that
#      skips for want of a GPU counts as a failure here;
#   3. GPT-2 124M training, bf16-mixed, T=1024, micro-batch 16 and 64 (`scalewise run` of a
#      `device: cuda` plan): tokens/s, MFU, peak memory measured (report.yaml's measured
#      per_device_bytes: the backend's counters) vs the advisor's prediction in the same report;
#      the same model and batch in PyTorch (torch.compile when it works, else eager) on the same
#      GPU for the ratio; right after the scalewise run at the smallest batch, that plan once more
#      with SCALEWISE_PROFILE=1 (docs/run.md, "Where the time goes"): profile.yaml into the logs,
#      the class totals and the top 5 backend entries into the summary;
#      a failed run is retried with SCALEWISE_CUDA_ATTENTION=mma, then with
#      SCALEWISE_CUDA_ACT16=0 too (each kept for the rest of the script);
#   4. generation (a `task: infer` plan on cuda), batch 1 and 32, 128 prompt tokens + 128 new
#      tokens: prefill and decode tokens/s and memory against the estimate, scalewise and PyTorch;
#      then the largest batch with fp32 activations (SCALEWISE_CUDA_ACT16=0) for the ratio;
#   5. the scalewise training runs of step 3 again with the (unpipelined) mma.sync attention
#      kernels (SCALEWISE_CUDA_ATTENTION=mma) instead of the default (the fastest of wide, pipe
#      and mma, tuned per shape; step 3 prints what it chose): tokens/s, MFU, and the ratio to
#      the default (SW_CHECK_ATT_VARIANTS="mma pipe wide wmma fma" adds the others);
#   5b. when bench_matmul's survey finds a cuBLASLt algorithm index that makes a step's GEMMs
#      at least 3% faster than the heuristic's first, the largest batch again with it
#      (SCALEWISE_CUDA_GEMM_ALGO): tokens/s and the ratio;
#   6. at one batch: fp16-mixed (with its loss scaler's skipped steps), bf16-mixed with the
#      GELU epilogue fusion off, and bf16-mixed with fp32 activations (SCALEWISE_CUDA_ACT16=0:
#      the advisor's prediction then assumes the bf16 ones), each against step 3's run.
# When scalewise refuses a `device: cuda` plan (no GPU, no plugin: "the CUDA backend is
# unavailable"), its benchmark lines say so with the reason; the PyTorch half runs regardless.
# Exit status: non-zero when the build or a GPU test fails (benchmarks never fail the script).
# Environment: PY (python with torch; default python3), SW_CHECK_BUDGET_S (default 450: later
# benchmarks are skipped, and say so, once this many seconds have passed), SW_CHECK_HARDWARE
# (the plans' hardware map, default "{probe: true}"; e.g. "{profile: h100-sxm, gpus_per_node: 1}");
# SW_CHECK_TC_BATCHES (the batches of step 5's runs, default "16 64"; empty: no step 5),
# SW_CHECK_ATT_VARIANTS (step 5's kernels, default "mma"); SW_CHECK_EXTRA_BATCH (step 6's
# batch, default 16; empty: no step 6);
# SW_CHECK_TORCH_COMPILE_BATCHES (the batches PyTorch compiles at, default all; eager at the
# rest); SW_CHECK_TEST_TIMEOUT_S (each GPU test program's limit, default 180);
# SW_CHECK_RUN_TIMEOUT_S (each `scalewise run`'s, default 150); SW_CHECK_PREBUILT=1
# (no make: the binaries were built elsewhere and carried, tests/gpu/bundle.sh);
# SW_CHECK_DEVICE, SW_CHECK_SEQ, SW_CHECK_STEPS, SW_CHECK_BATCHES, SW_CHECK_GEN_BATCHES only to
# try the script on a CPU machine.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
DEST=${OUT:-$ROOT}
WORK=$(mktemp -d /tmp/sw-gpu-check.XXXXXX)
LOGS=$DEST/gpu-check-logs
mkdir -p "$LOGS"
SUMMARY=$DEST/gpu-summary.txt
PY=${PY:-python3}
BUDGET_S=${SW_CHECK_BUDGET_S:-450}
TORCH="$ROOT/tests/gpu/torch_gpt2_bench.py"
# The plans' hardware: what the machine probes, unless SW_CHECK_HARDWARE names a profile map.
HW=${SW_CHECK_HARDWARE:-"{probe: true}"}
# Knobs for trying the script itself on a CPU machine (device cpu, small shapes); the defaults
# are the benchmark the issue asks for.
DEVICE=${SW_CHECK_DEVICE:-cuda}
SEQ=${SW_CHECK_SEQ:-1024}
STEPS=${SW_CHECK_STEPS:-30}
BATCHES=${SW_CHECK_BATCHES-16 64}
GEN_BATCHES=${SW_CHECK_GEN_BATCHES-1 32}
TC_BATCHES=${SW_CHECK_TC_BATCHES-16 64}
# The batches PyTorch tries torch.compile at (default: every one); eager at the others.
COMPILE_BATCHES=${SW_CHECK_TORCH_COMPILE_BATCHES-}
RUN_TIMEOUT_S=${SW_CHECK_RUN_TIMEOUT_S:-150} # each `scalewise run`'s limit
status=0
: >"$SUMMARY"

say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
over_budget() { [ "$SECONDS" -ge "$BUDGET_S" ]; }
# json FILE KEY: a value from a one-line JSON object ("" when absent or null).
json() { "$PY" -c 'import json,sys
try:
    v = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]).get(sys.argv[2])
except Exception:
    v = None
print("" if v is None else v)' "$1" "$2" 2>/dev/null; }
# fmt_gib BYTES
fmt_gib() { [ -n "$1" ] && awk -v b="$1" 'BEGIN{printf "%.2f GiB", b/1073741824}' || echo n/a; }

say "scalewise GPU check — $(date -u '+%Y-%m-%d %H:%M:%SZ') — $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
say "gpu: ${gpu:-none found by nvidia-smi}"
"$PY" "$TORCH" info >"$WORK/info.json" 2>"$LOGS/torch-info.err"
if [ -n "$(json "$WORK/info.json" torch)" ]; then
  say "torch: $(json "$WORK/info.json" torch) (CUDA $(json "$WORK/info.json" cuda)); bf16 peak used for MFU: $(json "$WORK/info.json" peak_bf16_flops) FLOP/s"
else
  say "torch: unavailable ($(json "$WORK/info.json" error)$(tail -n 1 "$LOGS/torch-info.err" | head -c 200)); MFU below is scalewise's own figure only"
fi
PEAK=$(json "$WORK/info.json" peak_bf16_flops)

# ---------------------------------------------------------------- 1. build
t0=$SECONDS
if [ "${SW_CHECK_PREBUILT:-0}" = 1 ]; then
  # Built elsewhere (tests/gpu/bundle.sh) for a machine without the -dev packages: no make.
  say "build: prebuilt (SW_CHECK_PREBUILT=1): $(ls build/gpu 2>/dev/null | wc -l) GPU test programs, plugin $(ls -l build/libscalewise-cuda.so 2>/dev/null | awk '{print $5}') bytes"
elif make -j"$(nproc)" all >"$LOGS/build.log" 2>&1; then
  say "build: ok ($((SECONDS - t0)) s); $(grep -c NVCC "$LOGS/build.log") nvcc steps"
else
  say "build: FAILED ($((SECONDS - t0)) s); last lines:"
  tail -n 30 "$LOGS/build.log" | tee -a "$SUMMARY"
  status=1
fi
[ -f build/libscalewise-cuda.so ] || { say "build: build/libscalewise-cuda.so missing (is nvcc on PATH or in \$CUDA_HOME/bin?)"; status=1; }

# ---------------------------------------------------------------- 2. GPU tests
for t in build/gpu/*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  t0=$SECONDS
  timeout "${SW_CHECK_TEST_TIMEOUT_S:-180}" "$t" >"$LOGS/$name.log" 2>&1
  rc=$?
  line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$LOGS/$name.log" | tail -n 1)
  say "test $name: rc=$rc ${line:-no count line} ($((SECONDS - t0)) s)"
  grep -E "max error|skipped: |not implemented|planned = counted|^attention a16 |^matmul " "$LOGS/$name.log" | sed "s/^/    /" | tee -a "$SUMMARY"
  if grep -q 'skipped: no GPU' "$LOGS/$name.log"; then
    status=1 # the skip line above says why
  elif [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    status=1
    # The failed checks (not the "max error" figures, already shown), else the log's end.
    fails=$(grep -E 'check failed|FAIL|abort|error:|ERROR|Segmentation' "$LOGS/$name.log" | head -n 20)
    [ -n "$fails" ] || fails=$(tail -n 5 "$LOGS/$name.log")
    printf '%s\n' "$fails" | sed 's/^/    /' | tee -a "$SUMMARY"
  fi
done

# The communication layer's unit test: on a GPU it runs world size 1 through NCCL (issue 6).
t0=$SECONDS
if [ "${SW_CHECK_PREBUILT:-0}" = 1 ] && [ -x build/tests/test_comm ] ||
  make -j"$(nproc)" build/tests/test_comm >"$LOGS/test_comm.build.log" 2>&1; then
  timeout 120 build/tests/test_comm >"$LOGS/test_comm.log" 2>&1
  rc=$?
  line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$LOGS/test_comm.log" | tail -n 1)
  say "test test_comm: rc=$rc ${line:-no count line} ($((SECONDS - t0)) s)"
  grep -E "test_nccl_engine:" "$LOGS/test_comm.log" | sed "s/^/    /" | tee -a "$SUMMARY"
  grep -q "world size 1 through NCCL" "$LOGS/test_comm.log" || status=1
  [ "$rc" -eq 0 ] || status=1
else
  say "test test_comm: build FAILED"; status=1
fi

# ---------------------------------------------------------------- 3. training
# Same model and shape for both sides: GPT-2 124M, T=1024 (SW_CHECK_SEQ), bf16-mixed, AdamW, clip 1.0.
FPT=$("$PY" -c 'L,C,V,T=12,768,50304,'"$SEQ"'
n=V*C+L*(12*C*C+13*C)+2*C   # parameters without the position table (tied head)
print(6*n+12*L*C*T)')
train_plan() { # B STEPS [SUFFIX [PRECISION]]: $WORK/train-b<B><SUFFIX>.yaml, output in $WORK/run-b<B><SUFFIX>
  cat >"$WORK/train-b$1${3:-}.yaml" <<EOF
scalewise_plan: 1
name: gpt2-124m-bench-b$1${3:-}
task: train
hardware: $HW
model: {profile: gpt2-124m}
data: {path: $ROOT/data/tinyshakespeare.txt, tokenizer: byte, val_fraction: 0.1}
train: {steps: $2, seq: $SEQ, lr: 6.0e-4, min_lr: 6.0e-5, warmup_steps: 2, grad_clip: 1.0, weight_decay: 0.1, log_every: 1, out_dir: $WORK/run-b$1${3:-}}
strategy: {device: $DEVICE, precision: ${4:-bf16-mixed}, optimizer: adamw, micro_batch: $1, grad_accum: 1, recompute: none, attention: flash}
EOF
}
# prof_rows FILE SECTION: profile.yaml's classes or entries, one "name calls seconds percent
# mean_us class" line each, in the file's order (largest first). awk on the layout
# backend_profile_emit writes, so no YAML module is needed.
prof_rows() {
  awk -v sec="$2" 'function flush() { if (name != "") print name, calls, secs, pct, us, (cls == "" ? "-" : cls); name = ""; cls = "" }
    /^[a-z_]+:/ { if (in_sec) flush(); in_sec = ($1 == sec ":"); next }
    !in_sec { next }
    /^  - name: / { flush(); name = $3; next }
    /^    class: / { cls = $2 } /^    calls: / { calls = $2 } /^    seconds: / { secs = $2 }
    /^    percent: / { pct = $2 } /^    mean_us: / { us = $2 }
    END { if (in_sec) flush() }' "$1"
}
# profile_run B: the plan of train_plan B again with SCALEWISE_PROFILE=1 (every backend call
# timed and synchronized, so its tokens/s is not the benchmark's): where the step time goes.
profile_run() {
  local B=$1 t0=$SECONDS rc pf=$WORK/run-b$1-prof/profile.yaml
  if over_budget; then say "scalewise profile B=$B: skipped (time budget of $BUDGET_S s spent)"; return; fi
  SCALEWISE_PROFILE=1 timeout "$RUN_TIMEOUT_S" ./scalewise run "$WORK/train-b$B.yaml" --out "$WORK/run-b$B-prof" \
    >"$LOGS/sw-train-b$B-prof.out" 2>"$LOGS/sw-train-b$B-prof.err"
  rc=$?
  if [ "$rc" -ne 0 ] || [ ! -f "$pf" ]; then
    say "scalewise profile B=$B T=$SEQ: FAILED rc=$rc: $(tail -n 3 "$LOGS/sw-train-b$B-prof.err" | head -c 400)"
    return
  fi
  cp "$pf" "$LOGS/sw-train-b$B-profile.yaml"
  local steps inb wall
  steps=$(sed -n 's/^steps: //p' "$pf"); inb=$(sed -n 's/^in_backend_s: //p' "$pf")
  wall=$(sed -n 's/^wall_s: //p' "$pf")
  say "scalewise profile B=$B T=$SEQ ($(sed -n 's/^backend: //p' "$pf"), $steps steps, every call synchronized): $(awk -v a="$inb" -v w="$wall" -v n="$steps" 'BEGIN{if (n < 1) n = 1; printf "%.1f of %.1f ms per step in backend calls", 1e3*a/n, 1e3*w/n}') ($((SECONDS - t0)) s; gpu-check-logs/sw-train-b$B-profile.yaml)"
  say "  classes: $(prof_rows "$pf" classes | awk -v n="$steps" 'BEGIN { if (n < 1) n = 1 } $2 > 0 { printf "%s%s %.1f%% (%.1f ms/step)", sep, $1, $4, 1e3*$3/n; sep = ", " }')"
  prof_rows "$pf" entries | head -n 5 | awk -v n="$steps" 'BEGIN { if (n < 1) n = 1 } { printf "  top %d: %s (%s) %.1f%%, %.1f ms/step, %d calls, %.0f us/call\n", NR, $1, $6, $4, 1e3*$3/n, $2, $5 }' | tee -a "$SUMMARY"
}
PROFILE_B=$(printf '%s\n' $BATCHES | sort -n | head -n 1)
# train_run B: step 3's scalewise run of train_plan B; sets sw_tps (empty when it failed) and rc.
train_run() {
  local B=$1 t0=$SECONDS line
  rm -rf "$WORK/run-b$B"
  timeout "$RUN_TIMEOUT_S" ./scalewise run "$WORK/train-b$B.yaml" >"$LOGS/sw-train-b$B.out" 2>"$LOGS/sw-train-b$B.err"
  rc=$?
  sw_tps=""
  if [ "$rc" -ne 0 ] && grep -qE "device is cuda|device 'cuda'" "$LOGS/sw-train-b$B.err"; then
    say "scalewise train B=$B T=$SEQ: refused (rc=$rc): $(head -c 500 "$LOGS/sw-train-b$B.err")"
    rc=0 # refused: nothing a retry would change
  elif [ "$rc" -ne 0 ]; then
    say "scalewise train B=$B T=$SEQ: FAILED rc=$rc: $(tail -n 3 "$LOGS/sw-train-b$B.err" | head -c 400)"
  else
    cp "$WORK/run-b$B/report.yaml" "$LOGS/sw-train-b$B-report.yaml" 2>/dev/null
    cp "$WORK/run-b$B/metrics.jsonl" "$LOGS/sw-train-b$B-metrics.jsonl" 2>/dev/null
    line=$("$PY" tests/gpu/summarize.py train "$WORK/run-b$B" "$FPT" "${PEAK:-0}" 2>"$WORK/tps")
    sw_tps=$(sed -n 's/^TPS //p' "$WORK/tps")
    say "scalewise train B=$B T=$SEQ${SCALEWISE_CUDA_ATTENTION:+ ($SCALEWISE_CUDA_ATTENTION attention)}: ${line:-no metrics: $(tail -n 2 "$WORK/tps")} ($((SECONDS - t0)) s)"
    # What the default attention dispatch chose for this shape (report.yaml's list).
    awk '/^  attention_tuning:/ { on = 1; next }
         on && /^    - / { sub(/^    - "?/, ""); sub(/"$/, ""); print "  attention tuned: " $0; next }
         { on = 0 }' "$WORK/run-b$B/report.yaml" 2>/dev/null | tee -a "$SUMMARY"
  fi
}
for B in $BATCHES; do
  if over_budget; then say "train B=$B: skipped (time budget of $BUDGET_S s spent)"; continue; fi
  train_plan "$B" "$STEPS"
  train_run "$B"
  # The default attention kernels for bf16 activations (pipelined mma.sync, wide or not, tuned
  # against the mma.sync ones) were written without a GPU: when a default run fails, the rest of the script runs the mma.sync kernels
  # measured before (SCALEWISE_CUDA_ATTENTION=mma), so one broken kernel does not cost the
  # session's figures.
  if [ "$rc" -ne 0 ] && [ -z "${SCALEWISE_CUDA_ATTENTION:-}" ] && [ "$DEVICE" = cuda ]; then
    export SCALEWISE_CUDA_ATTENTION=mma
    say "  retrying with SCALEWISE_CUDA_ATTENTION=mma, kept for the rest of this script"
    train_run "$B"
  fi
  # Then the bf16 activations themselves (also written without a GPU): fp32 activations with
  # the mma.sync kernels are the configuration measured on the H200 in session 4.
  if [ "$rc" -ne 0 ] && [ -z "${SCALEWISE_CUDA_ACT16:-}" ] && [ "$DEVICE" = cuda ]; then
    export SCALEWISE_CUDA_ACT16=0
    say "  retrying with SCALEWISE_CUDA_ACT16=0 (fp32 activations), kept for the rest of this script"
    train_run "$B"
  fi
  if [ "$B" = "$PROFILE_B" ]; then
    if [ -n "${sw_tps:-}" ]; then profile_run "$B"
    else say "scalewise profile B=$B: skipped (the unprofiled run above did not complete)"; fi
  fi
  # PyTorch: compiled first; eager when compiling fails or takes too long.
  if over_budget; then say "torch train B=$B: skipped (time budget of $BUDGET_S s spent)"; continue; fi
  t0=$SECONDS
  : >"$WORK/torch-b$B.json"; : >"$LOGS/torch-train-b$B.err"
  if [ -z "$COMPILE_BATCHES" ] || printf ' %s ' $COMPILE_BATCHES | grep -q " $B "; then
    timeout 200 "$PY" "$TORCH" train --batch "$B" --seq "$SEQ" --steps 20 --warmup 5 --compile \
      >"$WORK/torch-b$B.json" 2>"$LOGS/torch-train-b$B.err"
  fi
  if [ -z "$(json "$WORK/torch-b$B.json" tokens_per_s)" ] && ! over_budget; then
    timeout 120 "$PY" "$TORCH" train --batch "$B" --seq "$SEQ" --steps 20 --warmup 3 \
      >"$WORK/torch-b$B.json" 2>>"$LOGS/torch-train-b$B.err"
  fi
  cp "$WORK/torch-b$B.json" "$LOGS/" 2>/dev/null
  th_tps=$(json "$WORK/torch-b$B.json" tokens_per_s)
  if [ -z "$th_tps" ]; then
    why=$(grep -m1 -E 'OutOfMemory|out of memory|Error' "$LOGS/torch-train-b$B.err" | head -c 200)
    say "torch train B=$B T=$SEQ: no result (${why:-see gpu-check-logs/torch-train-b$B.err}) ($((SECONDS - t0)) s)"
    continue
  fi
  say "torch train B=$B T=$SEQ: $(printf '%.0f' "$th_tps") tokens/s, MFU $(awk -v m="$(json "$WORK/torch-b$B.json" mfu)" 'BEGIN{ if (m != "") printf "%.1f%%", 100*m; else print "n/a" }'), peak $(fmt_gib "$(json "$WORK/torch-b$B.json" peak_bytes)"), compiled=$(json "$WORK/torch-b$B.json" compiled) ($((SECONDS - t0)) s)"
  if [ -n "${sw_tps:-}" ]; then
    say "ratio B=$B: scalewise / torch = $(awk -v a="$sw_tps" -v b="$th_tps" 'BEGIN{printf "%.2f", a/b}')"
  fi
done

# ---------------------------------------------------------------- 4. generation
CKPT=$WORK/gpt2-124m-random.safetensors
"$PY" "$TORCH" write-checkpoint "$CKPT" >"$LOGS/checkpoint.json" 2>&1 ||
  say "generation: could not write the random GPT-2 checkpoint: $(tail -n 2 "$LOGS/checkpoint.json")"
PROMPT=$(head -c 4000 data/tinyshakespeare.txt | tr -c 'A-Za-z ,.' ' ' | tr -s ' ' | head -c 128)
# A quick calibration of this machine (its GPU section: GEMM, copy, 1-token GEMM, per-call
# costs), for the advisor's calibrated generation figures beside the measured ones below.
CAL=$WORK/calibration.yaml
if ! over_budget && timeout 60 ./scalewise calibrate --quick --save "$CAL" >"$LOGS/calibrate.txt" 2>&1; then
  say "calibrate --quick: $(grep -E '^gpu|calls back to back|eta_mem_decode' "$LOGS/calibrate.txt" | tr '\n' ' ' | tr -s ' ' | head -c 600)"
else
  CAL=""
fi
for GB in $GEN_BATCHES; do
  if over_budget; then say "generate batch $GB: skipped (time budget of $BUDGET_S s spent)"; continue; fi
  cat >"$WORK/gen-b$GB.yaml" <<EOF
scalewise_plan: 1
name: gpt2-124m-generate-b$GB
task: infer
hardware: $HW
model: {profile: gpt2-124m}
data: {tokenizer: byte}
infer: {checkpoint: $CKPT, prompt: "$PROMPT", batch: $GB, prompt_len: 128, gen_len: 128, temperature: 0}
strategy: {device: $DEVICE, weights: bf16}
EOF
  t0=$SECONDS
  timeout 120 ./scalewise run "$WORK/gen-b$GB.yaml" --out "$WORK/gen-b$GB" >"$LOGS/sw-gen-b$GB.out" 2>"$LOGS/sw-gen-b$GB.err"
  rc=$?
  # Generation on bf16 activations was written without a GPU: on a failure, once more (and for
  # the rest of the script) with fp32 activations, as measured in session 4.
  if [ "$rc" -ne 0 ] && ! grep -qE "device is cuda|device 'cuda'" "$LOGS/sw-gen-b$GB.err" &&
     [ -z "${SCALEWISE_CUDA_ACT16:-}" ] && [ "$DEVICE" = cuda ]; then
    say "scalewise generate batch $GB: FAILED rc=$rc: $(tail -n 3 "$LOGS/sw-gen-b$GB.err" | head -c 400)"
    export SCALEWISE_CUDA_ACT16=0
    say "  retrying with SCALEWISE_CUDA_ACT16=0 (fp32 activations), kept for the rest of this script"
    rm -rf "$WORK/gen-b$GB"
    timeout 120 ./scalewise run "$WORK/gen-b$GB.yaml" --out "$WORK/gen-b$GB" >"$LOGS/sw-gen-b$GB.out" 2>"$LOGS/sw-gen-b$GB.err"
    rc=$?
  fi
  if [ "$rc" -ne 0 ] && grep -qE "device is cuda|device 'cuda'" "$LOGS/sw-gen-b$GB.err"; then
    say "scalewise generate batch $GB (128+128): refused (rc=$rc): $(head -c 500 "$LOGS/sw-gen-b$GB.err")"
  elif [ "$rc" -ne 0 ]; then
    say "scalewise generate batch $GB (128+128): FAILED rc=$rc: $(tail -n 3 "$LOGS/sw-gen-b$GB.err" | head -c 400)"
  else
    rep=$WORK/gen-b$GB/report.yaml
    cp "$rep" "$LOGS/sw-gen-b$GB-report.yaml" 2>/dev/null
    say "scalewise generate batch $GB (128+128): $("$PY" tests/gpu/summarize.py generate "$rep" 2>&1) ($((SECONDS - t0)) s)"
    if [ -n "$CAL" ] && ./scalewise estimate --model gpt2-124m --task infer --batch "$GB" --prompt-len 128 \
        --gen-len 128 --weights bf16 --device "$DEVICE" --calibration "$CAL" --format json >"$WORK/est-cal-b$GB.json" 2>"$LOGS/est-cal-b$GB.err"; then
      say "  advisor with that calibration: decode $("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.3f ms per step, TTFT %.2f ms" % (1e3*d["decode_s_per_token"], 1e3*d["ttft_s"]))' "$WORK/est-cal-b$GB.json" 2>&1)"
    fi
  fi
  # At the largest batch, once more with SCALEWISE_PROFILE=1: where a decode step's time goes.
  if [ "$GB" = "$(printf '%s\n' $GEN_BATCHES | sort -n | tail -n 1)" ] && ! over_budget &&
    SCALEWISE_PROFILE=1 timeout 120 ./scalewise run "$WORK/gen-b$GB.yaml" --out "$WORK/gen-b$GB-prof" \
      >"$LOGS/sw-gen-b$GB-prof.out" 2>"$LOGS/sw-gen-b$GB-prof.err" && [ -f "$WORK/gen-b$GB-prof/profile.yaml" ]; then
    pf=$WORK/gen-b$GB-prof/profile.yaml
    cp "$pf" "$LOGS/sw-gen-b$GB-profile.yaml"
    say "scalewise generate batch $GB profiled (every call synchronized): $(sed -n 's/^in_backend_s: //p' "$pf") s in backend calls of $(sed -n 's/^wall_s: //p' "$pf") s"
    say "  classes: $(prof_rows "$pf" classes | awk '$2 > 0 { printf "%s%s %.1f%% (%.1f ms)", sep, $1, $4, 1e3*$3; sep = ", " }')"
    prof_rows "$pf" entries | head -n 6 | awk '{ printf "  top %d: %s (%s) %.1f%%, %.2f ms, %d calls, %.0f us/call\n", NR, $1, $6, $4, 1e3*$3, $2, $5 }' | tee -a "$SUMMARY"
  fi
  t0=$SECONDS
  timeout 90 "$PY" "$TORCH" generate --batch "$GB" --prompt-tokens 128 --new-tokens 128 \
    >"$WORK/torch-gen-b$GB.json" 2>"$LOGS/torch-gen-b$GB.err"
  cp "$WORK/torch-gen-b$GB.json" "$LOGS/" 2>/dev/null
  if [ -n "$(json "$WORK/torch-gen-b$GB.json" decode_tokens_per_s)" ]; then
    say "torch generate batch $GB (128+128, bf16, eager, KV cache): prefill $(printf '%.0f' "$(json "$WORK/torch-gen-b$GB.json" prefill_tokens_per_s)") tokens/s, decode $(printf '%.0f' "$(json "$WORK/torch-gen-b$GB.json" decode_tokens_per_s)") tokens/s ($((SECONDS - t0)) s)"
  else
    say "torch generate batch $GB: no result (see gpu-check-logs/torch-gen-b$GB.err)"
  fi
done

# Generation on bf16 activations is new since the session-4 figures: the largest batch once
# more with fp32 activations (SCALEWISE_CUDA_ACT16=0), prefill and decode against the default.
GBL=$(printf '%s\n' $GEN_BATCHES | sort -n | tail -n 1)
if [ -n "$GBL" ] && [ "$DEVICE" = cuda ] && [ -z "${SCALEWISE_CUDA_ACT16:-}" ] &&
   [ -f "$WORK/gen-b$GBL/report.yaml" ] && ! over_budget; then
  t0=$SECONDS
  if SCALEWISE_CUDA_ACT16=0 timeout 120 ./scalewise run "$WORK/gen-b$GBL.yaml" --out "$WORK/gen-b$GBL-act32" \
      >"$LOGS/sw-gen-b$GBL-act32.out" 2>"$LOGS/sw-gen-b$GBL-act32.err"; then
    say "scalewise generate batch $GBL, fp32 activations (SCALEWISE_CUDA_ACT16=0): $("$PY" tests/gpu/summarize.py generate "$WORK/gen-b$GBL-act32/report.yaml" 2>&1) ($((SECONDS - t0)) s)"
    say "ratio generate batch $GBL: bf16 activations / fp32: $("$PY" tests/gpu/summarize.py gen-ratio "$WORK/gen-b$GBL/report.yaml" "$WORK/gen-b$GBL-act32/report.yaml" 2>&1 | tail -n 1)"
  else
    say "scalewise generate batch $GBL, fp32 activations: FAILED: $(tail -n 3 "$LOGS/sw-gen-b$GBL-act32.err" | head -c 400)"
  fi
fi

# ---------------------------------------------------------------- 5. other attention kernels
# The training plans of step 3 with SCALEWISE_CUDA_ATTENTION=<v> for each v of
# SW_CHECK_ATT_VARIANTS (default "mma": the mma.sync kernels without cp.async and ldmatrix;
# also "pipe", "wide", "wmma", "fma"), instead of the default tuned choice
# (kernels/cuda/k_attention_tc.cu): each one's ratio to the default.
for v in ${SW_CHECK_ATT_VARIANTS-mma}; do
  for B in $TC_BATCHES; do
    if over_budget; then say "scalewise train B=$B ($v attention): skipped (time budget of $BUDGET_S s spent)"; continue; fi
    train_plan "$B" "$STEPS" "-$v"
    t0=$SECONDS
    SCALEWISE_CUDA_ATTENTION=$v timeout "$RUN_TIMEOUT_S" ./scalewise run "$WORK/train-b$B-$v.yaml" \
      >"$LOGS/sw-train-b$B-$v.out" 2>"$LOGS/sw-train-b$B-$v.err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
      grep -qE "device is cuda|device 'cuda'" "$LOGS/sw-train-b$B-$v.err" && what=refused || what=FAILED
      say "scalewise train B=$B T=$SEQ ($v attention): $what (rc=$rc): $(tail -n 3 "$LOGS/sw-train-b$B-$v.err" | head -c 400)"
      continue
    fi
    cp "$WORK/run-b$B-$v/report.yaml" "$LOGS/sw-train-b$B-$v-report.yaml" 2>/dev/null
    cp "$WORK/run-b$B-$v/metrics.jsonl" "$LOGS/sw-train-b$B-$v-metrics.jsonl" 2>/dev/null
    line=$("$PY" tests/gpu/summarize.py train "$WORK/run-b$B-$v" "$FPT" "${PEAK:-0}" 2>"$WORK/tps-$v")
    v_tps=$(sed -n 's/^TPS //p' "$WORK/tps-$v")
    say "scalewise train B=$B T=$SEQ ($v attention): ${line:-no metrics: $(tail -n 2 "$WORK/tps-$v")} ($((SECONDS - t0)) s)"
    [ -n "$v_tps" ] || continue
    # The default run's tokens/s again (its line above), when it exists.
    "$PY" tests/gpu/summarize.py train "$WORK/run-b$B" "$FPT" "${PEAK:-0}" >/dev/null 2>"$WORK/tps-def"
    def_tps=$(sed -n 's/^TPS //p' "$WORK/tps-def")
    if [ -n "$def_tps" ]; then
      say "ratio B=$B: scalewise $v attention / default (tuned) attention = $(awk -v a="$v_tps" -v b="$def_tps" 'BEGIN{printf "%.2f", a/b}')"
    fi
  done
done

# ---------------------------------------------------------------- 5b. another GEMM algorithm
# bench_matmul's survey (step 2) ends with "matmul algorithm per step ...: best #k (R x #0)":
# every GEMM of a step at the heuristic's k-th algorithm. When k is not 0 and saves at least
# 3%, the largest batch of step 3 runs once more with SCALEWISE_CUDA_GEMM_ALGO=k (the executor
# otherwise always takes #0): its tokens/s and the ratio to the default.
GB_LINE=$(grep -E '^matmul algorithm per step' "$LOGS/bench_matmul.log" 2>/dev/null | tail -n 1)
GA=$(printf '%s\n' "$GB_LINE" | sed -n 's/.*best #\([0-9]\) (\([0-9.]*\)x #0).*/\1 \2/p')
set -- $GA
if [ -n "${1:-}" ] && [ "$1" != 0 ] && awk -v r="$2" 'BEGIN { exit !(r < 0.97) }'; then
  B=$(printf '%s\n' $BATCHES | sort -n | tail -n 1)
  if over_budget; then
    say "scalewise train B=$B (GEMM algorithm #$1, $2x #0 in bench_matmul): skipped (time budget of $BUDGET_S s spent)"
  else
    train_plan "$B" "$STEPS" "-algo$1"
    t0=$SECONDS
    SCALEWISE_CUDA_GEMM_ALGO=$1 timeout "$RUN_TIMEOUT_S" ./scalewise run "$WORK/train-b$B-algo$1.yaml" \
      >"$LOGS/sw-train-b$B-algo$1.out" 2>"$LOGS/sw-train-b$B-algo$1.err"
    if [ $? -ne 0 ]; then
      say "scalewise train B=$B T=$SEQ (GEMM algorithm #$1): FAILED: $(tail -n 3 "$LOGS/sw-train-b$B-algo$1.err" | head -c 400)"
    else
      cp "$WORK/run-b$B-algo$1/report.yaml" "$LOGS/sw-train-b$B-algo$1-report.yaml" 2>/dev/null
      line=$("$PY" tests/gpu/summarize.py train "$WORK/run-b$B-algo$1" "$FPT" "${PEAK:-0}" 2>"$WORK/tps-algo")
      a_tps=$(sed -n 's/^TPS //p' "$WORK/tps-algo")
      say "scalewise train B=$B T=$SEQ (SCALEWISE_CUDA_GEMM_ALGO=$1, $2x #0 in bench_matmul): ${line:-no metrics} ($((SECONDS - t0)) s)"
      "$PY" tests/gpu/summarize.py train "$WORK/run-b$B" "$FPT" "${PEAK:-0}" >/dev/null 2>"$WORK/tps-def"
      def_tps=$(sed -n 's/^TPS //p' "$WORK/tps-def")
      [ -n "$a_tps" ] && [ -n "$def_tps" ] &&
        say "ratio B=$B: scalewise GEMM algorithm #$1 / #0 = $(awk -v a="$a_tps" -v b="$def_tps" 'BEGIN{printf "%.2f", a/b}')"
    fi
  fi
elif [ -n "$GB_LINE" ]; then
  say "GEMM algorithms: ${GB_LINE#matmul algorithm per step } (no run: #0 is within 3% of the best)"
fi

# ---------------------------------------------------------------- 6. fp16-mixed, GELU fusion
# One batch (SW_CHECK_EXTRA_BATCH, default 16): fp16-mixed (fp16 tensor cores, dynamic loss
# scaling: its skipped steps are reported), bf16-mixed with the MLP's GELU epilogue fusion off
# (SCALEWISE_CUDA_FUSED_GELU=0), and bf16-mixed with fp32 activations (SCALEWISE_CUDA_ACT16=0,
# the layout before bf16 activations); each against step 3's bf16-mixed run at that batch.
XB=${SW_CHECK_EXTRA_BATCH-16} # empty: no step 6
for v in ${XB:+act32 fp16 nofuse}; do
  if over_budget; then say "scalewise train B=$XB ($v): skipped (time budget of $BUDGET_S s spent)"; continue; fi
  if [ "$v" = fp16 ]; then train_plan "$XB" "$STEPS" -fp16 fp16-mixed; envs=()
  elif [ "$v" = act32 ]; then train_plan "$XB" "$STEPS" -act32; envs=(SCALEWISE_CUDA_ACT16=0)
  else train_plan "$XB" "$STEPS" -nofuse; envs=(SCALEWISE_CUDA_FUSED_GELU=0); fi
  t0=$SECONDS
  env "${envs[@]}" timeout "$RUN_TIMEOUT_S" ./scalewise run "$WORK/train-b$XB-$v.yaml" \
    >"$LOGS/sw-train-b$XB-$v.out" 2>"$LOGS/sw-train-b$XB-$v.err"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    say "scalewise train B=$XB T=$SEQ ($v): FAILED (rc=$rc): $(tail -n 3 "$LOGS/sw-train-b$XB-$v.err" | head -c 400)"
    continue
  fi
  cp "$WORK/run-b$XB-$v/report.yaml" "$LOGS/sw-train-b$XB-$v-report.yaml" 2>/dev/null
  line=$("$PY" tests/gpu/summarize.py train "$WORK/run-b$XB-$v" "$FPT" "${PEAK:-0}" 2>"$WORK/tps-$v")
  v_tps=$(sed -n 's/^TPS //p' "$WORK/tps-$v")
  skipped=$(sed -n 's/^  skipped_steps: //p' "$WORK/run-b$XB-$v/report.yaml")
  say "scalewise train B=$XB T=$SEQ ($v${skipped:+, $skipped steps skipped by loss scaling}): ${line:-no metrics} ($((SECONDS - t0)) s)"
  "$PY" tests/gpu/summarize.py train "$WORK/run-b$XB" "$FPT" "${PEAK:-0}" >/dev/null 2>"$WORK/tps-ref"
  ref_tps=$(sed -n 's/^TPS //p' "$WORK/tps-ref")
  if [ -n "$v_tps" ] && [ -n "$ref_tps" ]; then
    say "ratio B=$XB: scalewise $v / bf16-mixed default = $(awk -v a="$v_tps" -v b="$ref_tps" 'BEGIN{printf "%.2f", a/b}')"
  fi
done

say "total: ${SECONDS} s; exit status $status; logs in $LOGS"
rm -rf "$WORK"
exit "$status"
