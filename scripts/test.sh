#!/usr/bin/env bash
# Install dependencies, build (plain and with ASan/UBSan), and run every test.
#   scripts/test.sh            all tests, both builds
#   CH_TEST_SANITIZE=0 ...     skip the sanitizer build
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

echo "== build (release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs" >/dev/null
echo "== tests (release)"
ctest --test-dir build --output-on-failure -j "$jobs"

if [ "${CH_TEST_SANITIZE:-1}" = 1 ]; then
  echo "== build (ASan + UBSan)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCAPHEADS_CUDA=OFF \
        -DCAPHEADS_SANITIZE=address,undefined >/dev/null
  cmake --build build-asan -j "$jobs" >/dev/null
  echo "== tests (ASan + UBSan)"
  # Open MPI's own allocations are reported as leaks by LeakSanitizer; leaks in capheads code are
  # caught by the release build's valgrind-labelled tests instead. UBSan findings are fatal.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs"
fi
