#!/usr/bin/env bash
# pack.sh - build with CUDA and pack the build for the lent GPU machine (tests/gpu/README.md).
#   bash tests/gpu/pack.sh [BUILD_DIR]        (default build-cuda)
# The GPU machine has the driver, nvcc and a python with torch but none of Debian's packages and no
# network, and only the working tree plus a few git-ignored paths (64 MiB in all) travel there. So:
#   gpu-bundle/         the build with every runtime library it loads (/work/shared/tools/gpu-bundle)
#   gpu-bundle.tar.xz   that folder compressed: the one ignored path to carry
# Both are git-ignored. It checks that repository + tarball stay under the 64 MiB limit, runs the
# bundle's own self-test (system copies of its libraries hidden) and prints the command to run there.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-cuda}
tool=${GPU_BUNDLE:-/work/shared/tools/gpu-bundle}
limit=$((64 * 1024 * 1024))
export PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B "$build" -DCAPHEADS_CUDA=ON >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
[ -x "$build/tests/test_cuda_backend" ] || { echo "pack: $build has no test_cuda_backend (CUDA off?)" >&2; exit 1; }
"$tool" "$build" gpu-bundle
"$tool" --selftest gpu-bundle true
rm -f gpu-bundle.tar.xz
tar -cJf gpu-bundle.tar.xz gpu-bundle
# what travels: tracked files and untracked ones git does not ignore, plus the tarball
tree=$(git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
tarb=$(stat -c %s gpu-bundle.tar.xz)
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "pack: gpu-bundle.tar.xz $(mib "$tarb"); working tree $(mib "$tree"); together $(mib $((tree + tarb))) of $(mib $limit)"
[ $((tree + tarb)) -lt $limit ] || { echo "pack: over the 64 MiB that can travel" >&2; exit 1; }
echo "pack: carry [\"gpu-bundle.tar.xz\"] and run in the repository root on the GPU machine:"
echo '  bash tests/gpu/run_gpu_tests.sh --bundle gpu-bundle.tar.xz --out "$OUT"'
