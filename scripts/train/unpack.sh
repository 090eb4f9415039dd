#!/usr/bin/env bash
# Puts what scripts/train/run_all.sh packed (bundle.tar.gz.part*, logs.tar.gz) in place:
#   .cache/trained/   reference-model/, adapters/, eval/, logs/  (ignored by git)
#   models/demo/      the demo model (config.json, generation_config.json, model.safetensors.gz,
#                     tokenizer.json, tokenizer_config.json; the weights gzipped: the binary
#                     embeds them and inflates them once, engine/src/model/demo_model.cc)
#
#   bash scripts/train/unpack.sh DIR_WITH_PARTS [--no-demo]
set -euo pipefail
src=${1:?usage: unpack.sh DIR_WITH_PARTS [--no-demo]}
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=$root/.cache/trained
rm -rf "$dest.new"; mkdir -p "$dest.new"
cat "$src"/bundle.tar.gz.part* | gunzip | tar xf - -C "$dest.new"
rm -rf "$dest"; mv "$dest.new" "$dest"
if [ "${2:-}" != "--no-demo" ] && [ -f "$dest/demo/model.safetensors" ]; then
  mkdir -p "$root/models/demo"
  for f in config.json generation_config.json tokenizer.json tokenizer_config.json; do
    cp "$dest/demo/$f" "$root/models/demo/$f"
  done
  gzip -9 -n -c "$dest/demo/model.safetensors" > "$root/models/demo/model.safetensors.gz"
  echo "demo model -> models/demo/"
fi
echo "trained artefacts -> $dest"
ls -la "$dest" "$dest/eval" "$dest/adapters" 2>/dev/null || true
