#!/usr/bin/env bash
# llama.cpp against Hotswap on the same random Llama-3.2-1B-shaped bf16 model, same threads,
# same machine (issue 7: "compare with llama.cpp ... aim to beat it").
#
#   bench/llama_cpp_compare.sh [--cycles 2] [--threads 2] [--flash-attn auto|on|off]
#
# 1. fetches llama.cpp: the prebuilt CPU libraries of the npm package @node-llama-cpp/linux-x64
#    (libllama + ggml with one CPU backend per x86 micro-architecture, picked at run time) and,
#    for llama.h/ggml headers of the same release, the llama.cpp source bundle inside the npm
#    package node-llama-cpp; both into .cache/llama-npm (gitignored);
# 2. builds bench/llama_cpp_compare.cc (C API driver) against them and bench/roofline.cc's
#    bandwidth probe (from the existing build/ tree; `engine_throughput_bench` is built if absent);
# 3. converts /tmp/hotswap-bench/llama-3.2-1b (created by engine_throughput_bench when missing)
#    to GGUF with scripts/tools/safetensors_to_gguf.py (once);
# 4. runs llama.cpp and Hotswap alternately: L H L H ... L (--cycles pairs, then a closing
#    llama.cpp run), because this machine's memory bandwidth drifts 35-75 GB/s minute to
#    minute; each Hotswap run is compared with the mean of the llama.cpp runs just before and
#    after it, and bench/llama_cpp_compare.py prints the ratios hotswap / llama.cpp.
# Logs go to .cache/llama-npm/runs/<timestamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CYCLES=2
THREADS=2
FA=auto
PRECISION=auto
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cycles) CYCLES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --flash-attn) FA=$2; shift 2 ;;
    --matmul-precision) PRECISION=$2; shift 2 ;;
    *) echo "usage: $0 [--cycles N] [--threads N] [--flash-attn auto|on|off] [--matmul-precision auto|f32|bf16]" >&2; exit 2 ;;
  esac
done

NLC_VERSION=3.22.1
CACHE=$ROOT/.cache/llama-npm
BINS=$CACHE/package/bins/linux-x64
SRC=$CACHE/llama.cpp
MODEL_DIR=/tmp/hotswap-bench/llama-3.2-1b
GGUF=/tmp/hotswap-bench/gguf/llama-3.2-1b-bf16.gguf
mkdir -p "$CACHE"

# 1. llama.cpp binaries and headers from npm
if [[ ! -f $BINS/libllama.v0.5.0.so ]]; then
  (cd "$CACHE" && npm pack --silent "@node-llama-cpp/linux-x64@$NLC_VERSION" >/dev/null &&
    tar xzf "node-llama-cpp-linux-x64-$NLC_VERSION.tgz")
fi
if [[ ! -f $SRC/include/llama.h ]]; then
  (cd "$CACHE" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null && mkdir -p nlc &&
    tar xzf "node-llama-cpp-$NLC_VERSION.tgz" -C nlc && rm -rf llama.cpp &&
    git clone -q nlc/package/llama/gitRelease.bundle llama.cpp 2>/dev/null)
fi
LLAMA_RELEASE=$(python3 -c "import json;print(json.load(open('$CACHE/nlc/package/llama/binariesGithubRelease.json'))['release'])" 2>/dev/null || echo '?')

# 2. the driver
if [[ ! -x build/bin/engine_throughput_bench ]]; then
  cmake --build build -j2 --target engine_throughput_bench
fi
DRIVER=$CACHE/build/llama_cpp_compare
mkdir -p "$CACHE/build"
if [[ ! -x $DRIVER || bench/llama_cpp_compare.cc -nt $DRIVER || build/bench/libhs_bench_roofline.a -nt $DRIVER ]]; then
  g++ -O2 -std=c++20 -fopenmp -I"$SRC/include" -I"$SRC/ggml/include" -Ibench bench/llama_cpp_compare.cc \
    build/bench/libhs_bench_roofline.a build/engine/src/kernels/libhs_kernels.a \
    -L"$BINS" -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so -Wl,-rpath,"$BINS" -o "$DRIVER"
fi

# 3. the model, in both formats
if [[ ! -f $MODEL_DIR/model.safetensors ]]; then
  build/bin/engine_throughput_bench --presets llama-3.2-1b --batches 1 --prompts 128
fi
if [[ ! -f $GGUF || $MODEL_DIR/model.safetensors -nt $GGUF ]]; then
  mkdir -p "$(dirname "$GGUF")"
  python3 scripts/tools/safetensors_to_gguf.py "$MODEL_DIR" "$GGUF"
fi

# 4. alternate runs
RUN=$CACHE/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
{
  echo "commit $(git rev-parse --short HEAD); llama.cpp release $LLAMA_RELEASE (node-llama-cpp $NLC_VERSION prebuilt);" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs; threads $THREADS; flash-attn $FA; hotswap matmul precision $PRECISION"
} | tee "$RUN/info.txt"
run_llama() {
  echo "== $(date +%T) llama.cpp run $1 (load average $(cut -d' ' -f1 /proc/loadavg))"
  OMP_WAIT_POLICY=passive OMP_NUM_THREADS=$THREADS "$DRIVER" --model "$GGUF" --backend-dir "$BINS" \
    --threads "$THREADS" --context 128 --batches 1,16 --prompt 512 --flash-attn "$FA" > "$RUN/llama-$1.txt"
  grep -E '^(memory|  +[0-9])' "$RUN/llama-$1.txt"
}
run_hotswap() {
  echo "== $(date +%T) hotswap run $1 (load average $(cut -d' ' -f1 /proc/loadavg))"
  # The engine's own OpenMP settings (libgomp's default wait policy), as `hotswap serve` runs.
  # --matmul-precision auto (the engine's default) = bf16 for this bf16 model: the arithmetic
  # llama.cpp uses for it (bf16 products); f32 compares Hotswap's exact mode.
  OMP_NUM_THREADS=$THREADS build/bin/engine_throughput_bench --presets llama-3.2-1b \
    --context 128 --batches 1,16 --prompts 512 --matmul-precision "$PRECISION" > "$RUN/hotswap-$1.txt"
  grep -E '^(range|  +[0-9])' "$RUN/hotswap-$1.txt"
}
for ((i = 0; i < CYCLES; i++)); do
  run_llama "$i"
  run_hotswap "$i"
done
run_llama "$CYCLES"
python3 bench/llama_cpp_compare.py "$RUN" | tee "$RUN/summary.txt"
