#!/usr/bin/env python3
"""NSA attention (specs/attention.md `nsa`) in PyTorch, and the fixtures the C++ tests hold
the engine to.

The NSA math below is written straight from the spec, vectorised over query positions, in
float32 on the CPU: compression (max_pool / mlp with per-block position embeddings, keys
before or after RoPE), memory tokens, the compressed branch, importance (a softmax over the
existing compressed blocks only), GQA-summed selection with the forced blocks, the selected
and sliding branches and the sigmoid gate. It is hooked into transformers' Llama, Qwen2 and
Phi-3 by replacing each layer's self-attention forward (projections and RoPE are the
model's own), so logits and greedy continuations are those of the real models.

Run where PyTorch and transformers are installed (the tiny checkpoints of
tests/golden/models/*_f32 are read from --models):

    python3 scripts/reference/nsa_reference.py --out tests/golden/nsa

It writes, deterministically (fixed seeds):
  <case>/adapter_weight.json or <case>/adapter.safetensors   a random NSA adapter
  <case>/reference.json      model, config, prompts, greedy continuations (40 tokens,
                             EOS ignored, each step recomputed from scratch)
  <case>/logits_<len>.f32    float32 logits [len, vocab] of every prompt position (raw LE)
  raw_attention/             one layer's NSA output on random q/k/v (needs no model):
                             inputs.f32 (q, q_unrotated, k, k_unrotated, v, x concatenated),
                             output.f32 [T, H, d], adapter_weight.json, reference.json

Self-checks (run every time): with a gate that opens only the sliding branch and w >= T,
the NSA model's logits equal transformers' eager logits; `--raw-only` writes only
raw_attention/ (needs PyTorch, not transformers).
"""
import argparse
import json
import math
import os
import random
import struct
import sys
import types

import torch

# ---------------------------------------------------------------------------------------
# Configuration and adapters (specs/adapters.md `nsa`)

DEFAULTS = dict(compress_block_size=16, compress_stride=8, selection_block_size=16, num_selected_blocks=4,
                sliding_window_size=64, k_compress="max_pool", v_compress="mlp", num_mem_tokens=1,
                compress_rope="pre")


class NsaConfig:
    def __init__(self, head_dim, **kw):
        c = dict(DEFAULTS, **kw)
        self.l = c["compress_block_size"]
        self.s = c["compress_stride"]
        self.sel = c["selection_block_size"]
        self.n = c["num_selected_blocks"]
        self.w = c["sliding_window_size"]
        self.k_method = c["k_compress"]
        self.v_method = c["v_compress"]
        self.mem = c["num_mem_tokens"]
        self.rope = c["compress_rope"]
        self.uses_mlp = "mlp" in (self.k_method, self.v_method)
        self.hidden = c.get("mlp_hidden_size", self.l * head_dim) if self.uses_mlp else 0
        assert 1 <= self.s <= self.l and self.sel % self.s == 0

    def document(self):
        d = {"adapter_type": "nsa", "compress_block_size": self.l, "compress_stride": self.s,
             "selection_block_size": self.sel, "num_selected_blocks": self.n, "sliding_window_size": self.w,
             "k_compress": self.k_method, "v_compress": self.v_method, "num_mem_tokens": self.mem,
             "compress_rope": self.rope}
        if self.uses_mlp:
            d["mlp_hidden_size"] = self.hidden
        return d


def prefix(layer, sparse):
    return f"sparse_adapters.{layer}." if sparse else f"model.layers.{layer}.self_attn.nsa."


