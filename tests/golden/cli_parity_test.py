#!/usr/bin/env python3
"""The `hotswap` binary against the reference fixtures, exactly as users call it:
`hotswap logits --all-positions` (1e-4 max abs for f32; argmax equal and relative error
< 3e-5 for bf16, see BF16_REL_TOLERANCE) and `hotswap generate --temperature 0 --ignore-eos --json` (token for
token), for
  models/<name>     transformers' own models (eager attention),
  attention/<case>  the PyTorch reference of streaming and mixed (--attention, --adapter),
  nsa/<case>        the PyTorch reference of nsa with NSA adapters (JSON and safetensors).
Usage: cli_parity_test.py HOTSWAP_BINARY GOLDEN_DIR"""
import json
import os
import struct
import subprocess
import sys


def run(binary, *args):
    # The references compute in float32 (bf16 checkpoints included), so the comparison asks
    # for float32 products; `auto` (the default) would compute a bf16 checkpoint in bf16, as
    # PyTorch's own bf16 inference does (tests/golden/matmul_precision_test.cc bounds that).
    # The KV cache likewise: float32, where the default bf16 rounds every stored K/V
    # (tests/golden/kv_cache_dtype_test.cc bounds that).
    if args[0] in ("logits", "generate"):
        args = (*args, "--matmul-precision", "f32", "--kv-cache-dtype", "f32")
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


# Listed, not discovered: a fixture that goes missing is a failure, never a case that
# silently stops running (check_fixture_folders also fails on an unlisted folder).
EXPECTED = {
    "models": ["llama_bf16", "llama_f32", "phi3_bf16", "phi3_f32", "phi3_longrope_f32", "qwen2_bf16", "qwen2_f32"],
    "attention": [f"{m}_{p}" for m in ("llama_f32", "phi3_f32", "qwen2_f32")
                  for p in ("mixed", "streaming_block", "streaming_token")],
    "nsa": ["llama_maxpool_mlp_pre_json", "phi3_mlp_maxpool_post_safetensors", "qwen2_maxpool_pre_nomem_json",
            "qwen2_mlp_mlp_post_safetensors"],
}
# Folders that hold fixtures of other tests, not of this one.
NOT_CLI_CASES = {"nsa": ["raw_attention"]}  # kernel-level, tests/unit/nsa/nsa_torch_parity_test.cc

# bf16 checkpoints run with float32 products (run() passes --matmul-precision f32), as the
# reference computes them, so they are as exact as the f32 models. Measured max |ours - ref|
# / max |ref| through this binary for 1/17/300-token prompts (AVX-512; AVX2 and scalar within
# 15%): llama_bf16 3.6e-7 / 8.1e-7 / 8.9e-6, phi3_bf16 5.1e-7 / 1.2e-6 / 2.2e-6, qwen2_bf16
# 5.7e-7 / 1.3e-6 / 2.2e-6. 3e-5 is 3.4x the worst of them.
BF16_REL_TOLERANCE = 3e-5


def check_fixture_folders(golden):
    """Failures for listed fixtures that are missing and for folders that are not listed."""
    failures = []
    for group, names in EXPECTED.items():
        root = os.path.join(golden, group)
        present = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))) \
            if os.path.isdir(root) else []
        for name in names:
            if not os.path.exists(os.path.join(root, name, "reference.json")):
                failures.append(f"{group}/{name}: fixture missing ({os.path.join(root, name, 'reference.json')})")
        for name in present:
            if name not in names and name not in NOT_CLI_CASES.get(group, []):
                failures.append(f"{group}/{name}: fixture folder not listed in EXPECTED (so it would not be tested)")
    return failures


def cases(golden):
    """(name, case dir, model dir, extra CLI args, f32) for every listed fixture case that exists."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(golden)))
    for name in EXPECTED["models"]:
        d = os.path.join(golden, "models", name)
        if not os.path.exists(os.path.join(d, "reference.json")):
            continue  # reported by check_fixture_folders
        ref = json.load(open(os.path.join(d, "reference.json")))
        yield name, d, d, [], ref["dtype"] == "float32"
    for group in ("attention", "nsa"):
        root = os.path.join(golden, group)
        for name in EXPECTED[group]:
            d = os.path.join(root, name)
            ref_path = os.path.join(d, "reference.json")
            if not os.path.exists(ref_path):
                continue  # reported by check_fixture_folders
            ref = json.load(open(ref_path))
            model_dir = os.path.normpath(os.path.join(d, ref["model_dir"]))
            if not os.path.isdir(model_dir):
                model_dir = os.path.join(repo, ref["model_dir"])
            attention = ref.get("attention") or ("nsa" if group == "nsa" else None)
            args = []
            if attention:
                args += ["--attention", attention if isinstance(attention, str) else json.dumps(attention)]
            if ref.get("adapter_file"):
                args += ["--adapter", os.path.join(d, ref["adapter_file"])]
            yield f"{group}/{name}", d, model_dir, args, True


def main():
    binary, golden = sys.argv[1], sys.argv[2]
    failures, checks = check_fixture_folders(golden), 0
    for name, d, model_dir, extra, f32 in cases(golden):
        ref = json.load(open(os.path.join(d, "reference.json")))
        for p in ref["prompts"]:
            ids = p["ids"]
            rows, vocab = p["shape"]
            raw = open(os.path.join(d, p["logits_file"]), "rb").read()
            expected = struct.unpack("<%df" % (rows * vocab), raw)
            got = run(binary, "logits", "--model", model_dir, "--prompt-ids", ",".join(map(str, ids)), "--all-positions",
                      *extra)["logits"]
            assert len(got) == rows, (name, len(got), rows)
            max_abs = max_ref = 0.0
            for r in range(rows):
                e = expected[r * vocab:(r + 1) * vocab]
                g = got[r]
                if max(range(vocab), key=lambda i: (g[i], -i)) != max(range(vocab), key=lambda i: (e[i], -i)):
                    failures.append(f"{name}: argmax differs at position {r} of {rows}")
                max_abs = max(max_abs, max(abs(a - b) for a, b in zip(g, e)))
                max_ref = max(max_ref, max(abs(b) for b in e))
            ok = max_abs < 1e-4 if f32 else max_abs / max_ref < BF16_REL_TOLERANCE
            checks += 1
            print(f"{name} logits len={rows}: max_abs={max_abs:.3g} rel={max_abs / max_ref:.3g} {'ok' if ok else 'FAIL'}")
            if not ok:
                failures.append(f"{name}: logits error {max_abs} for a {rows}-token prompt")
        for g in ref["greedy"]:
            out = run(binary, "generate", "--model", model_dir, "--prompt-ids", ",".join(map(str, g["prompt_ids"])),
                      "--max-tokens", str(len(g["output_ids"])), "--temperature", "0", "--ignore-eos", "--json",
                      *extra)
            checks += 1
            ok = out["output_ids"] == g["output_ids"] and out["prompt_ids"] == g["prompt_ids"]
            print(f"{name} greedy prompt={len(g['prompt_ids'])}: {'ok' if ok else 'FAIL'}")
            if not ok:
                failures.append(f"{name}: greedy differs for a {len(g['prompt_ids'])}-token prompt: {out['output_ids']}")
    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
