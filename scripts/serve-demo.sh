#!/usr/bin/env bash
# Quick start 1: install what is missing, build, and serve the built-in demo model.
# Extra arguments go to `hotswap serve` (e.g. --port 9000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
exec "$root/build/bin/hotswap" serve "$@"
