#!/usr/bin/env bash
# The command-line contract other tools rely on (flag names, JSON keys, plan keys), replicated
# from the shared contract checker so the project does not depend on it: estimate with every
# knob combination the contract lists must exit 0 and carry the contract's keys; yaml and text
# formats work; a bad value exits 2; plan -o writes the plan keys and explain reads the plan.
. "$(dirname "$0")/lib.sh"
gpu=h100-sxm
model="--layers 4 --hidden 256 --heads 8 --kv-heads 4 --ffn 688 --vocab 1000 --arch llama"
check_est() { # label flags...
  local label=$1; shift
  if "$SW" estimate "$@" --format json >"$TMP/e.json" 2>"$TMP/err"; then
    "$PY" - "$TMP/e.json" "$label" <<'PY' && ok || fail "estimate ($label) keys"
import json,sys
d=json.load(open(sys.argv[1])); label=sys.argv[2]
need=["params_total","per_device_bytes","host_bytes","fits","flops_per_step","step_time_s","tokens_per_s","mfu","ttft_s","decode_s_per_token","reasons"]
miss=[k for k in need if k not in d]
pd=d.get("per_device_bytes",{})
miss+=["per_device_bytes."+k for k in ["weights","gradients","optimizer","activations","kv_cache","workspace","overhead","total"] if k not in pd]
if "host_bytes" in d and "total" not in d["host_bytes"]: miss.append("host_bytes.total")
if miss: print(f"estimate ({label}) lacks keys: {', '.join(miss)}"); sys.exit(1)
if not isinstance(d["fits"],bool): print("fits is not a boolean"); sys.exit(1)
if not isinstance(d["reasons"],list): print("reasons is not a list"); sys.exit(1)
PY
  else
    fail "estimate ($label) exited non-zero: $(tail -n1 "$TMP/err")"
  fi
}
while IFS='|' read -r label flags; do
  [ -z "$label" ] && continue
  # shellcheck disable=SC2086
  check_est "$label" $model --gpu "$gpu" $flags
done <<EOF2
train-basic|--task train --precision bf16-mixed --optimizer adamw --seq 512 --micro-batch 2 --global-batch 8
train-all-knobs|--task train --gpus-per-node 8 --precision fp16-mixed --optimizer adamw8bit --seq 512 --micro-batch 1 --grad-accum 4 --dp 2 --tp 2 --pp 2 --pp-interleave 2 --zero 1 --sequence-parallel --recompute selective --attention flash
train-zero3-offload|--task train --gpus-per-node 4 --precision bf16-mixed --optimizer adamw --seq 512 --micro-batch 1 --global-batch 4 --zero 3 --offload-optimizer --offload-params --recompute full
train-lora|--task train --precision bf16 --optimizer adamw --seq 256 --micro-batch 1 --global-batch 1 --lora-rank 8
train-opts|--task train --precision fp32 --optimizer lion --seq 256 --micro-batch 1 --global-batch 1
train-opts2|--task train --precision tf32 --optimizer adafactor --seq 256 --micro-batch 1 --global-batch 1
train-opts3|--task train --precision fp32 --optimizer sgd-momentum --seq 256 --micro-batch 1 --global-batch 1 --achieved-tflops 100
infer-basic|--task infer --weights bf16 --kv-dtype bf16 --batch 4 --prompt-len 128 --gen-len 64
infer-quant-tp|--task infer --gpus-per-node 2 --tp 2 --weights int4 --kv-dtype int8 --batch 1 --prompt-len 128 --gen-len 64
EOF2

"$SW" estimate $model --gpu "$gpu" --task infer --batch 1 --prompt-len 16 --gen-len 16 --format yaml >"$TMP/e.yaml" 2>/dev/null \
  && "$PY" -c "import yaml,sys; yaml.safe_load(open(sys.argv[1]))" "$TMP/e.yaml" && ok || fail "estimate --format yaml"
"$SW" estimate $model --gpu "$gpu" --task infer --batch 1 --prompt-len 16 --gen-len 16 --format text >/dev/null 2>&1 && ok || fail "estimate --format text"
expect_rc 2 "bad --precision value" -- "$SW" estimate $model --gpu "$gpu" --task train --precision fp13

if "$SW" plan $model --gpu "$gpu" --task train --seq 512 --global-batch-tokens 65536 --top 3 -o "$TMP/p.yaml" >/dev/null 2>"$TMP/err"; then
  "$PY" - "$TMP/p.yaml" <<'PY' && ok || fail "plan keys"
import yaml,sys
p=yaml.safe_load(open(sys.argv[1]))
need_top=["hardware","model","task","strategy","estimate"]
miss=[k for k in need_top if k not in p]
st=p.get("strategy",{}) or {}
miss+=["strategy."+k for k in ["device","precision","optimizer","micro_batch","grad_accum","recompute","attention","dp","tp","pp","zero","offload_optimizer","offload_params"] if k not in st]
if "fits" not in (p.get("estimate") or {}): miss.append("estimate.fits")
if p.get("task")=="train" and "steps" not in (p.get("train") or {}): miss.append("train.steps")
if miss: print("plan lacks keys: "+", ".join(miss)); sys.exit(1)
PY
  expect_rc 0 "explain on a written plan" -- "$SW" explain "$TMP/p.yaml"
else fail "plan -o failed: $(tail -n1 "$TMP/err")"; fi
cli_finish
