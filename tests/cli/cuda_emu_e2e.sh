#!/usr/bin/env bash
# The CUDA backend end to end without a GPU: the real plugin sources (kernels/cuda/plugin.cu,
# matmul.cu, every k_*.cu and comm_nccl.cu) translated for the CPU emulation of tests/cuda_emu
# and linked into build/cuda_emu/libscalewise-cuda-emu.so (Makefile), which the core loads
# through its ordinary loader when SCALEWISE_CUDA_PLUGIN names it. So plugin.cu's device
# selection, API-version handshake, allocator with per-category counters, copies with their
# directions and the backend table run, and the executor drives every kernel with its own
# scratch sizes, layouts and argument orders (docs/cuda.md, "Kernel logic without a GPU"):
#  a. tests/gpu/test_cuda_model.c (GPT-2 and Llama, fp32 and bf16-mixed: memory counters, loss,
#     gradients, 50 AdamW steps, generation, each against the CPU executor) on the plugin;
#  b. `scalewise run` of tiny `device: cuda` training plans against the same plans on the CPU
#     (fp32, bf16-mixed, fp16-mixed; flash, naive, the mma.sync, WMMA and FMA attention;
#     an emulated compute capability 7.5 for fp16-mixed and fp32, and 7.0 refused);
#  c. `scalewise run` of inference plans (task: infer; `scalewise generate` has no device
#     choice and always runs on the CPU), greedy and sampled, on the emulated GPU against the
#     CPU: the same text, and the memory counters equal to the advisor's estimate;
#  d. the plugin's refusals: no device, a device too small to hold its own workspace, a model
#     that does not fit.
# Tolerance of b: losses and validation losses within 2e-3 of the CPU's, the loss tolerance
# tests/gpu/test_cuda_model.c derives from TF32 rounding (fp32 plans: the cuBLASLt fake rounds
# the operands to TF32 as the GPU does) and from bf16/fp16 operand rounding (the same on both
# sides up to the order of the fp32 sums); over a few steps the curves drift far less than
# that (test_cuda_model measures <= 1e-4 over 50 steps). The checkpoints must differ, or the
# GPU arithmetic did not run. c: exact equality of the text, from a checkpoint trained for 150
# steps (a near-tie of the top two logits would show up as a failure naming both texts).
# Needs g++ and perl (skips without them).
# test_cuda_model runs in the background on the second core meanwhile (about 50 s of fibers).
. "$(dirname "$0")/lib.sh"
REL=${SW_RELEASE:-$SW}
B=${SW_BUILD:-build}
EMU=$PWD/$B/cuda_emu/libscalewise-cuda-emu.so
TCM=$B/gpu/test_cuda_model

for tool in g++ perl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "skipped: $tool not found (the CUDA emulation is built with g++ from perl-translated sources)"
    cli_finish
    exit $?
  fi
done
if [ ! -f "$EMU" ]; then
  fail "$EMU is missing: make $B/cuda_emu/libscalewise-cuda-emu.so"
  cli_finish
  exit $?
fi
GPU=(env SCALEWISE_CUDA_PLUGIN="$EMU" OMP_NUM_THREADS=1)

# ------------------------------------------------------------------ a. test_cuda_model
if [ -x "$TCM" ]; then
  "${GPU[@]}" "$TCM" >"$TMP/model.out" 2>&1 &
  model_pid=$!
else
  fail "$TCM is missing: make $TCM (a plain C program, built without nvcc too)"
  model_pid=
fi

