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
cli_finish() { echo "$(basename "$0"): $cli_pass passed, $cli_fail failed"; [ "$cli_fail" -eq 0 ]; }
