#!/usr/bin/env python3
"""Train a HashAttention adapter (specs/maskers.md Part 1 "`hashattention` adapters", Part 2 §4.6)
on the frozen reference model: per layer and query head, a query MLP and a key MLP
(head_dim -> hidden -> bits, SiLU) whose output signs are the keys' and queries' bit signatures;
the masker ranks keys by matching bits and keeps the top `heavy_size` fraction beside the sink and
local windows.

Training, as HashAttention does: the MLPs learn to rank, by soft bit matching, the keys that
dense attention ranks highest. Queries and keys (rotated, as the masker sees them) are captured
from the frozen model on training rows; for each sampled query t the positives are the top
int(0.1 (t+1)) keys by q.k among the keys the sink (128) and local (128) maskers leave out, and
the loss is the multi-positive softmax cross-entropy over those keys of
tau * <tanh(f_q(q)), tanh(f_k(k))> / bits (tanh relaxes sign()).

    python3 scripts/train/train_hashattention_adapter.py --model OUT/reference-model --work WORK \
        --eval-dir OUT/eval --out OUT/adapters/hashattention.safetensors
Writes the adapter (float32 safetensors, __metadata__ {"type": "hashattention", "activation":
"silu"}) and OUT/eval/hashattention_adapter.json, whose evaluation uses
{"impl": "masked", "maskers": [sink 128, local 128, hashattention_top_k 0.1], "sparse_prefill": true}.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import evaluate as ev  # noqa: E402
import trainutil as tu  # noqa: E402
from attention_impls import Eager  # noqa: E402
from llama import write_safetensors  # noqa: E402

SINK, LOCAL, HEAVY = 128, 128, 0.1


def masked_config():
    return {"impl": "masked", "maskers": [{"type": "sink", "sink_size": SINK}, {"type": "local", "window_size": LOCAL},
                                          {"type": "hashattention_top_k", "heavy_size": HEAVY}],
            "sparse_prefill": True}


class HatMLPs(torch.nn.Module):
    """Stacked over layers and query heads: dims d -> hidden -> bits for the query and key sides."""

    def __init__(self, L, H, dims, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.dims = dims
        self.P = torch.nn.ParameterDict()
        for side in ("query", "key"):
            for i in range(len(dims) - 1):
                self.P[f"{side}_{i}_w"] = torch.nn.Parameter(torch.randn(L, H, dims[i], dims[i + 1], generator=g)
                                                             / math.sqrt(dims[i]))
                self.P[f"{side}_{i}_b"] = torch.nn.Parameter(torch.zeros(L, H, dims[i + 1]))

    def forward(self, side, x):
        """x [L,H,N,d] -> pre-sign outputs [L,H,N,bits]."""
        n = len(self.dims) - 1
        for i in range(n):
            x = torch.einsum("lhnd,lhde->lhne", x, self.P[f"{side}_{i}_w"]) + self.P[f"{side}_{i}_b"][:, :, None, :]
            if i < n - 1:
                x = F.silu(x)
        return x


def main():
    ap = tu.adapter_arg_parser(__doc__, seed=30, steps=400, lr=3e-3)
    ap.add_argument("--capture-rows", type=int, default=16)
    ap.add_argument("--queries", type=int, default=256, help="query positions per step")
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--tau", type=float, default=16.0)
    ap.add_argument("--max-train-seconds", type=float, default=1e9)
    ap.add_argument("--eval-max-docs", type=int, default=None)
    ap.add_argument("--eval-max-per-length", type=int, default=None)
    args = ap.parse_args()

    total = tu.Timer()
    torch.manual_seed(args.seed)
    device = tu.device_or_die()
    model = tu.load_frozen(args.model, device)
    c = model.config
    L, H, Hkv, d = c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim
    G = H // Hkv
    T = args.seq

    # 1. Capture rotated queries and keys of every layer on training rows (half retrieval rows).
    batches = tu.adapter_training_batches(args.model, args.work, 1, args.capture_rows, T, 0.5, 1.0, args.seed)
    ids, _ = next(iter(batches))
    qs, ks = [], []   # per row: [L,H,T,d], [L,H,T,d] (keys repeated to query heads)

    def capture(inp):
        cur_q.append(inp.q[0].to(torch.bfloat16))
        cur_k.append(inp.k[0].repeat_interleave(G, 0).to(torch.bfloat16))

    with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        for r in range(ids.shape[0]):
            cur_q, cur_k = [], []
            model.hidden_states(ids[r:r + 1].to(device), Eager(mode="train"), capture=capture)
            qs.append(torch.stack(cur_q))
            ks.append(torch.stack(cur_k))
    print(f"captured q/k of {len(qs)} rows x {L} layers ({total():.1f} s)", flush=True)

    # 2. Train the MLPs.
    mlps = HatMLPs(L, H, [d, args.hidden, args.bits], args.seed).to(device)
    opt = torch.optim.Adam(mlps.parameters(), lr=args.lr)
    gen = torch.Generator(device="cpu").manual_seed(args.seed + 3)
    j = torch.arange(T, device=device)
    log, steps_done, stopped = [], 0, False
    t_train = tu.Timer()
    for step in range(args.steps):
        r = step % len(qs)
        t = torch.randint(SINK + LOCAL + 16, T, (args.queries,), generator=gen).to(device)     # query positions
        q = qs[r][:, :, t].float()                                                             # [L,H,Nq,d]
        k = ks[r].float()                                                                      # [L,H,T,d]
        with torch.no_grad():
            true = q @ k.transpose(-1, -2)                                                     # [L,H,Nq,T]
            sk = t + 1
            inactive = (j[None, :] >= SINK) & (j[None, :] <= (t - LOCAL)[:, None])            # [Nq,T]
            kk = torch.tensor([int(HEAVY * int(n)) for n in sk.tolist()], device=device)
            srt = torch.sort(true.masked_fill(~inactive, float("-inf")), dim=-1, descending=True).values
            thr = torch.gather(srt, -1, (kk - 1)[None, None, :, None].expand(L, H, -1, 1))
            pos = inactive & (true >= thr)
        zq = torch.tanh(mlps("query", q))
        zk = torch.tanh(mlps("key", k))
        sim = args.tau * (zq @ zk.transpose(-1, -2)) / args.bits                               # [L,H,Nq,T]
        logp = torch.log_softmax(sim.masked_fill(~inactive, float("-inf")), dim=-1)
        loss = -(logp.masked_fill(~pos, 0.0).sum(-1) / pos.sum(-1).clamp_min(1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps_done = step + 1
        if step % 25 == 0 or step == args.steps - 1:
            with torch.no_grad():
                # recall of the true top-k by the hard signatures' top-k (the masker's selection)
                hs = torch.sign(mlps("query", q)) @ torch.sign(mlps("key", k)).transpose(-1, -2)
                comp = (hs + 64.0) * 8192.0 + (8191.0 - j.float())
                comp = comp.masked_fill(~inactive, -1.0)
                srt2 = torch.sort(comp, dim=-1, descending=True).values
                thr2 = torch.gather(srt2, -1, (kk - 1)[None, None, :, None].expand(L, H, -1, 1))
                chosen = inactive & (comp >= thr2)
                recall = float((chosen & pos).sum() / pos.sum())
            rec = {"step": step, "loss": float(loss), "topk_recall": recall, "seconds": round(t_train(), 1)}
            log.append(rec)
            print(f"  step {step:4d}  loss {rec['loss']:.4f}  top-k recall {recall:.3f}  {rec['seconds']} s",
                  flush=True)
        if t_train() > args.max_train_seconds:
            stopped = True
            print(f"  stopped early after {steps_done} steps", flush=True)
            break
    train_seconds = t_train()

    tensors = {}
    for l in range(L):
        for side in ("query", "key"):
            for i in range(2):
                tensors[f"layers.{l}.{side}.{i}.weight"] = mlps.P[f"{side}_{i}_w"][l].detach().float()
                tensors[f"layers.{l}.{side}.{i}.bias"] = mlps.P[f"{side}_{i}_b"][l].detach().float()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_safetensors(args.out, tensors, {"type": "hashattention", "activation": "silu"})
    print("wrote", args.out, f"({os.path.getsize(args.out) / 1e6:.1f} MB)", flush=True)
    del qs, ks, mlps, opt

    ev.set_exact_float32()
    docs, samples = tu.load_eval_data(args.eval_dir, args.eval_max_docs, args.eval_max_per_length)
    ctx = max(len(x["ids"]) for x in docs)
    results = [ev.evaluate(model, masked_config(), args.out, docs, samples, device, ctx,
                           "masked_sink128_local128_hat0.1")]
    tu.write_json(os.path.join(args.eval_dir, "hashattention_adapter.json"), {
        "adapter": "adapters/hashattention.safetensors", "attention": masked_config(),
        "mlp_dims": [d, args.hidden, args.bits], "activation": "silu",
        "trainable_parameters": sum(t.numel() for t in tensors.values()),
        "objective": "multi-positive softmax CE over soft bit matches (tau=%g) against the top-0.1 keys by q.k "
                     "outside the sink/local windows" % args.tau,
        "capture_rows": args.capture_rows, "steps": steps_done, "planned_steps": args.steps, "stopped_early": stopped,
        "train_seconds": round(train_seconds, 1), "total_seconds": round(total(), 1), "device": tu.gpu_name(),
        "train_log": log, "summary": [ev.summary_row(r) for r in results], "results": results})


if __name__ == "__main__":
    main()