# ------------------------------------------------------------------ bench_matmul's code path
# tests/gpu/bench_matmul (built with nvcc) at 4 rows: every entry it times runs, outputs finite.
if [ -x "$B/gpu/bench_matmul" ]; then
  expect_rc 0 "bench_matmul on the emulated plugin" -- "${GPU[@]}" SW_BENCH_MATMUL_ROWS=4 \
    "$B/gpu/bench_matmul"
  expect_grep '^bench_matmul: 5 passed, 0 failed$' "$TMP/out" "bench_matmul count line"
  expect_grep '^matmul per step \(12 layers \+ head, 4 rows\)' "$TMP/out" "bench_matmul totals"
  # The algorithm survey through the plugin's scalewise_cuda_gemm_algo: a line per shape (the
  # emulated heuristic offers one algorithm).
  n=$(grep -cE '^matmul [a-z-]+ +algorithms \(heuristic order, 1 offered\): forward ms #0 [0-9.]+; backward ms #0 [0-9.]+$' "$TMP/out")
  [ "$n" = 5 ] && ok || fail "bench_matmul: $n algorithm survey lines of 5: $(grep algorithms "$TMP/out" | head -n 2)"
  expect_grep '^matmul algorithm per step \(every GEMM at index k, forward \+ backward ms\): #0 [0-9.]+; best #0 \(1\.00x #0\)$' \
    "$TMP/out" "bench_matmul's per-step survey line (check.sh step 5b reads it)"
  # SCALEWISE_CUDA_GEMM_ALGO: a digit takes that algorithm (the last offered: #0 here), anything
  # else refuses the backend, naming the variable.
  expect_rc 0 "bench_matmul with SCALEWISE_CUDA_GEMM_ALGO=3" -- "${GPU[@]}" SW_BENCH_MATMUL_ROWS=4 \
    SW_BENCH_MATMUL_SURVEY=0 SCALEWISE_CUDA_GEMM_ALGO=3 "$B/gpu/bench_matmul"
  expect_grep '^bench_matmul: 5 passed, 0 failed$' "$TMP/out" "bench_matmul count line (algorithm 3)"
  expect_rc 0 "bench_matmul with SCALEWISE_CUDA_GEMM_ALGO=12" -- "${GPU[@]}" SW_BENCH_MATMUL_ROWS=4 \
    SCALEWISE_CUDA_GEMM_ALGO=12 "$B/gpu/bench_matmul"
  expect_grep 'SCALEWISE_CUDA_GEMM_ALGO=12: expected one digit, 0 to 7' "$TMP/out" \
    "a bad SCALEWISE_CUDA_GEMM_ALGO is refused with its name"
  # The plugin's other switches: a typo refuses the backend instead of running the default.
  expect_rc 0 "bench_matmul with SCALEWISE_CUDA_ATTENTION=mmma" -- "${GPU[@]}" \
    SW_BENCH_MATMUL_ROWS=4 SCALEWISE_CUDA_ATTENTION=mmma "$B/gpu/bench_matmul"
  expect_grep 'SCALEWISE_CUDA_ATTENTION=mmma: expected one of auto, wide, pipe, mma, wmma, fma' \
    "$TMP/out" "a bad SCALEWISE_CUDA_ATTENTION is refused with the values it takes"
  expect_rc 0 "bench_matmul with SCALEWISE_CUDA_ACT16=no" -- "${GPU[@]}" \
    SW_BENCH_MATMUL_ROWS=4 SCALEWISE_CUDA_ACT16=no "$B/gpu/bench_matmul"
  expect_grep 'SCALEWISE_CUDA_ACT16=no: expected one of 0, 1' "$TMP/out" \
    "a bad SCALEWISE_CUDA_ACT16 is refused"
fi

# ------------------------------------------------------------------ b. training plans
expect_rc 0 "data prepare" -- "$REL" data prepare --input data/tinyshakespeare.txt --out "$TMP/data"

# plan NAME MODEL PRECISION OPTIMIZER RECOMPUTE ATTENTION ACCUM DEVICE: an sm_80 GPU's profile
# (the plan check refuses flash attention below 8.0 and needs a GPU in the hardware).
plan() {
  cat >"$TMP/$1.$8.yaml" <<EOF
scalewise_plan: 1
name: $1
task: train
hardware: {profile: a100-40gb-pcie}
model: {profile: $2}
data: {path: $TMP/data, tokenizer: byte, val_fraction: 0.1}
train: {steps: 4, seq: 32, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2, grad_clip: 1.0, eval_every: 2, eval_batches: 2, log_every: 1, checkpoint_every: 4, out_dir: $TMP/$1.$8}
strategy: {device: $8, precision: $3, optimizer: $4, recompute: $5, attention: $6, micro_batch: 2, grad_accum: $7, threads: 1}
EOF
}

# the six counters of report.yaml's measured (or predicted) per_device_bytes, "name value" lines
bytes_of() {
  awk -v sec="$2" '/^[a-z_]+:/ { in_sec = ($1 == sec ":") }
    in_sec && /^  per_device_bytes:/ { pb = 1; next }
    in_sec && pb && /^    [a-z_]+:/ { sub(":", "", $1); print $1, $2; next }
    /^  [a-z_]+:/ { pb = 0 }' "$1"
}

