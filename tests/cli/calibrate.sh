#!/usr/bin/env bash
# scalewise calibrate: --quick --save writes a calibration file in a few seconds; estimate, plan
# and explain read it with --calibration (their reasons say so and the efficiencies are the
# file's); a file from another CPU is accepted with a warning; a CPU-only file leaves a GPU
# estimate alone; bad files and flags exit 2 with file:line:col. Measured figures are only
# checked for sanity (the VM is noisy), never for values.
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
F=$TMP/cal.yaml

t0=$(date +%s.%N)
expect_rc 0 "calibrate --quick --save" -- "$SW" calibrate --quick --save "$F"
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 6) }' && ok ||
  fail "calibrate --quick took $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s (limit 6)"
expect_grep "^scalewise_calibration: 1$" "$F" "version key"
expect_grep "eta_flops_train: [0-9.e+-]+$" "$F" "derived eta_flops_train"
expect_grep "^  cpu_model: " "$F" "machine identity"
expect_grep "^  date: \"?20[0-9][0-9]-" "$F" "date"
expect_grep "executor GEMMs" "$TMP/out" "text report"
expect_grep "^gpu: skipped: |^gpu .*TFLOP/s" "$TMP/out" "GPU line (skipped here, with why)"
expect_grep "wrote $F" "$TMP/out" "says where it wrote"
# Sanity of the measurements: positive rates, efficiencies in a plausible range.
if "$PY" - "$F" >"$TMP/py" 2>&1 <<'EOF'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
c = d["cpu"]
assert d["scalewise_calibration"] == 1
assert c["dtype"] in ("fp32", "bf16")
assert [g["tokens"] for g in c["gemm_fp32"]] == [16, 64, 256], c["gemm_fp32"]
assert all(g["flops_per_s"] > 1e8 and g["reps"] >= 2 for g in c["gemm_fp32"])
assert c["decode_gemm"]["bytes_per_s"] > 1e7 and c["optimizer_step"]["bytes_per_s"] > 1e7
for k in ("eta_flops_train", "eta_flops_prefill", "eta_mem", "eta_mem_decode"):
    assert 0.0005 < c[k] < 10, (k, c[k])
# decode's efficiency is its 1-token GEMM's; one tiny call costs between 10 ns and 10 ms
assert abs(c["eta_mem_decode"] - c["decode_gemm"]["bytes_per_s"] / c["triad_bytes_per_s"]) < 1e-9
assert all(1e-8 < c["calls"][k] < 1e-2 for k in ("matmul_s", "kernel_s")), c["calls"]
assert c["attention"]["tokens"] == 128 and c["attention"]["flops_per_s"] > 1e8, c["attention"]
assert 16 <= c["m_sat_tokens"] <= 256
EOF
then ok; else fail "calibration sanity: $(cat "$TMP/py")"; fi

# --format json: the same tree on stdout.
expect_rc 0 "calibrate --quick --format json" -- "$SW" calibrate --quick --format json --threads 1
if jq -e '.scalewise_calibration == 1 and .machine.threads == 1 and .cpu.eta_mem > 0' \
  "$TMP/out" >/dev/null; then ok; else fail "json tree: $(head -c 300 "$TMP/out")"; fi

# estimate --calibration: the reason names the file, the efficiencies are the file's.
E=(--model gpt2-124m --seq 256 --micro-batch 2 --hardware probe)
expect_rc 0 "estimate --calibration" -- "$SW" estimate "${E[@]}" --calibration "$F"
expect_grep "efficiencies eta_f train .* from calibration $F" "$TMP/out" "estimate reason"
expect_rc 0 "estimate --calibration json" -- "$SW" estimate "${E[@]}" --calibration "$F" \
  --format json
want=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["cpu"]["eta_mem"])' "$F")
if jq -e --argjson w "$want" '.calibration.eta_mem.value == $w and
    .calibration.eta_mem.source == "calibrated"' "$TMP/out" >/dev/null; then ok
