# The CUDA backend as the binary sees it: the plugin exists where nvcc does (unless the build
# was made with NVCC= on purpose); a `device: cuda` plan (training or inference) is refused with
# exit 2 and the loader's reason (no GPU here, no plugin, a file that is not a plugin); the GPU
# test program loads the plugin and skips with its reason where there is no device. On a GPU
# machine the same plans run (exit 0).
source "$(dirname "$0")/lib.sh"
B=${SW_BUILD:-build}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
have_nvcc=0
if command -v nvcc >/dev/null 2>&1 || [ -x "$CUDA_HOME/bin/nvcc" ]; then have_nvcc=1; fi

cat >"$TMP/train.yaml" <<EOF
scalewise_plan: 1
name: cuda-train
task: train
hardware: {profile: h100-sxm, gpus_per_node: 1}
model: {profile: tiny-gpt2}
data: {path: data/tinyshakespeare.txt, tokenizer: byte}
train: {steps: 2, seq: 32, out_dir: $TMP/train}
strategy: {device: cuda, precision: bf16-mixed, optimizer: adamw, micro_batch: 2, grad_accum: 1}
EOF
sed -e 's/device: cpu/device: cuda/' -e 's/^hardware: .*/hardware: {profile: h100-sxm, gpus_per_node: 1}/' \
  profiles/plans/tiny-gpt2-generate.yaml >"$TMP/infer.yaml"
grep -q 'device: cuda' "$TMP/infer.yaml" && grep -q 'profile: h100-sxm' "$TMP/infer.yaml" && ok ||
  fail "infer plan not switched to cuda on an H100 profile"

# What this machine should say.
gpu_state=none
if [ "$have_nvcc" = 1 ] && [ ! -f "$B/libscalewise-cuda.so" ] && [ ! -d "$B/cuda" ]; then
  echo "cuda.sh: nvcc is installed but this build made no CUDA objects (make NVCC=): checking the no-plugin refusals"
  have_nvcc=0
fi
if [ "$have_nvcc" = 1 ]; then
  [ -f "$B/libscalewise-cuda.so" ] && ok || fail "nvcc found but $B/libscalewise-cuda.so missing"
  [ -x "$B/gpu/test_cuda_backend" ] && ok || fail "$B/gpu/test_cuda_backend not built"
  expect_rc 0 "GPU benchmark program" -- "$B/gpu/bench_matmul"
  expect_grep '^bench_matmul: [0-9]+ passed, 0 failed' "$TMP/out" "bench_matmul count line"
  expect_rc 0 "GPU test program" -- "$B/gpu/test_cuda_backend"
  expect_grep '[0-9]+ passed, 0 failed' "$TMP/out" "GPU test count line"
  if grep -q 'skipped: no GPU' "$TMP/out"; then
    gpu_state=nogpu
    expect_grep 'skipped: no GPU \(no NVIDIA GPU: cudaGetDeviceCount' "$TMP/out" "skip reason"
    expect_grep '1 skipped' "$TMP/out" "skip count"
  else
    gpu_state=gpu
  fi
fi
case $gpu_state in
  none)  want='strategy.device is cuda, but the CUDA backend is unavailable: the CUDA backend is not built' ;;
  nogpu) want='strategy.device is cuda, but the CUDA backend is unavailable: no NVIDIA GPU: cudaGetDeviceCount returned' ;;
  gpu)   want='' ;;
esac

if [ "$gpu_state" = gpu ]; then
  expect_rc 0 "cuda training plan on this GPU" -- "$SW" run "$TMP/train.yaml" --quiet
  expect_grep "backend: cuda" "$TMP/train/report.yaml" "the run used the CUDA backend"
else
  expect_rc 2 "cuda training plan" -- "$SW" run "$TMP/train.yaml"
  expect_grep "$want" "$TMP/err" "cuda training refusal ($gpu_state)"
  [ ! -e "$TMP/train" ] && ok || fail "a refused plan created its out_dir"
  expect_rc 2 "cuda inference plan" -- "$SW" run "$TMP/infer.yaml"
  expect_grep "$want" "$TMP/err" "cuda inference refusal ($gpu_state)"
fi

# The loader's other refusals, forced with SCALEWISE_CUDA_PLUGIN.
expect_rc 2 "missing plugin" -- env SCALEWISE_CUDA_PLUGIN="$TMP/none.so" "$SW" run "$TMP/train.yaml"
expect_grep "not built: libscalewise-cuda.so was not found \(tried $TMP/none.so\)" "$TMP/err" \
  "missing plugin message"
echo "not a shared object" >"$TMP/bad.so"
expect_rc 2 "bad plugin" -- env SCALEWISE_CUDA_PLUGIN="$TMP/bad.so" "$SW" run "$TMP/train.yaml"
expect_grep "the CUDA plugin failed to load: .*bad.so" "$TMP/err" "bad plugin message"
cli_finish
