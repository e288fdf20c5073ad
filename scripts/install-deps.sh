#!/usr/bin/env bash
# Install every Debian 12 package capheads needs to build, test and run its demo. Idempotent and
# quiet: packages already present are not touched, so a second run costs a second.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools
      check libsubunit-dev libopenblas-dev libpcre2-dev libutf8proc-dev libcjson-dev libssl-dev
      python3 python3-h5py python3-numpy valgrind
      clang libclang-rt-14-dev   # clang + its libFuzzer runtime: tokenizer fuzz tests (skipped without)
      slurm-wlm munge)           # a throw-away localhost Slurm cluster: tests/slurm (skipped without)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
