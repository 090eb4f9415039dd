#!/usr/bin/env python3
"""Train the reference model: a small Llama (GQA, head_dim 64, 4K context, RoPE) on the source and
documentation of the installed Python packages, mixed with the synthetic long-range retrieval
task, with the real llama2 tokenizer. Writes a Hugging Face directory (bf16 weights) and the
held-out evaluation data, then evaluates (float32, on the bf16 weights) eager and streaming.

    python3 scripts/train/train_reference_model.py --tokenizer-dir .train/llama2 \
        --out OUT --work WORK [--steps 1400] [--smoke]

Writes:
  OUT/reference-model/      config.json generation_config.json model.safetensors tokenizer.json
                            tokenizer_config.json
  OUT/eval/corpus.jsonl     held-out documents {"id","text","ids","tokens"} (ids: BOS + first
                            context-1 tokens of the text)
  OUT/eval/retrieval.jsonl  retrieval samples (see data.retrieval_eval_samples)
  OUT/eval/reference_model.json   training record + evaluation (eager, streaming)
  WORK/train_stream.npy     training token ids (uint16), reused by the adapter scripts
Deterministic from --seed (data order, initialisation, batches); GPU kernels may still differ
run to run in the last bits.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import evaluate as ev  # noqa: E402
import trainutil as tu  # noqa: E402
from llama import Llama, LlamaConfig, load_hf_dir, save_hf_dir  # noqa: E402
from attention_impls import Eager  # noqa: E402

EVAL_TYPES = (".py", ".rst", ".md")   # held-out documents used for evaluation (not data tables)
STREAMING_BASELINES = [
    {"impl": "streaming", "sink_window_size": 128, "recent_window_size": 1024, "block_size": 128},
    {"impl": "streaming", "sink_window_size": 128, "recent_window_size": 256, "block_size": 128},
]


def streaming_label(a):
    return f"streaming_s{a['sink_window_size']}_r{a['recent_window_size']}_b{a['block_size']}"


def build_eval_corpus(tok, heldout, n_docs, context):
    """The first n_docs held-out documents (hash order) with more than context + 64 tokens; text cut
    a little past the context (its tokenization still starts with the stored ids)."""
    out = []
    for key, text in heldout:
        if not key.endswith(EVAL_TYPES):
            continue
        enc = tok.encode(text, add_special_tokens=True)
        if len(enc.ids) < context + 65:
            continue
        cut = enc.offsets[context + 64][1]
        short = text[:cut]
        ids = tok.encode(short, add_special_tokens=True).ids[:context]
        if ids != enc.ids[:context]:
            continue
        out.append({"id": key, "text": short, "ids": ids, "tokens": len(ids)})
        if len(out) == n_docs:
            break
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer-dir", default=".train/llama2")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--retrieval-frac", type=float, default=0.3)
    ap.add_argument("--answer-weight", type=float, default=5.0)
    ap.add_argument("--max-chars", type=int, default=250_000_000)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--eval-docs", type=int, default=8)
    ap.add_argument("--eval-per-length", type=int, default=32)
    ap.add_argument("--lengths", default="512,1024,2048,4096")
    ap.add_argument("--max-train-seconds", type=float, default=1e9, help="safety stop (recorded)")
    ap.add_argument("--smoke", action="store_true", help="tiny data, few steps: mechanics only")
    ap.add_argument("--corpus-only", action="store_true",
                    help="only write WORK/train_stream.npy (for adapter training against an existing model)")
    ap.add_argument("--expect-sha1", help="with --corpus-only: fail unless the corpus digest is this one")
    args = ap.parse_args()

    if args.smoke:
        args.max_chars = min(args.max_chars, 8_000_000)
        args.eval_docs, args.eval_per_length = 2, 2
    total = tu.Timer()
    torch.manual_seed(args.seed)
    device = tu.device_or_die()
    tok_json = os.path.join(args.tokenizer_dir, "tokenizer.json")
    tok = data.load_tokenizer(tok_json)
    os.makedirs(args.work, exist_ok=True)
    eval_dir = os.path.join(args.out, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    lengths = [int(x) for x in args.lengths.split(",")]
    T = args.seq

    # --- corpus ------------------------------------------------------------------------------
    t0 = time.time()
    docs = data.collect_documents(args.max_chars)
    digest = data.corpus_digest(docs)
    train_docs = [(k, t) for k, t in docs if not data.is_heldout(k)]
    heldout = [(k, t) for k, t in docs if data.is_heldout(k)]
    t_read = time.time() - t0
    ids = data.encode_docs(tok, [t for _, t in train_docs])
    stream = np.concatenate([np.asarray(d, dtype=np.uint16) for d in ids])
    del ids
    np.save(os.path.join(args.work, "train_stream.npy"), stream)
    t_tok = time.time() - t0 - t_read
    print(f"corpus: {len(docs)} files, {sum(len(t) for _, t in docs) / 1e6:.1f} M chars "
          f"({len(heldout)} held out), {len(stream) / 1e6:.1f} M training tokens; read {t_read:.1f} s, "
          f"tokenized {t_tok:.1f} s; sha1 {digest[:12]}", flush=True)

    if args.corpus_only:
        if args.expect_sha1 and digest != args.expect_sha1:
            sys.exit(f"corpus digest {digest} differs from the expected {args.expect_sha1}")
        return
    context = max(lengths)
    corpus = build_eval_corpus(tok, heldout, args.eval_docs, context)
    data.write_jsonl(os.path.join(eval_dir, "corpus.jsonl"), corpus)
    filler = data.eval_filler_lines([t for k, t in heldout if k.endswith(EVAL_TYPES)])
    samples = data.retrieval_eval_samples(tok, filler, lengths,
                                          args.eval_per_length, args.seed + 7)
    data.write_jsonl(os.path.join(eval_dir, "retrieval.jsonl"), samples)
    print(f"eval data: {len(corpus)} documents of {context} tokens, {len(samples)} retrieval samples "
          f"({time.time() - t0:.1f} s so far)", flush=True)

    # --- model ------------------------------------------------------------------------------
    vocab = tok.get_vocab_size()
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      num_key_value_heads=args.kv_heads, head_dim=args.head_dim, max_position_embeddings=T,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    model = Llama(cfg)
    model.init_weights(args.seed)
    model.to(device)
    n_params = model.num_parameters()
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)

    n_rows = tu.Batches.retrieval_rows_needed(args.steps, args.batch, args.retrieval_frac)
    ret_ids, ret_w = data.retrieval_training_rows(tok, stream, n_rows, T, args.seed + 1, args.answer_weight)
    print(f"{n_rows} retrieval rows built ({total():.1f} s so far)", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95),
                            eps=1e-8, **({"fused": True} if device == "cuda" else {}))
    attention = Eager(mode="train")
    batches = tu.Batches(stream, ret_ids, ret_w, args.steps, args.batch, T, args.retrieval_frac, args.seed + 2)
    print(f"training {args.steps} steps x {args.batch} x {T} tokens (retrieval fraction {args.retrieval_frac})",
          flush=True)
    t_train = tu.Timer()
    log = []
    steps_done = 0
    stopped_early = False
    for step, (ids_b, w_b) in enumerate(batches):
        lr = tu.cosine_lr(step, args.steps, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        ids_b, w_b = ids_b.to(device, non_blocking=True), w_b.to(device, non_blocking=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            loss, plain = tu.lm_loss(model, ids_b, w_b, attention)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps_done = step + 1
        if step % 50 == 0 or step == args.steps - 1:
            el = t_train()
            rec = {"step": step, "loss": float(plain), "weighted_loss": float(loss), "lr": lr, "seconds": round(el, 1),
                   "tokens_per_s": round(steps_done * args.batch * T / max(el, 1e-9))}
            log.append(rec)
            print(f"  step {step:5d}  loss {rec['loss']:.4f}  weighted {rec['weighted_loss']:.4f}  lr {lr:.2e}  "
                  f"{el:6.1f} s  {rec['tokens_per_s']:,} tok/s", flush=True)
        if t_train() > args.max_train_seconds:
            stopped_early = True
            print(f"  stopped early after {steps_done} steps (--max-train-seconds)", flush=True)
            break
    if device == "cuda":
        torch.cuda.synchronize()
    train_seconds = t_train()

    # --- save (bf16) and evaluate the saved weights in float32 ------------------------------
    model_dir = os.path.join(args.out, "reference-model")
    save_hf_dir(model, model_dir, [tok_json, os.path.join(args.tokenizer_dir, "tokenizer_config.json")],
                "scripts/train/train_reference_model.py")
    del model, opt
    torch.cuda.empty_cache() if device == "cuda" else None
    ev.set_exact_float32()
    model = load_hf_dir(model_dir, device)
    results = [ev.evaluate(model, "eager", None, corpus, samples, device, context, "eager")]
    for a in STREAMING_BASELINES:
        results.append(ev.evaluate(model, a, None, corpus, samples, device, context, streaming_label(a)))
    record = {
        "model_dir": "reference-model", "parameters": n_params, "config": cfg.hf_dict(),
        "weights_dtype": "bfloat16 (evaluated as float32 upcasts)",
        "seed": args.seed, "steps": steps_done, "planned_steps": args.steps, "stopped_early": stopped_early,
        "batch": args.batch, "seq": T, "tokens_seen": steps_done * args.batch * T, "lr": args.lr,
        "retrieval_fraction": args.retrieval_frac, "answer_weight": args.answer_weight,
        "train_seconds": round(train_seconds, 1), "total_seconds": round(total(), 1), "device": tu.gpu_name(),
        "torch": torch.__version__,
        "corpus": {"files": len(docs), "chars": sum(len(t) for _, t in docs), "heldout_files": len(heldout),
                   "train_tokens": int(len(stream)), "sha1": digest, "packages": data.PACKAGES},
        "eval_corpus": {"documents": len(corpus), "context": context, "file": "eval/corpus.jsonl"},
        "eval_retrieval": {"lengths": lengths, "per_length": args.eval_per_length, "file": "eval/retrieval.jsonl"},
        "train_log": log,
        "summary": [ev.summary_row(r) for r in results],
        "results": results,
    }
    tu.write_json(os.path.join(eval_dir, "reference_model.json"), record)
    print(f"done in {total():.1f} s", flush=True)


if __name__ == "__main__":
    main()