def random_adapter(num_layers, H, Hkv, d, D, cfg, seed, bias_pattern=(True, True)):
    """{canonical suffix per layer: tensor}: [{name: tensor}] per layer, float32."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std):
        return (torch.randn(*shape, generator=g) * std).float()

    layers = []
    for _ in range(num_layers):
        t = {}
        for side, method in (("k_compress", cfg.k_method), ("v_compress", cfg.v_method)):
            t[f"{side}.pos_emb"] = rnd(Hkv, cfg.l, d, std=0.5)
            if method != "mlp":
                continue
            for h in range(Hkv):
                m = f"{side}.compress_mlps.{h}."
                t[m + "0.weight"] = rnd(cfg.hidden, cfg.l * d, std=1.0 / math.sqrt(cfg.l * d))
                t[m + "2.weight"] = rnd(d, cfg.hidden, std=1.5 / math.sqrt(cfg.hidden))
                if bias_pattern[0]:
                    t[m + "0.bias"] = rnd(cfg.hidden, std=0.2)
                if bias_pattern[1] and h % 2 == 0:  # some heads without the output bias (missing = 0)
                    t[m + "2.bias"] = rnd(d, std=0.2)
        t["compress_mem_kv"] = rnd(2, Hkv, cfg.mem, d, std=1.0)
        t["strategy_combiner.0.weight"] = rnd(3 * H, D, std=0.3)
        t["strategy_combiner.0.bias"] = rnd(3 * H, std=0.5)
        layers.append(t)
    return layers


def round_to(t, dtype):
    return t.to(dtype).float() if dtype != "F32" else t


TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def write_json_adapter(path, cfg, layers, sparse_of):
    """JSON encoding; numbers printed with 9 significant digits (exact float32 round trip)."""
    parts = []
    for i, t in enumerate(layers):
        for name, x in t.items():
            data = ",".join(format(v, ".9g") for v in x.flatten().tolist())
            parts.append(f'"{prefix(i, sparse_of(i, name))}{name}":{{"shape":{json.dumps(list(x.shape))},"data":[{data}]}}')
    doc = json.dumps(cfg.document())[:-1] + ',"adapter_weight_dict":{' + ",".join(parts) + "}}"
    with open(path, "w") as f:
        f.write(doc)


def write_safetensors_adapter(path, cfg, layers, sparse_of, dtype_of):
    """safetensors encoding with __metadata__.adapter_config; rounds `layers` in place to the stored dtypes."""
    header, blobs, offset = {}, [], 0
    config = cfg.document()
    del config["adapter_type"]  # absent means nsa in adapter_config
    header["__metadata__"] = {"adapter_config": json.dumps(config)}
    for i, t in enumerate(layers):
        for name in list(t):
            dt = dtype_of(i, name)
            x = t[name].to(TORCH_DTYPES[dt]).contiguous()
            t[name] = x.float()  # the values the engine will read
            raw = (x.view(torch.int16) if dt != "F32" else x.view(torch.int32)).numpy().tobytes()
            header[prefix(i, sparse_of(i, name)) + name] = {"dtype": dt, "shape": list(x.shape),
                                                            "data_offsets": [offset, offset + len(raw)]}
            blobs.append(raw)
            offset += len(raw)
    text = json.dumps(header)
    text += " " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode() + b"".join(blobs))


# ---------------------------------------------------------------------------------------
# The NSA pattern for one layer of one sequence

def compress(src, pos_emb, method, t, side, cfg):
    """src [Hkv, T, d] -> [Hkv, nb, d]: block j covers [j*s, j*s + l)."""
    Hkv, T, d = src.shape
    nb = (T - cfg.l) // cfg.s + 1 if T >= cfg.l else 0
    if nb == 0:
        return src.new_zeros(Hkv, 0, d)
    idx = torch.arange(nb)[:, None] * cfg.s + torch.arange(cfg.l)[None, :]
    x = src[:, idx, :] + pos_emb[:, None, :, :]          # [Hkv, nb, l, d]
    if method == "max_pool":
        return x.amax(dim=2)
    flat = x.reshape(Hkv, nb, cfg.l * d)                  # element i*d + c is x_i[c]
    out = []
    for h in range(Hkv):
        m = f"{side}.compress_mlps.{h}."
        hid = flat[h] @ t[m + "0.weight"].T
        if m + "0.bias" in t:
            hid = hid + t[m + "0.bias"]
        o = torch.relu(hid) @ t[m + "2.weight"].T
        if m + "2.bias" in t:
            o = o + t[m + "2.bias"]
        out.append(o)
    return torch.stack(out)


def select_blocks(imp, t, cfg):
    """imp: python floats (float32 values) of blocks 0..t//l'. Spec order, ties to the lower index."""
    cur = t // cfg.sel
    if cur + 1 <= cfg.n:
        return list(range(cur + 1))
    chosen = []
    for b in (0, cur, cur - 1):
        if len(chosen) < cfg.n and b >= 0 and b not in chosen:
            chosen.append(b)
    rest = sorted((b for b in range(cur + 1) if b not in chosen), key=lambda b: (-imp[b], b))
    return sorted(chosen + rest[: cfg.n - len(chosen)])


