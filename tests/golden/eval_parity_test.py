#!/usr/bin/env python3
"""`hotswap eval` against the reference logits (issue 14): the perplexity the real binary
reports for a document equals the one computed from the reference implementation's logits of
the same token ids, for eager (transformers, tests/golden/models/*_f32), streaming and mixed
(our PyTorch references, tests/golden/attention) and nsa (tests/golden/nsa), each with its
adapter; it also checks the JSON the command writes (the fields docs/eval.md lists) and the
PNG signature.

perplexity = exp(mean over positions i = 0..n-2 of -log_softmax(logits[i])[ids[i + 1]]), the
definition docs/eval.md gives (token 0 is not scored). Reference values are computed here in
float64 from the float32 logits; the product computes in float32 (--matmul-precision f32 is
the in-process engine's setting), so they agree to about 1e-6 relative; the bound is 1e-5.
Usage: eval_parity_test.py HOTSWAP_BINARY GOLDEN_DIR"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

TOLERANCE = 1e-5
MODELS = ("llama_f32", "qwen2_f32", "phi3_f32")


def read_f32(path, rows, cols):
    raw = open(path, "rb").read()
    assert len(raw) == 4 * rows * cols, f"{path}: {len(raw)} bytes, expected {4 * rows * cols}"
    values = struct.unpack(f"<{rows * cols}f", raw)
    return [values[r * cols:(r + 1) * cols] for r in range(rows)]


def reference_perplexity(ids, logits):
    nll = 0.0
    for i in range(len(ids) - 1):
        row = logits[i]
        m = max(row)
        lse = m + math.log(sum(math.exp(x - m) for x in row))
        nll += lse - row[ids[i + 1]]
    return math.exp(nll / (len(ids) - 1))


def cases(golden):
    """(name, model_dir, attention, adapter path or None, ids, logits file, shape)"""
    out = []
    for m in MODELS:
        ref = json.load(open(os.path.join(golden, "models", m, "reference.json")))
        p = max(ref["prompts"], key=lambda p: len(p["ids"]))
        out.append((f"{m}_eager", os.path.join(golden, "models", m), "eager", None, p["ids"],
                    os.path.join(golden, "models", m, p["logits_file"]), p["shape"]))
    for kind in ("streaming_block", "streaming_token", "mixed"):
        for m in MODELS:
            d = os.path.join(golden, "attention", f"{m}_{kind}")
            ref = json.load(open(os.path.join(d, "reference.json")))
            p = max(ref["prompts"], key=lambda p: len(p["ids"]))
            adapter = os.path.join(d, ref["adapter_file"]) if ref.get("adapter_file") else None
            out.append((f"{m}_{kind}", os.path.join(golden, "models", m), ref["attention"], adapter, p["ids"],
                        os.path.join(d, p["logits_file"]), p["shape"]))
    nsa_root = os.path.join(golden, "nsa")
    for name in sorted(os.listdir(nsa_root)):
        d = os.path.join(nsa_root, name)
        if not os.path.exists(os.path.join(d, "reference.json")) or "prompts" not in json.load(open(os.path.join(d, "reference.json"))):
            continue
        ref = json.load(open(os.path.join(d, "reference.json")))
        p = max(ref["prompts"], key=lambda p: len(p["ids"]))
        out.append((f"nsa_{name}", os.path.normpath(os.path.join(d, ref["model_dir"])), "nsa",
                    os.path.join(d, ref["adapter_file"]), p["ids"], os.path.join(d, p["logits_file"]), p["shape"]))
    return out


def main():
    binary, golden = sys.argv[1], sys.argv[2]
    failures, checked = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        by_model = {}
        for case in cases(golden):
            by_model.setdefault(case[1], []).append(case)
        for model_dir, model_cases in by_model.items():
            # One eval run per model: one configuration per case, each scoring its own document
            # (the other documents are scored too; only the case's own is compared).
            for name, _, attention, adapter, ids, logits_file, shape in model_cases:
                corpus = os.path.join(tmp, f"{name}.jsonl")
                with open(corpus, "w") as f:
                    f.write(json.dumps({"ids": ids}) + "\n")
                config = {"name": name, "attention": attention}
                if adapter:
                    config["adapter"] = os.path.abspath(adapter)  # the file's paths are relative to it
                configs = os.path.join(tmp, f"{name}.json")
                json.dump({"configs": [config]}, open(configs, "w"))
                out_json, out_png = os.path.join(tmp, f"{name}.out.json"), os.path.join(tmp, f"{name}.png")
                run = subprocess.run([binary, "eval", "--model", model_dir, "--configs", configs, "--corpus", corpus,
                                      "--json", out_json, "--png", out_png, "--threads", "2"],
                                     capture_output=True, text=True)
                if run.returncode != 0:
                    failures.append(f"{name}: hotswap eval exited {run.returncode}: {run.stdout[-600:]} {run.stderr[-300:]}")
                    continue
                result = json.load(open(out_json))
                c = result["configs"][0]
                for key in ("name", "attention", "perplexity", "scored_tokens", "retrieval_accuracy",
                            "attention_density", "attention_output_error", "decode_tokens_per_s", "retrieval_by_context"):
                    if key not in c:
                        failures.append(f"{name}: JSON lacks '{key}'")
                if c.get("scored_tokens") != len(ids) - 1:
                    failures.append(f"{name}: scored {c.get('scored_tokens')} tokens, expected {len(ids) - 1}")
                if open(out_png, "rb").read(8) != b"\x89PNG\r\n\x1a\n":
                    failures.append(f"{name}: {out_png} is not a PNG")
                want = reference_perplexity(ids, read_f32(logits_file, *shape))
                got = c.get("perplexity")
                rel = abs(got - want) / want if got else float("inf")
                checked += 1
                status = "ok" if rel <= TOLERANCE else "FAIL"
                print(f"eval/{name}: {status} perplexity {got:.6f} vs reference {want:.6f} (rel {rel:.2e}, "
                      f"{len(ids)} tokens)")
                if rel > TOLERANCE:
                    failures.append(f"{name}: perplexity {got} vs reference {want} (rel {rel:.3g} > {TOLERANCE})")
    print(f"{checked - sum(1 for f in failures if 'perplexity' in f)} of {checked} perplexities within {TOLERANCE}, "
          f"{len(failures)} failures")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
