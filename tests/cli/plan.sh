#!/usr/bin/env bash
# scalewise plan and explain: exit codes, the JSON shape of a search result, ranked plans that
# fit, -o writing a plan that explain (and plan_load) reads back, nothing-fits output, the launch
# commands of a multi-node plan (printed, written, read back as edited, key errors), and text
# output sanity.
. "$(dirname "$0")/lib.sh"
M="--layers 4 --hidden 256 --heads 8 --kv-heads 4 --ffn 688 --vocab 1000 --arch llama"
py() { "$PY" - "$@"; }

# --- exit codes
expect_rc 2 "unknown flag" -- $SW plan $M --gpu h100-sxm --topp 3
expect_grep "did you mean '--top'" "$TMP/err" "unknown plan flag suggests --top"
expect_rc 2 "bad --top" -- $SW plan $M --gpu h100-sxm --top zero
expect_rc 2 "bad --headroom" -- $SW plan $M --gpu h100-sxm --headroom 2
expect_rc 2 "strategy flag refused" -- $SW plan $M --gpu h100-sxm --tp 2
expect_rc 2 "bad task" -- $SW plan $M --gpu h100-sxm --task tune
expect_rc 0 "help" -- $SW plan --help
expect_grep "--global-batch-tokens" "$TMP/out" "plan help lists its flags"
expect_rc 0 "help via scalewise help" -- $SW help explain
expect_rc 2 "explain without a file" -- $SW explain
expect_rc 2 "explain a missing file" -- $SW explain "$TMP/none.yaml"

# --- JSON shape, ranking, fit with headroom
expect_rc 0 "plan json" -- $SW plan $M --gpu h100-sxm --task train --seq 512 --global-batch-tokens 65536 --top 3 --format json
cp "$TMP/out" "$TMP/p.json"
py "$TMP/p.json" <<'PY' && ok || fail "plan json shape/properties"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("plans", "any_fits", "candidates_evaluated", "elapsed_s", "reasons"):
    assert k in d, k
assert d["any_fits"] is True and 1 <= len(d["plans"]) <= 3
prev = None
for i, p in enumerate(d["plans"]):
    assert p["rank"] == i + 1
    st, e = p["strategy"], p["estimate"]
    for k in ("device", "precision", "optimizer", "micro_batch", "grad_accum", "dp", "tp", "pp", "zero"):
        assert k in st, k
    assert e["fits"] is True
    assert e["per_device_bytes"]["total"] > 0
    if prev is not None:
        assert prev >= e["tokens_per_s"] - 1e-6, "not sorted"
    prev = e["tokens_per_s"]
    # the global batch target of 65536 tokens = 128 sequences of 512
    assert st["micro_batch"] * st["grad_accum"] * st["dp"] == 128, st
PY

# --- -o writes a plan that loads back; explain shows stored vs current
expect_rc 0 "plan -o" -- $SW plan --model gpt2-124m --gpu h100-sxm --gpus-per-node 1 --task train --seq 1024 --tokens 100000000 -o "$TMP/p.yaml"
expect_grep "wrote plan 1 to" "$TMP/out" "plan says where it wrote"
expect_grep "GPU-hours" "$TMP/out" "--tokens adds GPU-hours"
[ -s "$TMP/p.yaml" ] && ok || fail "no plan file written"
py "$TMP/p.yaml" <<'PY' && ok || fail "plan file keys"
import yaml, sys
p = yaml.safe_load(open(sys.argv[1]))
for k in ("hardware", "model", "task", "strategy", "estimate"):
    assert k in p, k
assert p["train"]["steps"] > 0
assert p["estimate"]["fits"] is True
PY
expect_rc 0 "explain the written plan" -- $SW explain "$TMP/p.yaml"
expect_grep "stored estimate vs current" "$TMP/out" "explain compares stored and current"
expect_grep "reasons:" "$TMP/out" "explain prints reasons"
expect_rc 0 "explain json" -- $SW explain "$TMP/p.yaml" --format json
py "$TMP/out" <<'PY' && ok || fail "explain json keys"
import json, sys
d = json.load(open(sys.argv[1]))
assert "estimate" in d and "stored_estimate" in d and "strategy" in d
assert abs(d["estimate"]["per_device_bytes"]["total"] - d["stored_estimate"]["per_device_bytes"]["total"]) <= 1e-6 * d["estimate"]["per_device_bytes"]["total"]
PY
expect_rc 2 "explain a bad flag" -- $SW explain "$TMP/p.yaml" --formt json

