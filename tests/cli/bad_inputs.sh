#!/usr/bin/env bash
# Every bad input file of tests/data goes through the real binary: each must exit 2 (never crash,
# never 0) and print its expected "line:col: message" (from the file's "# expect:" first line,
# or the .expect file beside a JSON case).
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."

check_case() { # file, expected "L:C: text", command...
  local f=$1 want=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?
  if [ $rc -ne 2 ]; then fail "$f: exit $rc, expected 2: $(tail -n 2 "$TMP/err")"; return; fi
  local pos=${want%%: *} text=${want#*: }
  if [ "$pos" = "0:0" ]; then
    grep -qF -- "$text" "$TMP/err" && ok || fail "$f: '$text' not in: $(cat "$TMP/err")"
  else
    grep -qF -- ":$pos: " "$TMP/err" && grep -qF -- "$text" "$TMP/err" && ok ||
      fail "$f: expected '$want' in: $(cat "$TMP/err")"
  fi
}
expect_of() { sed -n '1s/^# expect: //p' "$1"; }

for f in tests/data/plans/bad_*.yaml; do
  check_case "$f" "$(expect_of "$f")" "$SW" explain "$f"
done
for f in tests/data/hw/bad_*.yaml; do
  check_case "$f" "$(expect_of "$f")" "$SW" probe --hardware "$f"
done
for f in tests/data/models/bad_*.yaml; do
  check_case "$f" "$(expect_of "$f")" "$SW" estimate --model "$f" --gpu h100-sxm --task infer
done
for f in tests/data/hf/bad_*.json; do
  check_case "$f" "$(cat "${f%.json}.expect")" "$SW" estimate --model-config "$f" --gpu h100-sxm --task infer
done
# Files that do not exist, directories, and an empty path.
expect_rc 2 "missing plan" -- "$SW" explain /nonexistent/plan.yaml
expect_rc 2 "directory as plan" -- "$SW" explain tests
expect_rc 2 "missing hardware report" -- "$SW" probe --hardware /nonexistent.yaml
expect_rc 2 "missing config.json" -- "$SW" estimate --model-config /nonexistent.json --gpu h100-sxm --task infer
expect_rc 2 "unknown model profile" -- "$SW" estimate --model llama3-8b --gpu h100-sxm --task infer
expect_grep "did you mean 'llama-3-8b'" "$TMP/err" "suggestion for a misspelt profile"
cli_finish