else fail "estimate json does not carry eta_mem $want: $(jq -c .calibration.eta_mem "$TMP/out")"; fi
# Without the flag nothing changes: no calibration reason, default source.
expect_rc 0 "estimate without --calibration" -- "$SW" estimate "${E[@]}" --format json
if jq -e '.calibration.eta_mem.source == "default" and
    ([.reasons[] | select(test("calibration"))] | length == 0)' "$TMP/out" >/dev/null; then ok
else fail "default estimate mentions a calibration"; fi

# A file from another CPU (the profile is a Zen 3 VM): accepted, with a warning reason.
expect_rc 0 "estimate other machine" -- "$SW" estimate --model gpt2-124m --gpu cpu-avx2-2c \
  --seq 256 --calibration tests/data/calib/good_cpu.yaml
expect_grep "eta_f train 0.25, prefill 0.4, eta_mem 0.5, decode 0.5 from calibration" "$TMP/out" \
  "hand-written file applied"
cp tests/data/calib/good_cpu.yaml "$TMP/other.yaml"
sed -i 's/cpu_family: 25/cpu_family: 23/' "$TMP/other.yaml"
expect_rc 0 "estimate other machine" -- "$SW" estimate --model gpt2-124m --gpu cpu-avx2-2c \
  --seq 256 --calibration "$TMP/other.yaml"
expect_grep "warning: calibration .* measured on another machine" "$TMP/out" "other-CPU warning"
# A CPU-only calibration leaves a GPU estimate at its defaults, and says so.
expect_rc 0 "estimate gpu with cpu file" -- "$SW" estimate --model gpt2-124m --gpu h100-sxm \
  --calibration "$F"
expect_grep "has no gpu section: default efficiencies kept for 'h100-sxm'" "$TMP/out" \
  "cpu file on a gpu node"

# plan and explain accept it too.
expect_rc 0 "plan --calibration" -- "$SW" plan --model gpt2-124m --gpu cpu-avx2-2c --seq 256 \
  --calibration tests/data/calib/good_cpu.yaml -o "$TMP/plan.yaml"
expect_grep "from calibration tests/data/calib/good_cpu.yaml" "$TMP/out" "plan reason"
expect_rc 0 "explain --calibration" -- "$SW" explain "$TMP/plan.yaml" \
  --calibration tests/data/calib/good_cpu.yaml
expect_grep "from calibration tests/data/calib/good_cpu.yaml" "$TMP/out" "explain reason"

# Bad files: exit 2 with file:line:col and the message their first line announces.
for f in tests/data/calib/bad_*.yaml; do
  want=$(sed -n '1s/^# expect: //p' "$f")
  "$SW" estimate --model gpt2-124m --gpu cpu-avx2-2c --calibration "$f" >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ $rc -ne 2 ]; then fail "$f: exit $rc, expected 2"; continue; fi
  grep -qF -- "$f:${want%%: *}: " "$TMP/err" && grep -qF -- "${want#*: }" "$TMP/err" && ok ||
    fail "$f: expected '$want' in: $(cat "$TMP/err")"
done
expect_rc 2 "explain bad calibration" -- "$SW" explain "$TMP/plan.yaml" \
  --calibration tests/data/calib/bad_key.yaml
expect_grep "bad_key.yaml:6:3: " "$TMP/err" "explain names file:line:col"
expect_rc 2 "missing calibration file" -- "$SW" estimate --model gpt2-124m --gpu cpu-avx2-2c \
  --calibration /nonexistent/cal.yaml
expect_rc 2 "calibrate bad flag" -- "$SW" calibrate --quik
expect_grep "did you mean '--quick'" "$TMP/err" "flag suggestion"
expect_rc 2 "calibrate bad threads" -- "$SW" calibrate --threads two
expect_rc 2 "calibrate bad format" -- "$SW" calibrate --format xml
expect_rc 1 "calibrate unwritable --save" -- "$SW" calibrate --quick --save /nonexistent/d/c.yaml
expect_rc 0 "calibrate --help" -- "$SW" calibrate --help
expect_grep "--calibration FILE" <("$SW" estimate --help) "estimate --help lists --calibration"
cli_finish