# versus NAME: the plan on the CPU and on the emulated GPU; losses within 2e-3, the GPU's
# report names the cuda backend and its counters equal the advisor's prediction.
versus() {
  local n=$1 c="$TMP/$1.cpu" g="$TMP/$1.cuda"
  expect_rc 0 "$n on the CPU" -- "$REL" run "$c.yaml" --quiet --out "$c"
  expect_rc 0 "$n on the emulated GPU" -- "${GPU[@]}" "$REL" run "$g.yaml" --quiet --out "$g"
  [ -f "$g/report.yaml" ] || { fail "$n: no report from the emulated GPU run"; return; }
  if paste <(jq -r '[.step, .loss, (.val_loss // 0), (.skipped // 0)] | @tsv' "$c/metrics.jsonl") \
           <(jq -r '[.step, .loss, (.val_loss // 0), (.skipped // 0)] | @tsv' "$g/metrics.jsonl") |
     awk 'function d(a, b) { return (a > b ? a - b : b - a) / (b < 0 ? -b : b + 1e-30) }
          $1 != $5 || $4 != $8 || d($6, $2) > 2e-3 || d($7, $3) > 2e-3 { bad = 1 }
          { m = d($6, $2) > m ? d($6, $2) : m }
          END { printf "%.2g\n", m > "/dev/stderr"; exit bad || NR != 4 }' 2>"$TMP/maxerr"
  then ok; else fail "$n: losses differ by more than 2e-3: $(paste -d'|' "$c/metrics.jsonl" "$g/metrics.jsonl" | jq -Rr . | cut -c1-160 | head -n 4)"; fi
  echo "$n: cuda vs cpu loss max relative error $(cat "$TMP/maxerr")"
  cmp -s "$c/ckpt_4.safetensors" "$g/ckpt_4.safetensors" &&
    fail "$n: the GPU checkpoint equals the CPU's byte for byte (did the GPU arithmetic run?)" || ok
  grep -q '^backend: cuda$' "$g/report.yaml" && ok || fail "$n: report.yaml does not say backend: cuda"
  # measured = predicted, category by category; the predicted overhead (CUDA context and
  # fragmentation margin, docs/cuda.md "Memory accounting") is the only term no counter sees.
  if join <(bytes_of "$g/report.yaml" measured | sort) <(bytes_of "$g/report.yaml" predicted | sort) |
     awk '$1 != "total" { n++; if ($2 != $3) bad = 1; if ($1 == "workspace" && $2 < 33816576) bad = 1; sum += $2 }
          $1 == "total" { tot = $2 } END { exit bad || n != 6 || sum != tot }' &&
     bytes_of "$g/report.yaml" predicted | awk '$1 == "overhead" && $2 > 0 { f = 1 } END { exit !f }'
  then ok; else fail "$n: measured per_device_bytes differ from predicted: $(bytes_of "$g/report.yaml" measured | tr '\n' ' ') / $(bytes_of "$g/report.yaml" predicted | tr '\n' ' ')"; fi
}

for dev in cpu cuda; do
  plan g32   tiny-gpt2  fp32       adamw     none      flash 1 $dev
  plan gbf   tiny-gpt2  bf16-mixed adamw8bit selective flash 1 $dev
  plan gf16  tiny-gpt2  fp16-mixed adamw     none      flash 2 $dev
  plan gnv   tiny-gpt2  fp32       lion      full      naive 2 $dev
  plan lbf   tiny-llama bf16-mixed adafactor none      flash 1 $dev
  plan lbff  tiny-llama bf16-mixed sgd       full      flash 2 $dev
  # LoRA on every linear layer with bf16 activations: the adapters read their inputs widened
  plan glora tiny-gpt2  bf16-mixed adamw     selective flash 1 $dev
  sed -i 's/grad_accum: 1,/grad_accum: 1, lora_rank: 4,/' "$TMP/glora.$dev.yaml"
  plan llora tiny-llama bf16-mixed adamw     none      flash 2 $dev
  sed -i 's/grad_accum: 2,/grad_accum: 2, lora_rank: 4,/' "$TMP/llora.$dev.yaml"
