#!/usr/bin/env bash
# End-to-end load test: makes the model if needed, starts a fresh `hotswap serve` on a free
# port, waits for /ready, runs the concurrency sweep (load_tests/loadtest.mjs), stops the
# server and draws the chart. Results: load_tests/results/<timestamp>/{results.json,chart.png,
# server.log}.
#
#   load_tests/run.sh [--preset smollm2-135m] [--model DIR] [--bin build/bin/hotswap]
#                     [--serve-args "--kv-cache-tokens 32768 ..."] [--out DIR]
#                     [--engine-bench [--engine-context N]]
#                     [loadtest options: --levels 1,4,16 --duration 20 --prompt uniform:32:256 ...]
# --engine-bench first runs build/bin/engine_throughput_bench (decode at batch = each level,
# no server running) and compares each level's generated tokens/s with it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
preset=smollm2-135m
model=""
bin="${HOTSWAP_BIN:-$root/build/bin/hotswap}"
serve_args=""
out=""
engine_bench=0
engine_context=128
bench_bin="${HOTSWAP_BENCH_BIN:-}"
levels="1,2,4,8,16,32,64"
pass=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --preset) preset=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --serve-args) serve_args=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --engine-bench) engine_bench=1; shift ;;
    --engine-context) engine_context=$2; shift 2 ;;
    --bench-bin) bench_bin=$2; shift 2 ;;
    --levels) levels=$2; pass+=("$1" "$2"); shift 2 ;;
    -h|--help)
      sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      node "$here/loadtest.mjs" --help | sed -n '2,$p'
      exit 0 ;;
    *) pass+=("$1"); shift ;;
  esac
done

[[ -x "$bin" ]] || { echo "run.sh: no hotswap binary at $bin (build it: ninja -C build hotswap, or pass --bin)" >&2; exit 1; }
command -v node >/dev/null || { echo "run.sh: node (>= 18) is needed" >&2; exit 1; }
[[ -n "$model" ]] || model="/tmp/hotswap-bench/$preset"
if [[ ! -f "$model/model.safetensors" && ! -f "$model/model.safetensors.index.json" ]]; then
  echo "run.sh: generating the $preset model in $model"
  "$bin" make-demo-model --out "$model" --preset "$preset"
fi
[[ -n "$out" ]] || out="$here/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
adapter_dir=$(mktemp -d /tmp/hotswap-loadtest-adapters.XXXXXX)

if [[ $engine_bench == 1 ]]; then
  [[ -n "$bench_bin" ]] || bench_bin="$(dirname "$bin")/engine_throughput_bench"
  [[ -x "$bench_bin" ]] || { echo "run.sh: no engine_throughput_bench at $bench_bin (ninja -C build engine_throughput_bench, or --bench-bin)" >&2; exit 1; }
  echo "run.sh: engine reference: $bench_bin, decode at batch $levels, context $engine_context (no server running)"
  # 10 s of steps per batch: the median step is then a sustained rate, like the server's window.
  "$bench_bin" --root "$(dirname "$model")" --presets "$(basename "$model")" --batches "$levels" --prompts "" \
    --context "$engine_context" --min-time 10 --max-steps 1000 | tee "$out/engine_bench.txt"
  pass+=(--engine-reference "$out/engine_bench.txt")
fi

server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() { stop_server; rm -rf "$adapter_dir"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2086  # serve_args is a list of flags
"$bin" serve --model "$model" --port 0 --adapter-dir "$adapter_dir" $serve_args \
  >"$out/server.stdout" 2>"$out/server.log" &
server_pid=$!
url=""
for _ in $(seq 1 600); do
  url=$(grep -o 'listening on http://[0-9.:]*' "$out/server.stdout" 2>/dev/null | head -1 | sed 's/listening on //' || true)
  [[ -n "$url" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "run.sh: hotswap serve exited; see $out/server.log" >&2; tail -20 "$out/server.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$url" ]] || { echo "run.sh: no 'listening on' line within 60 s; see $out/server.log" >&2; exit 1; }
echo "run.sh: hotswap serve (pid $server_pid) at $url, model $model, results in $out"

# The sweep waits for /ready itself.
node "$here/loadtest.mjs" --url "$url" --model-dir "$model" --out "$out" --server-pid "$server_pid" "${pass[@]}"
stop_server
python3 "$here/chart.py" "$out/results.json" "$out/chart.png"
echo "run.sh: done: $out/results.json $out/chart.png"
