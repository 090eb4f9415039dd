#!/usr/bin/env python3
"""Reference fixtures for the three research maskers of issue 13 -- `hashattention_top_k`,
`magic_pig` and `quest_top_k` (specs/maskers.md Part 1; Part 2 §4.6, §5.2, §6) -- made by RUNNING
the reference implementation, sparse-attention-hub (commit 1a048c9, a copy in
../shared/reference/sparse-attention-hub), exactly as masker_reference.py does for the other
maskers: the reference is imported and its ResearchAttention.custom_attention called; nothing of it
is copied here. CPU, float32, one torch thread, deterministic (fixed seeds). Debian's python3-torch
and python3-scipy are enough (no transformers):

    # A. decode-step cases (sq = 1) on the existing input sets of tests/golden/masked/decode/inputs;
    #    adds decode/<case>/ folders and merges their entries into decode/index.json
    /usr/bin/python3 scripts/reference/research_masker_reference.py decode
    # B. greedy continuations of phi3_f32 / llama_f32 (the small float32 re-implementations of
    #    masked_greedy_replay.py drive the reference at every generated token); adds
    #    greedy/<model>_<config>/ folders and merges their entries into greedy/index.json
    /usr/bin/python3 scripts/reference/research_masker_reference.py greedy
    # one decode case only (index.json left alone):
    /usr/bin/python3 scripts/reference/research_masker_reference.py decode --case s300_hat_k32_b32_silu

tests/golden/masked/README.md describes every file. In short, beside the fields and files that
masker_reference.py writes for every decode case (case.json, out/dense_out.f32, sel_*):
- hashattention_top_k: `hat.safetensors` (the product's `hashattention` adapter, random weights
  generated here from a seed), `hat_scores.i32` [H, sk] (the reference's sig_q . sig_k), the
  selection of the product's rule (ties to the lower position) in `sel_*_lowtie` files and
  `out_lowtie.f32` (the reference run again with a stable top-k), and case.json "hashattention".
- magic_pig: `lsh.safetensors` (the product's `lsh` adapter holding the reference's own
  projections, read back from its sparse_meta_data), `mp_key_mean.f32` [H, d], `mp_prob.f32`
  [H, sk] (the reference's collision probabilities), case.json "magic_pig" (M, match counts).
- quest_top_k: `quest_page_scores.f32` [H, P] (float64 bounds, stored f32) and case.json "quest"
  (selected pages per head, the kp-th / (kp+1)-th bound gaps).

Robustness checks (all cases): hash bits whose pre-sign value is within 1e-4 x rms of zero are
"fragile" (an implementation with another summation order may flip them); a case is accepted only
when no fragile bit can change a selection (HAT: no key with a fragile bit can cross the k-th
score; MagicPig: no (head, key) pair whose match depends on a fragile bit), trying the next weight
seed / MagicPig seed otherwise. Quest: the kp-th and (kp+1)-th page bounds differ by >= 1e-4.
"""
import argparse
import copy
import json
import math
import os
import struct
import sys

import numpy
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import masker_reference as mr  # noqa: E402
import masked_greedy_replay as replay  # noqa: E402

R = mr.R
ROOT = mr.ROOT
FRAGILE_REL = 1e-4        # |pre-sign value| < FRAGILE_REL * rms: the sign may differ in another float32 order
NUDGE_GAP = 5e-5         # HAT decode cases: last biases shifted so that |pre-sign| >= 5e-5 x rms
FRAGILE_FACTOR = 8       # HAT: fragile = within 8 x the measured float32 error of zero
QUEST_MIN_GAP = 1e-4      # kp-th vs (kp+1)-th page bound (unscaled q.k units)
GREEDY_MIN_MARGIN = 1e-3

CTX = {"hat": None, "ra": None, "calls": []}


# ---------------------------------------------------------------------------------------
# The reference's classes for the three maskers

def import_research():
    from sparse_attention_hub.sparse_attention.research_attention.maskers.fixed import (
        HashAttentionTopKMaskerConfig)
    from sparse_attention_hub.sparse_attention.research_attention.maskers.fixed.implementations.quest_top_k import (
        QuestTopKMaskerConfig)
    from sparse_attention_hub.sparse_attention.research_attention.maskers.sampling.implementations import (
        MagicPigConfig)
    R.configs["hashattention_top_k"] = lambda p: HashAttentionTopKMaskerConfig(
        heavy_size=p["heavy_size"], hat_bits=CTX["hat"]["bits"], hat_mlp_layers=CTX["hat"]["mlp_layers"],
        hat_mlp_hidden_size=CTX["hat"]["hidden"], hat_mlp_activation=CTX["hat"]["activation"],
        hat_weights=copy.deepcopy(CTX["hat"]["weights"]))
    R.configs["magic_pig"] = lambda p: MagicPigConfig(lsh_l=p["lsh_l"], lsh_k=p["lsh_k"],
                                                      center=p.get("center", True), seed=p.get("seed", 42))
    R.configs["quest_top_k"] = lambda p: QuestTopKMaskerConfig(
        heavy_size=p["heavy_size"], page_size=p["page_size"], label_bits=p.get("label_bits", 16))
    mr.research_attention = research_attention  # run_decode_case builds its ResearchAttention with this


def research_attention(maskers):
    """masker_reference.research_attention, with every masker call recorded in CTX["calls"]:
    its sparse_meta_data, previous and resulting dense masks, and MagicPig's probabilities/matches."""
    configs = [R.configs[m["type"]]({k: v for k, v in m.items() if k != "type"}) for m in maskers]
    ra = R.ResearchAttention.create_from_config(R.ResearchAttentionConfig(masker_configs=configs))
    CTX["ra"], CTX["calls"] = ra, []
    for i, masker in enumerate(ra.maskers):
        _record(masker, i)
    return ra


def _record(masker, index):
    original = masker.add_mask
    extra = {}

    def add_mask(**kw):
        extra.clear()
        prev = kw["previous_mask"]
        prev_state, prev_dense = mr.mask_state(prev), mr.dense_of(prev)
        result = original(**kw)
        CTX["calls"].append({"index": index, "layer": kw.get("layer_idx"), "meta": kw["sparse_meta_data"],
                             "prev_state": prev_state, "prev_dense": prev_dense,
                             "state": mr.mask_state(result), "dense": mr.dense_of(result), **dict(extra)})
        return result
    masker.add_mask = add_mask
    if type(masker).__name__ == "MagicPig":
        probs, matches = masker._compute_probabilities, masker._compute_lsh_matches

        def p_fn(k, q):
            r = probs(k, q)
            extra["prob"] = r.detach().clone()
            return r

        def m_fn(k, q, meta, layer):
            r = matches(k, q, meta, layer)
            extra["match"] = r.detach().clone()
            return r
        masker._compute_probabilities, masker._compute_lsh_matches = p_fn, m_fn


def stable_topk(input, k, dim=-1, largest=True, sorted=True):
    """torch.topk with ties to the lower position (the product's rule)."""
    vals, idx = torch.sort(input, dim=dim, descending=largest, stable=True)
    return torch.return_types.topk((vals.narrow(dim, 0, k), idx.narrow(dim, 0, k)))


class LowerPositionTies:
    def __enter__(self):
        self.saved = torch.topk
        torch.topk = stable_topk
        return self

    def __exit__(self, *exc):
        torch.topk = self.saved


# ---------------------------------------------------------------------------------------
# Adapters (safetensors written by hand)

