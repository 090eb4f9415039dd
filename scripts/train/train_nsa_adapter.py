#!/usr/bin/env python3
"""Train an NSA adapter (seed 002, CS441 "trainable sparse attention") on the frozen reference
model: every layer's attention is replaced by the three NSA branches of specs/attention.md
(compressed, selected, sliding) combined by a learned sigmoid gate. Trainable, as the seed
describes: the compression position embeddings and per-KV-head compression MLPs (keys and
values), the memory tokens and the strategy combiner; the backbone is frozen.

Objective: the language-model loss on the reference model's training mix (text + retrieval rows,
answer tokens weighted), plus `--distill` x the KL divergence between the dense attention's mass
per compressed block and the importance softmax over compressed blocks (selection distillation:
the block selection is a hard top-n with no gradient of its own; this teaches the compressed
keys to rank blocks as dense attention would; `--distill 0` is the seed's plain objective).

    python3 scripts/train/train_nsa_adapter.py --model OUT/reference-model --work WORK \
        --eval-dir OUT/eval --out OUT/adapters/nsa.safetensors
Writes the adapter (safetensors: MLP weights BF16, other tensors F32, configuration under
__metadata__.adapter_config) and OUT/eval/nsa_adapter.json. The evaluation reads the adapter back
from the file, so it scores exactly the values the server loads.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import evaluate as ev  # noqa: E402
import trainutil as tu  # noqa: E402
from attention_impls import Nsa, NsaAdapter, nref  # noqa: E402
from llama import write_safetensors  # noqa: E402


def main():
    ap = tu.adapter_arg_parser(__doc__, seed=20, steps=200, lr=2e-3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--distill", type=float, default=1.0)
    ap.add_argument("--retrieval-frac", type=float, default=0.5)
    ap.add_argument("--answer-weight", type=float, default=5.0)
    # NSA configuration (specs/adapters.md keys)
    ap.add_argument("--compress-block-size", type=int, default=16)
    ap.add_argument("--compress-stride", type=int, default=8)
    ap.add_argument("--selection-block-size", type=int, default=32)
    ap.add_argument("--num-selected-blocks", type=int, default=8)
    ap.add_argument("--sliding-window-size", type=int, default=128)
    ap.add_argument("--k-compress", default="mlp")
    ap.add_argument("--v-compress", default="mlp")
    ap.add_argument("--mlp-hidden-size", type=int, default=128)
    ap.add_argument("--num-mem-tokens", type=int, default=1)
    ap.add_argument("--compress-rope", default="pre")
    ap.add_argument("--gate-bias", default="-3,0,0",
                    help="initial combiner biases [compressed, selected, sliding] (weights start at 0)")
    ap.add_argument("--max-train-seconds", type=float, default=1e9)
    ap.add_argument("--eval-max-docs", type=int, default=None)
    ap.add_argument("--eval-max-per-length", type=int, default=None)
    ap.add_argument("--eval-name", default="nsa_adapter.json", help="file name of the record in --eval-dir")
    ap.add_argument("--label", default="nsa", help="result label of the adapted model")
    args = ap.parse_args()

    total = tu.Timer()
    torch.manual_seed(args.seed)
    device = tu.device_or_die()
    model = tu.load_frozen(args.model, device)
    c = model.config
    L, H, Hkv, d, D = c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.hidden_size
    cfg = nref.NsaConfig(d, compress_block_size=args.compress_block_size, compress_stride=args.compress_stride,
                         selection_block_size=args.selection_block_size, num_selected_blocks=args.num_selected_blocks,
                         sliding_window_size=args.sliding_window_size, k_compress=args.k_compress,
                         v_compress=args.v_compress, mlp_hidden_size=args.mlp_hidden_size,
                         num_mem_tokens=args.num_mem_tokens, compress_rope=args.compress_rope)
    gate_bias = tuple(float(x) for x in args.gate_bias.split(","))
    adapter = NsaAdapter(L, H, Hkv, d, D, cfg, args.seed, gate_bias).to(device)
    n_params = sum(p.numel() for p in adapter.parameters())
    print(f"NSA adapter: {n_params / 1e6:.2f} M trainable parameters, config {cfg.document()}", flush=True)
    opt = torch.optim.Adam(adapter.parameters(), lr=args.lr)
    batches = tu.adapter_training_batches(args.model, args.work, args.steps, args.batch, args.seq,
                                          args.retrieval_frac, args.answer_weight, args.seed)
    log, steps_done, stopped = [], 0, False
    t_train = tu.Timer()
    for step, (ids, w) in enumerate(batches):
        ids, w = ids.to(device), w.to(device)
        kl = []
        attention = Nsa(adapter.layers(), cfg, distill=kl if args.distill > 0 else None)
        lm, plain = tu.lm_loss(model, ids, w, attention)          # float32 (TF32 matmuls)
        distill = torch.stack(kl).mean() if kl else torch.zeros((), device=device)
        loss = lm + args.distill * distill
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapter.parameters(), 1.0)
        opt.step()
        steps_done = step + 1
        if step % 10 == 0 or step == args.steps - 1:
            rec = {"step": step, "loss": float(plain), "weighted_loss": float(lm), "distill_kl": float(distill),
                   "seconds": round(t_train(), 1)}
            log.append(rec)
            print(f"  step {step:4d}  loss {rec['loss']:.4f}  weighted {rec['weighted_loss']:.4f}  "
                  f"distill {rec['distill_kl']:.4f}  {rec['seconds']} s", flush=True)
        if t_train() > args.max_train_seconds:
            stopped = True
            print(f"  stopped early after {steps_done} steps", flush=True)
            break
    train_seconds = t_train()

    # Write: canonical names, MLP weights BF16 (size), everything else F32.
    layers = adapter.layers()
    tensors = {}
    for i, lw in enumerate(layers):
        for name, t in lw.reference_dict(cfg).items():
            dt = torch.bfloat16 if name.endswith("weight") and "compress_mlps" in name else torch.float32
            tensors[f"model.layers.{i}.self_attn.nsa.{name}"] = t.detach().float().cpu().to(dt)
    conf = cfg.document()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_safetensors(args.out, tensors, {"adapter_config": json.dumps(conf)})
    print("wrote", args.out, f"({os.path.getsize(args.out) / 1e6:.1f} MB)", flush=True)
    gate_means = [torch.sigmoid(lw.gate_b.detach()).view(H, 3).mean(0).tolist() for lw in layers]

    ev.set_exact_float32()
    del adapter, opt
    docs, samples = tu.load_eval_data(args.eval_dir, args.eval_max_docs, args.eval_max_per_length)
    ctx = max(len(x["ids"]) for x in docs)
    stream_cfg = {"impl": "streaming", "sink_window_size": 128, "recent_window_size": 1024, "block_size": 128}
    results = [ev.evaluate(model, {"impl": "nsa"}, args.out, docs, samples, device, ctx, args.label),
               ev.evaluate(model, stream_cfg, None, docs, samples, device, ctx, "streaming_s128_r1024_b128")]
    tu.write_json(os.path.join(args.eval_dir, args.eval_name), {
        "adapter": "adapters/" + os.path.basename(args.out), "config": conf, "trainable_parameters": n_params,
        "objective": f"weighted LM loss + {args.distill} * selection distillation KL",
        "initial_gate_bias [cmp, sel, win]": gate_bias,
        "gate_bias_sigmoid_mean_per_layer [cmp, sel, win]": gate_means, "lr": args.lr,
        "steps": steps_done, "planned_steps": args.steps, "stopped_early": stopped, "batch": args.batch,
        "seq": args.seq, "train_seconds": round(train_seconds, 1), "total_seconds": round(total(), 1),
        "device": tu.gpu_name(), "train_log": log, "summary": [ev.summary_row(r) for r in results],
        "results": results})


if __name__ == "__main__":
    main()
