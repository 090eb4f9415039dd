#!/usr/bin/env bash
# Validates deploy/: the Kubernetes manifests against the Kubernetes API schemas (and with each
# other, the server and its config), the systemd unit with `systemd-analyze verify`, the
# Containerfile against the binary, and builds the image where a container engine can reach
# the debian:12 base images. Exits non-zero if any check fails; a step that cannot run here
# (no engine, no registry) says so and is skipped.
#
#   deploy/validate.sh
#
# Environment:
#   HOTSWAP_DEPLOY_CACHE   where the npm validators are installed (outside the repository;
#                          default ${XDG_CACHE_HOME:-$HOME/.cache}/hotswap-deploy-validate)
#   HOTSWAP_BIN            the built server (default build/bin/hotswap): the config, flag and
#                          shared-library checks use it and are skipped without it
#   HOTSWAP_DEPLOY_IMAGE   auto (default): build the image if an engine and the base images are
#                          available, else skip; 1: a build that cannot run is a failure; 0: skip
set -uo pipefail

deploy=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$deploy/.." && pwd)
cache=${HOTSWAP_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hotswap-deploy-validate}
bin=${HOTSWAP_BIN:-$repo/build/bin/hotswap}
[ -x "$bin" ] || bin=""
image_mode=${HOTSWAP_DEPLOY_IMAGE:-auto}
# Pinned: the results must not change under us. kubernetes-models 5.1.0 carries the
# Kubernetes 1.34 API schemas; @kubernetes-models/gateway-api 2.0.0 the Gateway API v1 ones.
npm_packages=(kubernetes-models@5.1.0 @kubernetes-models/gateway-api@2.0.0 yaml@2.9.1 ajv@8.20.0 typescript@5.9.3)

