#!/usr/bin/env bash
# Builds what tests/gpu/check.sh runs into .gpubundle/, for a GPU machine that has the CUDA
# driver, cuBLASLt and python3 with torch but not the -dev packages the build needs (libyaml,
# json-c). The GPU machine then runs, from a copy of the working tree with .gpubundle carried:
#   tests/gpu/bundle.sh --install && SW_CHECK_PREBUILT=1 tests/gpu/check.sh
# --install copies the binaries into place (./scalewise, build/) and prints the exports that
# make the carried libraries, the machine's own cuBLASLt and NCCL, and this copy's profiles/
# found: eval its output. (test_comm's torchrun cases fail there: the MPI plugin is not
# bundled, the machine having no MPI.)
# Built without the optional OpenBLAS, hwloc and ncurses (their libraries may be missing
# there); the GPU code paths do not use them. The build tree is kept in /tmp/sw-gpu-bundle so a
# second bundle only rebuilds what changed.
set -eu
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUNDLE=$ROOT/.gpubundle

if [ "${1:-}" = --install ]; then
  mkdir -p build/gpu build/tests
  cp -p "$BUNDLE/scalewise" ./scalewise
  cp -p "$BUNDLE/libscalewise-cuda.so" build/
  cp -p "$BUNDLE"/gpu/* build/gpu/
  cp -p "$BUNDLE/test_comm" build/tests/
  libs=$BUNDLE/lib
  # The machine's libgomp when it has one (torch's processes share the environment).
  ldconfig -p | grep -q 'libgomp.so.1 ' || libs=$libs:$BUNDLE/lib-gomp
  for name in libcublasLt.so.13 libnccl.so.2; do
    if ! ldconfig -p | grep -q "$name "; then
      f=$(find /usr/local /opt -name "$name" 2>/dev/null | head -n 1)
      [ -n "$f" ] && libs=$libs:$(dirname "$f")
    fi
  done
  echo "export LD_LIBRARY_PATH=$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
  echo "export SCALEWISE_CUDA_PLUGIN=$ROOT/build/libscalewise-cuda.so"
  # The binaries' built-in profiles path is the build tree's, not this copy's.
  echo "export SCALEWISE_PROFILES=$ROOT/profiles"
  exit 0
fi

SRC=/tmp/sw-gpu-bundle
mkdir -p "$SRC"
# The working tree as it is (uncommitted fixes included), mtimes kept for make.
# (tar, not rsync: the CI image has no rsync; files deleted here linger there, harmlessly.)
tar -C "$ROOT" --exclude ./build --exclude ./scalewise --exclude ./.gpubundle --exclude ./.git \
  -cf - . | tar -C "$SRC" -xpf -
make -C "$SRC" -j"$(nproc)" HAVE_OPENBLAS= HAVE_HWLOC= HAVE_NCURSES= \
  scalewise build/libscalewise-cuda.so build/tests/test_comm \
  $(cd "$SRC" && ls tests/gpu/*.c tests/gpu/*.cu | sed 's|^tests/gpu/\(.*\)\.c*u*$|build/gpu/\1|')
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/gpu" "$BUNDLE/lib" "$BUNDLE/lib-gomp"
cp -p "$SRC/scalewise" "$SRC/build/libscalewise-cuda.so" "$SRC/build/tests/test_comm" "$BUNDLE/"
cp -p "$SRC"/build/gpu/* "$BUNDLE/gpu/"
for lib in libyaml-0.so.2 libjson-c.so.5; do
  cp -L "$(ldconfig -p | awk -v n="$lib" '$1 == n { print $NF; exit }')" "$BUNDLE/lib/"
done
cp -L "$(ldconfig -p | awk '$1 == "libgomp.so.1" { print $NF; exit }')" "$BUNDLE/lib-gomp/"
mkdir -p "$ROOT/.git/info"; grep -qx '/.gpubundle/' "$ROOT/.git/info/exclude" 2>/dev/null ||
  echo '/.gpubundle/' >>"$ROOT/.git/info/exclude"
du -sh "$BUNDLE"
