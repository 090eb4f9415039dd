"""The attention implementations Hotswap serves (../shared/specs/attention.md, specs/maskers.md),
as callables for llama.Llama, in two flavours:

* evaluation (`mode="eval"`): float32, scores materialised, exactly the served semantics. eager,
  streaming and mixed use scripts/reference/attention_reference.py (`Pattern.window_mask`,
  `masked_attention`); NSA uses `nsa_fast` below, which scripts/train/selfcheck.py holds to
  scripts/reference/nsa_reference.py `nsa_attention` (or the reference itself with
  `nsa_impl="reference"`: slow, CPU); masked (HashAttention) uses `hat_masked_attention` below,
  written from specs/maskers.md Part 1 and Part 2 §4.1, §4.2, §4.6, §7.
* training (`mode="train"`): the same patterns through torch's scaled_dot_product_attention
  (bf16 autocast), with the trainable adapter parameters (mixed gates, NSA tensors) live.

Shapes follow llama.AttnInputs: q [B,H,T,d], k/v [B,Hkv,T,d]; an implementation returns
[B,H,T,d]. Every implementation also accumulates an attention density (keys read per query /
keys visible, averaged over queries, layers and heads) in `self.density_sum / density_rows`.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import attention_reference as aref  # noqa: E402  (streaming / mixed reference)
import nsa_reference as nref  # noqa: E402  (NSA reference and adapter writers)

NEG_INF = float("-inf")


def repeat_kv(x, n):
    """[B,Hkv,T,d] -> [B,H,T,d]: query head h reads KV head h // n."""
    return x if n == 1 else x.repeat_interleave(n, dim=1)


class Impl:
    name = "?"

    def __init__(self):
        self.density_sum = 0.0
        self.density_rows = 0

    def add_density(self, attended, visible):
        """attended, visible: tensors of per-row counts (any shape, same shape)."""
        r = (attended.double() / visible.double())
        self.density_sum += float(r.sum())
        self.density_rows += r.numel()

    def density(self):
        return self.density_sum / self.density_rows if self.density_rows else None


# ---------------------------------------------------------------------------------------------
# eager / streaming / mixed

def streaming_mask(T, sink, recent, block, device):
    """[T,T] bool, the streaming rule of specs/attention.md (causal included), from the reference."""
    pos = torch.arange(T, device=device)
    return aref.Pattern("streaming", sink=sink, recent=recent, block=block).window_mask(pos, pos)


def causal_mask(T, device):
    pos = torch.arange(T, device=device)
    return pos[None, :] <= pos[:, None]


class Eager(Impl):
    name = "eager"

    def __init__(self, mode="eval"):
        super().__init__()
        self.mode = mode

    def __call__(self, a):
        G = a.q.shape[1] // a.k.shape[1]
        k, v = repeat_kv(a.k, G), repeat_kv(a.v, G)
        if self.mode == "train":
            return F.scaled_dot_product_attention(a.q, k, v, is_causal=True)
        T = a.q.shape[2]
        return aref.masked_attention(a.q, k, v, causal_mask(T, a.q.device), a.scale)


class Streaming(Impl):
    name = "streaming"

    def __init__(self, sink, recent, block, mode="eval"):
        super().__init__()
        self.sink, self.recent, self.block, self.mode = sink, recent, block, mode
        self._mask = {}

    def mask(self, T, device):
        key = (T, str(device))
        if key not in self._mask:
            self._mask = {key: streaming_mask(T, self.sink, self.recent, self.block, device)}
        return self._mask[key]

    def __call__(self, a):
        G = a.q.shape[1] // a.k.shape[1]
        k, v = repeat_kv(a.k, G), repeat_kv(a.v, G)
        T = a.q.shape[2]
        m = self.mask(T, a.q.device)
        if self.mode == "train":
            return F.scaled_dot_product_attention(a.q, k, v, attn_mask=m)
        self.add_density(m.sum(-1), torch.arange(1, T + 1, device=m.device))
        return aref.masked_attention(a.q, k, v, m, a.scale)