# --- nothing fits: exit 0, closest candidates, reasons name GPUs; -o refuses
expect_rc 0 "70B on one GPU" -- $SW plan --model llama-3-70b --gpu h100-sxm --gpus-per-node 1 --task train --format json --top 2
cp "$TMP/out" "$TMP/nofit.json"
py "$TMP/nofit.json" <<'PY' && ok || fail "nothing-fits result"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["any_fits"] is False and len(d["plans"]) >= 1
assert any("GPUs" in r for r in d["reasons"]), d["reasons"]
PY
expect_rc 1 "-o when nothing fits" -- $SW plan --model llama-3-70b --gpu h100-sxm --gpus-per-node 1 --task train -o "$TMP/no.yaml"

# --- inference: 70B on 8 GPUs picks tensor parallel
expect_rc 0 "70B inference on 8 GPUs" -- $SW plan --model llama-3-70b --gpu h100-sxm --gpus-per-node 8 --task infer --batch 4 --format json
py "$TMP/out" <<'PY' && ok || fail "inference plan uses TP"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["any_fits"] and d["plans"][0]["strategy"]["tp"] > 1
PY

# --- launch commands: a multi-node plan says how to start it (mpirun, srun, torchrun)
expect_rc 0 "plan on 2 nodes" -- $SW plan --model gpt2-124m --gpu h100-sxm --gpus-per-node 8 --nodes 2 --task train --top 1 -o "$TMP/mn.yaml"
expect_grep "^launch plan 1: [0-9]+ processes" "$TMP/out" "plan text: launch header"
expect_grep "mpirun +mpirun -np [0-9]+ .*scalewise run $TMP/mn.yaml" "$TMP/out" "plan text: mpirun"
expect_grep "torchrun +torchrun --nnodes=" "$TMP/out" "plan text: torchrun"
py "$TMP/mn.yaml" <<'PY' && ok || fail "launch section of a 2-node plan"
import yaml, sys
p = yaml.safe_load(open(sys.argv[1]))
s, l = p["strategy"], p["launch"]
n = s["dp"] * s["tp"] * s["pp"]
assert l["processes"] == n and l["per_node"] == min(n, 8) and l["nodes"] == -(-n // 8), l
path = sys.argv[1]
assert l["mpirun"].startswith("mpirun -np %d " % n) and l["mpirun"].endswith("scalewise run " + path), l
assert "--ntasks-per-node=%d --gpus-per-node=%d" % (l["per_node"], l["per_node"]) in l["srun"], l
assert "MASTER_ADDR=" in l["srun"] and "MASTER_PORT=29500" in l["srun"], l
assert "--nproc-per-node=%d" % l["per_node"] in l["torchrun"] and "--no-python scalewise run" in l["torchrun"], l
assert "nproc" not in l  # --nproc is for CPU plans on one node
if l["nodes"] > 1:
    assert "-H <host1>:8,<host2>:" in l["mpirun"] and "--rdzv-endpoint=<host1>:29500" in l["torchrun"], l
PY
expect_rc 0 "explain shows the plan's launch" -- $SW explain "$TMP/mn.yaml"
expect_grep "^launch \\(from the plan\\):" "$TMP/out" "explain: launch from the plan"
# Host names filled in by hand are kept (the section is read back as written).
sed -i 's/<host1>/gpu01/g; s/<host2>/gpu02/g' "$TMP/mn.yaml"
expect_rc 0 "explain json of an edited launch" -- $SW explain "$TMP/mn.yaml" --format json
py "$TMP/out" <<'PY' && ok || fail "explain json launch"
import json, sys
l = json.load(open(sys.argv[1]))["launch"]
assert l["processes"] > 1 and ("gpu01" in l["mpirun"] or l["nodes"] == 1), l
PY
# One GPU: nothing to launch.
expect_rc 0 "explain json of a one-GPU plan" -- $SW explain "$TMP/p.yaml" --format json
py "$TMP/out" <<'PY' && ok || fail "one-GPU plan has no launch"
import json, sys
assert json.load(open(sys.argv[1]))["launch"] is None
PY
! grep -q "^launch:" "$TMP/p.yaml" && ok || fail "one-GPU plan file has a launch section"
# Unknown keys in the section are errors with a place and a suggestion.
sed 's/^  per_node:/  per_nod:/' "$TMP/mn.yaml" >"$TMP/bad_launch.yaml"
expect_rc 2 "unknown launch key" -- $SW explain "$TMP/bad_launch.yaml"
expect_grep "bad_launch.yaml:[0-9]+:[0-9]+: .*per_nod.*did you mean 'per_node'" "$TMP/err" "unknown launch key: place and suggestion"

# --- text output
expect_rc 0 "plan text" -- $SW plan --model gpt2-124m --gpu h100-sxm --gpus-per-node 8 --task train --top 3
expect_grep "^rank" "$TMP/out" "text has a header"
expect_grep "tokens/s" "$TMP/out" "text has throughput"
expect_grep "reasons for plan 1" "$TMP/out" "text has the reasons"
cli_finish
