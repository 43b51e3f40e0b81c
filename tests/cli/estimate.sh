#!/usr/bin/env bash
# scalewise estimate: exit codes (bad flag, bad value, invalid combination: 2; no fit: 0),
# the JSON keys of the estimate contract, YAML output, --flag=value, and text output sanity.
. "$(dirname "$0")/lib.sh"
M="--layers 4 --hidden 256 --heads 8 --kv-heads 4 --ffn 688 --vocab 1000 --arch llama"
json_has() { # FILE KEY... : every key (dotted path) exists in the JSON file
  "$PY" - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    x = d
    for part in k.split('.'):
        if not isinstance(x, dict) or part not in x:
            print("missing key", k); sys.exit(1)
        x = x[part]
PY
}
json_val() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$1" "$2"; }

# --- exit codes
expect_rc 2 "unknown flag" -- $SW estimate $M --gpu h100-sxm --precison bf16-mixed
expect_grep "did you mean '--precision'" "$TMP/err" "unknown flag suggests the closest"
expect_rc 2 "bad precision" -- $SW estimate $M --gpu h100-sxm --task train --precision fp13
expect_grep "\-\-precision" "$TMP/err" "bad value names the flag"
expect_rc 2 "bad integer" -- $SW estimate $M --gpu h100-sxm --micro-batch two
expect_grep "\-\-micro-batch" "$TMP/err" "bad integer names the flag"
expect_rc 2 "missing value" -- $SW estimate $M --gpu h100-sxm --seq
expect_rc 2 "unknown gpu profile" -- $SW estimate $M --gpu h100-sxmm
expect_rc 2 "no model" -- $SW estimate --gpu h100-sxm
expect_rc 2 "global batch not a multiple" -- $SW estimate $M --gpu h100-sxm --gpus-per-node 1 --micro-batch 4 --global-batch 6
expect_grep "multiple" "$TMP/err" "global batch error says why"
expect_rc 2 "tp does not divide the heads" -- $SW estimate $M --gpu h100-sxm --gpus-per-node 3 --tp 3
expect_rc 2 "switch with a value" -- $SW estimate $M --gpu h100-sxm --sequence-parallel=yes
expect_rc 0 "help" -- $SW estimate --help
expect_grep "--micro-batch" "$TMP/out" "help lists the flags"

# --- JSON contract keys, --flag=value form
expect_rc 0 "estimate json" -- $SW estimate $M --gpu=h100-sxm --gpus-per-node=1 --task=train --seq=512 --micro-batch=2 --global-batch=8 --format=json
cp "$TMP/out" "$TMP/e.json"
if json_has "$TMP/e.json" params_total per_device_bytes.weights per_device_bytes.gradients \
   per_device_bytes.optimizer per_device_bytes.activations per_device_bytes.kv_cache \
   per_device_bytes.workspace per_device_bytes.overhead per_device_bytes.total host_bytes.total \
   fits flops_per_step step_time_s tokens_per_s mfu ttft_s decode_s_per_token reasons; then ok
else fail "estimate json lacks contract keys"; fi
[ "$(json_val "$TMP/e.json" "['fits']")" = "True" ] && ok || fail "small model should fit"

# grad accumulation from --global-batch: 8 = 2 x 1 x 4
expect_rc 0 "estimate yaml" -- $SW estimate $M --gpu h100-sxm --gpus-per-node 1 --task train --seq 512 --micro-batch 2 --global-batch 8 --format yaml
"$PY" -c "import yaml,sys; yaml.safe_load(open(sys.argv[1]))" "$TMP/out" && ok || fail "yaml output does not parse"

# --- a plan that does not fit is a result, not an error
expect_rc 0 "70B on one GPU: no fit, exit 0" -- $SW estimate --model llama-3-70b --gpu h100-sxm --gpus-per-node 1 --task train --format json
cp "$TMP/out" "$TMP/nofit.json"
[ "$(json_val "$TMP/nofit.json" "['fits']")" = "False" ] && ok || fail "70B on one GPU should not fit"

# --- inference
expect_rc 0 "inference json" -- $SW estimate $M --gpu h100-sxm --gpus-per-node 2 --tp 2 --task infer --weights int4 --kv-dtype int8 --batch 1 --prompt-len 128 --gen-len 64 --format json
cp "$TMP/out" "$TMP/inf.json"
"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['ttft_s']>0 and d['decode_s_per_token']>0 else 1)" "$TMP/inf.json" && ok || fail "inference latencies should be positive"

# --- text output
expect_rc 0 "estimate text" -- $SW estimate --model gpt2-124m --gpu h100-sxm --gpus-per-node 1 --task train --seq 1024 --micro-batch 8
expect_grep "weights" "$TMP/out" "text shows the memory split"
expect_grep "GiB" "$TMP/out" "text shows GiB"
expect_grep "fits: yes" "$TMP/out" "text says it fits"
expect_grep "tokens/s" "$TMP/out" "text shows throughput"
expect_grep "MFU" "$TMP/out" "text shows MFU"
expect_rc 0 "estimate text, inference" -- $SW estimate --model gpt2-124m --gpu h100-sxm --gpus-per-node 1 --task infer --batch 2
expect_grep "time to first token" "$TMP/out" "inference text shows TTFT"

# --- CPU-only hardware implies the CPU; --device cuda there is an error
expect_rc 0 "cpu profile" -- $SW estimate --model tiny-gpt2 --gpu cpu-avx2-2c --task train --seq 64 --format json
expect_rc 2 "cuda on a CPU-only profile" -- $SW estimate --model tiny-gpt2 --gpu cpu-avx2-2c --device cuda
cli_finish