def masked_softmax_attend(scores, mask, values):
    """scores [H, T, K], mask [H or 1, T, K] bool, values [H, K, d]; rows without a key give 0."""
    s = scores.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, dim=-1)
    p = torch.where(mask.any(dim=-1, keepdim=True), p, torch.zeros_like(p))
    return p @ values


def nsa_attention(q, qu, k, ku, v, x, t, cfg, scale, trace=None):
    """q, qu [H, T, d] (rotated / not); k, ku, v [Hkv, T, d]; x [T, D]; t: the layer's tensors.
    Returns [T, H, d]."""
    H, T, d = q.shape
    Hkv = k.shape[0]
    G = H // Hkv
    pos = torch.arange(T)

    # 1. Compression (keys un-rotated for "pre"; values never rotated).
    ck = compress(ku if cfg.rope == "pre" else k, t["k_compress.pos_emb"], cfg.k_method, t, "k_compress", cfg)
    cv = compress(v, t["v_compress.pos_emb"], cfg.v_method, t, "v_compress", cfg)
    nb = ck.shape[1]
    rep = lambda a: a.repeat_interleave(G, dim=0)  # KV heads -> query heads

    # 2. Compressed branch: [memory tokens] + blocks with j*s + l - 1 <= t.
    qc = qu if cfg.rope == "pre" else q
    mem_k, mem_v = t["compress_mem_kv"][0], t["compress_mem_kv"][1]      # [Hkv, M, d]
    exists = (torch.arange(nb)[None, :] * cfg.s + cfg.l - 1) <= pos[:, None]  # [T, nb]
    block_scores = (qc @ rep(ck).transpose(1, 2)) * scale                   # [H, T, nb]
    scores = torch.cat([(qc @ rep(mem_k).transpose(1, 2)) * scale, block_scores], dim=-1)
    mask = torch.cat([torch.ones(T, cfg.mem, dtype=torch.bool), exists], dim=-1)[None]
    o_cmp = masked_softmax_attend(scores, mask, torch.cat([rep(mem_v), rep(cv)], dim=1))

    # 3. Importance: a separate softmax over the existing blocks only; overlap with selection blocks.
    nsel = (T - 1) // cfg.sel + 1
    p = torch.softmax(block_scores.masked_fill(~exists[None], float("-inf")), dim=-1)
    p = torch.where(exists[None].any(dim=-1, keepdim=True), p, torch.zeros_like(p))
    j = torch.arange(nb)[:, None]
    b = torch.arange(nsel)[None, :]
    overlap = ((j * cfg.s < (b + 1) * cfg.sel) & (b * cfg.sel < j * cfg.s + cfg.l)).float()  # [nb, nsel]
    importance = (p @ overlap).view(Hkv, G, T, nsel).sum(dim=1)                              # [Hkv, T, nsel]
    imp = importance.tolist()
    sel_mask = torch.zeros(Hkv, T, T, dtype=torch.bool)
    for g in range(Hkv):
        for ti in range(T):
            chosen = select_blocks(imp[g][ti], ti, cfg)
            if trace is not None:
                trace.setdefault("selected", {})[(ti, g)] = chosen
            for blk in chosen:
                sel_mask[g, ti, blk * cfg.sel: min((blk + 1) * cfg.sel, ti + 1)] = True

    # 4, 5. Selected and sliding branches: rotated queries and keys.
    full = (q @ rep(k).transpose(1, 2)) * scale                                # [H, T, T]
    o_sel = masked_softmax_attend(full, rep(sel_mask), rep(v))
    window = (pos[None, :] <= pos[:, None]) & (pos[None, :] > pos[:, None] - cfg.w)
    o_win = masked_softmax_attend(full, window[None], rep(v))

    # 6. Gate, [compressed, selected, sliding] per query head.
    gate = torch.sigmoid(x @ t["strategy_combiner.0.weight"].T + t["strategy_combiner.0.bias"]).view(T, H, 3)
    gate = gate.permute(1, 0, 2)                                               # [H, T, 3]
    out = gate[..., 0:1] * o_cmp + gate[..., 1:2] * o_sel + gate[..., 2:3] * o_win
    return out.transpose(0, 1).contiguous()