def write_safetensors(path, tensors, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = numpy.ascontiguousarray(t.detach().cpu().numpy(), dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name != "__metadata__":
            a, b = e["data_offsets"]
            out[name] = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(e["shape"])
    return out, header.get("__metadata__", {})


def make_hat(num_layers, H, d, spec, seed):
    """Random HashAttention MLPs per layer (query and key sides, per query head): Gaussian weights
    scaled 1/sqrt(d_in), biases 0.1 x Gaussian. dims d -> hidden x (mlp_layers - 1) -> bits."""
    g = torch.Generator().manual_seed(seed)
    dims = [d] + [spec["hidden"]] * (spec["mlp_layers"] - 1) + [spec["bits"]]
    weights = {}
    for layer in range(num_layers):
        lw = {"query_matrix": [], "query_bias": [], "key_matrix": [], "key_bias": []}
        for side in ("query", "key"):
            for i in range(len(dims) - 1):
                lw[f"{side}_matrix"].append(torch.randn(H, dims[i], dims[i + 1], generator=g) / math.sqrt(dims[i]))
                lw[f"{side}_bias"].append(0.1 * torch.randn(H, dims[i + 1], generator=g))
        weights[layer] = lw
    return dict(spec, weights=weights, seed=seed, num_layers=num_layers)


def write_hat(path, hat):
    tensors = {}
    for layer in range(hat["num_layers"]):
        lw = hat["weights"][layer]
        for side in ("query", "key"):
            for i, (m, b) in enumerate(zip(lw[f"{side}_matrix"], lw[f"{side}_bias"])):
                tensors[f"layers.{layer}.{side}.{i}.weight"] = m
                tensors[f"layers.{layer}.{side}.{i}.bias"] = b
    write_safetensors(path, tensors, {"type": "hashattention", "activation": hat["activation"]})


def write_lsh(path, projections):
    write_safetensors(path, {f"layers.{l}.projection": p for l, p in sorted(projections.items())}, {"type": "lsh"})


def projections_of(lsh_l, lsh_k, seed, d, num_layers):
    """The reference's projections per layer, read back from its sparse_meta_data after one call of
    its MagicPig masker with that layer_idx (it draws them on its first call for a layer)."""
    out = {}
    for layer in range(num_layers):
        ra = research_attention([{"type": "magic_pig", "lsh_l": lsh_l, "lsh_k": lsh_k, "seed": seed}])
        meta = {}
        ra.custom_attention(mr.LayerModule(layer), torch.randn(1, 1, 1, d), torch.randn(1, 1, 4, d),
                            torch.randn(1, 1, 4, d), None, 1.0, 0.0, meta, layer_idx=layer)
        out[layer] = meta["projections"][layer].detach().clone()
    return out


# ---------------------------------------------------------------------------------------
# Fragility of hash bits (float64 recomputation)

ACTS = {"relu": F.relu, "silu": F.silu, "gelu": F.gelu, "tanh": torch.tanh}


def hat_presign(x, mats, biases, activation, dtype):
    """x [H, n, d] -> [H, n, bits]: the MLP's last output before sign(), in `dtype` (float32: the
    reference's operations, einsum per head then bias; float64: the exact value)."""
    x = x.to(dtype)[None]
    for i, (m, b) in enumerate(zip(mats, biases)):
        x = torch.einsum("bhsd,hde->bhse", x, m.to(dtype)) + b.to(dtype)[None, :, None, :]
        if i < len(mats) - 1:
            x = ACTS[activation](x)
    return x[0]


def fragile_of(x, rel=FRAGILE_REL):
    rms = float(x.pow(2).mean().sqrt())
    return x.abs() < rel * rms, float(x.abs().min() / rms)


def nudge_hat(hat, layer, q, Kq, gap_rel=NUDGE_GAP):
    """Shifts the last bias of each (side, head, bit) column by the smallest multiple of
    gap_rel x rms (tried in the order 0, +1, -1, +2, ...) that leaves every pre-sign value of these
    inputs at least gap_rel x rms away from zero, so that no bit is fragile. Returns the columns changed."""
    lw = hat["weights"][layer]
    changed = 0
    for side, x_in in (("query", q[:, None, :]), ("key", Kq)):
        x = hat_presign(x_in, lw[f"{side}_matrix"], lw[f"{side}_bias"], hat["activation"], torch.float64)
        rms = float(x.pow(2).mean().sqrt())
        bias = lw[f"{side}_bias"][-1]
        for h in range(x.shape[0]):
            for b in range(x.shape[2]):
                col = x[h, :, b]
                for i in range(400):
                    delta = ((i + 1) // 2) * (1 if i % 2 else -1) * 2 * gap_rel * rms
                    if float((col + delta).abs().min()) > gap_rel * rms:
                        break
                else:
                    sys.exit("nudge_hat: no bias shift found")
                if delta:
                    bias[h, b] = float(bias[h, b]) + delta
                    changed += 1
    return changed


def hat_analysis(q, Kq, hat, layer, prev, k):
    """Scores, fragility and the uncertain (head, key) pairs of a HAT selection of k keys among the
    keys inactive in `prev` [H, sk]. Returns a dict; `scores` [H, sk] int from float64 signs.
    A bit is fragile when its float64 pre-sign value is within FRAGILE_FACTOR x (the largest
    float32-vs-float64 difference of this MLP on these inputs) of zero (and at least 1e-6 x rms)."""
    lw = hat["weights"][layer]
    xq = hat_presign(q[:, None, :], lw["query_matrix"], lw["query_bias"], hat["activation"], torch.float64)
    xk = hat_presign(Kq, lw["key_matrix"], lw["key_bias"], hat["activation"], torch.float64)
    xq32 = hat_presign(q[:, None, :], lw["query_matrix"], lw["query_bias"], hat["activation"], torch.float32)
    xk32 = hat_presign(Kq, lw["key_matrix"], lw["key_bias"], hat["activation"], torch.float32)
    err = max(float((xq32.double() - xq).abs().max() / xq.pow(2).mean().sqrt()),
              float((xk32.double() - xk).abs().max() / xk.pow(2).mean().sqrt()))
    rel = max(FRAGILE_FACTOR * err, 1e-6)
    fq, rq = fragile_of(xq, rel)
    fk, rk = fragile_of(xk, rel)
    scores = torch.einsum("hb,hsb->hs", torch.sign(xq[:, 0]), torch.sign(xk)).round().long()
    nfrag = fk.sum(-1) + fq[:, 0].sum(-1)[:, None]                                               # [H, sk]
    uncertain, heads = [], []
    for h in range(q.shape[0]):
        inactive = (prev[h] == 0).nonzero().flatten()
        s = scores[h, inactive]
        order = torch.sort(s, descending=True, stable=True)
        t = int(order.values[k - 1])
        above, at = int((s > t).sum()), int((s == t).sum())
        f = nfrag[h, inactive]
        bad = (f > 0) & (s - 2 * f <= t) & (s + 2 * f >= t)
        uncertain += [[h, int(j)] for j in inactive[bad].tolist()]
        heads.append({"kth_score": t, "num_above": above, "num_at_kth": at, "taken_at_kth": k - above,
                      "lowtie_added": sorted(inactive[order.indices[:k]].tolist())})
    return {"scores": scores, "uncertain": uncertain, "heads": heads, "fragile_threshold_rel": rel,
            "float32_max_err_rel": err, "fragile_bits": int(fq.sum() + fk.sum()), "min_abs_presign_rel": min(rq, rk)}


def mips(Kq, q, key_mean, center, dtype=torch.float64):
    """The reference's centring + MIPS transform (M over all heads and keys given), in `dtype`
    (float32 follows the reference's operations)."""
    Kc, qc = Kq.to(dtype), q.to(dtype)
    if center:
        Kc, qc = Kc - key_mean.to(dtype), qc - key_mean.to(dtype)[:, 0]
    kn = torch.norm(Kc, dim=-1, keepdim=True)
    M = torch.max(kn)
    kt = torch.cat([Kc / M, torch.sqrt(M ** 2 - kn ** 2) / M], -1)
    qt = torch.cat([qc / (torch.norm(qc, dim=-1, keepdim=True) + 1e-8), torch.zeros(qc.shape[0], 1, dtype=dtype)], -1)
    return kt, qt, float(M)


def mips64(Kq, q, key_mean, center):
    return mips(Kq, q, key_mean, center, torch.float64)


def lsh_analysis(kt, qt, proj, lsh_l, lsh_k, cached=None, kt32=None, qt32=None, ignore=None):
    """kt [H, sk, d+1], qt [H, d+1] float64. Returns the float64 match [H, sk], the uncertain
    (head, key) pairs, (key bits, key fragility) to cache, and the smallest |pre-sign| / rms.
    A bit is fragile when its float64 value is within FRAGILE_FACTOR x the largest float32-vs-float64
    difference (kt32/qt32: the reference's float32 transform) of zero, or FRAGILE_REL x rms without them.
    `cached` = (bits, fragility) of the first n keys as computed when they were hashed (with the M
    of that call): they replace the recomputation, as the reference's cached codes do.
    `ignore` [H, sk] bool: pairs whose weight is 1 anyway (sink/local keys), not counted as uncertain."""
    xk, xq = kt @ proj.double(), qt @ proj.double()
    rel = FRAGILE_REL
    if kt32 is not None:
        xk32, xq32 = kt32 @ proj, qt32 @ proj
        err = max(float((xk32.double() - xk).abs().max() / xk.pow(2).mean().sqrt()),
                  float((xq32.double() - xq).abs().max() / xq.pow(2).mean().sqrt()))
        rel = max(FRAGILE_FACTOR * err, 1e-6)
    fk, rk = fragile_of(xk, rel)
    fq, rq = fragile_of(xq, rel)
    bk = xk > 0
    if cached is not None:
        n = cached[0].shape[1]
        bk = torch.cat([cached[0], bk[:, n:]], 1)
        fk = torch.cat([cached[1], fk[:, n:]], 1)
    H, sk = kt.shape[0], kt.shape[1]
    bk4, fk4 = bk.view(H, sk, lsh_l, lsh_k), fk.view(H, sk, lsh_l, lsh_k)
    bq4, fq4 = (xq > 0).view(H, 1, lsh_l, lsh_k), fq.view(H, 1, lsh_l, lsh_k)
    anyfrag = fk4 | fq4
    eq = bk4 == bq4
    match = eq.all(-1).any(-1)
    certain_match = (eq & ~anyfrag).all(-1).any(-1)
    certain_miss = (~eq & ~anyfrag).any(-1).all(-1)
    unc = ~certain_match & ~certain_miss
    if ignore is not None:
        unc &= ~ignore
    uncertain = unc.nonzero().tolist()
    return match, uncertain, (bk, fk), min(rk, rq)


# ---------------------------------------------------------------------------------------
# A. Decode-step cases

def S(n):
    return {"type": "sink", "sink_size": n}


def L(n):
    return {"type": "local", "window_size": n}


def HAT(n):
    return {"type": "hashattention_top_k", "heavy_size": n}


def MP(l, k, seed=42, center=None):
    m = {"type": "magic_pig", "lsh_l": l, "lsh_k": k}
    if center is not None:
        m["center"] = center
    m["seed"] = seed
    return m


def QT(n, ps, bits=None):
    m = {"type": "quest_top_k", "heavy_size": n, "page_size": ps}
    if bits is not None:
        m["label_bits"] = bits
    return m


def hatspec(bits, mlp_layers, hidden, activation, seed):
    return {"hat": {"bits": bits, "mlp_layers": mlp_layers, "hidden": hidden, "activation": activation,
                    "seed": seed}}


SET_LAYERS = {"llama_f32": 2, "qwen2_f32": 2, "phi3_f32": 2}

# name, input set, maskers, extra ({"hat": spec} for HAT; alternatives for Quest near-ties)
RESEARCH_CASES = [
    # hashattention_top_k (adapters kept small: hidden 8)
    ("s40_hat40_full", "syn_h8_kv8_d16_s40", [HAT(40)], hatspec(16, 2, 8, "relu", 400)),
    ("s40_sink4_local8_hat8_b16_relu", "syn_h8_kv8_d16_s40", [S(4), L(8), HAT(8)], hatspec(16, 3, 8, "relu", 410)),
    ("s300_hat_k32_b32_silu", "syn_h8_kv4_d32_s300", [HAT(32)], hatspec(32, 3, 8, "silu", 420)),
    ("s300_sink8_local16_hat01_b16_gelu", "syn_h8_kv4_d32_s300", [S(8), L(16), HAT(0.1)],
     hatspec(16, 2, 8, "gelu", 430)),
    ("s600_sink16_local32_hat005_b32_tanh", "syn_h8_kv2_d64_s600", [S(16), L(32), HAT(0.05)],
     hatspec(32, 2, 8, "tanh", 440)),
    ("s4096_sink128_local128_hat01_b32_silu", "syn_h16_kv2_d16_s4096", [S(128), L(128), HAT(0.1)],
     hatspec(32, 3, 8, "silu", 450)),
    # magic_pig
    ("s40_sink4_local8_mp_l8k4", "syn_h8_kv8_d16_s40", [S(4), L(8), MP(8, 4, 42)], {}),
    ("s40_mp_l32k2", "syn_h8_kv8_d16_s40", [MP(32, 2, 42)], {}),
    ("s300_mp_l8k8", "syn_h8_kv4_d32_s300", [MP(8, 8, 42)], {}),
    ("s300_sink4_local16_mp_l4k4", "syn_h8_kv4_d32_s300", [S(4), L(16), MP(4, 4, 42)], {}),
    ("s600_sink16_local32_mp_l16k4", "syn_h8_kv2_d64_s600", [S(16), L(32), MP(16, 4, 42)], {}),
    ("s600_mp_l8k4_nocenter", "syn_h8_kv2_d64_s600", [MP(8, 4, 42, center=False)], {}),
    ("s600_sink16_local32_mp_l8k8_nocenter", "syn_h8_kv2_d64_s600", [S(16), L(32), MP(8, 8, 42, center=False)], {}),
    ("s4096_sink128_local128_mp_l8k8", "syn_h16_kv2_d16_s4096", [S(128), L(128), MP(8, 8, 42)], {}),
    # quest_top_k
    ("s40_quest8_ps32_two_pages", "syn_h8_kv8_d16_s40", [QT(8, 32)], {}),
    ("s40_sink4_local8_quest12_ps4", "syn_h8_kv8_d16_s40", [S(4), L(8), QT(12, 4)], {}),
    ("s300_quest32_ps8", "syn_h8_kv4_d32_s300", [QT(32, 8)], {}),
    ("s300_quest01_ps16", "syn_h8_kv4_d32_s300", [QT(0.1, 16)], {}),
    ("s300_sink4_local16_quest64_ps4_label8", "syn_h8_kv4_d32_s300", [S(4), L(16), QT(64, 4, 8)], {}),
    ("s600_sink16_local32_quest005_ps32", "syn_h8_kv2_d64_s600", [S(16), L(32), QT(0.05, 32)], {}),
    ("s600_quest128_ps16", "syn_h8_kv2_d64_s600", [QT(128, 16)], {}),
    ("s4096_quest512_ps64", "syn_h16_kv2_d16_s4096", [QT(512, 64)], {}),
    ("s4096_sink128_local128_quest005_ps32", "syn_h16_kv2_d16_s4096", [S(128), L(128), QT(0.05, 32)], {}),
]
for _i, _m in enumerate(["llama_f32", "qwen2_f32", "phi3_f32"]):
    _set = f"{_m}_l1_s300"
    RESEARCH_CASES += [
        (f"{_m}_l1_sink4_local16_hat01_b32_silu", _set, [S(4), L(16), HAT(0.1)], hatspec(32, 2, 8, "silu", 500 + _i)),
        (f"{_m}_l1_sink4_local16_mp_l8k4", _set, [S(4), L(16), MP(8, 4, 42)], {}),
        (f"{_m}_l1_mp_l16k4", _set, [MP(16, 4, 42)], {}),
        (f"{_m}_l1_quest32_ps8", _set, [QT(32, 8)], {}),
        (f"{_m}_l1_sink4_local8_quest025_ps16", _set, [S(4), L(8), QT(0.25, 16)], {}),
    ]
RESEARCH_CASES += [
    ("phi3_f32_l1_hat32_b16_gelu", "phi3_f32_l1_s300", [HAT(32)], hatspec(16, 2, 8, "gelu", 512)),
    ("qwen2_f32_l1_sink4_local16_hat01_b64_1layer", "qwen2_f32_l1_s300", [S(4), L(16), HAT(0.1)],
     hatspec(64, 1, 8, "tanh", 520)),
    ("llama_f32_l0_sink8_local16_hat005_b32_relu", "llama_f32_l0_s300", [S(8), L(16), HAT(0.05)],
     hatspec(32, 2, 8, "relu", 530)),
    ("llama_f32_l0_sink4_local16_mp_l16k4", "llama_f32_l0_s300", [S(4), L(16), MP(16, 4, 42)], {}),
    ("llama_f32_l0_quest48_ps16", "llama_f32_l0_s300", [QT(48, 16)], {}),
]


class Reject(Exception):
    pass


def num_layers_of(set_name, meta):
    src = meta["source"]
    return SET_LAYERS[src["model"]] if src.get("kind") == "model" else 1


def write_sel(case_dir, suffix, mask, weights, H):
    wd = mr.dense_of(mask)[0, :, 0]
    ptr, idx, w, p = [0], [], [], []
    for h in range(H):
        sel = (wd[h] > 0).nonzero().flatten()
        idx += sel.tolist()
        w += wd[h, sel].tolist()
        p += weights[h, sel].tolist()
        ptr.append(len(idx))
    mr.write_i32(os.path.join(case_dir, f"sel_ptr{suffix}.i32"), ptr)
    mr.write_i32(os.path.join(case_dir, f"sel_idx{suffix}.i32"), idx)
    mr.write_f32(os.path.join(case_dir, f"sel_w{suffix}.f32"), torch.tensor(w, dtype=torch.float32))
    mr.write_f32(os.path.join(case_dir, f"sel_p{suffix}.f32"), torch.tensor(p, dtype=torch.float32))
    n = ptr[-1]
    return {f"sel_ptr{suffix}": {"file": f"sel_ptr{suffix}.i32", "dtype": "i32", "shape": [H + 1]},
            f"sel_idx{suffix}": {"file": f"sel_idx{suffix}.i32", "dtype": "i32", "shape": [n]},
            f"sel_w{suffix}": {"file": f"sel_w{suffix}.f32", "dtype": "f32", "shape": [n]},
            f"sel_p{suffix}": {"file": f"sel_p{suffix}.f32", "dtype": "f32", "shape": [n]}}, ptr, idx


def masker_call(masker_type):
    i = next(i for i, c in enumerate(CTX["calls"]) if c["index"] == masker_index(masker_type))
    return CTX["calls"][i]


def masker_index(masker_type):
    return next(i for i, m in enumerate(CTX["maskers"]) if m["type"] == masker_type)


def hat_case(out, name, set_name, maskers, extra, inputs, case_dir):
    """Runs a HAT case for one weight seed; raises Reject when a fragile bit could change it."""
    q, K, V, meta = inputs
    H, d = q.shape
    Hkv, sk, _ = K.shape
    Kq = K.repeat_interleave(H // Hkv, 0)
    spec = extra["hat"]
    hat = make_hat(num_layers_of(set_name, meta), H, d, spec, spec["seed_used"])
    nudged = nudge_hat(hat, 0, q, Kq)
    CTX["hat"] = hat
    record = mr.run_decode_case(out, name, set_name, maskers, {}, inputs)
    call = masker_call("hashattention_top_k")
    info = {"adapter": "hat.safetensors", "bits": spec["bits"], "mlp_layers": spec["mlp_layers"],
            "hidden": spec["hidden"], "activation": spec["activation"], "weight_seed": spec["seed_used"],
            "adapter_layers": hat["num_layers"], "layer_idx": 0, "nudged_bias_columns": nudged,
            "generator": "research_masker_reference.make_hat"}
    write_hat(os.path.join(case_dir, "hat.safetensors"), hat)
    if call["state"] == "FULL":
        info["full"] = True
        record["hashattention"] = info
        return record
    k = mr.eff(maskers[masker_index("hashattention_top_k")]["heavy_size"], sk)
    prev = call["prev_dense"][0, :, 0]
    a = hat_analysis(q, Kq, hat, 0, prev, k)
    # The reference's own signatures (float32) must give the float64 scores.
    sig_k = call["meta"]["key"][0][0]                                            # [H, sk, bits]
    masker = CTX["ra"].maskers[masker_index("hashattention_top_k")]
    sig_q = masker._compute_signatures_for_tensor_type(q[None, :, None, :], 0, "query")[0, :, 0]
    ref_scores = torch.einsum("hb,hsb->hs", sig_q, sig_k).round().long()
    if not torch.equal(ref_scores, a["scores"]):
        raise Reject(f"float32 and float64 HAT scores differ at {int((ref_scores != a['scores']).sum())} entries")
    if a["uncertain"]:
        raise Reject(f"{len(a['uncertain'])} (head, key) pairs with a fragile bit at the k-th score")
    added_ref = (call["dense"][0, :, 0] > 0) & (prev == 0)
    heads = a["heads"]
    for h in range(H):
        ref_idx = added_ref[h].nonzero().flatten()
        if len(ref_idx) != k:
            sys.exit(f"{name}: the reference added {len(ref_idx)} keys, not k = {k}")
        ms_ref = sorted(ref_scores[h, ref_idx].tolist(), reverse=True)
        ms_low = sorted(ref_scores[h, heads[h]["lowtie_added"]].tolist(), reverse=True)
        if ms_ref != ms_low:
            sys.exit(f"{name}: head {h}: the reference's selected score multiset differs from the low-tie one")
        heads[h]["reference_added_equals_lowtie"] = ref_idx.tolist() == heads[h]["lowtie_added"]
        heads[h]["selected_score_multiset"] = [[s, ms_ref.count(s)] for s in sorted(set(ms_ref), reverse=True)]
        del heads[h]["lowtie_added"]
    numpy.asarray(ref_scores.flatten().tolist(), dtype=numpy.int8).tofile(os.path.join(case_dir, "hat_scores.i8"))
    # The product's rule: the reference again, with a stable top-k (ties to the lower position).
    ra = research_attention(maskers)
    R.last_mask.clear()
    with LowerPositionTies():
        out_low, w_low = ra.custom_attention(mr.LayerModule(0), q[None, :, None, :], K[None], V[None], None,
                                             record["scaling"], 0.0, {}, layer_idx=0)
    out_low, w_low = out_low[0, 0].detach(), w_low[0, :, 0].detach()
    mr.write_f32(os.path.join(case_dir, "out_lowtie.f32"), out_low)
    files, ptr, idx = write_sel(case_dir, "_lowtie", R.last_mask[-1], w_low, H)
    # independent float64 check of the low-tie output, and that its added keys are the expected ones
    call_low = masker_call("hashattention_top_k")
    added_low = (call_low["dense"][0, :, 0] > 0) & (call_low["prev_dense"][0, :, 0] == 0)
    s64 = torch.einsum("hd,hsd->hs", q.double(), Kq.double()) * record["scaling"]
    Vq = V.repeat_interleave(H // Hkv, 0).double()
    wd = mr.dense_of(R.last_mask[-1])[0, :, 0]
    mine = torch.stack([torch.softmax(s64[h, idx[ptr[h]:ptr[h + 1]]] - torch.log(wd[h, idx[ptr[h]:ptr[h + 1]]].double()
                                                                                + 1e-6), -1) @ Vq[h, idx[ptr[h]:ptr[h + 1]]]
                        for h in range(H)])
    diff = float((out_low.double() - mine).abs().max())
    if diff > 2e-5:
        sys.exit(f"{name}: low-tie output differs from the softmax over its selection by {diff}")
    for h in range(H):
        got = added_low[h].nonzero().flatten().tolist()
        want = sorted(torch.sort(torch.where(prev[h] == 0, a["scores"][h], torch.full_like(a["scores"][h], -10 ** 6)),
                                 descending=True, stable=True).indices[:k].tolist())
        if got != want:
            sys.exit(f"{name}: head {h}: the stable-top-k run did not select the low-tie keys")
    files.update({"out_lowtie": {"file": "out_lowtie.f32", "dtype": "f32", "shape": [H, d]},
                  "hat_scores": {"file": "hat_scores.i8", "dtype": "i8", "shape": [H, sk]}})
    record["files"].update(files)
    info.update({"k": k, "heads": heads, "reference_equals_lowtie": all(h["reference_added_equals_lowtie"] for h in heads),
                 "lowtie_check_max_abs_diff": diff,
                 "lowtie_output_max_abs_diff_vs_reference": float((out_low - record_out(case_dir, H, d)).abs().max()),
                 "fragile_bits": a["fragile_bits"], "min_abs_presign_rel": a["min_abs_presign_rel"],
                 "fragile_threshold_rel": a["fragile_threshold_rel"], "float32_max_err_rel": a["float32_max_err_rel"],
                 "lowtie_selected_count": [ptr[h + 1] - ptr[h] for h in range(H)]})
    record["hashattention"] = info
    return record


def record_out(case_dir, H, d):
    return mr.read_f32(os.path.join(case_dir, "out.f32"), [H, d])


def magic_pig_case(out, name, set_name, maskers, extra, inputs, case_dir):
    q, K, V, meta = inputs
    H, d = q.shape
    Hkv, sk, _ = K.shape
    Kq = K.repeat_interleave(H // Hkv, 0)
    try:
        record = mr.run_decode_case(out, name, set_name, maskers, {}, inputs)
    except SystemExit as e:
        if "selects no key" in str(e) or "not finite" in str(e):
            raise Reject(str(e))
        raise
    m = maskers[masker_index("magic_pig")]
    call = masker_call("magic_pig")
    center = m.get("center", True)
    lay = call["meta"]
    key_mean = lay["key_mean"][0][0] if center else torch.zeros(H, 1, d)          # [H, 1, d]
    proj = lay["projections"][0]
    # M exactly as the reference computes it (float32), and the float64 analysis
    Kc = Kq[None] - key_mean[None] if center else Kq[None]
    M32 = float(torch.max(torch.norm(Kc, dim=-1, keepdim=True)))
    kt, qt, M64 = mips64(Kq, q, key_mean, center)
    kt32, qt32, _ = mips(Kq, q, key_mean, center, torch.float32)
    prev1 = call["prev_dense"][0, :, 0] >= 1
    match64, uncertain, _, rel = lsh_analysis(kt, qt, proj, m["lsh_l"], m["lsh_k"], kt32=kt32, qt32=qt32, ignore=prev1)
    match_ref = call["match"][0, :, 0].bool()
    if not torch.equal(match64 | prev1, match_ref.bool() | prev1):
        raise Reject(f"float64 matches differ from the reference's at {int((match64 != match_ref).sum())} pairs")
    if uncertain:
        raise Reject(f"{len(uncertain)} (head, key) matches depend on a fragile bit")
    prob = call["prob"][0, :, 0]                                                  # [H, sk] float32
    counts = match_ref.sum(-1).tolist()
    if min(record["selected_count"] or [1]) == 0:
        raise Reject("a head selects no key")
    # weights: matched keys carry p (clamp-added to earlier maskers' 1.0)
    wd = call["dense"][0, :, 0]
    prevd = call["prev_dense"][0, :, 0]
    want = torch.clamp(prevd + match_ref.float() * prob, 0, 1)
    if not torch.equal(want, wd):
        sys.exit(f"{name}: MagicPig's weights are not clamp(prev + match * p)")
    n_layers = num_layers_of(set_name, meta)
    projs = {0: proj.detach().clone()}
    if n_layers > 1:
        projs.update({l: p for l, p in projections_of(m["lsh_l"], m["lsh_k"], m.get("seed", 42), d,
                                                      n_layers).items() if l > 0})
        again = projections_of(m["lsh_l"], m["lsh_k"], m.get("seed", 42), d, 1)[0]
        if not torch.equal(again, proj):
            sys.exit(f"{name}: the reference's projections are not reproducible")
    write_lsh(os.path.join(case_dir, "lsh.safetensors"), projs)
    mr.write_f32(os.path.join(case_dir, "mp_key_mean.f32"), key_mean[:, 0])
    record["files"]["mp_key_mean"] = {"file": "mp_key_mean.f32", "dtype": "f32", "shape": [H, d]}
    if H * sk <= 40000:
        mr.write_f32(os.path.join(case_dir, "mp_prob.f32"), prob)
        record["files"]["mp_prob"] = {"file": "mp_prob.f32", "dtype": "f32", "shape": [H, sk]}
    p_added = [float(prob[h][match_ref[h] & (prevd[h] == 0)].min()) if bool((match_ref[h] & (prevd[h] == 0)).any())
               else None for h in range(H)]
    record["magic_pig"] = {
        "adapter": "lsh.safetensors", "adapter_layers": n_layers, "layer_idx": 0,
        "lsh_l": m["lsh_l"], "lsh_k": m["lsh_k"], "center": center, "seed": m.get("seed", 42),
        "max_key_norm": M32, "max_key_norm_f64": M64,
        "key_mean_note": "mp_key_mean.f32: the reference's key mean per query head (the mean of its KV head's sk "
                         "keys; zeros when center is false), frozen at this (first sparse) query",
        "match_count": counts, "min_p_of_added_keys": p_added,
        "min_abs_presign_rel": rel}
    return record


def quest_case(out, name, set_name, maskers, extra, inputs, case_dir):
    q, K, V, meta = inputs
    H, d = q.shape
    Hkv, sk, _ = K.shape
    Kq = K.repeat_interleave(H // Hkv, 0)
    record = mr.run_decode_case(out, name, set_name, maskers, {}, inputs)
    m = maskers[masker_index("quest_top_k")]
    call = masker_call("quest_top_k")
    info = {"page_size": m["page_size"], "label_bits": m.get("label_bits", 16)}
    if call["state"] == "FULL":
        record["quest"] = dict(info, full=True)
        return record
    ps = m["page_size"]
    T = mr.eff(m["heavy_size"], sk)
    P = (sk + ps - 1) // ps
    kp = min(P, max(3, T // ps))
    K64 = Kq.double()
    mn = torch.stack([K64[:, p * ps:(p + 1) * ps].amin(1) for p in range(P)], 1)      # [H, P, d]
    mx = torch.stack([K64[:, p * ps:(p + 1) * ps].amax(1) for p in range(P)], 1)
    if info["label_bits"] < 16:
        # the reference's pseudo_quantize (float32), applied per page vector
        from sparse_attention_hub.sparse_attention.research_attention.maskers.fixed.implementations.utils.common_utils \
            import pseudo_quantize
        mn, mx = pseudo_quantize(mn.float(), info["label_bits"]).double(), pseudo_quantize(mx.float(), info["label_bits"]).double()
    qd = q.double()[:, None, :]
    scores = torch.maximum(qd * mn, qd * mx).sum(-1)                                  # [H, P]
    pages, gaps = [], []
    prevd = call["prev_dense"][0, :, 0]
    wd = call["dense"][0, :, 0]
    for h in range(H):
        order = torch.sort(scores[h], descending=True, stable=True)
        sel = sorted(order.indices[:kp].tolist())
        gaps.append(float(order.values[kp - 1] - order.values[kp]) if kp < P else None)
        U = torch.zeros(sk)
        for p in sel:
            U[p * ps:(p + 1) * ps] = 1.0
        if not torch.equal(torch.maximum(prevd[h], U), wd[h]):
            sys.exit(f"{name}: head {h}: the reference's pages differ from the float64 page top-k")
        pages.append(sel)
    real_gaps = [g for g in gaps if g is not None]
    if real_gaps and min(real_gaps) < QUEST_MIN_GAP:
        raise Reject(f"Quest page near-tie: gap {min(real_gaps):.3g}")
    mr.write_f32(os.path.join(case_dir, "quest_page_scores.f32"), scores.float())
    record["files"]["quest_page_scores"] = {"file": "quest_page_scores.f32", "dtype": "f32", "shape": [H, P]}
    info.update({"heavy_tokens": T, "num_pages": P, "k_pages": kp, "pages": pages, "page_gap": gaps,
                 "min_page_gap": min(real_gaps) if real_gaps else None})
    record["quest"] = info
    return record


def run_case(out, name, set_name, maskers, extra, inputs):
    CTX["maskers"] = maskers
    case_dir = os.path.join(out, "decode", name)
    os.makedirs(case_dir, exist_ok=True)
    for f in os.listdir(case_dir):
        os.remove(os.path.join(case_dir, f))
    types_ = {m["type"] for m in maskers}
    tries = []
    for attempt in range(40):
        try:
            if "hashattention_top_k" in types_:
                extra["hat"]["seed_used"] = extra["hat"]["seed"] + 1000 * attempt
                record = hat_case(out, name, set_name, maskers, extra, inputs, case_dir)
            elif "magic_pig" in types_:
                record = magic_pig_case(out, name, set_name, maskers, extra, inputs, case_dir)
            else:
                record = quest_case(out, name, set_name, maskers, extra, inputs, case_dir)
            break
        except Reject as e:
            tries.append(str(e))
            print(f"    {name}: {e}; next seed", flush=True)
            if "magic_pig" in types_:
                mp = maskers[masker_index("magic_pig")]
                mp["seed"] = mp["seed"] + 1
                record = None
            elif "hashattention_top_k" not in types_:
                sys.exit(f"{name}: {e} (change the case)")
    else:
        sys.exit(f"{name}: no seed without a fragile selection ({tries[-1]})")
    if tries:
        record["rejected_seeds"] = tries
    record["attention"] = {"impl": "masked", "maskers": maskers}
    record["generator"] = "scripts/reference/research_masker_reference.py decode"
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record


def cmd_decode(args):
    mr.import_reference(args.reference)
    import_research()
    torch.set_num_threads(1)
    records = {}
    for name, set_name, maskers, extra in RESEARCH_CASES:
        if args.case and name not in args.case:
            continue
        inputs = mr.load_input_set(args.out, set_name)
        if inputs is None:
            sys.exit(f"input set {set_name} missing: run masker_reference.py decode (and capture) first")
        records[name] = run_case(args.out, name, set_name, copy.deepcopy(maskers), copy.deepcopy(extra), inputs)
        rec = records[name]
        extra_txt = ""
        if "hashattention" in rec and "heads" in rec["hashattention"]:
            extra_txt = f" lowtie==ref {rec['hashattention']['reference_equals_lowtie']}"
        if "quest" in rec and rec["quest"].get("min_page_gap") is not None:
            extra_txt = f" page gap {rec['quest']['min_page_gap']:.3g}"
        if "magic_pig" in rec:
            extra_txt = f" matches {rec['magic_pig']['match_count'][:4]}"
        print(f"  {name:46s} {rec['mask_state']:6s} density {rec['density']:.4f}{extra_txt}", flush=True)
    if args.case:
        return 0
    path = os.path.join(args.out, "decode", "index.json")
    index = json.load(open(path))
    ours = {n for n, _, _, _ in RESEARCH_CASES}
    cases = [c for c in index["cases"] if c["name"] not in ours]
    for name, set_name, _, _ in RESEARCH_CASES:
        rec = records[name]
        entry = {"name": name, "input_set": set_name, "mask_state": rec["mask_state"],
                 "num_heads": rec["num_heads"], "num_kv_heads": rec["num_kv_heads"], "head_dim": rec["head_dim"],
                 "seq_len_keys": rec["seq_len_keys"], "attention": rec["attention"], "sampling": False}
        for key, f in (("hashattention", "hat.safetensors"), ("magic_pig", "lsh.safetensors")):
            if key in rec:
                entry["adapter"] = {"type": "hashattention" if key == "hashattention" else "lsh", "file": f}
        cases.append(entry)
    index["cases"] = cases
    with open(path, "w") as f:
        json.dump(index, f, indent=1)
    return 0


# ---------------------------------------------------------------------------------------
# B. Greedy continuations

GREEDY = [
    # name suffix, maskers, adapter spec
    ("sink4_local16_hat01", [S(4), L(16), HAT(0.1)], hatspec(32, 3, 16, "silu", 700)),
    ("sink4_local16_mp_l8k4", [S(4), L(16), MP(8, 4, 42)], {}),
    ("quest32_ps8", [QT(32, 8)], {}),
    ("sink4_local8_quest025_ps16", [S(4), L(8), QT(0.25, 16)], {}),
]
GREEDY_MODELS = ["phi3_f32", "llama_f32"]


class Llama(replay.Phi3):
    """transformers' LlamaForCausalLM forward (llama3 RoPE scaling or default, separate q/k/v and
    gate/up projections, tied embeddings), batch 1, float32; Phi3's structure otherwise."""

    def __init__(self, model_dir, attention):
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.w = replay.load_weights(model_dir)
        if "lm_head.weight" not in self.w:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]
        self.H, self.Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.d = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        self.eps, self.layers = cfg["rms_norm_eps"], cfg["num_hidden_layers"]
        rp = cfg["rope_parameters"]
        inv = 1.0 / (rp["rope_theta"] ** (torch.arange(0, self.d, 2, dtype=torch.int64).float() / self.d))
        if rp.get("rope_type", "default") == "llama3":  # transformers' _compute_llama3_parameters
            factor, lo, hi, old = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"], \
                rp["original_max_position_embeddings"]
            lo_wl, hi_wl = old / lo, old / hi
            wavelen = 2 * math.pi / inv
            inv_l = torch.where(wavelen > lo_wl, inv / factor, inv)
            smooth = (old / wavelen - lo) / (hi - lo)
            smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
            is_med = ~(wavelen < hi_wl) * ~(wavelen > lo_wl)
            inv = torch.where(is_med, smoothed, inv_l)
        elif rp.get("rope_type", "default") != "default":
            sys.exit("llama: only default / llama3 RoPE")
        self.inv_freq = inv
        self.attention, self.cache = attention, {}

    def forward(self, ids, start):
        w, H, Hkv, d = self.w, self.H, self.Hkv, self.d
        x = w["model.embed_tokens.weight"][torch.tensor(ids)][None]
        T = len(ids)
        pos = torch.arange(start, start + T)
        for layer in range(self.layers):
            p = f"model.layers.{layer}."
            hn = self.rms(x, w[p + "input_layernorm.weight"])
            q = (hn @ w[p + "self_attn.q_proj.weight"].T).view(1, T, H, d).transpose(1, 2)
            k = (hn @ w[p + "self_attn.k_proj.weight"].T).view(1, T, Hkv, d).transpose(1, 2)
            v = (hn @ w[p + "self_attn.v_proj.weight"].T).view(1, T, Hkv, d).transpose(1, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if layer in self.cache:
                k, v = torch.cat([self.cache[layer][0], k], 2), torch.cat([self.cache[layer][1], v], 2)
            self.cache[layer] = (k, v)
            a = self.attention(layer, q, k, v, d ** -0.5).reshape(1, T, H * d)
            x = x + a @ w[p + "self_attn.o_proj.weight"].T
            hn = self.rms(x, w[p + "post_attention_layernorm.weight"])
            x = x + (F.silu(hn @ w[p + "mlp.gate_proj.weight"].T) * (hn @ w[p + "mlp.up_proj.weight"].T)) \
                @ w[p + "mlp.down_proj.weight"].T
        return (self.rms(x, w["model.norm.weight"]) @ w["lm_head.weight"].T)[0]


def model_of(name, attention):
    d = os.path.join(ROOT, "tests", "golden", "models", name)
    return (replay.Phi3 if name.startswith("phi3") else Llama)(d, attention)


class Driver:
    """Dense prefill, then one custom_attention call per generated token per layer with one
    sparse_meta_data dict for the sequence (the reference's HF adapter at batch 1). Per call it
    checks the robustness of the research masker's selection (as the decode cases do)."""

    def __init__(self, maskers, hat):
        self.maskers, self.hat, self.ra, self.meta = maskers, hat, None, {}
        self.densities, self.uncertain, self.quest_gaps, self.key_cache = [], [], [], {}

    def __call__(self, layer, q, k, v, scaling):
        if self.ra is None or q.shape[2] != 1:
            return mr.dense_causal(q, k, v, scaling)
        R.last_mask.clear()
        CTX["calls"] = []
        out, _ = self.ra.custom_attention(mr.LayerModule(layer), q, k, v, torch.zeros((1, 1, 1, k.shape[2])),
                                          scaling, 0.0, self.meta, layer_idx=layer)
        self.densities.append(float(R.last_mask[-1].get_density()))
        self.check(layer, q[0, :, 0], k[0])
        return out

    def check(self, layer, q, K):
        H, Hkv = q.shape[0], K.shape[0]
        Kq = K.repeat_interleave(H // Hkv, 0)
        sk = K.shape[1]
        for call in CTX["calls"]:
            m = self.maskers[call["index"]]
            if call["state"] == "FULL" or call["prev_state"] == "FULL":
                continue
            prev = call["prev_dense"][0, :, 0]
            if m["type"] == "hashattention_top_k":
                a = hat_analysis(q, Kq, self.hat, layer, prev, mr.eff(m["heavy_size"], sk))
                self.uncertain.append(len(a["uncertain"]))
            elif m["type"] == "magic_pig":
                center = m.get("center", True)
                km = self.meta["key_mean"][layer][0] if center else torch.zeros(H, 1, q.shape[1])
                kt, qt, _ = mips64(Kq, q, km, center)
                kt32, qt32, _ = mips(Kq, q, km, center, torch.float32)
                prev1 = prev >= 1
                match, unc, cache, _ = lsh_analysis(kt, qt, self.meta["projections"][layer], m["lsh_l"], m["lsh_k"],
                                                    self.key_cache.get(layer), kt32, qt32, prev1)
                self.key_cache[layer] = cache   # each key's bits with the M of the call that hashed it
                self.uncertain.append(len(unc))
                if not unc and not torch.equal(match | prev1, call["match"][0, :, 0].bool() | prev1):
                    sys.exit(f"layer {layer} sk {sk}: float64 matches (codes with the M at hashing time) "
                             "differ from the reference's")
            elif m["type"] == "quest_top_k":
                ps = m["page_size"]
                T = mr.eff(m["heavy_size"], sk)
                P = (sk + ps - 1) // ps
                kp = min(P, max(3, T // ps))
                K64 = Kq.double()
                mn = torch.stack([K64[:, p * ps:(p + 1) * ps].amin(1) for p in range(P)], 1)
                mx = torch.stack([K64[:, p * ps:(p + 1) * ps].amax(1) for p in range(P)], 1)
                sc = torch.maximum(q.double()[:, None] * mn, q.double()[:, None] * mx).sum(-1)
                if kp < P:
                    v = torch.sort(sc, -1, descending=True).values
                    self.quest_gaps.append(float((v[:, kp - 1] - v[:, kp]).min()))


def greedy_run(model_name, maskers, hat, ids, n, lowtie):
    drv = Driver(maskers, hat)
    model = model_of(model_name, drv)
    if hat is not None:
        CTX["hat"] = hat
    CTX["maskers"] = maskers
    rows, out = [], []
    with torch.no_grad():
        row = model.forward(ids, 0)[-1]
        drv.ra = research_attention(maskers) if maskers is not None else None
        ctx = LowerPositionTies() if lowtie else None
        if ctx:
            ctx.__enter__()
        try:
            for i in range(n):
                rows.append(row)
                out.append(int(torch.argmax(row)))
                if i + 1 < n:
                    row = model.forward([out[-1]], len(ids) + i)[-1]
        finally:
            if ctx:
                ctx.__exit__()
    logits = torch.stack(rows)
    top = torch.topk(logits, 2, dim=-1).values
    return out, logits, (top[:, 0] - top[:, 1]).tolist(), drv


def check_replay():
    """The re-implementations reproduce existing transformers-made greedy fixtures (dense + sparse)."""
    for case in ("phi3_f32_sink4_local16", "llama_f32_sink4_local16", "llama_f32_sink8_local32_topk01"):
        d = os.path.join(ROOT, "tests", "golden", "masked", "greedy", case)
        ref = json.load(open(os.path.join(d, "reference.json")))
        want = mr.read_f32(os.path.join(d, "logits.f32"), ref["logits_shape"])
        ids, logits, _, _ = greedy_run(ref["model"], ref["attention"]["maskers"], None, ref["prompt_ids"],
                                       len(ref["output_ids"]), False)
        diff = float((logits - want).abs().max())
        print(f"  replay of {case}: ids equal {ids == ref['output_ids']}, max |logits diff| {diff:.3g}", flush=True)
        if ids != ref["output_ids"] or diff > 5e-5:
            sys.exit(f"the re-implementation does not reproduce {case}")
        dense = json.load(open(os.path.join(ROOT, "tests", "golden", "models", ref["model"], "reference.json")))
        _ = dense


def cmd_greedy(args):
    mr.import_reference(args.reference)
    import_research()
    torch.set_num_threads(1)
    check_replay()
    index_path = os.path.join(args.out, "greedy", "index.json")
    index = json.load(open(index_path))
    new_entries = []
    models = [m for m in GREEDY_MODELS if not args.model or m in args.model]
    for model_name in models:
        cfg = json.load(open(os.path.join(ROOT, "tests", "golden", "models", model_name, "config.json")))
        H = cfg["num_attention_heads"]
        d = cfg.get("head_dim") or cfg["hidden_size"] // H
        vocab, layers = cfg["vocab_size"], cfg["num_hidden_layers"]
        for ci, (cname, maskers0, extra) in enumerate(GREEDY):
            case = f"{model_name}_{cname}"
            if args.case and case not in args.case:
                continue
            chosen = None
            for attempt in range(12):
                maskers = copy.deepcopy(maskers0)
                hat = None
                if "hat" in extra:
                    hat = make_hat(layers, H, d, extra["hat"], extra["hat"]["seed"] + attempt)
                if any(m["type"] == "magic_pig" for m in maskers):
                    maskers[-1]["seed"] = 42 + attempt
                seed = 9000 + 100 * GREEDY_MODELS.index(model_name) + 10 * ci + attempt
                ids = mr.prompt_ids(mr.PROMPT_LEN, seed, vocab)
                out, logits, margins, drv = greedy_run(model_name, maskers, hat, ids, mr.NEW_TOKENS, True)
                native = None
                if hat is not None:
                    native = greedy_run(model_name, maskers, hat, ids, mr.NEW_TOKENS, False)
                ok = min(margins) >= GREEDY_MIN_MARGIN and sum(drv.uncertain) == 0 and \
                    (not drv.quest_gaps or min(drv.quest_gaps) >= QUEST_MIN_GAP)
                print(f"    {case} attempt {attempt}: min margin {min(margins):.3g}, uncertain {sum(drv.uncertain)}, "
                      f"quest gap {min(drv.quest_gaps) if drv.quest_gaps else None}"
                      + (f", native ties same ids {native[0] == out}" if native else ""), flush=True)
                if ok:
                    chosen = (maskers, hat, seed, ids, out, logits, margins, drv, native)
                    break
            if chosen is None:
                sys.exit(f"{case}: no prompt without near-ties")
            maskers, hat, seed, ids, out, logits, margins, drv, native = chosen
            dense_ids, dense_logits, _, _ = greedy_run(model_name, None, None, ids, mr.NEW_TOKENS, False)
            moved = float((logits - dense_logits).abs().max())
            if moved < 1e-4:
                sys.exit(f"{case}: the masker list does not change the logits")
            cdir = os.path.join(args.out, "greedy", case)
            os.makedirs(cdir, exist_ok=True)
            for f in os.listdir(cdir):
                os.remove(os.path.join(cdir, f))
            mr.write_f32(os.path.join(cdir, "logits.f32"), logits)
            attention = {"impl": "masked", "maskers": maskers, "sparse_prefill": False}
            record = {"model": model_name, "model_dir": f"../../../models/{model_name}", "model_type": cfg["model_type"],
                      "reference": {"repo": mr.REFERENCE_REPO, "commit": mr.REFERENCE_COMMIT},
                      "torch": torch.__version__,
                      "model_implementation": f"scripts/reference/{'masked_greedy_replay.Phi3' if model_name.startswith('phi3') else 'research_masker_reference.Llama'} (float32, no transformers)",
                      "generator": "scripts/reference/research_masker_reference.py greedy",
                      "attention": attention, "attention_arg": json.dumps(attention),
                      "prompt_seed": seed, "prompt_ids": ids, "new_tokens": mr.NEW_TOKENS, "ignore_eos": True,
                      "output_ids": out, "top2_margins": margins, "min_top2_margin": min(margins),
                      "dense_output_ids": dense_ids, "first_divergence_from_dense":
                          next((i for i, (a, b) in enumerate(zip(out, dense_ids)) if a != b), None),
                      "max_abs_logit_diff_vs_dense": moved,
                      "sparse_steps": mr.NEW_TOKENS - 1, "sparse_calls": len(drv.densities),
                      "attention_density": sum(drv.densities) / len(drv.densities),
                      "attention_density_per_call": drv.densities,
                      "logits_file": "logits.f32", "logits_shape": [mr.NEW_TOKENS, vocab],
                      "fragile_selections": sum(drv.uncertain)}
            if drv.quest_gaps:
                record["min_quest_page_gap"] = min(drv.quest_gaps)
            if hat is not None:
                write_hat(os.path.join(cdir, "hat.safetensors"), hat)
                record["adapter"] = {"type": "hashattention", "file": "hat.safetensors", "bits": hat["bits"],
                                     "mlp_layers": hat["mlp_layers"], "hidden": hat["hidden"],
                                     "activation": hat["activation"], "weight_seed": hat["seed"]}
                record["ties"] = "top-k ties to the lower position (the reference run with a stable top-k)"
                record["reference_native_ties_output_ids"] = native[0]
                record["reference_native_ties_max_abs_logit_diff"] = float((native[1] - logits).abs().max())
            mp = [m for m in maskers if m["type"] == "magic_pig"]
            if mp:
                write_lsh(os.path.join(cdir, "lsh.safetensors"),
                          {l: drv.meta["projections"][l] for l in range(layers)})
                record["adapter"] = {"type": "lsh", "file": "lsh.safetensors",
                                     "note": "the reference's projections (its torch generator, seed + layer), "
                                             "read back from its sparse_meta_data after the run"}
                record["magic_pig_key_mean_first_sparse_query"] = {
                    str(l): drv.meta["key_mean"][l][0, :, 0].tolist() for l in range(layers)}
            if len(drv.densities) != (mr.NEW_TOKENS - 1) * layers:
                sys.exit(f"{case}: {len(drv.densities)} sparse calls")
            with open(os.path.join(cdir, "reference.json"), "w") as f:
                json.dump(record, f, indent=1)
            entry = {"name": case, "model": model_name, "attention": attention, "min_top2_margin": min(margins)}
            if "adapter" in record:
                entry["adapter"] = {"type": record["adapter"]["type"], "file": record["adapter"]["file"]}
            new_entries.append(entry)
            print(f"  {case:45s} min margin {min(margins):.3g} density {record['attention_density']:.3f} "
                  f"diverges from dense at {record['first_divergence_from_dense']}", flush=True)
    if not args.case:
        names = {e["name"] for e in new_entries}
        index["cases"] = [c for c in index["cases"] if c["name"] not in names] + new_entries
        with open(index_path, "w") as f:
            json.dump(index, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["decode", "greedy"])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "masked"))
    ap.add_argument("--reference", default=os.environ.get("SAH_REFERENCE", mr.DEFAULT_REFERENCE))
    ap.add_argument("--case", action="append", help="only these cases (index.json is left alone)")
    ap.add_argument("--model", action="append", help="greedy: only these models")
    args = ap.parse_args()
    torch.manual_seed(0)
    return {"decode": cmd_decode, "greedy": cmd_greedy}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