failures=()
skips=()
fail() { failures+=("$1"); printf '  FAIL  %s\n' "$1"; }
skip() { skips+=("$1"); printf '  skip  %s\n' "$1"; }
ok() { printf '  ok    %s\n' "$1"; }
section() { printf '\n== %s\n' "$1"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# JSON value of a key path in configs/server.json, e.g. timeouts.drain_ms.
server_setting() {
  node -e 'let v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); for (const k of process.argv[2].split(".")) v = v[k]; console.log(v)' \
    "$repo/configs/server.json" "$1"
}
# The `hotswap serve` flags, one per line.
serve_flags() { "$bin" serve --help | sed -n 's/^ *\(--[a-z-]*\).*/\1/p'; }
# Flags (--x) among the words on stdin that `hotswap serve --help` does not list.
unknown_flags() { grep -o -- '--[a-z][a-z-]*' | sort -u | grep -vxF -f <(serve_flags; echo --config) || true; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "validate.sh needs node and npm (scripts/install-deps.sh installs them)" >&2
  exit 2
fi

######################################################################## Kubernetes
section "Kubernetes manifests (deploy/kubernetes)"
stamp="$cache/.installed"
if [ "$(cat "$stamp" 2>/dev/null)" != "${npm_packages[*]}" ]; then
  echo "  installing ${npm_packages[*]} into $cache"
  mkdir -p "$cache"
  if npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "${npm_packages[@]}" >"$tmp/npm.log" 2>&1; then
    echo "${npm_packages[*]}" >"$stamp"
  else
    cat "$tmp/npm.log"
    fail "npm install of the validators"
  fi
fi
if [ -f "$stamp" ]; then
  rendered=()
  if command -v kustomize >/dev/null; then
    kustomize build "$deploy/kubernetes" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err" && rendered=(--rendered "$tmp/rendered.yaml") \
      || { cat "$tmp/kustomize.err"; fail "kustomize build deploy/kubernetes"; }
  elif command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
    kubectl kustomize "$deploy/kubernetes" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err" && rendered=(--rendered "$tmp/rendered.yaml") \
      || { cat "$tmp/kustomize.err"; fail "kubectl kustomize deploy/kubernetes"; }
  fi
  [ ${#rendered[@]} -gt 0 ] && ok "kustomize build deploy/kubernetes ($(grep -c '^kind:' "$tmp/rendered.yaml") objects)"
  cp "$deploy/validate-manifests.mjs" "$cache/validate-manifests.mjs"
  if ! node "$cache/validate-manifests.mjs" --kube-dir "$deploy/kubernetes" --repo "$repo" "${rendered[@]}" \
      ${bin:+--hotswap "$bin"}; then
    fail "Kubernetes manifests (see the FAIL lines above)"
  fi
fi

######################################################################## systemd
section "systemd unit (deploy/systemd/hotswap.service)"
unit="$deploy/systemd/hotswap.service"
if ! command -v systemd-analyze >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "  installing systemd (for systemd-analyze)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1; }
fi
if ! command -v systemd-analyze >/dev/null; then
  fail "systemd-analyze not found (apt-get install systemd)"
else
  # verify insists that ExecStart's program exists. The unit names the installed path
  # (/usr/local/bin/hotswap); verify a copy that differs only in that path.
  exe=${bin:-/bin/true}
  sed "s|^ExecStart=/usr/local/bin/hotswap |ExecStart=$exe |" "$unit" >"$tmp/hotswap.service"
  if [ "$(diff "$unit" "$tmp/hotswap.service" | grep -c '^[<>]')" != 2 ]; then
    fail "expected ExecStart=/usr/local/bin/hotswap ... in the unit"
  elif systemd-analyze verify "$tmp/hotswap.service" >"$tmp/verify.log" 2>&1 && ! grep -q . "$tmp/verify.log"; then
    ok "systemd-analyze verify (ExecStart binary: $exe)"
  else
    cat "$tmp/verify.log"
    fail "systemd-analyze verify"
  fi
  exposure=$(systemd-analyze security --offline=yes "$tmp/hotswap.service" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: //p')
  [ -n "$exposure" ] && ok "systemd-analyze security: exposure $exposure"
fi
drain_s=$(( $(server_setting timeouts.drain_ms) / 1000 ))
stop_s=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$unit")
if [ -n "$stop_s" ] && [ "$stop_s" -gt $((drain_s + 4)) ]; then
  ok "TimeoutStopSec=${stop_s}s > timeouts.drain_ms ${drain_s}s + 4 s (cancel grace, teardown)"
else
  fail "TimeoutStopSec (${stop_s:-unset}) must exceed timeouts.drain_ms ${drain_s}s + 4 s"
fi
grep -qx 'KillSignal=SIGTERM' "$unit" && ok "KillSignal=SIGTERM (the server drains on SIGTERM)" || fail "KillSignal=SIGTERM missing"
nofile=$(sed -n 's/^LimitNOFILE=\([0-9]*\)$/\1/p' "$unit")
max_conn=$(server_setting limits.max_connections)
[ -n "$nofile" ] && [ "$nofile" -gt "$max_conn" ] && ok "LimitNOFILE=$nofile > limits.max_connections $max_conn" \
  || fail "LimitNOFILE (${nofile:-unset}) must exceed limits.max_connections $max_conn"
if [ -n "$bin" ]; then
  bad=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$unit" | unknown_flags)
  [ -z "$bad" ] && ok "ExecStart flags are \`hotswap serve\` flags" || fail "ExecStart flags unknown to hotswap serve: $bad"
else
  skip "ExecStart flags against \`hotswap serve --help\` (no built binary)"
fi

######################################################################## Containerfile
section "Container image (deploy/Containerfile)"
cf="$deploy/Containerfile"
# ENTRYPOINT / HEALTHCHECK exec forms as JSON arrays (continuation lines joined).
joined=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$cf")
entrypoint=$(printf '%s\n' "$joined" | sed -n 's/^ENTRYPOINT *//p')
if node -e 'const a = JSON.parse(process.argv[1]); if (!Array.isArray(a)) process.exit(1)' "$entrypoint" 2>/dev/null; then
  ok "ENTRYPOINT is an exec-form JSON array (hotswap is PID 1 and gets SIGTERM itself)"
else
  fail "ENTRYPOINT must be an exec-form JSON array"
fi
healthcheck=$(printf '%s\n' "$joined" | sed -n 's/^HEALTHCHECK .*CMD *//p')
if node -e 'const a = JSON.parse(process.argv[1]); if (!a.join(" ").includes("/health")) process.exit(1)' "$healthcheck" 2>/dev/null; then
  ok "HEALTHCHECK probes /health (exec form)"
else
  fail "HEALTHCHECK must be an exec-form JSON array probing /health"
fi
grep -qx 'EXPOSE 8080' "$cf" && ok "EXPOSE 8080" || fail "EXPOSE 8080 missing"
user=$(sed -n 's/^USER *//p' "$cf" | tail -1)
[[ "$user" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] && ok "USER $user (numeric, non-root: runAsNonRoot can check it)" || fail "USER must be a numeric non-root uid, got '$user'"
for v in /models /adapters /var/cache/hotswap; do
  grep -q "^VOLUME .*\"$v\"" "$cf" || fail "VOLUME $v missing"
done
ok "VOLUME /models /adapters /var/cache/hotswap"
# The build context: deploy/Containerfile.dockerignore must let in what CMake reads.
ignore="$deploy/Containerfile.dockerignore"
missing=""
for p in CMakeLists.txt cmake/ scripts/install-deps.sh scripts/build.sh scripts/check_walls.cmake configs/server.json models/demo/ \
         $(sed -n 's/^add_subdirectory(\([a-z]*\))$/\1\//p' "$repo/CMakeLists.txt"); do
  grep -qx "!$p" "$ignore" || missing+=" $p"
done
[ -z "$missing" ] && ok "Containerfile.dockerignore lets in the sources CMake needs" || fail "Containerfile.dockerignore does not let in:$missing"
if [ -n "$bin" ]; then
  bad=$(printf '%s\n' "$entrypoint" | tr ',' '\n' | unknown_flags)
  [ -z "$bad" ] && ok "ENTRYPOINT flags are \`hotswap serve\` flags" || fail "ENTRYPOINT flags unknown to hotswap serve: $bad"
  if command -v dpkg >/dev/null && command -v ldd >/dev/null; then
    runtime_pkgs=$(sed -n '/^FROM .*debian:12-slim/,$p' "$cf" | sed -n '/apt-get install/,/&& rm -rf/p' | tr ' \\' '\n\n' | grep -E '^lib|^zlib' | sort -u)
    need=$(ldd "$bin" | awk '/=>/ {print $3}' | while read -r lib; do
      dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null; done | cut -d: -f1 | sort -u)
    absent=$(comm -23 <(printf '%s\n' "$need") <(printf '%s\n' "$runtime_pkgs"))
    [ -z "$absent" ] && ok "the runtime stage installs every package of \`ldd hotswap\`: $(echo $need)" \
      || fail "the runtime stage misses packages the binary links: $absent"
  else
    skip "runtime libraries against ldd (no dpkg/ldd)"
  fi
else
  skip "ENTRYPOINT flags and runtime libraries against the binary (no built binary)"
fi

# The build itself.
engine=""
for e in podman buildah docker; do
  command -v "$e" >/dev/null || continue
  if "$e" info >/dev/null 2>&1; then engine=$e; break; fi
done
if [ "$image_mode" = 0 ]; then
  skip "image build (HOTSWAP_DEPLOY_IMAGE=0)"
elif [ -z "$engine" ]; then
  why="no container engine that works here ($(for e in podman buildah docker; do command -v $e >/dev/null && printf '%s: no engine/daemon; ' $e || printf '%s: not installed; ' $e; done))"
  [ "$image_mode" = 1 ] && fail "image build: $why" || skip "image build: $why"
else
  have_bases=1
  for base in docker.io/library/debian:12 docker.io/library/debian:12-slim; do
    if ! "$engine" image inspect "$base" >/dev/null 2>&1 && ! timeout 120 "$engine" pull "$base" >/dev/null 2>&1; then
      have_bases=0; why="$engine cannot pull $base (no registry access) and has no local copy"; break
    fi
  done
  if [ "$have_bases" = 0 ]; then
    [ "$image_mode" = 1 ] && fail "image build: $why" || skip "image build: $why"
  else
    case $engine in
      docker) build=(docker build) ;;
      podman) build=(podman build --format docker --ignorefile "$ignore") ;;
      buildah) build=(buildah build --format docker --ignorefile "$ignore") ;;
    esac
    echo "  building with: ${build[*]} -f deploy/Containerfile -t hotswap:validate . (a full Release build)"
    if "${build[@]}" -f "$cf" -t hotswap:validate "$repo" >"$tmp/build.log" 2>&1; then
      ok "$engine built hotswap:validate"
      if [ "$engine" != buildah ] && "$engine" run --rm hotswap:validate --help >/dev/null 2>&1; then
        ok "the image runs (hotswap serve ... --help)"
      elif [ "$engine" != buildah ]; then
        fail "the image does not run \`hotswap serve --help\`"
      fi
    else
      tail -30 "$tmp/build.log"
      fail "$engine build of deploy/Containerfile"
    fi
  fi
fi

######################################################################## summary
section "Summary"
for s in "${skips[@]}"; do printf '  skipped: %s\n' "$s"; done
if [ ${#failures[@]} -gt 0 ]; then
  for f in "${failures[@]}"; do printf '  failed:  %s\n' "$f"; done
  echo "deploy/validate.sh: FAILED"
  exit 1
fi
echo "deploy/validate.sh: all checks passed"