done
for n in g32 gbf gf16 gnv lbf lbff glora llora; do versus "$n"; done
# The tensor-core attention (bf16 mma.sync, head size 64 or 128: the default of 16-bit plans)
# inside a whole run: a GPT-2 with head size 64, bf16-mixed, against the CPU; and the same plan
# with SCALEWISE_CUDA_ATTENTION=fma (the FMA kernels), whose weights must differ from it, and
# with SCALEWISE_CUDA_ATTENTION=wmma (the WMMA kernels).
for n in gtc gfma gwmma; do
  for dev in cpu cuda; do
    plan $n tiny-gpt2 bf16-mixed adamw none flash 1 $dev
    sed -i 's/model: {profile: tiny-gpt2}/model: {name: gpt2-hs64, arch: gpt2, layers: 2, hidden: 128, heads: 2, vocab: 256, max_pos: 64}/' \
      "$TMP/$n.$dev.yaml"
  done
done
GPU_PLAIN=("${GPU[@]}")
versus gtc
GPU+=(SCALEWISE_CUDA_ATTENTION=fma)
versus gfma
GPU=("${GPU_PLAIN[@]}" SCALEWISE_CUDA_ATTENTION=wmma)
versus gwmma
GPU=("${GPU_PLAIN[@]}")
cmp -s "$TMP/gtc.cuda/ckpt_4.safetensors" "$TMP/gfma.cuda/ckpt_4.safetensors" &&
  fail "gtc: the default attention gave the FMA kernels' weights (were the tensor cores used?)" || ok
# The default attention dispatch tuned the run's shape among the wide, pipe and mma.sync kernels
# (forward and backward) and the report lists what it chose; the FMA run tuned nothing.
tuned=$(grep -A3 '^  attention_tuning:' "$TMP/gtc.cuda/report.yaml")
if grep -qE '^    - "?forward B2 T32 NH2 NKV2 HS64: (wide|pipe|mma) \(wide [0-9.]+ ms, pipe [0-9.]+ ms, mma [0-9.]+ ms\)' <<<"$tuned" &&
   grep -qE '^    - "?backward B2 T32 NH2 NKV2 HS64: (wide|pipe|mma) ' <<<"$tuned"; then ok
else fail "gtc: report.yaml lists no attention tuning of B2 T32 NH2 HS64: $(grep -A3 attention_tuning "$TMP/gtc.cuda/report.yaml" | tr '\n' '|')"; fi
grep -q 'attention_tuning' "$TMP/gfma.cuda/report.yaml" &&
  fail "gfma: the FMA attention run reports attention tuning" || ok
# bf16 activations (docs/cuda.md): gtc again with SCALEWISE_CUDA_ACT16=0 (fp32 activations, the
# layout before them): other weights, and more activation bytes than gtc's bf16 ones.
expect_rc 0 "gtc with fp32 activations" -- "${GPU[@]}" SCALEWISE_CUDA_ACT16=0 "$REL" run \
  "$TMP/gtc.cuda.yaml" --quiet --out "$TMP/ga32.cuda"
cmp -s "$TMP/gtc.cuda/ckpt_4.safetensors" "$TMP/ga32.cuda/ckpt_4.safetensors" &&
  fail "gtc: fp32 activations gave the bf16 activations' weights (were they bf16?)" || ok
a16=$(bytes_of "$TMP/gtc.cuda/report.yaml" measured | awk '$1 == "activations" { print $2 }')
a32=$(bytes_of "$TMP/ga32.cuda/report.yaml" measured | awk '$1 == "activations" { print $2 }')
awk -v a="${a16:-0}" -v b="${a32:-0}" 'BEGIN { exit !(a > 0 && b > a) }' && ok ||
  fail "gtc: activations measured ${a16:-none} bytes in bf16, ${a32:-none} in fp32"