# ---------------------------------------------------------------------------------------
# transformers integration: each layer's self-attention forward replaced by one that uses the
# model's projections and RoPE, then NSA.

CALLS = {"nsa_forward": 0}  # proof that the replaced forward ran (the self-check asserts it)


def install_nsa(model, layers, cfg):
    attn_modules = [layer.self_attn for layer in model.model.layers]
    originals = [m.forward for m in attn_modules]

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, **kwargs):
        mod = sys.modules[type(self).__module__]
        CALLS["nsa_forward"] += 1
        B, T, _ = hidden_states.shape
        d = self.head_dim
        H, Hkv = self.config.num_attention_heads, self.config.num_key_value_heads
        if hasattr(self, "qkv_proj"):  # Phi-3
            qkv = self.qkv_proj(hidden_states)
            q, k, v = qkv.split([H * d, Hkv * d, Hkv * d], dim=-1)
        else:
            q, k, v = self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states)
        q = q.view(B, T, H, d).transpose(1, 2)
        k = k.view(B, T, Hkv, d).transpose(1, 2)
        v = v.view(B, T, Hkv, d).transpose(1, 2)
        cos, sin = position_embeddings
        qr, kr = mod.apply_rotary_pos_emb(q, k, cos, sin)
        out = nsa_attention(qr[0], q[0], kr[0], k[0], v[0], hidden_states[0], layers[self.layer_idx], cfg,
                            d ** -0.5)
        return self.o_proj(out.reshape(1, T, H * d)), None

    for m in attn_modules:
        m.forward = types.MethodType(forward, m)

    def uninstall():
        for m, f in zip(attn_modules, originals):
            m.forward = f
    return uninstall


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]), use_cache=False).logits[0].float()


def greedy(model, ids, n):
    """Greedy continuation, every step recomputed from scratch; EOS ignored. Returns ids and the
    smallest top-1 / top-2 logit margin met (how close a step came to a different token)."""
    ids = list(ids)
    out, margin = [], float("inf")
    for _ in range(n):
        row = logits_of(model, ids)[-1]
        top = torch.topk(row, 2)
        margin = min(margin, float(top.values[0] - top.values[1]))
        nxt = int(torch.argmax(row))
        out.append(nxt)
        ids.append(nxt)
    return out, margin


# ---------------------------------------------------------------------------------------
# Fixtures

VOCAB_SEED = 900
NEW_TOKENS = 40

CASES = [
    # name, model, config, prompt length, encoding, seed
    ("llama_maxpool_mlp_pre_json", "llama_f32",
     dict(compress_block_size=16, compress_stride=8, selection_block_size=16, num_selected_blocks=6,
          sliding_window_size=32, k_compress="max_pool", v_compress="mlp", mlp_hidden_size=8, num_mem_tokens=1,
          compress_rope="pre"), 300, "json", 11),
    ("qwen2_mlp_mlp_post_safetensors", "qwen2_f32",
     dict(compress_block_size=32, compress_stride=16, selection_block_size=64, num_selected_blocks=5,
          sliding_window_size=48, k_compress="mlp", v_compress="mlp", mlp_hidden_size=16, num_mem_tokens=2,
          compress_rope="post"), 400, "safetensors", 12),
    ("phi3_mlp_maxpool_post_safetensors", "phi3_f32",
     dict(compress_block_size=8, compress_stride=4, selection_block_size=4, num_selected_blocks=6,
          sliding_window_size=16, k_compress="mlp", v_compress="max_pool", mlp_hidden_size=12, num_mem_tokens=0,
          compress_rope="post"), 200, "safetensors", 13),
    ("qwen2_maxpool_pre_nomem_json", "qwen2_f32",
     dict(compress_block_size=16, compress_stride=16, selection_block_size=16, num_selected_blocks=4,
          sliding_window_size=8, k_compress="max_pool", v_compress="max_pool", num_mem_tokens=0,
          compress_rope="pre"), 120, "json", 14),
]


