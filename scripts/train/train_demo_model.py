#!/usr/bin/env python3
"""Train the built-in demo model (the shape of `hotswap make-demo-model --preset demo`: hidden 256,
intermediate 704, 4 layers, 8 heads, 4 KV heads, head_dim 32, 4096 positions, tied embeddings)
with the demo tokenizer, on English prose (the Python reference manual's topics, docstring
paragraphs of the installed packages, a short built-in conversational text and a few chat-template
exchanges), so that it continues "Hello" with words. Writes a Hugging Face directory in bf16 with
make-demo-model's config.json fields (torch_dtype "bfloat16"), tokenizer and generation config.

    build/bin/hotswap make-demo-model --out /tmp/demo     # for its tokenizer and config
    python3 scripts/train/train_demo_model.py --tokenizer-dir /tmp/demo --out models/demo
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import trainutil as tu  # noqa: E402
from attention_impls import Eager  # noqa: E402
from llama import Llama, LlamaConfig, load_hf_dir, write_safetensors  # noqa: E402


@torch.no_grad()
def greedy(model, ids, n, device):
    ids = list(ids)
    for _ in range(n):
        x = torch.tensor([ids], device=device)
        nxt = int(model.logits(model.hidden_states(x, Eager()))[0, -1].argmax())
        ids.append(nxt)
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer-dir", required=True, help="make-demo-model output (config + tokenizer)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--max-chars", type=int, default=40_000_000)
    ap.add_argument("--chat-docs", type=int, default=3000)
    ap.add_argument("--max-train-seconds", type=float, default=1e9)
    args = ap.parse_args()

    total = tu.Timer()
    torch.manual_seed(args.seed)
    device = tu.device_or_die()
    src_cfg = json.load(open(os.path.join(args.tokenizer_dir, "config.json")))
    tok = data.load_tokenizer(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    docs = data.prose_corpus(args.max_chars, args.seed)
    docs += data.chat_documents(docs, args.chat_docs, args.seed)
    ids = data.encode_docs(tok, docs)
    stream = np.concatenate([np.asarray(d, dtype=np.int64) for d in ids])
    print(f"demo corpus: {len(docs)} documents, {sum(len(d) for d in docs) / 1e6:.1f} M chars, "
          f"{len(stream) / 1e6:.1f} M tokens ({total():.1f} s)", flush=True)

    cfg = LlamaConfig.from_json(os.path.join(args.tokenizer_dir, "config.json"))
    model = Llama(cfg)
    model.init_weights(args.seed)
    model.to(device)
    n_params = model.num_parameters()
    print(f"demo model: {n_params / 1e6:.2f} M parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1,
                            **({"fused": True} if device == "cuda" else {}))
    rng = np.random.default_rng(args.seed)
    attention = Eager(mode="train")
    T, B = args.seq, args.batch
    log, steps_done = [], 0
    t_train = tu.Timer()
    for step in range(args.steps):
        lr = tu.cosine_lr(step, args.steps, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, len(stream) - T, size=B)
        x = torch.from_numpy(np.stack([stream[s:s + T] for s in starts])).to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            loss, _ = tu.lm_loss(model, x, torch.ones_like(x, dtype=torch.float32), attention)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps_done = step + 1
        if step % 100 == 0 or step == args.steps - 1:
            log.append({"step": step, "loss": float(loss), "seconds": round(t_train(), 1)})
            print(f"  step {step:5d}  loss {float(loss):.4f}  {t_train():.1f} s", flush=True)
        if t_train() > args.max_train_seconds:
            print(f"  stopped early after {steps_done} steps", flush=True)
            break
    train_seconds = t_train()

    # Write the HF directory: make-demo-model's files, weights in bf16.
    os.makedirs(args.out, exist_ok=True)
    out_cfg = dict(src_cfg, torch_dtype="bfloat16")
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(out_cfg, f, indent=2)
    for name in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(args.tokenizer_dir, name), os.path.join(args.out, name))
    sd = {k: v for k, v in model.state_dict().items()}
    write_safetensors(os.path.join(args.out, "model.safetensors"), sd,
                      {"format": "pt", "generator": "scripts/train/train_demo_model.py"}, dtype=torch.bfloat16)

    # Check: greedy continuation of "Hello" by the written weights.
    m = load_hf_dir(args.out, device)
    samples = {}
    for prompt in ("Hello", "The", "Once upon a time"):
        p = tok.encode(prompt, add_special_tokens=True).ids
        out = greedy(m, p, 24, device)
        samples[prompt] = tok.decode(out[len(p):])
        print(f"  greedy {prompt!r} -> {samples[prompt]!r}", flush=True)
    tu.write_json(os.path.join(args.out + "-train.json"), {
        "parameters": n_params, "steps": steps_done, "batch": B, "seq": T, "tokens_seen": steps_done * B * T,
        "corpus_tokens": int(len(stream)), "train_seconds": round(train_seconds, 1), "total_seconds": round(total(), 1),
        "device": tu.gpu_name(), "final_loss": log[-1]["loss"], "train_log": log, "greedy_samples_float32": samples,
        "model_safetensors_bytes": os.path.getsize(os.path.join(args.out, "model.safetensors"))})


if __name__ == "__main__":
    main()
