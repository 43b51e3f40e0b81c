#!/usr/bin/env bash
# kernels/cpu/flash.c compiles its task functions for AVX-512, AVX2 and the baseline (GCC's
# target_clones) and promises the same bits from each. Here it is built once per instruction set
# with -DKC_CLONES= (one version, for what -march says), linked with tests/tools/flash_hash.c
# against build/libsw.a, and every build this CPU can run must print the same hashes as the
# library's own cloned build. Needs gcc (skips without it).
. "$(dirname "$0")/lib.sh"
B=${SW_BUILD:-build}
CC=${CC:-gcc}
if ! command -v "$CC" >/dev/null 2>&1 || [ ! -f "$B/libsw.a" ]; then
  echo "skipped: $CC or $B/libsw.a missing"
  cli_finish
  exit $?
fi
flags="-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -fopenmp -I."
libs="$B/libsw.a -lm -ldl -lpthread $(pkg-config --libs openblas 2>/dev/null) $(pkg-config --libs hwloc 2>/dev/null)"
build() { # build NAME [flash.c flags...]: $TMP/NAME, flash.c built with those flags when given
  local name=$1; shift
  local obj=
  if [ $# -gt 0 ]; then
    $CC $flags "$@" -c kernels/cpu/flash.c -o "$TMP/$name.o" 2>"$TMP/err" || return 1
    obj="$TMP/$name.o"
  fi
  $CC $flags -o "$TMP/$name" tests/tools/flash_hash.c $obj $libs 2>>"$TMP/err"
}
if build lib; then ok; else fail "flash_hash against $B/libsw.a: $(tail -n 3 "$TMP/err")"; fi
"$TMP/lib" >"$TMP/lib.out" 2>&1 && [ "$(wc -l <"$TMP/lib.out")" = 3 ] && ok ||
  fail "flash_hash (library build): $(head -c 300 "$TMP/lib.out")"
cat "$TMP/lib.out"
ran=0
for isa in "baseline x86-64" "avx2 x86-64-v3 avx2" "avx512 x86-64-v4 avx512f"; do
  set -- $isa
  if [ -n "${3:-}" ] && ! grep -qw "$3" /proc/cpuinfo; then
    echo "flash_clones.sh: $1 not checked: this CPU has no $3"
    continue
  fi
  if build "$1" -march="$2" -DKC_CLONES=; then ok; else fail "flash.c with -march=$2: $(tail -n 3 "$TMP/err")"; continue; fi
  "$TMP/$1" >"$TMP/$1.out" 2>&1
  if cmp -s "$TMP/lib.out" "$TMP/$1.out"; then ok; ran=$((ran + 1))
  else fail "flash.c built for $1 (-march=$2) gives other bits than the library's: $(diff "$TMP/lib.out" "$TMP/$1.out" | head -n 4 | tr '\n' '|')"; fi
done
echo "flash_clones.sh: $ran instruction sets agree with the library's cloned build"
cli_finish
