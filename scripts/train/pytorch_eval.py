#!/usr/bin/env python3
"""PyTorch (CPU, float32) evaluation of a model directory + corpus + attention configuration (+
adapter), exactly as the training scripts define it (evaluate.py; scripts/train/README.md), for
checking `hotswap eval` against. Runs with Debian's /usr/bin/python3 (torch 1.13 CPU, no
transformers): the Llama forward is llama.py's.

    /usr/bin/python3 scripts/train/pytorch_eval.py --model .cache/trained/reference-model \
        --corpus .cache/trained/eval/corpus.jsonl --max-docs 2 \
        --attention '{"impl":"streaming","sink_window_size":128,"recent_window_size":1024,"block_size":128}'
    ... --attention '{"impl":"mixed"}' --adapter .cache/trained/adapters/mixed/adapter_weight.json
    ... --attention '{"impl":"nsa"}' --adapter .cache/trained/adapters/nsa.safetensors [--nsa-impl reference]
    ... --attention '{"impl":"masked","maskers":[{"type":"sink","sink_size":128},
            {"type":"local","window_size":128},{"type":"hashattention_top_k","heavy_size":0.1}],
            "sparse_prefill":true}' --adapter .cache/trained/adapters/hashattention.safetensors

Options: --retrieval FILE [--max-per-length N] adds retrieval accuracy; --context N truncates
documents (default: all stored ids, 4096); --expect eval/X.json --label L compares the per-document
NLL sums with the ones recorded by a training script (relative difference printed);
--json FILE writes the result.
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import evaluate as ev  # noqa: E402
from llama import load_hf_dir  # noqa: E402
import data  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus")
    ap.add_argument("--retrieval")
    ap.add_argument("--attention", default="eager", help='"eager" or a JSON object as hotswap --attention takes')
    ap.add_argument("--adapter")
    ap.add_argument("--max-docs", type=int)
    ap.add_argument("--max-per-length", type=int)
    ap.add_argument("--context", type=int, default=None)
    ap.add_argument("--nsa-impl", default="fast", choices=["fast", "reference"],
                    help="reference: scripts/reference/nsa_reference.py nsa_attention (slow)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--expect", help="a training script's eval JSON to compare with")
    ap.add_argument("--label", help="the result label in --expect (default: the attention impl)")
    ap.add_argument("--json")
    ap.add_argument("--no-fastmath", action="store_true",
                    help="keep PyTorch's own CPU matmul (Debian's torch 1.13 has a generic BLAS: ~30x slower)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.device == "cpu" and not args.no_fastmath:
        import cpu_fastmath
        cpu_fastmath.install()
    ev.set_exact_float32()
    attn = args.attention if not args.attention.strip().startswith("{") else json.loads(args.attention)
    model = load_hf_dir(args.model, args.device)
    docs = data.read_jsonl(args.corpus)[:args.max_docs] if args.corpus else []
    samples = []
    if args.retrieval:
        seen = {}
        for s in data.read_jsonl(args.retrieval):
            n = seen.get(s["context_tokens"], 0)
            if args.max_per_length is None or n < args.max_per_length:
                samples.append(s)
                seen[s["context_tokens"]] = n + 1
    context = args.context or max([len(d["ids"]) for d in docs] or [4096])
    res = ev.evaluate(model, attn, args.adapter, docs, samples, args.device, context, nsa_impl=args.nsa_impl)
    if docs:
        p = res["perplexity"]
        print(f"perplexity {p['perplexity']:.6f}  mean nll {p['mean_nll']:.6f}  over {p['tokens']} tokens "
              f"of {p['documents']} documents (context {context})")
        for d in p["per_document"]:
            print(f"  {d['id']}: nll_sum {d['nll_sum']:.6f}  tokens {d['tokens']}  perplexity {d['perplexity']:.6f}")
    if args.expect:
        want = json.load(open(args.expect))
        label = args.label or (attn if isinstance(attn, str) else attn["impl"])
        rec = [r for r in want["results"] if r["label"] == label]
        if not rec:
            sys.exit(f"no result labelled {label!r} in {args.expect}: "
                     f"{[r['label'] for r in want['results']]}")
        exp = {d["id"]: d for d in rec[0]["perplexity"]["per_document"]}
        s_got = sum(d["nll_sum"] for d in res["perplexity"]["per_document"])
        s_want = sum(exp[d["id"]]["nll_sum"] for d in res["perplexity"]["per_document"])
        n = sum(d["tokens"] for d in res["perplexity"]["per_document"])
        import math
        print(f"expected (from {args.expect} [{label}]) perplexity over these documents "
              f"{math.exp(s_want / n):.6f}; relative difference {abs(math.exp(s_got / n) / math.exp(s_want / n) - 1):.3g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
