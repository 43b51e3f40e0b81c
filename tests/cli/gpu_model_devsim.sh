#!/usr/bin/env bash
# The model-level GPU test (tests/gpu/test_cuda_model.c) on any machine: with
# SCALEWISE_GPU_TEST_BACKEND=devsim it compares the device simulator with the CPU executor
# (tiny GPT-2 and Llama, fp32 and bf16-mixed: memory counters, loss, gradients, 50 training
# steps, generation), which must agree exactly; with =tf32sim (matmul operands rounded as the
# GPU rounds them) every comparison must stay within its tolerance while showing real
# differences, so the tolerances are neither vacuous nor too tight. Without the variable it
# runs on the GPU when there is one, else skips with one line and exit 0. The program is built
# only where nvcc exists (Makefile); without it this script says so and checks nothing.
. "$(dirname "$0")/lib.sh"
B=${SW_BUILD:-build}
T=$B/gpu/test_cuda_model

if [ ! -x "$T" ]; then
  if [ -d "$B/cuda" ]; then
    fail "$T is missing although this build compiled the CUDA plugin (make builds it)"
  else
    echo "skipped: $T not built (no nvcc, or make NVCC=)"
  fi
  cli_finish
  exit $?
fi

# The device simulator: a real run, and every error exactly 0 (the CPU kernels behind
# device pointers).
expect_rc 0 "test_cuda_model on devsim" -- env SCALEWISE_GPU_TEST_BACKEND=devsim "$T"
expect_grep '^test_cuda_model: backend under test: devsim' "$TMP/out" "devsim run names its backend"
expect_grep '^test_cuda_model: [0-9]+ passed, 0 failed$' "$TMP/out" "devsim count line"
if grep -q 'skipped' "$TMP/out"; then fail "the devsim run skipped: $(grep skipped "$TMP/out")"; else ok; fi
for what in 'loss cpu' 'gradients:' 'AdamW steps' 'generation'; do
  n=$(grep -c "$what" "$TMP/out")
  [ "$n" -eq 4 ] && ok || fail "devsim: $n '$what' lines, expected 4 (GPT-2 and Llama, fp32 and bf16)"
done
# errors: every "max error X" figure (loss and logits, gradients, curves, generation, grad norms: 24)
errors() { grep -oE 'max error [^ ]+' "$TMP/out" | awk '{print $3}'; }
n=$(errors | wc -l); z=$(errors | grep -cx 0)
[ "$n" -eq 24 ] && [ "$z" -eq 24 ] && ok ||
  fail "devsim: $z of $n comparisons exact, expected 24 of 24: $(grep 'max error' "$TMP/out" | head -n 3)"
expect_grep 'planned = counted' "$TMP/out" "devsim memory counters"
cp "$TMP/out" "$TMP/devsim.out"

# GPU-like rounding on the CPU: within the tolerances, and not exact.
expect_rc 0 "test_cuda_model on tf32sim" -- env SCALEWISE_GPU_TEST_BACKEND=tf32sim "$T"
expect_grep '^test_cuda_model: [0-9]+ passed, 0 failed$' "$TMP/out" "tf32sim count line"
n=$(errors | wc -l); z=$(errors | grep -cx 0)
[ "$n" -eq 24 ] && [ "$z" -lt 5 ] && ok ||
  fail "tf32sim: $z of $n comparisons exact: the rounding did not reach them"

# No variable: the CUDA plugin; here (no GPU) a one-line skip and exit 0.
expect_rc 0 "test_cuda_model without a backend variable" -- env -u SCALEWISE_GPU_TEST_BACKEND "$T"
if grep -q 'skipped' "$TMP/out"; then
  n=$(grep -c 'skipped' "$TMP/out")
  [ "$n" -eq 2 ] && ok || fail "expected the skip line and the count line, got $n lines with 'skipped'"
  expect_grep '^test_cuda_model: skipped: no GPU \(.+\)$' "$TMP/out" "skip line with the reason"
  expect_grep '^test_cuda_model: [0-9]+ passed, 0 failed, 1 skipped$' "$TMP/out" "skip count line"
else
  expect_grep '^test_cuda_model: backend under test: cuda' "$TMP/out" "GPU run names its backend"
  expect_grep '^test_cuda_model: [0-9]+ passed, 0 failed$' "$TMP/out" "GPU run count line"
fi
expect_rc 2 "an unknown backend name is refused" -- env SCALEWISE_GPU_TEST_BACKEND=nosuch "$T"
cli_finish