echo "gtc: activation bytes, bf16 $a16, fp32 $a32"
# Data parallelism on the emulated GPU: ZeRO-2 and ZeRO-3 of a bf16-mixed plan (bf16
# activations; ZeRO-3 gathers each layer's bf16 weights and biases) on 2 processes, their
# collectives over MPI through the host staging buffer (SCALEWISE_COMM=mpi: the emulation has no
# NCCL), against the same plan's 2 CPU processes: losses within 2e-3, counters = prediction.
if command -v mpirun >/dev/null 2>&1 && [ -f "$B/libscalewise-mpi.so" ]; then
  for z in 2 3; do
    for dev in cpu cuda; do
      plan dz$z tiny-gpt2 bf16-mixed adamw none flash 1 $dev
      sed -i "s/grad_accum: 1,/grad_accum: 1, dp: 2, zero: $z,/; s/profile: a100-40gb-pcie}/profile: a100-40gb-pcie, gpus_per_node: 2}/" \
        "$TMP/dz$z.$dev.yaml"
    done
    expect_rc 0 "dz$z on 2 CPU processes" -- env ASAN_OPTIONS=detect_leaks=0 "$REL" run \
      --nproc 2 "$TMP/dz$z.cpu.yaml" --quiet --out "$TMP/dz$z.cpu"
    expect_rc 0 "dz$z on 2 emulated GPUs over MPI" -- "${GPU[@]}" SCALEWISE_COMM=mpi \
      ASAN_OPTIONS=detect_leaks=0 "$REL" run --nproc 2 "$TMP/dz$z.cuda.yaml" --quiet \
      --out "$TMP/dz$z.cuda"
    if paste <(jq -r '[.step, .loss] | @tsv' "$TMP/dz$z.cpu/metrics.jsonl") \
             <(jq -r '[.step, .loss] | @tsv' "$TMP/dz$z.cuda/metrics.jsonl") |
       awk '{ d = ($4 > $2 ? $4 - $2 : $2 - $4) / $2; if ($1 != $3 || d > 2e-3) bad = 1 }
            END { exit bad || NR != 4 }'
    then ok; else fail "dz$z: 2-GPU losses differ from the CPU's: $(paste -d'|' "$TMP/dz$z.cpu/metrics.jsonl" "$TMP/dz$z.cuda/metrics.jsonl" | cut -c1-160 | head -n 4)"; fi
    if join <(bytes_of "$TMP/dz$z.cuda/report.yaml" measured | sort) \
            <(bytes_of "$TMP/dz$z.cuda/report.yaml" predicted | sort) |
       awk '$1 != "total" { n++; if ($2 != $3) bad = 1 } END { exit bad || n != 6 }'
    then ok; else fail "dz$z: measured per_device_bytes differ from predicted: $(bytes_of "$TMP/dz$z.cuda/report.yaml" measured | tr '\n' ' ') / $(bytes_of "$TMP/dz$z.cuda/report.yaml" predicted | tr '\n' ' ')"; fi
  done
else
  echo "cuda_emu_e2e.sh: data-parallel part skipped: mpirun or $B/libscalewise-mpi.so missing"
fi

# A Turing GPU (SCALEWISE_EMU_CUDA_CC=75: no bf16 or TF32 tensor cores, 64 KiB of shared memory):
# fp16-mixed, its fast path, and fp32 (plain fp32 GEMMs), against the CPU; 7.0 is refused.
for dev in cpu cuda; do
  plan t4f16 tiny-gpt2 fp16-mixed adamw none flash 1 $dev
  plan t4f32 tiny-gpt2 fp32 adamw selective naive 1 $dev
done
GPU+=(SCALEWISE_EMU_CUDA_CC=75)
versus t4f16
versus t4f32
GPU=("${GPU_PLAIN[@]}")
expect_rc 2 "compute capability 7.0 refused" -- env SCALEWISE_EMU_CUDA_CC=70 "${GPU[@]}" "$REL" \
  run "$TMP/t4f16.cuda.yaml" --quiet --out "$TMP/cc70"
expect_grep "compute capability 7.0; the CUDA backend is built for 7.5 and newer" "$TMP/err" \
  "a V100-class GPU is refused by name"

# ------------------------------------------------------------------ c. generation
# A checkpoint worth decoding greedily: 150 CPU steps (under a second) of the g32 plan.
sed -e 's/steps: 4,/steps: 150,/; s/eval_every: 2/eval_every: 150/; s/checkpoint_every: 4/checkpoint_every: 150/' \
    -e 's/micro_batch: 2/micro_batch: 4/; s/name: g32/name: gtrain/' "$TMP/g32.cpu.yaml" >"$TMP/gtrain.yaml"
