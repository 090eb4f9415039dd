#!/usr/bin/env bash
# Builds every fuzz target of tests/fuzz as a libFuzzer binary (clang, -DHOTSWAP_FUZZ=ON,
# AddressSanitizer + UndefinedBehaviorSanitizer, in ./build-fuzz) and runs each in turn for a
# given number of seconds, niced, one at a time; writes a summary (target, runs, seconds,
# exec/s, new corpus entries, crashes) to a file.
#
#   scripts/fuzz.sh [-t SECONDS] [-o SUMMARY] [--keep-going] [--no-build] [TARGET ...]
#
#   -t SECONDS     per target (default 1800, the 30 minutes of issue 11)
#   -o SUMMARY     summary file (default build-fuzz/fuzz-summary.md; appended to)
#   --keep-going   libFuzzer's fork mode (-fork=1 -ignore_crashes=1 ...): record every crash
#                  and keep fuzzing until the time is up, instead of stopping at the first
#   --no-build     use the binaries already in build-fuzz
#   TARGET         e.g. http_session_fuzz or http_session (default: every tests/fuzz/*_fuzz.cc,
#                  http_session first, then request_codec, then the others)
#
# Per target: the working corpus is build-fuzz/fuzz-corpus/<target>/ (new entries land there;
# the seeds in the source tree are read, never written), crash/leak/timeout inputs go to
# build-fuzz/fuzz-artifacts/<target>/, the log to build-fuzz/fuzz-logs/<target>.log.
# Replay a crash with build-fuzz/bin/<target> <artifact>; add it to the target's seed folder
# so that the normal build's fuzz_replay_<target> test keeps it as a regression test.
#
# Every build step holds /tmp/hotswap-build.lock (one compile at a time on a shared machine);
# the fuzzers themselves run outside it, under nice -n 19.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=1800
summary=""
keep_going=0
build=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds="$2"; shift 2 ;;
    -o) summary="$2"; shift 2 ;;
    --keep-going) keep_going=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) t="$1"; [[ "$t" == *_fuzz ]] || t="${t}_fuzz"; targets+=("$t"); shift ;;
  esac
done

out="$root/build-fuzz"
summary="${summary:-$out/fuzz-summary.md}"
if [ ${#targets[@]} -eq 0 ]; then
  targets=(http_session_fuzz request_codec_fuzz)
  for f in tests/fuzz/*_fuzz.cc; do
    t=$(basename "$f" .cc)
    [[ " ${targets[*]} " == *" $t "* ]] || targets+=("$t")
  done
fi

if [ "$build" = 1 ]; then
  echo "== building ${targets[*]} (clang, libFuzzer, ASan + UBSan) in build-fuzz"
  start=$(date +%s)
  flock /tmp/hotswap-build.lock cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DHOTSWAP_FUZZ=ON -DHOTSWAP_BUILD_BENCHMARKS=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" >/dev/null
  flock /tmp/hotswap-build.lock cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
  echo "built in $(( $(date +%s) - start )) s"
fi

mkdir -p "$out/fuzz-corpus" "$out/fuzz-artifacts" "$out/fuzz-logs" "$(dirname "$summary")"
if [ ! -s "$summary" ]; then
  {
    echo "| date | target | seconds | runs | exec/s | new corpus entries | corpus size | crashes | first finding |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  } >"$summary"
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

failed=0
for t in "${targets[@]}"; do
  bin="$out/bin/$t"
  if [ ! -x "$bin" ]; then echo "fuzz.sh: $bin missing" >&2; failed=1; continue; fi
  corpus="$out/fuzz-corpus/$t"
  seeds="$out/fuzz-corpus/$t.seeds"
  artifacts="$out/fuzz-artifacts/$t"
  log="$out/fuzz-logs/$t.log"
  mkdir -p "$corpus" "$seeds" "$artifacts"
  # Seeds as CMake lists them (build-fuzz/fuzz-seeds/<t>.txt): folders are read as corpora,
  # single files are copied into a seed folder.
  seed_dirs=()
  if [ -f "$out/fuzz-seeds/$t.txt" ]; then
    while IFS= read -r s; do
      [ -n "$s" ] || continue
      if [ -d "$s" ]; then seed_dirs+=("$s"); elif [ -f "$s" ]; then
        cp -f "$s" "$seeds/$(echo "$s" | sed "s|^$root/||; s|/|_|g")"
      fi
    done <"$out/fuzz-seeds/$t.txt"
  fi
  before=$(find "$corpus" -type f | wc -l)
  # crash-/leak-/timeout-/oom- inputs are findings; slow-unit- ones (libFuzzer's
  # -report_slow_units) are only noted: a target's first input also pays its set-up.
  count_findings() { find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l; }
  crashes_before=$(count_findings)
  slow_before=$(find "$artifacts" -type f -name 'slow-unit-*' | wc -l)
  mode=()
  [ "$keep_going" = 1 ] && mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  echo "== $t: ${seconds} s (log: $log)"
  start=$(date +%s)
  set +e
  nice -n 19 "$bin" "${mode[@]}" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$seeds" "${seed_dirs[@]}" >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  after=$(find "$corpus" -type f | wc -l)
  crashes=$(( $(count_findings) - crashes_before ))
  slow=$(( $(find "$artifacts" -type f -name 'slow-unit-*' | wc -l) - slow_before ))
  # Runs: the final stats (plain mode) or the last status line (fork mode, and crashes).
  # (|| true: a pattern that matches nothing must not end the script under pipefail.)
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
  [ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
  execs=$(grep -o 'stat::average_exec_per_sec: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
  [ -n "$execs" ] || execs=$(grep -oE 'exec/s:? [0-9]+' "$log" | tail -1 | awk '{print $2}' || true)
  finding="-"
  if [ "$crashes" -gt 0 ] || [ "$rc" -ne 0 ]; then
    # The sanitizer's or libFuzzer's headline, and the first frame in the project's code.
    head_line=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|http_session_fuzz: |==[0-9]+== ?ERROR' "$log" | sed 's/|/\\|/g' | cut -c1-160 || true)
    frame=$(grep -m1 -E "#[0-9]+ .* in .*$root/(server|engine|tests)" "$log" | sed "s|$root/||; s/|/\\\\|/g" | sed 's/^ *//' | cut -c1-200 || true)
    finding="rc=$rc; ${head_line:-no sanitizer headline}; ${frame:-}"
    failed=1
  fi
  if [ "$slow" -gt 0 ]; then
    finding="$finding (slow units: $slow, slowest $(grep -o 'stat::slowest_unit_time_sec: *[0-9]*' "$log" | awk '{print $2}' | tail -1 || true) s)"
  fi
  echo "| $(date -u +%Y-%m-%dT%H:%MZ) | $t | $took | ${runs:-?} | ${execs:-?} | $((after - before)) | $after | $crashes | $finding |" >>"$summary"
  echo "   runs=${runs:-?} exec/s=${execs:-?} new=$((after - before)) crashes=$crashes rc=$rc"
done
echo "summary: $summary"
exit $failed
