#!/usr/bin/env bash
# Quick start 2: install what is missing, build, and run every test: unit, golden
# (parity with transformers), integration (the real server over HTTP with the OpenAI
# client), then the unit, golden and integration suites again under AddressSanitizer +
# UBSan, the server included (the golden parity through the CLI binary runs once, in the
# Release stage). ThreadSanitizer has its own script, scripts/tsan.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
"$root/scripts/install-deps.sh"
"$root/scripts/fetch-tokenizers.sh"
"$root/scripts/build.sh"
if [ -f tests/integration/server/package.json ]; then
  (cd tests/integration/server && { npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent; })
fi
# ctest runs as many test processes as there are cores, and each one's OpenMP team wants every
# core: with libgomp's default spin-waiting, a barrier waits for a thread the other process has
# the core of (one test took 101 s in a -j2 run and 0.7 s alone). Sleeping waiters fix that
# (Release stage 340 -> 149 s); no test depends on the wait policy.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
if [ "${HOTSWAP_SKIP_SANITIZERS:-0}" != "1" ]; then
  echo "== tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
  # -O1 keeps the 2-core CI run short: the sanitized build is most of test-all's time, and a
  # file compiles in about half the time it takes at -O3 (http_session.cc: 90 -> 50 s); the
  # sanitized build went from 1,444 to 741 s and its tests from 437 to 532 s. Sanitizer
  # reports still name the functions. -fexpensive-optimizations keeps the Release build's
  # arithmetic: GCC fuses a * b + c into an FMA in C++ (-ffp-contract=fast) only in that pass,
  # which -O1 alone skips.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_SANITIZE=ON \
    -DCMAKE_CXX_FLAGS_RELEASE="-O1 -fexpensive-optimizations -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELEASE="-O1 -fexpensive-optimizations -DNDEBUG" \
    -DHOTSWAP_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build build-asan -j"$(nproc)"
  # The integration suites start the sanitized server: a use-after-free, a leak at exit or
  # undefined behaviour makes it exit non-zero, which every suite asserts against.
  # Under the sanitizers the disconnect sweep takes every 32nd byte offset and the soak 300
  # requests (the Release stage takes all 2,048 offsets and 2,000 requests), and every
  # deadline of the suites is scaled for the slower server. The golden parity through the
  # binaries (cli_parity, masked_cli_parity) runs once, in the Release stage.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  HOTSWAP_DISCONNECT_OFFSET_STEP=32 HOTSWAP_TEST_TIME_SCALE=10 HOTSWAP_SOAK_REQUESTS=300 \
    ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L "unit|golden|integration" -E "^(masked_)?cli_parity$" --timeout 900
fi
echo "all tests passed in $(( $(date +%s) - start )) s"
