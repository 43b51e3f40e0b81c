#!/usr/bin/env bash
# Runs every test program twice (release build and ASan+UBSan build) and every script in
# tests/cli/ against the sanitizer-built binary, adds up the counts each one prints
# ("name: N passed, N failed"), and ends with the total line "N passed, N failed".
# A program that crashes or prints no count line counts as one failure.
set -u
cd "$(dirname "$0")/.."
B=${SW_BUILD:-build}
A=${SW_ABUILD:-build/asan}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export SW_FAKE_GPU_DIR="$PWD/$B/fake_gpu"
total_pass=0; total_fail=0; failed_names=()
log=$(mktemp -d); trap 'rm -rf "$log"' EXIT

run_one() { # label, command...
  local label=$1; shift
  local out="$log/out"
  "$@" >"$out" 2>&1; local rc=$?
  local line; line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  local p=0 f=0
  if [ -n "$line" ]; then
    p=$(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ -z "$line" ] && [ "$rc" -eq 0 ]; then f=1; echo "no count line from $label"; fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  if [ "$f" -ne 0 ]; then
    failed_names+=("$label"); echo "FAIL $label (rc=$rc)"; tail -n 40 "$out" | sed 's/^/    /'
  else
    printf 'ok   %-40s %s\n' "$label" "${line##*: }"
  fi
}

for t in "$B"/tests/test_*; do
  [ -x "$t" ] || continue
  run_one "$(basename "$t")" "$t"
done
for t in "$A"/tests/test_*; do
  [ -x "$t" ] || continue
  run_one "$(basename "$t") [asan]" "$t"
done
for s in tests/cli/*.sh; do
  [ -f "$s" ] || continue
  [ "$(basename "$s")" = lib.sh ] && continue   # sourced by the others, not a test
  run_one "cli/$(basename "$s")" env SW="$PWD/$A/scalewise" SW_RELEASE="$PWD/scalewise" bash "$s"
done

[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
