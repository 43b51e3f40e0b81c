# Sourced by tests/cli/*.sh: check helpers that count, and a final count line.
# $SW is the scalewise binary under test (ASan+UBSan build in make test).
cli_pass=0; cli_fail=0
SW=${SW:-./scalewise}
# Debian's python3 has python3-yaml (setup.sh installs it); another python3 on PATH may not.
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
TMP=${KEEP_TMP:-$(mktemp -d)}; [ -n "$KEEP_TMP" ] || trap 'rm -rf "$TMP"' EXIT
ok()   { cli_pass=$((cli_pass+1)); }
fail() { cli_fail=$((cli_fail+1)); echo "FAIL: $*" >&2; }
# expect_rc RC DESCRIPTION -- command...   (stdout to $TMP/out, stderr to $TMP/err)
expect_rc() {
  local want=$1 what=$2; shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?
  if [ "$rc" -eq "$want" ]; then ok; else fail "$what: exit $rc, expected $want: $(tail -n 3 "$TMP/err")"; fi
}
# expect_grep PATTERN FILE DESCRIPTION
expect_grep() { if grep -qE -- "$1" "$2"; then ok; else fail "$3: '$1' not in $2: $(head -c 600 "$2")"; fi; }
# ckdiff A B TOL WHAT: two checkpoints agree (tests/cli/ckdiff.py: F32 within TOL absolute,
# other dtypes equal).
ckdiff() {
  if "$PY" "$(dirname "${BASH_SOURCE[0]}")/ckdiff.py" "$1" "$2" "$3" >"$TMP/ck" 2>&1; then ok
  else fail "$4: $(tail -n 2 "$TMP/ck")"; fi
}
# same_losses A B WHAT: two 4-step metrics.jsonl files, losses and val losses within 1e-5
# relative.
same_losses() {
  if paste <(jq -r '[.step, .loss, (.val_loss // 0)] | @tsv' "$1") \
           <(jq -r '[.step, .loss, (.val_loss // 0)] | @tsv' "$2") |
     awk 'function d(a, b) { return (a > b ? a - b : b - a) / (b < 0 ? -b : b + 1e-30) }
          $1 != $4 || d($2, $5) > 1e-5 || d($3, $6) > 1e-5 { bad = 1 } END { exit bad || NR != 4 }'
  then ok; else fail "$3: losses differ: $(paste -d'|' "$1" "$2" | head -n 4)"; fi
}
cli_finish() { echo "$(basename "$0"): $cli_pass passed, $cli_fail failed"; [ "$cli_fail" -eq 0 ]; }
