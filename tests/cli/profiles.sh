# `scalewise profiles`: the text table, JSON and YAML parse and hold every bundled profile
# name with the right sizes; --kind selects sections; bad flags and a bad profile directory
# exit 2 with a message.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
unset SCALEWISE_PROFILES
MODELS="gpt2-124m gpt2-350m gpt2-774m gpt2-1.5b llama-2-7b llama-2-13b llama-2-70b llama-3-8b
llama-3-70b llama-3.1-8b llama-3.1-70b llama-3.1-405b mistral-7b qwen2.5-0.5b qwen2.5-7b
tiny-gpt2 tiny-llama"
HW_FILES=$(ls "$ROOT/profiles/hardware/" 2>/dev/null | grep -c '\.yaml$')

have_py_yaml=0
"$PY" -c 'import yaml, json' 2>/dev/null && have_py_yaml=1

# check_tree FORMAT FILE: the file parses as FORMAT and its "models" list holds every name
# above, with the published sizes of two of them; "hardware" has one entry per file.
check_tree() {
  local fmt=$1 file=$2
  if [ "$have_py_yaml" -eq 1 ]; then
    if "$PY" - "$fmt" "$file" "$MODELS" "$HW_FILES" <<'EOF'
import json, sys, yaml
fmt, path, names, hw_files = sys.argv[1], sys.argv[2], sys.argv[3].split(), int(sys.argv[4])
with open(path) as f:
    d = json.load(f) if fmt == "json" else yaml.safe_load(f)
models = {m["name"]: m for m in d["models"]}
missing = [n for n in names if n not in models]
assert not missing, "missing models: %s" % missing
assert [m["name"] for m in d["models"]] == sorted(models), "models not sorted"
l3 = models["llama-3-8b"]
assert (l3["arch"], l3["layers"], l3["hidden"], l3["heads"], l3["kv_heads"]) == \
    ("llama", 32, 4096, 32, 8), l3
assert l3["params"] == 8030261248, l3["params"]   # Meta-Llama-3-8B as Hugging Face counts it
assert models["gpt2-124m"]["params"] == 124439808, models["gpt2-124m"]["params"]
assert len(d["hardware"]) == hw_files, (len(d["hardware"]), hw_files)
for h in d["hardware"]:
    assert h["name"] and h["nodes"] >= 1 and h["device_memory_bytes"] > 0, h
EOF
    then ok; else fail "profiles --format $fmt: content check failed"; fi
  elif [ "$fmt" = json ] && command -v jq >/dev/null 2>&1; then
    if jq -e '.models | map(.name) | index("llama-3-8b") != null' "$file" >/dev/null; then ok
    else fail "profiles --format json: no llama-3-8b"; fi
  else
    echo "note: no "$PY" yaml module; $fmt output checked by grep only"
    expect_grep 'llama-3\.1-405b' "$file" "profiles --format $fmt"
  fi
}

# Text table.
expect_rc 0 "profiles (text)" -- "$SW" profiles
cp "$TMP/out" "$TMP/text"
expect_grep '^Model profiles \(17\)' "$TMP/text" "text: model header"
expect_grep '^Hardware profiles \(' "$TMP/text" "text: hardware header"
for n in $MODELS; do
  expect_grep "^  ${n//./\\.} " "$TMP/text" "text: row for $n"
done
expect_grep '^  llama-3\.1-405b +llama +126 +16384 +128 +8 +128256 ' "$TMP/text" "text: 405b sizes"

# JSON and YAML.
expect_rc 0 "profiles --format json" -- "$SW" profiles --format json
cp "$TMP/out" "$TMP/all.json"
check_tree json "$TMP/all.json"
expect_rc 0 "profiles --format=yaml" -- "$SW" profiles --format=yaml
cp "$TMP/out" "$TMP/all.yaml"
check_tree yaml "$TMP/all.yaml"

# --kind selects the sections.
expect_rc 0 "profiles --kind model --format json" -- "$SW" profiles --kind model --format json
if grep -q '"hardware"' "$TMP/out"; then fail "--kind model printed hardware"; else ok; fi
expect_grep '"name": "tiny-llama"' "$TMP/out" "--kind model: tiny-llama"
expect_rc 0 "profiles --kind hardware" -- "$SW" profiles --kind=hardware
if grep -q 'Model profiles' "$TMP/out"; then fail "--kind hardware printed models"; else ok; fi
expect_grep "^Hardware profiles \\($HW_FILES\\)" "$TMP/out" "--kind hardware: count"
expect_rc 0 "profiles --help" -- "$SW" profiles --help
expect_grep 'usage: scalewise profiles' "$TMP/out" "--help: usage"

# Bad flags: exit 2, with a suggestion where one is close.
expect_rc 2 "bad --kind" -- "$SW" profiles --kind modle
expect_grep "did you mean 'model'" "$TMP/err" "bad --kind: suggestion"
expect_rc 2 "bad --format" -- "$SW" profiles --format xml
expect_grep "xml" "$TMP/err" "bad --format: names the value"
expect_rc 2 "unknown flag" -- "$SW" profiles --formt json
expect_grep "did you mean '--format'" "$TMP/err" "unknown flag: suggestion"
expect_rc 2 "missing value" -- "$SW" profiles --format
expect_rc 2 "positional" -- "$SW" profiles llama-3-8b

# A profile directory of one's own; a broken profile is bad input with its position.
mkdir -p "$TMP/prof/models" "$TMP/prof/hardware"
printf 'scalewise_model: 1\narch: llama\nlayers: 2\nhidden: 64\nheads: 4\nvocab: 256\n' \
  >"$TMP/prof/models/my-model.yaml"
expect_rc 0 "own profile dir" -- env SCALEWISE_PROFILES="$TMP/prof" "$SW" profiles --kind model
expect_grep '^  my-model +llama +2 +64 +4 ' "$TMP/out" "own profile listed"
printf 'scalewise_model: 1\narch: llama\nlayers: 2\nhiden: 64\nheads: 4\nvocab: 256\n' \
  >"$TMP/prof/models/broken.yaml"
expect_rc 2 "broken profile" -- env SCALEWISE_PROFILES="$TMP/prof" "$SW" profiles --kind model
expect_grep "broken.yaml:4:1: unknown key 'hiden'.*did you mean 'hidden'" "$TMP/err" \
  "broken profile: position and suggestion"
expect_rc 2 "missing profile dir" -- env SCALEWISE_PROFILES="$TMP/nope" "$SW" profiles
expect_grep "SCALEWISE_PROFILES" "$TMP/err" "missing profile dir: message"

cli_finish
