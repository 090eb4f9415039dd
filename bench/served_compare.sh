#!/usr/bin/env bash
# Served throughput, Hotswap against llama.cpp's llama-server (issue 16, item 5): the same
# random Llama-3.2-1B-shaped weights, the same client (load_tests/loadtest.mjs, token-id
# prompts, streaming, ignore_eos), the same threads, servers run one at a time and interleaved
# L H L H ... L, because this machine's memory bandwidth drifts minute to minute. Each Hotswap
# run is compared with the mean of the llama-server runs just before and after it.
#
#   bench/served_compare.sh [--weights bf16,q8,q4] [--levels 1,8,32] [--duration 20]
#                           [--cycles 1] [--threads 2] [--no-prefill]
#
# Per weight format and run: a closed-loop sweep at --levels (prompts uniform 32..256 tokens,
# outputs uniform 64..256: generated tokens/s seen by the clients), then one client sending
# 512-token prompts for one token (time to first token, median). Ratios > 1: Hotswap ahead.
#
# llama-server is not in the prebuilt npm package: it is built once into
# ~/.cache/llama-server (outside the repository; never in CI) from the upstream source
# snapshot the `fetch` tool gives for JohannesGaessler/llama.cpp, commit b97ebdc
# (LLAMA_SRC=/path/to/a/checkout to use another). The GGUF files (bf16 converted by
# scripts/tools/safetensors_to_gguf.py; q8_0 and q4_0 by llama-quantize from it) go to
# /tmp/hotswap-bench/gguf. Results: .cache/served-compare/<timestamp>/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

WEIGHTS=bf16
LEVELS=1,8,32
DURATION=20
CYCLES=1
THREADS=2
PREFILL=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --weights) WEIGHTS=$2; shift 2 ;;
    --levels) LEVELS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --cycles) CYCLES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-prefill) PREFILL=0; shift ;;
    *) echo "usage: $0 [--weights bf16,q8,q4] [--levels 1,8,32] [--duration S] [--cycles N] [--threads N] [--no-prefill]" >&2; exit 2 ;;
  esac
done

LLAMA_COMMIT=b97ebdc
LLAMA_CACHE=${LLAMA_CACHE:-$HOME/.cache/llama-server}
LLAMA_BUILD=$LLAMA_CACHE/build-noamx
LLAMA_SERVER=$LLAMA_BUILD/bin/llama-server
LLAMA_QUANTIZE=$LLAMA_BUILD/bin/llama-quantize
# ggml's CPU backend for this machine's ISA, without AMX: GGML_NATIVE turns AMX on for a
# Sapphire Rapids CPU, and in this VM its int8 path crashes (segmentation fault in the warm-up
# of every q8_0/q4_0 model, b97ebdc). Without it ggml repacks q4_0/q8_0 for its AVX-512 kernels,
# llama.cpp's fastest working configuration here. LLAMA_CPU_FLAGS overrides the list.
LLAMA_CPU_FLAGS=${LLAMA_CPU_FLAGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_INT8=OFF}
MODEL_DIR=/tmp/hotswap-bench/llama-3.2-1b
GGUF_DIR=/tmp/hotswap-bench/gguf
HOTSWAP=$ROOT/build/bin/hotswap
MAX_LEVEL=$(tr ',' '\n' <<<"$LEVELS" | sort -n | tail -1)

# 1. llama-server, built once.
if [[ ! -x $LLAMA_SERVER || ! -x $LLAMA_QUANTIZE ]]; then
  src=${LLAMA_SRC:-$LLAMA_CACHE/src}
  if [[ ! -f $src/CMakeLists.txt ]]; then
    mirror=/work/.mirror/JohannesGaessler+llama.cpp/repo
    [[ -d $mirror ]] || { echo "no llama.cpp source: fetch github:JohannesGaessler/llama.cpp, or set LLAMA_SRC" >&2; exit 1; }
    mkdir -p "$src"
    # The snapshot lacks some large files (models/, the web UI bundle); the server needs none.
    for p in CMakeLists.txt cmake common ggml include src tools vendor licenses LICENSE; do
      git --git-dir="$mirror" --work-tree="$src" checkout "$LLAMA_COMMIT" -- "$p" 2>/dev/null || true
    done
  fi
  # shellcheck disable=SC2086  # LLAMA_CPU_FLAGS is a list of flags
  cmake -S "$src" -B "$LLAMA_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_WEBUI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF $LLAMA_CPU_FLAGS >/dev/null
  cmake --build "$LLAMA_BUILD" -j"$(nproc)" --target llama-server llama-quantize
fi
[[ -x $HOTSWAP ]] || cmake --build build -j"$(nproc)" --target hotswap

# 2. The model, in every format asked for.
if [[ ! -f $MODEL_DIR/model.safetensors ]]; then
  "$HOTSWAP" make-demo-model --preset llama-3.2-1b --out "$MODEL_DIR"
