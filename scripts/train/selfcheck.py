#!/usr/bin/env python3
"""Holds the training-side implementations to the served semantics (run where transformers is
installed, e.g. on the device machine; CPU float32 for the reference comparisons):

  A. llama.Llama (eager) == transformers' LlamaForCausalLM (eager) on the model directory;
  B. Streaming / Mixed == scripts/reference/attention_reference.py hooked into transformers;
  C. nsa_fast == scripts/reference/nsa_reference.py: one layer on random tensors, and the whole
     model against the reference's own transformers integration (install_nsa), CPU and GPU;
  D. hat_masked_attention == a per-query loop written from specs/maskers.md (ties included).

    python3 scripts/train/selfcheck.py --model OUT/reference-model [--out report.json]
Exits non-zero when a check fails.
"""
import argparse
import json
import os
import random
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import attention_impls as ai  # noqa: E402
from attention_impls import aref, nref  # noqa: E402
from llama import load_hf_dir  # noqa: E402

REPORT = {}
FAILED = []


def check(name, value, limit):
    ok = value <= limit
    REPORT[name] = {"max_abs_diff": value, "limit": limit, "ok": ok}
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {value:.3g} (limit {limit:g})", flush=True)
    if not ok:
        FAILED.append(name)


def ours(model, ids, impl):
    with torch.no_grad():
        return model(torch.tensor([ids]), impl)[0]


def hf_logits(m, ids):
    with torch.no_grad():
        return m(torch.tensor([ids]), use_cache=False).logits[0].float()


