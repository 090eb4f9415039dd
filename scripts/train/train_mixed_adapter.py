#!/usr/bin/env python3
"""Train an AReaL mixed-attention adapter (seed 000) on the frozen reference model: one gate per
layer per KV head, out = a * dense + (1 - a) * streaming (block-sparse sink + recent window,
AReaL's sink 128 / recent 1024 / block 128), only the gates trainable, clamped to [0, 1] after
every step, saved as adapter_weight.json (specs/adapters.md `mixed`).

Objective: the language-model loss on the reference model's training mix (text + retrieval rows,
answer tokens weighted) plus `--l1` x mean(gate), DuoAttention's sparsity pressure, so that heads
that do not need the far context turn to streaming (0) and retrieval heads stay dense (1).
`--l1 0` is the plain AReaL objective (gates then tend to 1: dense is never worse).

    python3 scripts/train/train_mixed_adapter.py --model OUT/reference-model --work WORK \
        --eval-dir OUT/eval --out OUT/adapters/mixed/adapter_weight.json
Writes the adapter and OUT/eval/mixed_adapter.json (gates, training log, evaluation).
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import evaluate as ev  # noqa: E402
import trainutil as tu  # noqa: E402
from attention_impls import Mixed  # noqa: E402


def main():
    ap = tu.adapter_arg_parser(__doc__, seed=10, steps=150, lr=0.02)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--l1", type=float, default=0.02)
    ap.add_argument("--init", type=float, default=1.0)
    ap.add_argument("--sink", type=int, default=128)
    ap.add_argument("--recent", type=int, default=1024)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--retrieval-frac", type=float, default=0.5)
    ap.add_argument("--answer-weight", type=float, default=5.0)
    ap.add_argument("--max-train-seconds", type=float, default=1e9)
    ap.add_argument("--eval-max-docs", type=int, default=None)
    ap.add_argument("--eval-max-per-length", type=int, default=None)
    args = ap.parse_args()

    total = tu.Timer()
    torch.manual_seed(args.seed)
    device = tu.device_or_die()
    model = tu.load_frozen(args.model, device)
    c = model.config
    L, Hkv = c.num_hidden_layers, c.num_key_value_heads
    gates = torch.nn.Parameter(torch.full((L, Hkv), float(args.init), device=device))
    opt = torch.optim.Adam([gates], lr=args.lr)
    attention = Mixed(gates, args.sink, args.recent, args.block, mode="train")
    batches = tu.adapter_training_batches(args.model, args.work, args.steps, args.batch, args.seq,
                                          args.retrieval_frac, args.answer_weight, args.seed)
    log, steps_done, stopped = [], 0, False
    t_train = tu.Timer()
    for step, (ids, w) in enumerate(batches):
        ids, w = ids.to(device), w.to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            lm, plain = tu.lm_loss(model, ids, w, attention)
        loss = lm + args.l1 * gates.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            gates.clamp_(0.0, 1.0)            # AReaL clamps after every step
        steps_done = step + 1
        if step % 10 == 0 or step == args.steps - 1:
            rec = {"step": step, "loss": float(plain), "weighted_loss": float(lm), "mean_gate": float(gates.mean()),
                   "seconds": round(t_train(), 1)}
            log.append(rec)
            print(f"  step {step:4d}  loss {rec['loss']:.4f}  weighted {rec['weighted_loss']:.4f}  "
                  f"mean gate {rec['mean_gate']:.3f}  {rec['seconds']} s", flush=True)
        if t_train() > args.max_train_seconds:
            stopped = True
            print(f"  stopped early after {steps_done} steps", flush=True)
            break
    train_seconds = t_train()

    g = gates.detach().float().cpu()
    doc = {"adapter_type": "mixed", "model_name": "hotswap-trained-reference (scripts/train)",
           "sink_window_size": args.sink, "recent_window_size": args.recent, "block_size": args.block,
           "adapter_weight_dict": {f"model.layers.{i}.self_attn.adapter.weight": [float(x) for x in g[i].tolist()]
                                   for i in range(L)}}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    print("gates per layer:", [[round(x, 3) for x in row] for row in g.tolist()], flush=True)

    # Evaluation of the adapter as written (float32 gates read back from the file).
    ev.set_exact_float32()
    docs, samples = tu.load_eval_data(args.eval_dir, args.eval_max_docs, args.eval_max_per_length)
    ctx = max(len(d["ids"]) for d in docs)
    stream_cfg = {"impl": "streaming", "sink_window_size": args.sink, "recent_window_size": args.recent,
                  "block_size": args.block}
    results = [ev.evaluate(model, {"impl": "mixed"}, args.out, docs, samples, device, ctx, "mixed"),
               ev.evaluate(model, {"impl": "mixed", "gate_threshold": 0.5}, args.out, docs, samples, device, ctx,
                           "mixed_threshold_0.5"),
               ev.evaluate(model, stream_cfg, None, docs, samples, device, ctx,
                           f"streaming_s{args.sink}_r{args.recent}_b{args.block}")]
    tu.write_json(os.path.join(args.eval_dir, "mixed_adapter.json"), {
        "adapter": "adapters/mixed/adapter_weight.json", "gates": g.tolist(), "trainable_parameters": L * Hkv,
        "objective": f"weighted LM loss + {args.l1} * mean(gate)", "init": args.init, "lr": args.lr,
        "steps": steps_done, "planned_steps": args.steps, "stopped_early": stopped, "batch": args.batch,
        "seq": args.seq, "train_seconds": round(train_seconds, 1), "total_seconds": round(total(), 1),
        "device": tu.gpu_name(), "train_log": log, "summary": [ev.summary_row(r) for r in results],
        "results": results})


if __name__ == "__main__":
    main()