expect_rc 0 "train a checkpoint for generation" -- "$REL" run "$TMP/gtrain.yaml" --quiet --out "$TMP/gtrain"
# infer NAME WEIGHTS TEMPERATURE DEVICE: 2 copies of a prompt, 24 new tokens
infer() {
  cat >"$TMP/$1.$4.yaml" <<EOF
scalewise_plan: 1
name: $1
task: infer
hardware: {profile: a100-40gb-pcie}
model: {profile: tiny-gpt2}
data: {tokenizer: byte}
infer: {checkpoint: $TMP/gtrain/ckpt_150.safetensors, prompt: "First Citizen:", batch: 2, prompt_len: 14, gen_len: 24, temperature: $3, top_k: 40, seed: 7}
strategy: {device: $4, weights: $2, threads: 1}
EOF
}
# fp32 and bf16 greedy; fp32 sampled (the same seed draws the same uniform numbers, so the
# text differs only where a draw falls within the logits' error of a boundary: rare, and
# deterministic on one host).
for g in "fp32 0" "bf16 0" "fp32 0.8"; do
  set -- $g
  n="gen$1-$2"
  infer "$n" "$1" "$2" cpu
  infer "$n" "$1" "$2" cuda
  expect_rc 0 "generate $n on the CPU" -- "$REL" run "$TMP/$n.cpu.yaml" --out "$TMP/$n.cpu"
  grep -v '^prefill:' "$TMP/out" >"$TMP/$n.cpu.txt"
  expect_rc 0 "generate $n on the emulated GPU" -- "${GPU[@]}" "$REL" run "$TMP/$n.cuda.yaml" \
    --out "$TMP/$n.cuda"
  grep -v '^prefill:' "$TMP/out" >"$TMP/$n.cuda.txt"
  [ "$(wc -c <"$TMP/$n.cpu.txt")" -gt 60 ] && cmp -s "$TMP/$n.cpu.txt" "$TMP/$n.cuda.txt" && ok ||
    fail "generate $n: the emulated GPU's text differs from the CPU's: $(head -c 200 "$TMP/$n.cpu.txt" | tr '\n' '|') vs $(head -c 200 "$TMP/$n.cuda.txt" | tr '\n' '|')"
  r="$TMP/$n.cuda/report.yaml"
  grep -q '^device: cuda$' "$r" && ok || fail "generate $n: report.yaml does not say device: cuda"
  if join <(bytes_of "$r" measured | sort) <(bytes_of "$r" estimate | sort) |
     awk '$1 != "total" { n++; if ($2 != $3) bad = 1 } END { exit bad || n != 6 }'
  then ok; else fail "generate $n: measured per_device_bytes differ from the estimate: $(bytes_of "$r" measured | tr '\n' ' ') / $(bytes_of "$r" estimate | tr '\n' ' ')"; fi
done

# ------------------------------------------------------------------ d. refusals
expect_rc 2 "no device" -- env SCALEWISE_EMU_CUDA_DEVICES=0 "${GPU[@]}" "$REL" run "$TMP/g32.cuda.yaml" \
  --quiet --out "$TMP/nodev"
expect_grep 'no NVIDIA GPU: cudaGetDeviceCount returned 100 \(no CUDA-capable device is detected\)' \
  "$TMP/err" "no-device reason"
expect_rc 2 "a device smaller than the plugin's workspace" -- env SCALEWISE_EMU_CUDA_MEM_BYTES=30000000 \
  "${GPU[@]}" "$REL" run "$TMP/g32.cuda.yaml" --quiet --out "$TMP/small"
expect_grep 'cannot allocate 32.0 MiB \(33554432 bytes\) for workspace on GPU 0' "$TMP/err" \
  "the plugin's own workspace does not fit"
# 35 MB: the plugin's 33,816,576 bytes fit, the model's activations do not.
"${GPU[@]}" SCALEWISE_EMU_CUDA_MEM_BYTES=35000000 "$REL" run "$TMP/g32.cuda.yaml" --quiet \
  --out "$TMP/oom" >"$TMP/out" 2>"$TMP/err"
