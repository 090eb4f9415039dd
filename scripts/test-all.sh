#!/usr/bin/env bash
# Quick start 2: install what is missing, build, and run every test: unit, golden
# (parity with transformers), integration (the real server over HTTP with the OpenAI
# client), then the unit and golden suites again under AddressSanitizer + UBSan (the golden
# parity through the CLI binary runs once, in the Release stage).
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
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
if [ "${HOTSWAP_SKIP_SANITIZERS:-0}" != "1" ]; then
  echo "== tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
  # Release flags keep the 2-core CI run short; sanitizer reports still name the functions.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DHOTSWAP_SANITIZE=ON \
    -DHOTSWAP_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build build-asan -j"$(nproc)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L "unit|golden" -E "^cli_parity$" --timeout 900
fi
echo "all tests passed in $(( $(date +%s) - start )) s"