def random_nsa_layers(L, H, Hkv, d, D, cfg, seed):
    """Trainable-adapter initialisation plus noise, so nothing is symmetric."""
    ad = ai.NsaAdapter(L, H, Hkv, d, D, cfg, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in ad.P.items():
            p.add_(torch.randn(p.shape, generator=g) * (0.3 if "gate" in name or "pos" in name or "mem" in name
                                                         else 0.02))
    return [ai.NsaLayerTensors(**{k: v.detach().clone() for k, v in lw.__dict__.items()}) for lw in ad.layers()]


def hat_loop(q, k, v, hat, act, sink, local, heavy, scale):
    """specs/maskers.md, one query at a time: sink, local, hashattention_top_k (ties to the lower
    position), FULL short-circuits, softmax over the selected keys."""
    H, T, d = q.shape
    G = H // k.shape[0]
    kq, vq = k.repeat_interleave(G, 0), v.repeat_interleave(G, 0)
    sq = torch.sign(ai.hat_presign(q, hat[0], hat[1], act))
    sk_ = torch.sign(ai.hat_presign(kq, hat[2], hat[3], act))
    out = torch.zeros(T, H, d)
    for t in range(T):
        n = t + 1
        s, W, kk = ai.eff_size(sink, n), ai.eff_size(local, n), ai.eff_size(heavy, n)
        for h in range(H):
            if n <= s or n <= W + 1 or n <= kk:
                keys = list(range(n))
            else:
                active = set(range(s)) | set(range(max(0, t - W + 1), t + 1))
                cand = [j for j in range(n) if j not in active]
                score = {j: float(sq[h, t] @ sk_[h, j]) for j in cand}
                cand.sort(key=lambda j: (-score[j], j))
                keys = sorted(active | set(cand[:kk]))
            sc = torch.stack([q[h, t] @ kq[h, j] for j in keys]) * scale
            p = torch.softmax(sc, 0)
            out[t, h] = p @ vq[h, keys]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out")
    ap.add_argument("--tokens", type=int, default=300)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    model = load_hf_dir(args.model, "cpu")
    c = model.config
    L, H, Hkv, d, D = c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.hidden_size
    rng = random.Random(5)
    ids = [1] + [rng.randrange(3, c.vocab_size) for _ in range(args.tokens - 1)]

    # A. eager vs transformers.
    import transformers
    REPORT["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    hf = aref.load(args.model, "eager")
    want = hf_logits(hf, ids)
    check("A eager vs transformers LlamaForCausalLM", float((ours(model, ids, ai.Eager()) - want).abs().max()), 1e-4)

    # B. streaming and mixed vs attention_reference hooked into transformers.
    aref.register_attention()
    hooked = aref.load(args.model, aref.HOOK_NAME)
    for S, R, B in ((16, 64, 16), (4, 40, 1), (128, 1024, 128)):
        aref.PATTERN = aref.Pattern("streaming", sink=S, recent=R, block=B)
        diff = float((ours(model, ids, ai.Streaming(S, R, B)) - hf_logits(hooked, ids)).abs().max())
        check(f"B streaming S={S} R={R} B={B} vs attention_reference", diff, 1e-4)
    gates = aref.random_gates(L, Hkv, 3)
    aref.PATTERN = aref.Pattern("mixed", sink=8, recent=48, block=16, gates=gates)
    diff = float((ours(model, ids, ai.Mixed(torch.tensor(gates), 8, 48, 16)) - hf_logits(hooked, ids)).abs().max())
    check("B mixed vs attention_reference", diff, 1e-4)

    # C. NSA: one layer on random tensors, then the whole model vs the reference's integration.
    for conf in (dict(compress_block_size=16, compress_stride=8, selection_block_size=32, num_selected_blocks=8,
                      sliding_window_size=128, k_compress="mlp", v_compress="mlp", mlp_hidden_size=128,
                      num_mem_tokens=1, compress_rope="pre"),
                 dict(compress_block_size=8, compress_stride=4, selection_block_size=8, num_selected_blocks=3,
                      sliding_window_size=16, k_compress="max_pool", v_compress="mlp", mlp_hidden_size=128,
                      num_mem_tokens=0, compress_rope="post")):
        cfg = nref.NsaConfig(d, **conf)
        layers = random_nsa_layers(L, H, Hkv, d, D, cfg, 11)
        g = torch.Generator().manual_seed(2)
        T = 300
        q, qu = torch.randn(H, T, d, generator=g), torch.randn(H, T, d, generator=g)
        k, ku, v = (torch.randn(Hkv, T, d, generator=g) for _ in range(3))
        x = torch.randn(T, D, generator=g)
        ref = nref.nsa_attention(q, qu, k, ku, v, x, layers[0].reference_dict(cfg), cfg, d ** -0.5)
        fast = ai.nsa_fast(q, qu, k, ku, v, x, layers[0], cfg, d ** -0.5)
        tag = f"l={cfg.l} s={cfg.s} l'={cfg.sel} n={cfg.n} {cfg.k_method}/{cfg.v_method} {cfg.rope}"
        check(f"C nsa_fast vs nsa_reference, one layer, CPU ({tag})", float((fast - ref).abs().max()), 1e-5)
        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = False
            gl = ai.NsaLayerTensors(**{kk: vv.cuda() for kk, vv in layers[0].__dict__.items()})
            fg = ai.nsa_fast(q.cuda(), qu.cuda(), k.cuda(), ku.cuda(), v.cuda(), x.cuda(), gl, cfg, d ** -0.5).cpu()
            check(f"C nsa_fast GPU vs nsa_reference CPU, one layer ({tag})", float((fg - ref).abs().max()), 1e-4)
        nsa_ids = ids[:200]
        uninstall = nref.install_nsa(hf, [lw.reference_dict(cfg) for lw in layers], cfg)
        want_nsa = hf_logits(hf, nsa_ids)
        uninstall()
        got = ours(model, nsa_ids, ai.Nsa(layers, cfg))
        check(f"C model + nsa_fast vs transformers + nsa_reference.install_nsa ({tag})",
              float((got - want_nsa).abs().max()), 1e-4)

    # D. HashAttention masker: vectorised vs per-query loop (8 bits: many ties).
    g = torch.Generator().manual_seed(4)
    Hh, Hk, dd, T = 4, 2, 16, 260
    q, k, v = torch.randn(Hh, T, dd, generator=g), torch.randn(Hk, T, dd, generator=g), torch.randn(Hk, T, dd, generator=g)
    hat = ([torch.randn(Hh, dd, 12, generator=g) / 4, torch.randn(Hh, 12, 8, generator=g) / 3],
           [torch.randn(Hh, 12, generator=g) * 0.1, torch.randn(Hh, 8, generator=g) * 0.1],
           [torch.randn(Hh, dd, 12, generator=g) / 4, torch.randn(Hh, 12, 8, generator=g) / 3],
           [torch.randn(Hh, 12, generator=g) * 0.1, torch.randn(Hh, 8, generator=g) * 0.1])
    for sink, local, heavy in ((16, 16, 0.1), (4, 32, 0.25), (16, 8, 5)):
        vec = ai.hat_masked_attention(q, k, v, hat, "silu", sink, local, heavy, dd ** -0.5, chunk=100)
        loop = hat_loop(q, k, v, hat, "silu", sink, local, heavy, dd ** -0.5)
        check(f"D hat_masked_attention vs per-query loop (sink {sink}, local {local}, heavy {heavy})",
              float((vec - loop).abs().max()), 1e-5)

    if args.out:
        with open(args.out, "w") as f:
            json.dump({"failed": FAILED, "checks": REPORT}, f, indent=1)
    print(("FAILED: " + ", ".join(FAILED)) if FAILED else "all checks passed", flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