def prompt_ids(length, seed, vocab):
    g = random.Random(seed)
    return [g.randrange(3, vocab) for _ in range(length)]


def model_shape(model):
    c = model.config
    H, Hkv = c.num_attention_heads, c.num_key_value_heads
    d = getattr(c, "head_dim", None) or c.hidden_size // H
    return c.num_hidden_layers, H, Hkv, d, c.hidden_size, c.vocab_size


def self_check_sliding_equals_eager(model, name):
    """A gate that opens only the sliding branch, with w >= T: NSA must be dense causal attention."""
    L, H, Hkv, d, D, vocab = model_shape(model)
    ids = prompt_ids(150, 77, vocab)
    eager = logits_of(model, ids)
    cfg = NsaConfig(d, sliding_window_size=4096, num_mem_tokens=1)
    layers = random_adapter(L, H, Hkv, d, D, cfg, 5)
    for t in layers:
        t["strategy_combiner.0.weight"].zero_()
        t["strategy_combiner.0.bias"].copy_(torch.tensor([-200.0, -200.0, 60.0] * H))
    uninstall = install_nsa(model, layers, cfg)
    try:
        before = CALLS["nsa_forward"]
        nsa = logits_of(model, ids)
        if CALLS["nsa_forward"] - before != L:
            raise SystemExit(f"self-check failed for {name}: the NSA forward ran {CALLS['nsa_forward'] - before} times, "
                             f"expected once per layer ({L})")
        # The same adapter with the compressed and selected branches open must differ from eager.
        for t in layers:
            t["strategy_combiner.0.bias"].copy_(torch.tensor([0.0, 0.0, 0.0] * H))
        mixed = logits_of(model, ids)
    finally:
        uninstall()
    diff = float((nsa - eager).abs().max())
    moved = float((mixed - eager).abs().max())
    print(f"self-check {name}: sliding-only NSA vs transformers eager, max |diff| = {diff:.3g}; "
          f"all branches open moves logits by {moved:.3g}", flush=True)
    if diff > 1e-4 or moved < 1e-3:
        raise SystemExit(f"self-check failed for {name}: {diff}, {moved}")


def build_case(out_dir, models_dir, case):
    import transformers
    name, model_name, conf, length, encoding, seed = case
    model_dir = os.path.join(models_dir, model_name)
    arch = json.load(open(os.path.join(model_dir, "config.json")))["architectures"][0]
    model = getattr(transformers, arch).from_pretrained(model_dir, torch_dtype=torch.float32,
                                                        attn_implementation="eager").eval()
    self_check_sliding_equals_eager(model, model_name)
    L, H, Hkv, d, D, vocab = model_shape(model)
    cfg = NsaConfig(d, **conf)
    layers = random_adapter(L, H, Hkv, d, D, cfg, seed, bias_pattern=(seed % 2 == 1, True))
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    sparse_of = lambda i, n: (i + len(n)) % 2 == 1  # both prefixes, mixed within the document
    if encoding == "json":
        adapter_file = "adapter_weight.json"
        write_json_adapter(os.path.join(case_dir, adapter_file), cfg, layers, sparse_of)
    else:
        adapter_file = "adapter.safetensors"
        dtype_of = lambda i, n: ("F32", "BF16", "F16")[(i + len(n)) % 3]
        write_safetensors_adapter(os.path.join(case_dir, adapter_file), cfg, layers, sparse_of, dtype_of)

    uninstall = install_nsa(model, layers, cfg)
    ids = prompt_ids(length, seed + 1000, vocab)
    logits = logits_of(model, ids).contiguous()
    logits_file = f"logits_{length}.f32"
    logits.numpy().astype("<f4").tofile(os.path.join(case_dir, logits_file))
    output_ids, margin = greedy(model, ids, NEW_TOKENS)
    uninstall()
    record = {"model": model_name, "model_dir": f"../../models/{model_name}", "adapter_file": adapter_file,
              "encoding": encoding, "config": cfg.document(), "transformers": transformers.__version__,
              "torch": torch.__version__,
              "prompts": [{"ids": ids, "logits_file": logits_file, "shape": list(logits.shape)}],
              "greedy": [{"prompt_ids": ids, "output_ids": output_ids, "min_top2_margin": margin}]}
    with open(os.path.join(case_dir, "reference.json"), "w") as f:
        json.dump(record, f)
    print(f"case {name}: {length} prompt tokens, {len(output_ids)} greedy tokens, min margin {margin:.3g}",
          flush=True)