fi
mkdir -p "$GGUF_DIR"
gguf_of() {  # weights format -> GGUF path (made when missing)
  local bf16=$GGUF_DIR/llama-3.2-1b-bf16.gguf
  if [[ ! -f $bf16 || $MODEL_DIR/model.safetensors -nt $bf16 ]]; then
    python3 scripts/tools/safetensors_to_gguf.py "$MODEL_DIR" "$bf16" >&2
  fi
  case "$1" in
    bf16) echo "$bf16" ;;
    q8|q4)
      local type=${1/q8/Q8_0}; type=${type/q4/Q4_0}
      local out=$GGUF_DIR/llama-3.2-1b-${type,,}.gguf
      [[ -f $out && $out -nt $bf16 ]] || "$LLAMA_QUANTIZE" "$bf16" "$out" "$type" "$THREADS" >&2
      echo "$out" ;;
    *) echo "unknown weights format $1" >&2; exit 2 ;;
  esac
}

RUN=$ROOT/.cache/served-compare/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN"
{
  echo "commit $(git rev-parse --short HEAD); llama.cpp $LLAMA_COMMIT (llama-server built from source);" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs; threads $THREADS;" \
    "levels $LEVELS, $DURATION s each; weights $WEIGHTS"
} | tee "$RUN/info.txt"

server_pid=""
stop_server() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

PORT=18931
# What answers 200 once a server is loaded and warmed up: llama-server's /health (503 until
# then; its /v1/models answers earlier), Hotswap's /ready.
ready_path() { if [[ $1 == hotswap ]]; then echo /ready; else echo /health; fi; }
# Starts one server on $PORT for weights $2; waits until it answers /v1/models.
start_server() {
  local who=$1 weights=$2 log=$3
  if [[ $who == llama ]]; then
    # One slot per client of the largest level, each with room for a prompt and its output.
    OMP_NUM_THREADS=$THREADS "$LLAMA_SERVER" -m "$(gguf_of "$weights")" --host 127.0.0.1 --port $PORT \
      -t "$THREADS" -tb "$THREADS" -np "$MAX_LEVEL" -c $((MAX_LEVEL * 800)) --no-webui >"$log" 2>&1 &
  else
    local w=auto
    [[ $weights == bf16 ]] || w=$weights
    OMP_NUM_THREADS=$THREADS "$HOTSWAP" serve --model "$MODEL_DIR" --host 127.0.0.1 --port $PORT \
      --engine-threads "$THREADS" --weights "$w" >"$log" 2>&1 &
  fi
  server_pid=$!
  for _ in $(seq 1 1200); do
    curl -sf "http://127.0.0.1:$PORT$(ready_path "$who")" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "$who server exited; see $log" >&2; tail -5 "$log" >&2; exit 1; }
    sleep 0.25
  done
  echo "$who server not ready in 300 s; see $log" >&2
  exit 1
}

# One run: the sweep, then the prefill probe, against a fresh server.
run_one() {
  local who=$1 weights=$2 tag=$3
  local dir=$RUN/$weights/$who-$tag
  mkdir -p "$dir"
  echo "== $(date +%T) $who $weights run $tag (load average $(cut -d' ' -f1 /proc/loadavg))"
  start_server "$who" "$weights" "$dir/server.log"
  # llama-server has no /ready and no Hotswap extensions: plain requests.
  # Client-side token counts, exact on both: Hotswap names each chunk's tokens (logprobs), and
  # llama-server streams one token per chunk (it reads OpenAI's integer logprobs as a bool).
  local count=(--logprobs on)
  [[ $who == hotswap ]] || count=(--logprobs off --one-token-per-chunk)
  local common=(--url "http://127.0.0.1:$PORT" --model-dir "$MODEL_DIR" --mix plain --adapters 0 --quiet
                --ready-path "$(ready_path "$who")" "${count[@]}" --server-pid "$server_pid")
  node load_tests/loadtest.mjs "${common[@]}" --levels "$LEVELS" --duration "$DURATION" --out "$dir/sweep" >/dev/null
  if [[ $PREFILL == 1 ]]; then
    node load_tests/loadtest.mjs "${common[@]}" --levels 1 --duration "$DURATION" --prompt fixed:512 --output fixed:1 \
      --out "$dir/prefill" >/dev/null
  fi
  stop_server
}

IFS=, read -ra FORMATS <<<"$WEIGHTS"
for weights in "${FORMATS[@]}"; do
  gguf_of "$weights" >/dev/null
  for ((i = 0; i < CYCLES; i++)); do
    run_one llama "$weights" "$i"
    run_one hotswap "$weights" "$i"
  done
  run_one llama "$weights" "$CYCLES"
done
python3 bench/served_compare.py "$RUN" | tee "$RUN/summary.txt"
