# tests/gpu/summarize.py, which tests/gpu/check.sh runs on the GPU machine to turn each run's
# files into a summary line. Checked on real files from a tiny CPU training run and a tiny
# generation run: `train` (median tokens/s of the steps after the 5th, its stderr TPS line,
# MFU from the given peak, the advisor's figures), `generate`, `gen-ratio`. Each is run with
# PyYAML and with the script's own reader (the GPU machine's python may lack PyYAML), and the
# two must print the same.
source "$(dirname "$0")/lib.sh"
REL=${SW_RELEASE:-$SW}
SUM=tests/gpu/summarize.py

# The script with PyYAML hidden: its fallback reader of scalewise's block maps.
no_yaml() {
  "$PY" -c 'import runpy, sys
sys.modules["yaml"] = None  # "import yaml" raises ImportError
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$SUM" "$@"
}

cat >"$TMP/train.yaml" <<EOF
scalewise_plan: 1
name: sumtrain
task: train
hardware: {profile: cpu-avx2-2c}
model: {profile: tiny-gpt2}
data: {path: data/tinyshakespeare.txt, tokenizer: byte, val_fraction: 0.1}
train: {steps: 8, seq: 32, lr: 3.0e-3, log_every: 1, out_dir: $TMP/run}
strategy: {device: cpu, precision: fp32, optimizer: adamw, micro_batch: 4, threads: 1}
EOF
expect_rc 0 "tiny training run" -- "$REL" run "$TMP/train.yaml"

# train: the median tokens/s of steps 6..8 (metrics.jsonl), MFU at a stated peak.
want=$(jq -s '[.[] | select(.step > 5) | .tokens_per_s] | sort | .[1]' "$TMP/run/metrics.jsonl")
expect_rc 0 "summarize.py train" -- "$PY" "$SUM" train "$TMP/run" 1e9 2e12
cp "$TMP/out" "$TMP/train.line"
expect_grep '^[0-9]+ tokens/s \(median of steps > 5; predicted [0-9]+\), MFU [0-9.]+% \(scalewise.s own figure [0-9.]+%, predicted [0-9.]+%\), peak memory measured [0-9.]+ GiB, predicted [0-9.]+ GiB .*, backend cpu$' \
  "$TMP/train.line" "summarize.py train line"
got=$(sed -n 's/^TPS //p' "$TMP/err")
awk -v a="$got" -v b="$want" 'BEGIN { exit !(b > 0 && a - b < 0.001 && b - a < 0.001) }' && ok ||
  fail "summarize.py train: TPS $got, expected the median of steps 6-8, $want"
mfu=$(sed -n 's/.*MFU \([0-9.]*\)%.*/\1/p' "$TMP/train.line" | head -n 1)
awk -v m="$mfu" -v t="$want" 'BEGIN { d = m - 100 * t * 1e9 / 2e12; exit !(d < 0.06 && d > -0.06) }' &&
  ok || fail "summarize.py train: MFU $mfu%, expected tokens/s x 1e9 / 2e12 = $want x 5e-4"
expect_rc 0 "summarize.py train without PyYAML" -- no_yaml train "$TMP/run" 1e9 2e12
cmp -s "$TMP/out" "$TMP/train.line" && ok ||
  fail "summarize.py train: its own reader prints '$(cat "$TMP/out")', PyYAML '$(cat "$TMP/train.line")'"

# generate: a tiny generation from that run's checkpoint.
cat >"$TMP/gen.yaml" <<EOF
scalewise_plan: 1
name: sumgen
task: infer
hardware: {profile: cpu-avx2-2c}
model: {profile: tiny-gpt2}
data: {tokenizer: byte}
infer: {checkpoint: $TMP/run/ckpt_8.safetensors, prompt: "First Citizen:", batch: 2, prompt_len: 14, gen_len: 8, temperature: 0}
strategy: {device: cpu, weights: fp32, threads: 1}
EOF
expect_rc 0 "tiny generation run" -- "$REL" run "$TMP/gen.yaml" --out "$TMP/gen"
expect_rc 0 "summarize.py generate" -- "$PY" "$SUM" generate "$TMP/gen/report.yaml"
cp "$TMP/out" "$TMP/gen.line"
expect_grep '^prefill [0-9]+ tokens/s, decode [0-9]+ tokens/s \([0-9.]+ ms per decode step, predicted [0-9.]+\), TTFT [0-9.]+ ms \(predicted [0-9.]+\).*, device cpu$' \
  "$TMP/gen.line" "summarize.py generate line"
expect_rc 0 "summarize.py generate without PyYAML" -- no_yaml generate "$TMP/gen/report.yaml"
cmp -s "$TMP/out" "$TMP/gen.line" && ok ||
  fail "summarize.py generate: its own reader prints '$(cat "$TMP/out")', PyYAML '$(cat "$TMP/gen.line")'"

# gen-ratio: a report against itself is 1.00 on both; against one with twice the speeds, 0.50.
expect_rc 0 "summarize.py gen-ratio" -- "$PY" "$SUM" gen-ratio "$TMP/gen/report.yaml" "$TMP/gen/report.yaml"
expect_grep '^prefill 1\.00, decode 1\.00$' "$TMP/out" "gen-ratio of a report with itself"
awk '/^  prefill_tokens_per_s: |^  decode_tokens_per_s: / { $2 = 2 * $2; print "  " $1 " " $2; next } { print }' \
  "$TMP/gen/report.yaml" >"$TMP/double.yaml"
expect_rc 0 "summarize.py gen-ratio, doubled" -- no_yaml gen-ratio "$TMP/gen/report.yaml" "$TMP/double.yaml"
expect_grep '^prefill 0\.50, decode 0\.50$' "$TMP/out" "gen-ratio against twice the speeds"

cli_finish
