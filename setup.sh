#!/usr/bin/env bash
# Installs the Debian 12 packages scalewise needs to build and test (when run as root; otherwise
# prints the exact apt-get line and stops), then builds ./scalewise.
#   ./setup.sh           install what is missing, build
#   ./setup.sh --check   only say what is missing (exit 1 if anything is)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential pkg-config libyaml-dev libjson-c-dev libhwloc-dev
          libopenblas-openmp-dev libncurses-dev openmpi-bin libopenmpi-dev
          python3 python3-yaml tmux jq)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "${1:-}" = "--check" ]; then
    echo "missing packages: ${missing[*]}"; exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: these packages are missing; install them with:"
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi
[ "${1:-}" = "--check" ] && { echo "all packages present"; exit 0; }
make -j"$(nproc)"