class Mixed(Impl):
    """out = a * eager_out + (1 - a) * streaming_out per query head (AReaL), gates [L, Hkv] (or
    [L, H]) in [0, 1]. `gates` may be an nn.Parameter (training) or a tensor."""
    name = "mixed"

    def __init__(self, gates, sink, recent, block, mode="eval"):
        super().__init__()
        self.gates, self.mode = gates, mode
        self.dense = Eager(mode)
        self.stream = Streaming(sink, recent, block, mode)

    def __call__(self, a):
        H, Hkv = a.q.shape[1], a.k.shape[1]
        g = self.gates[a.layer]
        g = g if g.numel() == H else g.repeat_interleave(H // Hkv)
        g = g.to(a.q.dtype).view(1, H, 1, 1)
        dense = self.dense(a)
        stream = self.stream(a)
        if self.mode != "train":
            # Density: a head with gate 0 reads the streaming window only, any other head all keys.
            T = a.q.shape[2]
            m = self.stream.mask(T, a.q.device).sum(-1).double()
            vis = torch.arange(1, T + 1, device=m.device).double()
            for x in g.flatten().tolist():
                self.add_density(m if x == 0.0 else vis, vis)
        return g * dense + (1 - g) * stream


# ---------------------------------------------------------------------------------------------
# NSA (specs/attention.md `nsa`): the adapter as stacked tensors, and a vectorised forward

class NsaLayerTensors:
    """One layer's NSA tensors, per-KV-head MLPs stacked: k_pos/v_pos [Hkv,l,d]; {k,v}_w1
    [Hkv,hid,l*d], _b1 [Hkv,hid], _w2 [Hkv,d,hid], _b2 [Hkv,d] (mlp sides only); mem [2,Hkv,M,d];
    gate_w [3H,D]; gate_b [3H]. Missing biases are zeros (the spec's rule)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @staticmethod
    def from_reference_dict(t, cfg, Hkv, d, device=None):
        kw = {}
        for side, method in (("k", cfg.k_method), ("v", cfg.v_method)):
            kw[f"{side}_pos"] = t[f"{side}_compress.pos_emb"]
            if method == "mlp":
                m = [f"{side}_compress.compress_mlps.{h}." for h in range(Hkv)]
                kw[f"{side}_w1"] = torch.stack([t[p + "0.weight"] for p in m])
                kw[f"{side}_w2"] = torch.stack([t[p + "2.weight"] for p in m])
                kw[f"{side}_b1"] = torch.stack([t.get(p + "0.bias", torch.zeros(cfg.hidden)) for p in m])
                kw[f"{side}_b2"] = torch.stack([t.get(p + "2.bias", torch.zeros(d)) for p in m])
        kw["mem"] = t["compress_mem_kv"]
        kw["gate_w"] = t["strategy_combiner.0.weight"]
        kw["gate_b"] = t["strategy_combiner.0.bias"]
        if device is not None:
            kw = {k: v.to(device) for k, v in kw.items()}
        return NsaLayerTensors(**kw)

    def reference_dict(self, cfg):
        """The per-layer dict nsa_reference.nsa_attention and its writers use."""
        t = {}
        Hkv = self.k_pos.shape[0]
        for side, method in (("k", cfg.k_method), ("v", cfg.v_method)):
            t[f"{side}_compress.pos_emb"] = getattr(self, f"{side}_pos")
            if method == "mlp":
                for h in range(Hkv):
                    p = f"{side}_compress.compress_mlps.{h}."
                    t[p + "0.weight"] = getattr(self, f"{side}_w1")[h]
                    t[p + "0.bias"] = getattr(self, f"{side}_b1")[h]
                    t[p + "2.weight"] = getattr(self, f"{side}_w2")[h]
                    t[p + "2.bias"] = getattr(self, f"{side}_b2")[h]
        t["compress_mem_kv"] = self.mem
        t["strategy_combiner.0.weight"] = self.gate_w
        t["strategy_combiner.0.bias"] = self.gate_b
        return t


def nsa_compress(src, pos, w, side, method, cfg):
    """src [Hkv,T,d] -> [Hkv,nb,d]; block j covers [j*s, j*s+l)."""
    Hkv, T, d = src.shape
    nb = (T - cfg.l) // cfg.s + 1 if T >= cfg.l else 0
    if nb == 0:
        return src.new_zeros(Hkv, 0, d)
    idx = (torch.arange(nb, device=src.device)[:, None] * cfg.s + torch.arange(cfg.l, device=src.device)[None, :])
    x = src[:, idx, :] + pos[:, None, :, :]                       # [Hkv, nb, l, d]
    if method == "max_pool":
        return x.amax(dim=2)
    flat = x.reshape(Hkv, nb, cfg.l * d)                          # element i*d + c is x_i[c]
    hid = torch.relu(torch.einsum("hnk,hmk->hnm", flat, getattr(w, side + "_w1")) + getattr(w, side + "_b1")[:, None, :])
    return torch.einsum("hnm,hdm->hnd", hid, getattr(w, side + "_w2")) + getattr(w, side + "_b2")[:, None, :]


def nsa_select(importance, T, cfg):
    """importance [Hkv,T,nsel] float32 -> chosen [Hkv,T,nsel] bool: the forced blocks (0, cur,
    cur-1, in that order) then the highest importance, ties to the lower index; all blocks when
    there are at most n (nsa_reference.select_blocks, vectorised)."""
    Hkv, _, nsel = importance.shape
    dev = importance.device
    cur = torch.arange(T, device=dev) // cfg.sel                  # [T]
    b = torch.arange(nsel, device=dev)
    valid = b[None, :] <= cur[:, None]                            # [T, nsel]
    key = importance.detach().float().masked_fill(~valid[None], NEG_INF)
    # Forced blocks: larger than any importance (<= G * ceil(l/l' + 1)), set so block 0 wins.
    key = torch.where((b[None, :] == (cur[:, None] - 1))[None], torch.full_like(key, 1e6), key)
    key = torch.where((b[None, :] == cur[:, None])[None], torch.full_like(key, 2e6), key)
    key = torch.where((b[None, :] == 0)[None], torch.full_like(key, 3e6), key)
    key = key.masked_fill(~valid[None], NEG_INF)
    n = min(cfg.n, nsel)
    order = torch.sort(key, dim=-1, descending=True, stable=True).indices[..., :n]
    picked_valid = torch.gather(key, -1, order) > NEG_INF
    chosen = torch.zeros(Hkv, T, nsel, dtype=torch.bool, device=dev)
    chosen.scatter_(-1, order, picked_valid)
    return chosen


def nsa_fast(q, qu, k, ku, v, x, w, cfg, scale, density=None, distill=None):
    """One sequence, one layer: q, qu [H,T,d] (rotated / not); k, ku, v [Hkv,T,d]; x [T,D];
    w: NsaLayerTensors. Returns [T,H,d]. Same steps as nsa_reference.nsa_attention.
    `distill`, when a list, receives the KL(dense block mass || importance softmax) of this layer
    (training only)."""
    H, T, d = q.shape
    Hkv = k.shape[0]
    G = H // Hkv
    dev = q.device
    pos = torch.arange(T, device=dev)
    rep = lambda a: a.repeat_interleave(G, dim=0)

    # 1. Compression.
    ck = nsa_compress(ku if cfg.rope == "pre" else k, w.k_pos, w, "k", cfg.k_method, cfg)
    cv = nsa_compress(v, w.v_pos, w, "v", cfg.v_method, cfg)
    nb = ck.shape[1]

    # 2. Compressed branch over [memory tokens] + existing blocks.
    qc = qu if cfg.rope == "pre" else q
    mem_k, mem_v = w.mem[0], w.mem[1]
    exists = (torch.arange(nb, device=dev)[None, :] * cfg.s + cfg.l - 1) <= pos[:, None]   # [T, nb]
    block_scores = (qc @ rep(ck).transpose(1, 2)) * scale                                   # [H,T,nb]
    scores = torch.cat([(qc @ rep(mem_k).transpose(1, 2)) * scale, block_scores], dim=-1)
    mask = torch.cat([torch.ones(T, cfg.mem, dtype=torch.bool, device=dev), exists], dim=-1)[None]
    o_cmp = nref.masked_softmax_attend(scores, mask, torch.cat([rep(mem_v), rep(cv)], dim=1))

    # 3. Importance (separate softmax over existing blocks), overlap, GQA sum, selection.
    nsel = (T - 1) // cfg.sel + 1
    p = torch.softmax(block_scores.masked_fill(~exists[None], NEG_INF), dim=-1)
    p = torch.where(exists[None].any(dim=-1, keepdim=True), p, torch.zeros_like(p))
    j = torch.arange(nb, device=dev)[:, None]
    bb = torch.arange(nsel, device=dev)[None, :]
    overlap = ((j * cfg.s < (bb + 1) * cfg.sel) & (bb * cfg.sel < j * cfg.s + cfg.l)).float()   # [nb, nsel]
    with torch.no_grad():
        importance = (p.detach() @ overlap).view(Hkv, G, T, nsel).sum(dim=1)                    # [Hkv,T,nsel]
        chosen = nsa_select(importance, T, cfg)
        key_block = torch.arange(T, device=dev) // cfg.sel
        causal = pos[None, :] <= pos[:, None]
        sel_mask = chosen[:, :, key_block] & causal[None]                                       # [Hkv,T,T]
        window = causal & (pos[None, :] > pos[:, None] - cfg.w)

    # 4, 5. Selected and sliding branches (rotated q, k).
    full = (q @ rep(k).transpose(1, 2)) * scale                                                 # [H,T,T]
    o_sel = nref.masked_softmax_attend(full, rep(sel_mask), rep(v))
    o_win = nref.masked_softmax_attend(full, window[None], rep(v))

    if distill is not None:
        # Selection distillation (training only): the dense attention's mass per compressed block,
        # renormalised over the existing blocks, is the target of the importance softmax.
        with torch.no_grad():
            dense = torch.softmax(full.detach().masked_fill(~causal[None], NEG_INF), dim=-1)     # [H,T,T]
            cover = ((pos[:, None] >= torch.arange(nb, device=dev)[None, :] * cfg.s) &
                     (pos[:, None] < torch.arange(nb, device=dev)[None, :] * cfg.s + cfg.l)).float()  # [T, nb]
            rows = exists.any(-1)                    # queries that see at least one block
            ex = exists[rows]
            mass = (dense[:, rows] @ cover).masked_fill(~ex[None], 0.0)
            target = mass / mass.sum(-1, keepdim=True).clamp_min(1e-20)
        # Only rows with a block: an all -inf row would put NaN into the backward pass.
        logp = torch.log_softmax(block_scores[:, rows].masked_fill(~ex[None], NEG_INF), dim=-1)
        kl = (target * (torch.log(target.clamp_min(1e-20)) - logp.masked_fill(~ex[None], 0.0))).sum(-1)
        distill.append(kl.mean())

    if density is not None:
        with torch.no_grad():
            read = (sel_mask | window[None]).sum(-1).double() + exists.sum(-1).double()[None] + cfg.mem
            density.add_density(read, (pos + 1).double()[None].expand_as(read))

    # 6. Gate [compressed, selected, sliding] per query head.
    gate = torch.sigmoid(x @ w.gate_w.t() + w.gate_b).view(T, H, 3).permute(1, 0, 2)           # [H,T,3]
    out = gate[..., 0:1] * o_cmp + gate[..., 1:2] * o_sel + gate[..., 2:3] * o_win
    return out.transpose(0, 1)


class Nsa(Impl):
    """layers: list of NsaLayerTensors (or an NsaAdapter module's view); impl "fast" or
    "reference" (scripts/reference/nsa_reference.py, CPU float32, slow)."""
    name = "nsa"

    def __init__(self, layers, cfg, impl="fast", distill=None):
        super().__init__()
        self.layers, self.cfg, self.impl, self.distill = layers, cfg, impl, distill

    def __call__(self, a):
        B, H, T, d = a.q.shape
        outs = []
        w = self.layers[a.layer]
        for bi in range(B):
            if self.impl == "reference":
                o = nref.nsa_attention(a.q[bi], a.q_raw[bi], a.k[bi], a.k_raw[bi], a.v[bi], a.x[bi],
                                       w.reference_dict(self.cfg), self.cfg, a.scale)
            else:
                o = nsa_fast(a.q[bi], a.q_raw[bi], a.k[bi], a.k_raw[bi], a.v[bi], a.x[bi], w, self.cfg, a.scale,
                             density=self, distill=self.distill)
            outs.append(o.transpose(0, 1))                # [H,T,d]
        return torch.stack(outs)


class NsaAdapter(nn.Module):
    """Trainable NSA adapter (seed 002 / specs/adapters.md `nsa`) for a frozen base: per layer the
    compression position embeddings and MLPs, the memory tokens and the strategy combiner."""

    def __init__(self, L, H, Hkv, d, D, cfg, seed, gate_bias=(-3.0, 0.0, 0.0)):
        super().__init__()
        self.cfg, self.H, self.Hkv, self.d, self.D = cfg, H, Hkv, d, D
        g = torch.Generator().manual_seed(seed)
        P = nn.ParameterDict()
        for i in range(L):
            for side, method in (("k", cfg.k_method), ("v", cfg.v_method)):
                P[f"{i}_{side}_pos"] = nn.Parameter(torch.zeros(Hkv, cfg.l, d))
                if method == "mlp":
                    P.update(mean_pool_mlp(i, side, Hkv, cfg.l, d, cfg.hidden, g))
            P[f"{i}_mem"] = nn.Parameter(torch.randn(2, Hkv, cfg.mem, d, generator=g) * 0.02)
            P[f"{i}_gate_w"] = nn.Parameter(torch.zeros(3 * H, D))
            # Gates start at sigmoid(gate_bias) per branch [compressed, selected, sliding], e.g.
            # (-4, 4, -4): the selected branch alone (the forced local blocks plus the top ones),
            # whose sum of gates is ~1 like the dense output it replaces.
            P[f"{i}_gate_b"] = nn.Parameter(torch.tensor(list(gate_bias) * H, dtype=torch.float32))
        self.P = P
        self.L = L

    def layer(self, i):
        kw = {}
        for name in ("k_pos", "v_pos", "k_w1", "k_b1", "k_w2", "k_b2", "v_w1", "v_b1", "v_w2", "v_b2", "mem",
                     "gate_w", "gate_b"):
            if f"{i}_{name}" in self.P:
                kw[name] = self.P[f"{i}_{name}"]
        return NsaLayerTensors(**kw)

    def layers(self):
        return [self.layer(i) for i in range(self.L)]


def mean_pool_mlp(i, side, Hkv, l, d, hidden, g):
    """Initial compression MLP that computes the mean of the block's l vectors exactly (hidden
    units 0..d-1 carry +mean, d..2d-1 carry -mean, W2 = [I, -I]), plus small noise everywhere so
    that the other units learn too. Needs hidden >= 2d."""
    assert hidden >= 2 * d, "mlp_hidden_size must be >= 2 * head_dim for the mean-pool start"
    w1 = torch.randn(Hkv, hidden, l * d, generator=g) * (0.01 / math.sqrt(l * d))
    w2 = torch.randn(Hkv, d, hidden, generator=g) * (0.01 / math.sqrt(hidden))
    for c in range(d):
        w1[:, c, c::d] += 1.0 / l
        w1[:, d + c, c::d] -= 1.0 / l
        w2[:, c, c] += 1.0
        w2[:, c, d + c] -= 1.0
    return {f"{i}_{side}_w1": nn.Parameter(w1), f"{i}_{side}_b1": nn.Parameter(torch.zeros(Hkv, hidden)),
            f"{i}_{side}_w2": nn.Parameter(w2), f"{i}_{side}_b2": nn.Parameter(torch.zeros(Hkv, d))}


def read_nsa_adapter(path, num_layers, H, Hkv, d, device=None):
    """An NSA adapter (safetensors or adapter_weight.json) -> (NsaConfig, [NsaLayerTensors])."""
    import json
    from llama import read_safetensors
    if path.endswith(".json"):
        doc = json.load(open(path))
        conf = {k: v for k, v in doc.items() if k not in ("adapter_weight_dict", "adapter_type")}
        tensors = {n: torch.tensor(e["data"], dtype=torch.float32).reshape(e["shape"])
                   for n, e in doc["adapter_weight_dict"].items()}
    else:
        tensors, meta = read_safetensors(path)
        conf = json.loads(meta["adapter_config"])
        conf.pop("adapter_type", None)
    cfg = nref.NsaConfig(d, **conf)
    per_layer = [dict() for _ in range(num_layers)]
    for n, t in tensors.items():
        for pre in ("model.layers.", "sparse_adapters."):
            if n.startswith(pre):
                rest = n[len(pre):]
                i, rest = rest.split(".", 1)
                if pre == "model.layers.":
                    assert rest.startswith("self_attn.nsa."), n
                    rest = rest[len("self_attn.nsa."):]
                per_layer[int(i)][rest] = t
    return cfg, [NsaLayerTensors.from_reference_dict(t, cfg, Hkv, d, device) for t in per_layer]


# ---------------------------------------------------------------------------------------------
# masked: sink + local + hashattention_top_k (HashAttention), every query its own decode step

ACTIVATIONS = {"relu": F.relu, "silu": F.silu, "gelu": F.gelu, "tanh": torch.tanh}


def hat_presign(x, mats, biases, activation):
    """x [H,N,d] -> [H,N,bits] before sign(): einsum per head, activation after all but the last."""
    for i, (m, b) in enumerate(zip(mats, biases)):
        x = torch.einsum("hnd,hde->hne", x, m) + b[:, None, :]
        if i < len(mats) - 1:
            x = ACTIVATIONS[activation](x)
    return x


def eff_size(size, sk):
    """The reference's _calculate_effective_size: a float is a fraction (truncated), an int a count."""
    return int(size * sk) if isinstance(size, float) else int(size)


def hat_masked_attention(q, k, v, hat_layer, activation, sink, local, heavy, scale, density=None, chunk=1024):
    """One sequence, one layer, sparse_prefill: every query t is a decode step with sk = t+1.
    q [H,T,d] rotated; k, v [Hkv,T,d] rotated keys. maskers [sink, local, hashattention_top_k].
    Returns [T,H,d]."""
    H, T, d = q.shape
    assert T <= 8192, "the tie-break encoding below holds positions < 8192"
    G = H // k.shape[0]
    dev = q.device
    kq, vq = k.repeat_interleave(G, 0), v.repeat_interleave(G, 0)
    qm, qb, km, kb = hat_layer
    sig_q = torch.sign(hat_presign(q, qm, qb, activation))
    sig_k = torch.sign(hat_presign(kq, km, kb, activation))
    j = torch.arange(T, device=dev)
    outs = []
    for r0 in range(0, T, chunk):
        t = torch.arange(r0, min(T, r0 + chunk), device=dev)                  # rows
        sk = t + 1
        causal = j[None, :] <= t[:, None]
        s_sink = torch.tensor([eff_size(sink, int(n)) for n in sk.tolist()], device=dev)
        s_loc = torch.tensor([eff_size(local, int(n)) for n in sk.tolist()], device=dev)
        s_top = torch.tensor([eff_size(heavy, int(n)) for n in sk.tolist()], device=dev)
        # FULL short-circuits in list order: sink (sk <= s), local (sk <= W + 1), top-k (sk <= k).
        full = (sk <= s_sink) | (sk <= s_loc + 1) | (sk <= s_top)
        active = causal & ((j[None, :] < s_sink[:, None]) | (j[None, :] >= (t - s_loc + 1)[:, None]))
        inactive = causal & ~active
        hs = sig_q[:, t] @ sig_k.transpose(1, 2)                                # [H,rows,T] integer scores
        comp = (hs + 64.0) * 8192.0 + (8191.0 - j.float())[None, None, :]      # ties -> lower position
        comp = torch.where(inactive[None], comp, torch.full_like(comp, -1.0))
        srt = torch.sort(comp, dim=-1, descending=True).values
        kk = s_top.clamp(min=1, max=T)
        thr = torch.gather(srt, -1, (kk - 1)[None, :, None].expand(H, -1, 1))
        sel = inactive[None] & (comp >= thr)
        m = (active[None] | sel)
        m = torch.where(full[None, :, None], causal[None].expand_as(m), m)
        scores = (q[:, t] @ kq.transpose(1, 2)) * scale
        # weights are 1: out = softmax over the selected keys of (scores - log(1 + 1e-6)).
        scores = (scores - math.log(1.0 + 1e-6)).masked_fill(~m, NEG_INF)
        p = torch.softmax(scores, dim=-1)
        outs.append(p @ vq)
        if density is not None:
            density.add_density(m.sum(-1).double(), sk.double()[None].expand(H, -1))
    return torch.cat(outs, dim=1).transpose(0, 1)


class Masked(Impl):
    name = "masked"

    def __init__(self, maskers, hat, activation):
        super().__init__()
        types = [m["type"] for m in maskers]
        if types != ["sink", "local", "hashattention_top_k"]:
            raise SystemExit(f"masked: only [sink, local, hashattention_top_k] is implemented here, got {types}")
        self.sink = maskers[0]["sink_size"]
        self.local = maskers[1]["window_size"]
        self.heavy = maskers[2]["heavy_size"]
        self.hat, self.activation = hat, activation

    def __call__(self, a):
        outs = []
        for bi in range(a.q.shape[0]):
            o = hat_masked_attention(a.q[bi], a.k[bi], a.v[bi], self.hat[a.layer], self.activation, self.sink,
                                     self.local, self.heavy, a.scale, density=self)
            outs.append(o.transpose(0, 1))
        return torch.stack(outs)


def read_hat_adapter(path, num_layers, device=None):
    """hashattention safetensors -> ([(q_mats, q_biases, k_mats, k_biases)] per layer, activation)."""
    from llama import read_safetensors
    tensors, meta = read_safetensors(path)
    if meta.get("type") != "hashattention":
        raise SystemExit(f"{path}: __metadata__ type is {meta.get('type')!r}, expected 'hashattention'")
    layers = []
    for l in range(num_layers):
        sides = []
        for side in ("query", "key"):
            mats, biases = [], []
            i = 0
            while f"layers.{l}.{side}.{i}.weight" in tensors:
                mats.append(tensors[f"layers.{l}.{side}.{i}.weight"])
                biases.append(tensors[f"layers.{l}.{side}.{i}.bias"])
                i += 1
            if device is not None:
                mats, biases = [m.to(device) for m in mats], [b.to(device) for b in biases]
            sides += [mats, biases]
        layers.append(tuple(sides))
    return layers, meta["activation"]


# ---------------------------------------------------------------------------------------------
# Building an implementation from a Hotswap attention object

def read_mixed_adapter(path):
    """adapter_weight.json (mixed) -> (gates [L][n], sink, recent, block), the spec's defaults."""
    import json
    doc = json.load(open(path))
    d = doc.get("adapter_weight_dict", doc)
    gates = {}
    for key, val in d.items():
        if not isinstance(val, list):
            continue
        i = int(key.split(".")[2])
        gates[i] = [float(x) for x in val]
    L = max(gates) + 1
    return ([gates[i] for i in range(L)], doc.get("sink_window_size", 128), doc.get("recent_window_size", 1024),
            doc.get("block_size", 128))


def make_attention(attn, model_config, adapter=None, device="cpu", nsa_impl="fast"):
    """attn: "eager" | {"impl": ...} as Hotswap's --attention takes it; adapter: a file path."""
    if isinstance(attn, str):
        attn = {"impl": attn}
    impl = attn["impl"]
    c = model_config
    if impl == "eager":
        return Eager()
    if impl == "streaming":
        return Streaming(attn.get("sink_window_size", 128), attn.get("recent_window_size", 1024),
                         attn.get("block_size", 128))
    if impl == "mixed":
        gates, S, R, B = read_mixed_adapter(adapter)
        S, R, B = attn.get("sink_window_size", S), attn.get("recent_window_size", R), attn.get("block_size", B)
        g = torch.tensor(gates, dtype=torch.float32, device=device)
        if "gate_threshold" in attn:
            g = (g >= attn["gate_threshold"]).float()
        return Mixed(g, S, R, B)
    if impl == "nsa":
        cfg, layers = read_nsa_adapter(adapter, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
                                       c.head_dim, device)
        return Nsa(layers, cfg, impl=nsa_impl)
    if impl == "masked":
        if not attn.get("sparse_prefill", False):
            raise SystemExit("masked: perplexity and retrieval are defined here with sparse_prefill: true")
        hat, act = read_hat_adapter(adapter, c.num_hidden_layers, device)
        return Masked(attn["maskers"], hat, act)
    raise SystemExit(f"unknown attention impl {impl!r}")
