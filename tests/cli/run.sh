# `scalewise run` through the binary: a short run of a tiny plan (outputs and their keys),
# learning on the bundled corpus (a stated val-loss margin, deterministic), Ctrl-C (exit 130
# with a checkpoint) and --resume reaching the same final loss as an uninterrupted run, a
# kill -9 leaving a loadable checkpoint, and refused plans (exit 2 with the reason).
source "$(dirname "$0")/lib.sh"
REL=${SW_RELEASE:-$SW}

plan() { # name steps [extra train keys] [strategy keys] [hardware] [data path]
  cat >"$TMP/$1.yaml" <<EOF
scalewise_plan: 1
name: $1
task: train
hardware: {${5:-profile: cpu-avx2-2c}}
model: {profile: tiny-gpt2}
data: {path: ${6:-$TMP/data}, tokenizer: byte, val_fraction: 0.1}
train: {steps: $2, seq: 32, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 5, eval_batches: 4, log_every: 1, out_dir: $TMP/$1${3:+, $3}}
strategy: {device: cpu, precision: fp32, optimizer: adamw, micro_batch: 8, grad_accum: 1, threads: 2${4:+, $4}}
EOF
}

# Shards prepared once for the runs below (the short run prepares its own from the text).
expect_rc 0 "data prepare" -- "$REL" data prepare --input data/tinyshakespeare.txt --out "$TMP/data"

# 1. A short run: exit 0, every metrics line is JSON with the keys, report.yaml has both sides.
plan short 20 "eval_every: 10" "" "" data/tinyshakespeare.txt
expect_rc 0 "short run" -- "$SW" run "$TMP/short.yaml"
expect_grep "final loss" "$TMP/out" "run summary"
n=$(wc -l <"$TMP/short/metrics.jsonl")
[ "$n" -eq 20 ] && ok || fail "metrics.jsonl has $n lines, expected 20"
if jq -e -s 'all(.[]; has("step") and has("loss") and has("lr") and has("grad_norm") and
      has("tokens_per_s") and has("ms_per_step") and has("mfu") and has("peak_rss_bytes"))
      and (map(select(has("val_loss"))) | length == 2)' "$TMP/short/metrics.jsonl" >/dev/null
then ok; else fail "metrics.jsonl lines lack keys: $(head -n 2 "$TMP/short/metrics.jsonl")"; fi
"$PY" - "$TMP/short/report.yaml" <<'PY' && ok || fail "report.yaml lacks measured/predicted"
import sys, yaml
r = yaml.safe_load(open(sys.argv[1]))
keys = ["weights", "gradients", "optimizer", "activations", "workspace", "total"]
m, p = r["measured"]["per_device_bytes"], r["predicted"]["per_device_bytes"]
assert all(k in m and k in p for k in keys), r
assert r["measured"]["peak_rss_bytes"] > 0 and r["measured"]["tokens_per_s"] > 0
assert m["weights"] == p["weights"] and m["optimizer"] == p["optimizer"]
assert r["final_step"] == 20 and not r["interrupted"]
PY
[ -f "$TMP/short/ckpt_20.safetensors" ] && grep -qx "ckpt_20.safetensors" "$TMP/short/latest.txt" \
  && ok || fail "final checkpoint or latest.txt missing"
[ -f "$TMP/short/data/train.bin" ] && ok || fail "data not prepared into out_dir/data"
# A second run reuses the prepared data.
expect_rc 0 "rerun" -- "$SW" run "$TMP/short.yaml" --steps 2
expect_grep "data: using" "$TMP/err" "prepared data reused"

# 2. Learning: 60 steps lower the validation loss from ln(256) = 5.55 below 3.4 (measured
#    3.115 on x86-64 with 2 threads; the margin covers other BLAS/compilers).
plan learn 60 "eval_every: 60"
expect_rc 0 "learning run" -- "$REL" run "$TMP/learn.yaml" --quiet
v=$(jq -s 'map(select(has("val_loss")))[-1].val_loss' "$TMP/learn/metrics.jsonl")
awk -v v="$v" 'BEGIN { exit !(v < 3.4) }' && ok || fail "val loss after 60 steps is $v, expected < 3.4"
# Deterministic: the same plan again gives the same losses, bit for bit.
expect_rc 0 "learning rerun" -- "$REL" run "$TMP/learn.yaml" --quiet --out "$TMP/learn2"
cmp -s <(jq -c '[.step, .loss, .val_loss]' "$TMP/learn/metrics.jsonl") \
       <(jq -c '[.step, .loss, .val_loss]' "$TMP/learn2/metrics.jsonl") \
  && ok || fail "two runs of one plan differ"