[ $? -ne 0 ] && ok || fail "a model that does not fit the device ran anyway"
expect_grep 'cannot allocate .* for activations on GPU 0 .*out of memory\); already allocated by scalewise: weights 471.0 KiB, gradients 471.0 KiB, .*device free .* of 33.4 MiB' \
  "$TMP/err" "out-of-memory message names the request and the holdings"

# ------------------------------------------------------------------ e. calibrate's GPU half
# `scalewise calibrate` measures the GPU through the plugin (docs/calibrate.md): here the emulated
# plugin, with the fake NVML/driver of tests/fake_gpu standing for an H100 in the probe and
# SW_CALIBRATE_GPU_TINY=1 shrinking the sizes. The figures mean nothing; the path runs, writes a
# gpu section with every measurement, and an estimate for an H100 applies it.
FAKE=$PWD/$B/fake_gpu
if [ -f "$FAKE/libfake_nvml.so" ] && [ -f "$FAKE/libfake_cuda.so" ]; then
  expect_rc 0 "calibrate --quick on the emulated plugin" -- "${GPU[@]}" SW_CALIBRATE_GPU_TINY=1 \
    SCALEWISE_NVML_LIBRARY="$FAKE/libfake_nvml.so" SCALEWISE_CUDA_LIBRARY="$FAKE/libfake_cuda.so" \
    SW_FAKE_GPU_MACHINE=h100 "$REL" calibrate --quick --threads 1 --save "$TMP/cal.yaml"
  expect_grep '^gpu NVIDIA H100 80GB HBM3: bf16 GEMM 256\^3 ' "$TMP/out" "calibrate's gpu line"
  for k in gemm_bf16 d2d_copy decode_gemm calls attention train_gemm eta_flops_train \
           eta_mem_decode; do
    grep -q "^  $k:" "$TMP/cal.yaml" && ok || fail "calibrate: gpu.$k missing from $TMP/cal.yaml"
  done
  expect_rc 0 "estimate with the emulated GPU's calibration" -- "$REL" estimate \
    --model gpt2-124m --gpu h100-sxm --calibration "$TMP/cal.yaml"
  expect_grep 'from calibration .*gpu NVIDIA H100 80GB HBM3' "$TMP/out" \
    "the estimate applies the gpu section"
  expect_grep "attention timed at the executor's calibrated flash-attention rate" "$TMP/out" \
    "the calibrated attention rate reaches the estimate"
else
  fail "$FAKE/libfake_nvml.so or libfake_cuda.so is missing (make builds them)"
fi

# ------------------------------------------------------------------ a. (collect)
if [ -n "$model_pid" ]; then
  wait "$model_pid"; rc=$?
  cp "$TMP/model.out" "$TMP/out"
  [ "$rc" -eq 0 ] && ok || fail "test_cuda_model on the emulated plugin: exit $rc: $(grep -E 'FAIL|error|abort' "$TMP/out" | head -n 5)"
  expect_grep '^test_cuda_model: backend under test: cuda' "$TMP/out" "test_cuda_model names the cuda backend"
  expect_grep '^test_cuda_model: [0-9]+ passed, 0 failed$' "$TMP/out" "test_cuda_model count line"
  if grep -q 'skipped' "$TMP/out"; then fail "test_cuda_model skipped: $(grep skipped "$TMP/out")"; else ok; fi
  expect_grep 'holds 33816576 bytes before any model' "$TMP/out" "the plugin's fixed workspace"
  n=$(grep -c 'planned = counted' "$TMP/out")
  [ "$n" -ge 4 ] && ok || fail "test_cuda_model: $n 'planned = counted' lines, expected at least 4"
  # 24 "max error" figures (as on devsim and tf32sim), and the emulated GPU's rounding reached
  # them: a run that fell back to CPU arithmetic would be exact.
  n=$(grep -oE 'max error [^ ]+' "$TMP/out" | wc -l)
  z=$(grep -oE 'max error [^ ]+' "$TMP/out" | awk '{print $3}' | grep -cx 0)
  [ "$n" -eq 24 ] && [ "$z" -lt 5 ] && ok ||
    fail "test_cuda_model: $z of $n comparisons exact, expected 24 figures, nearly all nonzero"
  grep -E 'AdamW steps|generation \(' "$TMP/out" | sed 's/^test_cuda_model: /  /' | cut -c1-150
fi
cli_finish