def build_raw_attention(out_dir):
    """One layer on random q/k/v (no model): tests the C++ kernel against this file directly."""
    T, H, Hkv, d, D = 150, 4, 2, 8, 16
    cfg = NsaConfig(d, compress_block_size=8, compress_stride=4, selection_block_size=8, num_selected_blocks=5,
                    sliding_window_size=12, k_compress="mlp", v_compress="mlp", mlp_hidden_size=10,
                    num_mem_tokens=2, compress_rope="pre")
    layers = random_adapter(1, H, Hkv, d, D, cfg, 21)
    g = torch.Generator().manual_seed(22)
    q, qu = torch.randn(H, T, d, generator=g), torch.randn(H, T, d, generator=g)
    k, ku, v = (torch.randn(Hkv, T, d, generator=g) for _ in range(3))
    x = torch.randn(T, D, generator=g)
    trace = {}
    out = nsa_attention(q, qu, k, ku, v, x, layers[0], cfg, d ** -0.5, trace)
    raw_dir = os.path.join(out_dir, "raw_attention")
    os.makedirs(raw_dir, exist_ok=True)
    write_json_adapter(os.path.join(raw_dir, "adapter_weight.json"), cfg, layers, lambda i, n: len(n) % 2 == 0)
    # Engine layouts: q [T, H, d], k [T, Hkv, d].
    tensors = [q.transpose(0, 1), qu.transpose(0, 1), k.transpose(0, 1), ku.transpose(0, 1), v.transpose(0, 1), x]
    with open(os.path.join(raw_dir, "inputs.f32"), "wb") as f:
        for tensor in tensors:
            f.write(tensor.contiguous().numpy().astype("<f4").tobytes())
    out.numpy().astype("<f4").tofile(os.path.join(raw_dir, "output.f32"))
    record = {"num_tokens": T, "num_heads": H, "num_kv_heads": Hkv, "head_dim": d, "hidden_size": D,
              "num_layers": 1, "inputs": ["q [T,H,d]", "q_unrotated [T,H,d]", "k [T,Hkv,d]", "k_unrotated [T,Hkv,d]",
                                          "v [T,Hkv,d]", "x [T,D]"],
              "config": cfg.document(), "torch": torch.__version__,
              "selected": [[ti, gi, blocks] for (ti, gi), blocks in sorted(trace["selected"].items())]}
    with open(os.path.join(raw_dir, "reference.json"), "w") as f:
        json.dump(record, f)
    print(f"raw_attention: T={T}, output {tuple(out.shape)}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "models"))
    ap.add_argument("--raw-only", action="store_true", help="only raw_attention/ (no transformers needed)")
    ap.add_argument("--case", action="append", help="only these cases")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(args.out, exist_ok=True)
    build_raw_attention(args.out)
    if args.raw_only:
        return 0
    for case in CASES:
        if args.case and case[0] not in args.case:
            continue
        build_case(args.out, args.models, case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