# 3. Ctrl-C: exit 130 with a checkpoint; --resume reaches the uninterrupted final loss.
#    (The release binary: 150 steps under ASan would take too long for make test.)
plan full 150
expect_rc 0 "uninterrupted run" -- "$REL" run "$TMP/full.yaml" --quiet
plan intr 150
"$REL" run "$TMP/intr.yaml" --quiet >"$TMP/intr.out" 2>"$TMP/intr.err" &
pid=$!
for _ in $(seq 1 400); do
  [ "$( (wc -l <"$TMP/intr/metrics.jsonl") 2>/dev/null || echo 0)" -ge 5 ] && break
  sleep 0.05
done
kill -INT "$pid"; wait "$pid"; rc=$?
[ "$rc" -eq 130 ] && ok || fail "interrupted run: exit $rc, expected 130: $(tail -n 3 "$TMP/intr.err")"
expect_grep "checkpoint saved: .*ckpt_[0-9]+\.safetensors" "$TMP/intr.err" "interrupt message"
stopped=$(tail -n 1 "$TMP/intr/metrics.jsonl" | jq .step)
[ "$stopped" -lt 150 ] && ok || fail "the run was not interrupted mid-way (step $stopped)"
expect_rc 0 "resume" -- "$REL" run "$TMP/intr.yaml" --resume "$TMP/intr"
expect_grep "resumed from .* at step $stopped" "$TMP/err" "resume note"
a=$(tail -n 1 "$TMP/full/metrics.jsonl" | jq -c '[.step, .loss]')
b=$(tail -n 1 "$TMP/intr/metrics.jsonl" | jq -c '[.step, .loss]')
[ "$a" = "$b" ] && ok || fail "resumed final $b differs from uninterrupted $a"
n=$(wc -l <"$TMP/intr/metrics.jsonl")
[ "$n" -eq 150 ] && ok || fail "resumed metrics.jsonl has $n lines, expected 150 (no repeats)"

# 4. kill -9 while checkpointing every step: the latest checkpoint still loads.
plan k9 300 "checkpoint_every: 1"
"$REL" run "$TMP/k9.yaml" --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 400); do
  [ "$( (wc -l <"$TMP/k9/metrics.jsonl") 2>/dev/null || echo 0)" -ge 20 ] && break
  sleep 0.05
done
kill -9 "$pid"; wait "$pid" 2>/dev/null
expect_rc 0 "resume after kill -9" -- "$REL" run "$TMP/k9.yaml" --resume "$TMP/k9" --steps 25 --quiet
ls "$TMP"/k9/ckpt_*.safetensors.tmp* >/dev/null 2>&1 && fail "temporary checkpoint left behind" || ok

# 5. A checkpoint of another plan is refused, naming the setting.
plan other 5 "" "" ; sed -i 's/lr: 3.0e-3/lr: 1.0e-3/' "$TMP/other.yaml"
expect_rc 2 "other plan's checkpoint" -- "$SW" run "$TMP/other.yaml" --resume "$TMP/short"
expect_grep "train.lr 0.003 \(checkpoint\) vs 0.001" "$TMP/err" "plan mismatch message"

# 6. Refused plans: exit 2 with the reason.
plan gpu 5 "" "" "profile: h100-sxm, gpus_per_node: 1"; sed -i 's/device: cpu/device: cuda/' "$TMP/gpu.yaml"
expect_rc 2 "cuda plan" -- "$SW" run "$TMP/gpu.yaml"
expect_grep "CUDA backend is unavailable: (no NVIDIA GPU|the CUDA backend is not built)|CUDA backend loaded, but" "$TMP/err" "cuda refusal"
plan tp 5 "" "tp: 2"
expect_rc 2 "tp 2 plan" -- "$SW" run "$TMP/tp.yaml"
expect_grep "tensor parallelism.*tp 2" "$TMP/err" "tp refusal"
# 7. Out of memory (fault injection, SW_FAIL_ALLOC_AT): the bytes, the category and the
# advisor's suggestion; some early allocation is the model's weights.
found=0
for n in $(seq 1 12); do
  env SW_FAIL_ALLOC_AT=$n "$REL" run "$TMP/short.yaml" --out "$TMP/oom$n" --quiet >/dev/null 2>"$TMP/oom.err"
  if grep -q "cannot allocate .* for weights .*the advisor suggests micro_batch" "$TMP/oom.err"; then
    found=1; break
  fi
done
[ "$found" -eq 1 ] && ok || fail "out of memory: no 'cannot allocate ... for weights ...; the advisor suggests' message: $(cat "$TMP/oom.err")"
expect_rc 2 "missing plan" -- "$SW" run "$TMP/nope.yaml"
expect_rc 2 "bad flag" -- "$SW" run "$TMP/short.yaml" --stepz 3
expect_grep "did you mean '--steps'" "$TMP/err" "flag suggestion"
cli_finish
