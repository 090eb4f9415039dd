#!/usr/bin/env python3
"""Reference fixtures for the `masked` attention implementation (specs/maskers.md), made by
RUNNING the reference implementation, sparse-attention-hub (github.com/xAlg-ai/sparse-attention-hub,
commit 1a048c9314b6b2cb7e8a7553f744c478b8abfef0, 2025-11-05; a copy is in
../shared/reference/sparse-attention-hub). Nothing of the reference is copied here: this script
imports it, calls `ResearchAttention.custom_attention` and writes what it returns. Everything runs
on the CPU in float32.

Three steps, all deterministic (fixed seeds); tests/golden/masked/README.md describes the files.

    # A. decode-step cases (sq = 1). Needs PyTorch and SciPy only (Debian's python3-torch and
    #    python3-scipy are enough: run with /usr/bin/python3).
    python3 scripts/reference/masker_reference.py decode --out tests/golden/masked

    # Real Q/K/V of the tiny test models (tests/golden/models/*_f32), read by `decode`; and
    # B. greedy continuations with every generated token's attention through the reference.
    #    Both need transformers (the device machine has it; copy the reference into the tree,
    #    e.g. .cache/sah, and pass --reference .cache/sah):
    python3 scripts/reference/masker_reference.py capture --out tests/golden/masked
    python3 scripts/reference/masker_reference.py greedy --out tests/golden/masked

The research maskers of issue 13 (hashattention_top_k, magic_pig, quest_top_k) have their own
generator, research_masker_reference.py (decode cases on these input sets, and greedy cases with a
re-implementation of the models instead of transformers); both generators merge their entries
into the shared index.json files and keep the other's.

`decode` writes decode/inputs/<set>/ (q, K, V and their shapes; synthetic sets from seeds, real
sets written by `capture`), decode/<case>/ (case.json plus the reference's selection, weights,
attention output; sampling cases also the injected draws and adaptive's budget terms) and
decode/index.json. `greedy` writes greedy/<model>_<config>/ (reference.json, logits.f32) and
greedy/index.json.

Self-checks, run every time: every decode output is recomputed independently from the recorded
selection and weights (softmax over {w > 0} of s - log(w + 1e-6)) and, where the final mask is FULL
or EMPTY, from plain softmax attention; top-k / top-p selections are recomputed in float64 and must
agree, with the margins to the next tie recorded. `capture`/`greedy` check that the hooked model
reproduces transformers' eager logits, that an always-FULL masker list reproduces eager greedy
decoding, and that the sparse configurations really change the logits.
"""
import argparse
import json
import math
import os
import random
import sys
import types

import numpy
import torch

REFERENCE_COMMIT = "1a048c9314b6b2cb7e8a7553f744c478b8abfef0"
REFERENCE_REPO = "github.com/xAlg-ai/sparse-attention-hub"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_REFERENCE = os.path.abspath(os.path.join(ROOT, "..", "shared", "reference", "sparse-attention-hub"))

R = types.SimpleNamespace()  # the reference's classes, filled by import_reference()


# ---------------------------------------------------------------------------------------
# Importing the reference

def _scipy_stand_in():
    """Adaptive sampling imports scipy.stats.norm at import time; where SciPy is missing (it is
    only needed for norm.ppf, used by adaptive sampling alone) give it the standard library's."""
    try:
        import scipy.stats  # noqa: F401
        return
    except ImportError:
        pass
    from statistics import NormalDist
    package = types.ModuleType("scipy")
    stats = types.ModuleType("scipy.stats")
    stats.norm = types.SimpleNamespace(ppf=lambda x: NormalDist().inv_cdf(float(x)))
    package.stats = stats
    package.__path__ = []
    sys.modules["scipy"], sys.modules["scipy.stats"] = package, stats
    print("note: SciPy missing, scipy.stats.norm.ppf from the standard library", flush=True)


def import_reference(path):
    path = os.path.abspath(path)
    if not os.path.exists(os.path.join(path, "load.py")):
        sys.exit(f"no reference at {path} (expected load.py and sparse_attention_hub/)")
    _scipy_stand_in()
    sys.path.insert(0, path)
    import load
    try:
        load.sparse_attention_hub()
    except Exception as e:  # its HF adapter may not import with this transformers: hide it
        print(f"note: importing the reference with the installed transformers failed ({e!r}); "
              "retrying with a stand-in for transformers inside the reference", flush=True)
        saved = {k: v for k, v in sys.modules.items() if k == "transformers" or k.startswith("transformers.")}
        for k in list(sys.modules):
            if k.startswith("sparse_attention_hub") or k in saved:
                del sys.modules[k]
        finder = load._StubFinder(("transformers",))
        sys.meta_path.insert(0, finder)
        try:
            load.sparse_attention_hub()
        finally:
            sys.meta_path.remove(finder)
            for k in [k for k in sys.modules if k == "transformers" or k.startswith("transformers.")]:
                del sys.modules[k]
            sys.modules.update(saved)
    from sparse_attention_hub.sparse_attention.research_attention import ResearchAttention, ResearchAttentionConfig
    from sparse_attention_hub.sparse_attention.research_attention import base as ra_base
    from sparse_attention_hub.sparse_attention.research_attention.maskers.fixed import (
        FixedMaskerConfig, LocalMaskerConfig, OracleTopKConfig, OracleTopPMaskerConfig, SinkMaskerConfig)
    from sparse_attention_hub.sparse_attention.research_attention.maskers.sampling.implementations import (
        AdaptiveSamplingMaskerConfig, RandomSamplingMaskerConfig)
    from sparse_attention_hub.sparse_attention.research_attention.maskers.sampling.implementations import (
        adaptive_sampling as adaptive_module)
    R.ResearchAttention, R.ResearchAttentionConfig, R.base = ResearchAttention, ResearchAttentionConfig, ra_base
    R.adaptive_module = adaptive_module
    R.configs = {
        "sink": lambda p: SinkMaskerConfig(sink_size=p["sink_size"]),
        "local": lambda p: LocalMaskerConfig(window_size=p["window_size"]),
        "causal": lambda p: FixedMaskerConfig(),  # the reference registers CausalMasker for the base config
        "oracle_top_k": lambda p: OracleTopKConfig(heavy_size=p["heavy_size"]),
        "oracle_top_p": lambda p: OracleTopPMaskerConfig(top_p=p["top_p"]),
        "random_sampling": lambda p: RandomSamplingMaskerConfig(sampling_rate=p["sampling_rate"]),
        "adaptive_sampling": lambda p: AdaptiveSamplingMaskerConfig(
            base_rate_sampling=p["base_rate_sampling"], epsilon=p["epsilon"], delta=p["delta"],
            init_offset=p["init_offset"], local_offset=p["local_offset"]),
    }
    # Every call's final mask: custom_attention hands it to get_masked_attention_output.
    R.last_mask = []
    original = ra_base.get_masked_attention_output

    def recording(*args, **kwargs):
        R.last_mask.append(kwargs["sparse_attention_mask"])
        return original(*args, **kwargs)
    ra_base.get_masked_attention_output = recording
    print(f"reference: {path} (commit {REFERENCE_COMMIT})", flush=True)


def research_attention(maskers):
    """maskers: the product's JSON list (int = tokens, float = fraction: json keeps the type)."""
    configs = []
    for m in maskers:
        params = {k: v for k, v in m.items() if k != "type"}
        configs.append(R.configs[m["type"]](params))
    return R.ResearchAttention.create_from_config(R.ResearchAttentionConfig(masker_configs=configs))


class LayerModule(torch.nn.Module):
    def __init__(self, layer_idx):
        super().__init__()
        self.layer_idx = layer_idx


def mask_state(mask):
    return "FULL" if mask.is_full_mask() else ("EMPTY" if mask.is_empty_mask() else "SPARSE")


def dense_of(mask):
    return mask.get_dense_mask().detach().clone().float()


def eff(size, sk):
    return int(size * sk) if isinstance(size, float) else int(size)


# ---------------------------------------------------------------------------------------
# A. Decode-step cases

SYNTHETIC_SETS = {
    # name: H, Hkv, d, sk, seed
    "syn_h8_kv8_d16_s40": (8, 8, 16, 40, 101),
    "syn_h8_kv4_d32_s300": (8, 4, 32, 300, 102),
    "syn_h8_kv2_d64_s600": (8, 2, 64, 600, 103),
    "syn_h16_kv2_d16_s4096": (16, 2, 16, 4096, 105),
}
REAL_SETS = ["llama_f32_l1_s300", "qwen2_f32_l1_s300", "phi3_f32_l1_s300", "llama_f32_l0_s300"]


def S(n):
    return {"type": "sink", "sink_size": n}


def L(n):
    return {"type": "local", "window_size": n}


def TK(n):
    return {"type": "oracle_top_k", "heavy_size": n}


def TP(p):
    return {"type": "oracle_top_p", "top_p": p}


CAUSAL = {"type": "causal"}


def ADA(base, eps, delta, init, local):
    return {"type": "adaptive_sampling", "base_rate_sampling": base, "epsilon": eps, "delta": delta,
            "init_offset": init, "local_offset": local}


def RS(r):
    return {"type": "random_sampling", "sampling_rate": r}


# name, input set, maskers, extra (scaling override, sampling seed)
DECODE_CASES = [
    ("s40_sink4_local16", "syn_h8_kv8_d16_s40", [S(4), L(16)], {}),
    ("s40_local_frac1_full", "syn_h8_kv8_d16_s40", [L(1.0)], {}),
    ("s40_sink4_local39_full", "syn_h8_kv8_d16_s40", [S(4), L(39)], {}),
    ("s40_sink4_local38_all_keys", "syn_h8_kv8_d16_s40", [S(4), L(38)], {}),
    ("s40_sink1_local1", "syn_h8_kv8_d16_s40", [S(1), L(1)], {}),
    ("s40_sink_frac1_full", "syn_h8_kv8_d16_s40", [S(1.0), L(1)], {}),
    ("s40_sink1_topk1", "syn_h8_kv8_d16_s40", [S(1), TK(1)], {}),
    ("s40_sink8_local30_topk10_overflow", "syn_h8_kv8_d16_s40", [S(8), L(30), TK(10)], {}),
    ("s40_sink4_local8_topk_frac_zero", "syn_h8_kv8_d16_s40", [S(4), L(8), TK(0.01)], {}),
    ("s40_topk40_full", "syn_h8_kv8_d16_s40", [TK(40)], {}),
    ("s40_causal_only_empty", "syn_h8_kv8_d16_s40", [CAUSAL], {}),
    ("s40_topp1_full", "syn_h8_kv8_d16_s40", [TP(1.0)], {}),
    ("s40_adaptive_range1_full", "syn_h8_kv8_d16_s40", [S(4), L(8), ADA(0.1, 0.25, 0.25, 20, 19)], {}),
    ("s300_topk32", "syn_h8_kv4_d32_s300", [TK(32)], {}),
    ("s300_topp09", "syn_h8_kv4_d32_s300", [TP(0.9)], {}),
    ("s300_sink8_local8_topp05", "syn_h8_kv4_d32_s300", [S(8), L(8), TP(0.5)], {}),
    ("s300_causal_sink4_local16", "syn_h8_kv4_d32_s300", [CAUSAL, S(4), L(16)], {}),
    ("s300_topk8_then_sink4_local8", "syn_h8_kv4_d32_s300", [TK(8), S(4), L(8)], {}),
    ("s300_sink2_local4_topp07_scaling03", "syn_h8_kv4_d32_s300", [S(2), L(4), TP(0.7)], {"scaling": 0.3}),
    ("s300_sink4_local16_random01", "syn_h8_kv4_d32_s300", [S(4), L(16), RS(0.1)], {"torch_seed": 7}),
    ("s600_sink002_local005_topk005", "syn_h8_kv2_d64_s600", [S(0.02), L(0.05), TK(0.05)], {}),
    ("s600_sink16_local32_topk002_topp07", "syn_h8_kv2_d64_s600", [S(16), L(32), TK(0.02), TP(0.7)], {}),
    ("s600_sink16_local32_topk005_adaptive", "syn_h8_kv2_d64_s600",
     [S(16), L(32), TK(0.05), ADA(0.02, 0.1, 0.1, 16, 32)], {"torch_seed": 11}),
    ("s600_adaptive_alone_frac_offsets", "syn_h8_kv2_d64_s600", [ADA(0.05, 0.05, 0.05, 0.02, 0.05)],
     {"torch_seed": 12}),
    ("s4096_sink128_local128_topk005", "syn_h16_kv2_d16_s4096", [S(128), L(128), TK(0.05)], {}),
    ("s4096_sink4_local64_topp05", "syn_h16_kv2_d16_s4096", [S(4), L(64), TP(0.5)], {}),
    ("s4096_sink128_local128_adaptive_int", "syn_h16_kv2_d16_s4096", [S(128), L(128), ADA(32, 0.1, 0.05, 128, 128)],
     {"torch_seed": 13}),
]
for _m in ["llama_f32", "qwen2_f32", "phi3_f32"]:
    _set = f"{_m}_l1_s300"
    DECODE_CASES += [
        (f"{_m}_l1_sink4_local16", _set, [S(4), L(16)], {}),
        (f"{_m}_l1_sink8_local32_topk01", _set, [S(8), L(32), TK(0.1)], {}),
        (f"{_m}_l1_sink2_local8_topp08", _set, [S(2), L(8), TP(0.8)], {}),
        (f"{_m}_l1_topk32", _set, [TK(32)], {}),
    ]
DECODE_CASES += [("llama_f32_l0_sink002_local005_topk005", "llama_f32_l0_s300", [S(0.02), L(0.05), TK(0.05)], {})]


def synthetic_inputs(H, Hkv, d, sk, seed):
    """Structured random data: Gaussian keys with a few high-norm "heavy hitter" positions (and a
    strong position 0), queries built from a few keys of their KV head plus noise, with a sharpness
    that varies by query head (flat to peaky), so top-k / top-p pick non-trivial, per-head sets."""
    g = torch.Generator().manual_seed(seed)
    K = torch.randn(Hkv, sk, d, generator=g)
    V = torch.randn(Hkv, sk, d, generator=g)
    n_heavy = max(2, sk // 64)
    heavy = torch.randperm(sk, generator=g)[:n_heavy]
    K[:, heavy] *= 2.0
    K[:, 0] *= 2.5
    G = H // Hkv
    q = torch.empty(H, d)
    sharp = [0.4, 0.8, 1.3, 2.0]
    for h in range(H):
        kv = h // G
        pos = torch.randint(0, sk, (3,), generator=g)
        if h % 2 == 0:
            pos[0] = heavy[h % n_heavy]
        coef = torch.rand(3, generator=g) + 0.5
        a = sharp[h % len(sharp)] / math.sqrt(d)
        q[h] = a * (coef[:, None] * K[kv, pos]).sum(0) + 0.6 * torch.randn(d, generator=g)
    return q.contiguous(), K.contiguous(), V.contiguous()


def write_f32(path, t):
    numpy.ascontiguousarray(t.detach().cpu().numpy(), dtype="<f4").tofile(path)


def write_i32(path, a):
    numpy.ascontiguousarray(numpy.asarray(a, dtype=numpy.int64), dtype="<i4").tofile(path)


def read_f32(path, shape):
    return torch.from_numpy(numpy.fromfile(path, dtype="<f4").copy()).view(*shape)


def write_input_set(out_dir, name, q, K, V, scaling, source):
    d = os.path.join(out_dir, "decode", "inputs", name)
    os.makedirs(d, exist_ok=True)
    write_f32(os.path.join(d, "q.f32"), q)
    write_f32(os.path.join(d, "k.f32"), K)
    write_f32(os.path.join(d, "v.f32"), V)
    H, dim = q.shape
    Hkv, sk, _ = K.shape
    meta = {"num_heads": H, "num_kv_heads": Hkv, "head_dim": dim, "seq_len_keys": sk, "scaling": scaling,
            "q": {"file": "q.f32", "dtype": "f32", "shape": [H, dim]},
            "k": {"file": "k.f32", "dtype": "f32", "shape": [Hkv, sk, dim]},
            "v": {"file": "v.f32", "dtype": "f32", "shape": [Hkv, sk, dim]},
            "source": source}
    with open(os.path.join(d, "inputs.json"), "w") as f:
        json.dump(meta, f, indent=1)


def load_input_set(out_dir, name):
    d = os.path.join(out_dir, "decode", "inputs", name)
    path = os.path.join(d, "inputs.json")
    if not os.path.exists(path):
        return None
    meta = json.load(open(path))
    q = read_f32(os.path.join(d, "q.f32"), meta["q"]["shape"])
    K = read_f32(os.path.join(d, "k.f32"), meta["k"]["shape"])
    V = read_f32(os.path.join(d, "v.f32"), meta["v"]["shape"])
    return q, K, V, meta


# Float64 margins a selection must keep so that a float32 implementation with another summation
# order picks the same keys (unscaled q.k units for top-k; share of the inactive mass for top-p).
TOPK_MIN_GAP = 2e-4
TOPP_MIN_MARGIN = 1e-5


class NearTie(Exception):
    """A selection too close to a tie for an implementation with another summation order to agree."""


class Recorder:
    """Wraps the maskers of one ResearchAttention (per-masker trace) and torch.randint (draws)."""

    def __init__(self, ra):
        self.trace, self.draws, self.adaptive = [], [], {}
        for m in ra.maskers:
            self._wrap(m)

    def _wrap(self, masker):
        original = masker.add_mask
        trace = self.trace

        def add_mask(**kw):
            prev = kw["previous_mask"]
            prev_dense = dense_of(prev)
            result = original(**kw)
            trace.append({"masker": masker, "prev_state": mask_state(prev), "prev_dense": prev_dense,
                          "state": mask_state(result), "dense": dense_of(result)})
            return result
        masker.add_mask = add_mask
        if type(masker).__name__ == "AdaptiveSamplingMasker":
            self._wrap_adaptive(masker)

    def _wrap_adaptive(self, masker):
        rec = self.adaptive
        std_fn, budget_fn = masker._get_std_estimate_using_base_sample, masker._compute_adaptive_budget

        def std_estimate(*a, **k):
            base_mask, std = std_fn(*a, **k)
            rec["std"] = std.detach().clone()
            return base_mask, std

        def budget(std, est_den, sampling_range):
            b = budget_fn(std, est_den, sampling_range)
            rec["estimated_denominator"] = est_den.detach().clone()
            rec["budget_before_clamp_to_base"] = b.detach().clone()
            return b
        masker._get_std_estimate_using_base_sample = std_estimate
        masker._compute_adaptive_budget = budget
        sums = []
        mod = R.adaptive_module
        original_sum = mod.apply_inv_mask_sum

        def inv_sum(x, mask):
            r = original_sum(x, mask)
            sums.append(r.detach().clone())
            return r
        rec["sums"] = sums
        rec["patch"] = (mod, "apply_inv_mask_sum", original_sum, inv_sum)

    def __enter__(self):
        self._randint = torch.randint
        draws = self.draws

        def randint(*a, **k):
            r = self._randint(*a, **k)
            draws.append(r.detach().clone())
            return r
        torch.randint = randint
        if "patch" in self.adaptive:
            mod, name, _, new = self.adaptive["patch"]
            setattr(mod, name, new)
        return self

    def __exit__(self, *exc):
        torch.randint = self._randint
        if "patch" in self.adaptive:
            mod, name, old, _ = self.adaptive["patch"]
            setattr(mod, name, old)


def topk_margins(q, Kq, prev, k):
    """float64 recomputation: the set of the k largest unscaled q.k among inactive keys and the gap
    between the k-th and (k+1)-th (per head). Returns (sets, min gap) or None when k >= #inactive."""
    s = torch.einsum("hd,hsd->hs", q.double(), Kq.double())
    sets, gaps = [], []
    for h in range(s.shape[0]):
        inactive = (prev[h] == 0).nonzero().flatten()
        if k >= len(inactive) or k == 0:
            return None
        vals = s[h, inactive]
        order = torch.argsort(vals, descending=True)
        sets.append(sorted(inactive[order[:k]].tolist()))
        gaps.append(float(vals[order[k - 1]] - vals[order[k]]))
    return sets, min(gaps)


def topp_margins(q, Kq, prev, top_p, scaling):
    """float64 recomputation of the top-p set over the inactive keys (smallest descending prefix whose
    share of the inactive mass exceeds top_p) and the distance of the prefix shares from top_p."""
    s = torch.einsum("hd,hsd->hs", q.double(), Kq.double()) * scaling
    sets, margins = [], []
    for h in range(s.shape[0]):
        inactive = (prev[h] == 0).nonzero().flatten()
        e = torch.exp(s[h, inactive] - s[h, inactive].max())
        order = torch.argsort(e, descending=True)
        c = torch.cumsum(e[order], 0) / e.sum()
        n = int((c <= top_p).sum())  # keys [0, n] (n + 1 of them) are selected
        n = min(n, len(c) - 1)
        sets.append(sorted(inactive[order[: n + 1]].tolist()))
        near = [abs(float(c[i]) - top_p) for i in (n - 1, n) if 0 <= i < len(c)]
        margins.append(min(near))
    return sets, min(margins)


def adaptive_terms(m, sk):
    start = m["init_offset"] if isinstance(m["init_offset"], int) else int(m["init_offset"] * sk)
    end = sk - (m["local_offset"] if isinstance(m["local_offset"], int) else int(m["local_offset"] * sk))
    rng = end - start
    nb = max(2, m["base_rate_sampling"]) if isinstance(m["base_rate_sampling"], int) else \
        max(2, int(m["base_rate_sampling"] * rng))
    return start, end, rng, nb


def adaptive_budget_raw(rec, m, sk):
    """(z * std * R / max(eps * D, 1e-8))^2 per head from the reference's own std and D, in float64 and
    in float32 in the reference's order of operations."""
    _, _, rng, _ = adaptive_terms(m, sk)
    z = float(R.adaptive_module.norm.ppf(1 - m["delta"]))
    std, est = rec.adaptive["std"].flatten(), rec.adaptive["estimated_denominator"].flatten()
    raw64 = [(z * sd * rng / max(m["epsilon"] * e, 1e-8)) ** 2 for sd, e in zip(std.tolist(), est.tolist())]
    raw32 = ((z * std * rng) / torch.clamp(m["epsilon"] * est, min=1e-8)) ** 2
    return z, raw64, raw32.tolist()


def adaptive_budget_near_integer(rec, m, sk):
    if m["type"] != "adaptive_sampling" or "std" not in rec.adaptive:
        return False
    _, _, rng, nb = adaptive_terms(m, sk)
    _, raw64, _ = adaptive_budget_raw(rec, m, sk)
    return any(nb - 1 < b < rng + 1 and abs(b - round(b)) < 1e-3 for b in raw64)


def run_decode_case(out_dir, name, set_name, maskers, extra, inputs):
    q, K, V, meta = inputs
    H, d = q.shape
    Hkv, sk, _ = K.shape
    G = H // Hkv
    scaling = extra.get("scaling", meta["scaling"])
    torch_seed = extra.get("torch_seed")
    for attempt in range(50):
        ra = research_attention(maskers)
        rec = Recorder(ra)
        module = LayerModule(0).eval()
        R.last_mask.clear()
        with rec:
            if torch_seed is not None:
                torch.manual_seed(torch_seed)
            out, weights = ra.custom_attention(module, q[None, :, None, :], K[None], V[None], None, scaling, 0.0, {},
                                               layer_idx=0)
        if not adaptive_budget_near_integer(rec, maskers[-1], sk):
            break
        # An adaptive budget that truncates within float error of an integer: the next torch seed.
        torch_seed += 1000
    else:
        sys.exit(f"{name}: every torch seed gave a budget at an integer boundary")
    mask = R.last_mask[-1]
    state = mask_state(mask)
    out = out[0, 0].detach()                                       # [H, d]
    weights = weights[0, :, 0].detach()                            # [H, sk]
    Kq = K.repeat_interleave(G, dim=0)                             # per query head
    Vq = V.repeat_interleave(G, dim=0)
    s64 = torch.einsum("hd,hsd->hs", q.double(), Kq.double()) * scaling
    dense_out = torch.einsum("hs,hsd->hd", torch.softmax(s64, -1), Vq.double())
    record = {"name": name, "reference": {"repo": REFERENCE_REPO, "commit": REFERENCE_COMMIT,
                                          "torch": torch.__version__},
              "inputs": {k: f"../inputs/{set_name}/{meta[k]['file']}" for k in ("q", "k", "v")},
              "input_set": set_name, "source": meta["source"],
              "num_heads": H, "num_kv_heads": Hkv, "head_dim": d, "seq_len_keys": sk, "query_position": sk - 1,
              "scaling": scaling,
              "attention": {"impl": "masked", "maskers": maskers},
              "mask_state": state, "dense": state in ("FULL", "EMPTY"),
              "density": float(mask.get_density())}
    case_dir = os.path.join(out_dir, "decode", name)
    os.makedirs(case_dir, exist_ok=True)
    write_f32(os.path.join(case_dir, "out.f32"), out)
    write_f32(os.path.join(case_dir, "dense_out.f32"), dense_out.float())
    files = {"out": {"file": "out.f32", "dtype": "f32", "shape": [H, d]},
             "dense_out": {"file": "dense_out.f32", "dtype": "f32", "shape": [H, d]}}
    if not torch.isfinite(out).all():
        sys.exit(f"{name}: the reference output is not finite")
    if state in ("FULL", "EMPTY"):
        diff = float((out.double() - dense_out).abs().max())
        if diff > 2e-5:
            sys.exit(f"{name}: a {state} mask must give dense attention; max |diff| = {diff}")
        record["check_max_abs_diff"] = diff
        ptr, idx, w, p = [0] * (H + 1), [], [], []
    else:
        wd = dense_of(mask)[0, :, 0]                                # [H, sk]
        ptr, idx, w, p = [0], [], [], []
        mine = torch.empty(H, d, dtype=torch.float64)
        for h in range(H):
            sel = (wd[h] > 0).nonzero().flatten()
            if len(sel) == 0:
                sys.exit(f"{name}: head {h} selects no key (the reference gives NaN)")
            idx += sel.tolist()
            w += wd[h, sel].tolist()
            p += weights[h, sel].tolist()
            ptr.append(len(idx))
            logit = s64[h, sel] - torch.log(wd[h, sel].double() + 1e-6)
            mine[h] = torch.softmax(logit, -1) @ Vq[h, sel].double()
            if bool((weights[h][wd[h] == 0] != 0).any()):
                sys.exit(f"{name}: attention weight outside the selection")
        diff = float((out.double() - mine).abs().max())
        if diff > 2e-5:
            sys.exit(f"{name}: output differs from softmax over the selection by {diff}")
        record["check_max_abs_diff"] = diff
    nnz = ptr[-1]
    write_i32(os.path.join(case_dir, "sel_ptr.i32"), ptr)
    write_i32(os.path.join(case_dir, "sel_idx.i32"), idx)
    write_f32(os.path.join(case_dir, "sel_w.f32"), torch.tensor(w, dtype=torch.float32))
    write_f32(os.path.join(case_dir, "sel_p.f32"), torch.tensor(p, dtype=torch.float32))
    files.update({"sel_ptr": {"file": "sel_ptr.i32", "dtype": "i32", "shape": [H + 1]},
                  "sel_idx": {"file": "sel_idx.i32", "dtype": "i32", "shape": [nnz]},
                  "sel_w": {"file": "sel_w.f32", "dtype": "f32", "shape": [nnz]},
                  "sel_p": {"file": "sel_p.f32", "dtype": "f32", "shape": [nnz]}})
    record["files"] = files
    record["selected_count"] = [ptr[h + 1] - ptr[h] for h in range(H)]
    record["output_error"] = float((out.double() - dense_out).norm() / dense_out.norm())

    # Per-masker trace, with float64 recomputations of the oracle selections and their margins.
    trace = []
    for i, t in enumerate(rec.trace):
        m = maskers[i]
        entry = {"index": i, "type": m["type"], "state_after": t["state"]}
        if t["state"] == "SPARSE":
            entry["count_after"] = [int((t["dense"][0, h, 0] > 0).sum()) for h in range(H)]
        prev = t["prev_dense"][0, :, 0]
        if m["type"] in ("sink", "local", "oracle_top_k"):
            key = {"sink": "sink_size", "local": "window_size", "oracle_top_k": "heavy_size"}[m["type"]]
            entry["effective_size"] = eff(m[key], sk)
        if m["type"] == "oracle_top_k" and t["state"] == "SPARSE" and t["prev_state"] != "FULL":
            k = eff(m["heavy_size"], sk)
            got = topk_margins(q, Kq, prev, k)
            if got is not None:
                sets, gap = got
                added = [sorted(((t["dense"][0, h, 0] > 0) & (prev[h] == 0)).nonzero().flatten().tolist())
                         for h in range(H)]
                if added != sets:
                    sys.exit(f"{name}: the reference's top-k set differs from the float64 one")
                entry["topk_min_gap"] = gap
                if gap < TOPK_MIN_GAP:
                    raise NearTie(f"{name}: top-k near-tie, k-th and (k+1)-th scores {gap:.3g} apart")
        if m["type"] == "oracle_top_p" and t["state"] == "SPARSE":
            sets, margin = topp_margins(q, Kq, prev, m["top_p"], scaling)
            added = [sorted(((t["dense"][0, h, 0] > 0) & (prev[h] == 0)).nonzero().flatten().tolist())
                     for h in range(H)]
            if added != sets:
                sys.exit(f"{name}: the reference's top-p set differs from the float64 one")
            entry["topp_min_cumsum_margin"] = margin
            if margin < TOPP_MIN_MARGIN:
                raise NearTie(f"{name}: a prefix share of top-p is {margin:.3g} from top_p")
        trace.append(entry)
    record["maskers_trace"] = trace

    if rec.draws and maskers[-1]["type"] == "random_sampling":
        draws = rec.draws[0][0, :, 0]                               # [H, n]
        record["sampling"] = {"kind": "random_sampling", "torch_seed": torch_seed,
                              "num_draws": int(draws.shape[-1]),
                              "draws": draws.tolist(), "weight": maskers[-1]["sampling_rate"]}
    if rec.draws and maskers[-1]["type"] == "adaptive_sampling":
        a = rec.adaptive
        base = rec.draws[0][0, :, 0]                                # [H, nb]
        flat = rec.draws[1]                                         # [sum budgets], rows in head order
        budget = [int(b) for b in a["budget_before_clamp_to_base"].flatten().tolist()]
        m = maskers[-1]
        start, end, rng, nb = adaptive_terms(m, sk)
        final_budget = [min(max(b, nb), rng) for b in budget]
        if sum(final_budget) != flat.numel():
            sys.exit(f"{name}: adaptive draws do not add up to the budgets")
        per_head, o = [], 0
        for b in final_budget:
            per_head.append(flat[o:o + b].tolist())
            o += b
        std = a["std"].flatten().tolist()
        est = a["estimated_denominator"].flatten().tolist()
        static, sampled = a["sums"][0].flatten().tolist(), a["sums"][1].flatten().tolist()
        z, raw, raw32 = adaptive_budget_raw(rec, m, sk)
        if [min(max(int(b), 1), rng) for b in raw32] != budget:
            sys.exit(f"{name}: the float32 budget formula does not give the reference's budget")
        record["sampling"] = {
            "kind": "adaptive_sampling", "torch_seed": torch_seed,
            "start": start, "end": end, "range": rng, "num_base_samples": nb, "z": z,
            "base_draws": base.tolist(),
            "std": std, "static_denominator": static, "sampled_denominator": sampled,
            "estimated_denominator": est, "budget_raw": raw, "budget_raw_f32": raw32,
            "budget_before_base_clamp": budget, "budget": final_budget,
            "probability": [float(torch.tensor(b / rng, dtype=torch.float32)) for b in final_budget],
            "draws": per_head}
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(f"  {name:42s} {set_name:24s} {state:6s} density {record['density']:.4f} "
          f"sel {record['selected_count'][:4]}... err {record['output_error']:.3g}", flush=True)
    return record


def cmd_decode(args):
    import_reference(args.reference)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    records = {}
    for set_name in list(SYNTHETIC_SETS) + REAL_SETS:
        cases = [c for c in DECODE_CASES if c[1] == set_name and (not args.case or c[0] in args.case)]
        if not cases:
            continue
        for attempt in range(50):
            if set_name in SYNTHETIC_SETS:
                # Synthetic data: the first seed (base + 1000 * attempt) whose cases have no near-tie.
                H, Hkv, d, sk, base = SYNTHETIC_SETS[set_name]
                seed = base + 1000 * attempt
                q, K, V = synthetic_inputs(H, Hkv, d, sk, seed)
                write_input_set(args.out, set_name, q, K, V, 1.0 / math.sqrt(d),
                                {"kind": "synthetic", "seed": seed, "generator": "masker_reference.synthetic_inputs"})
            inputs = load_input_set(args.out, set_name)
            if inputs is None:
                print(f"  input set {set_name} missing (run `capture` first): its cases are skipped", flush=True)
                break
            try:
                for name, _, maskers, extra in cases:
                    records[name] = run_decode_case(args.out, name, set_name, maskers, extra, inputs)
                break
            except NearTie as e:
                if set_name not in SYNTHETIC_SETS:
                    sys.exit(f"{e} (real data: change the case)")
                print(f"  {e}: next seed for {set_name}", flush=True)
        else:
            sys.exit(f"{set_name}: no seed without near-ties")
    index = []
    for name, set_name, _, _ in DECODE_CASES:
        if name in records:
            rec = records[name]
            index.append({"name": name, "input_set": set_name, "mask_state": rec["mask_state"],
                          "num_heads": rec["num_heads"], "num_kv_heads": rec["num_kv_heads"],
                          "head_dim": rec["head_dim"], "seq_len_keys": rec["seq_len_keys"],
                          "attention": rec["attention"], "sampling": "sampling" in rec})
    if not args.case:
        # keep the cases other generators own (research_masker_reference.py), after ours
        path = os.path.join(args.out, "decode", "index.json")
        ours = {c[0] for c in DECODE_CASES}
        if os.path.exists(path):
            index += [c for c in json.load(open(path))["cases"] if c["name"] not in ours]
        with open(path, "w") as f:
            json.dump({"reference_commit": REFERENCE_COMMIT, "cases": index}, f, indent=1)
    return 0


# ---------------------------------------------------------------------------------------
# transformers: capture of real Q/K/V, greedy continuations

HOOK_NAME = "hotswap_masked_reference"
MODELS = ["llama_f32", "qwen2_f32", "phi3_f32"]
NEW_TOKENS = 24
PROMPT_LEN = 200
CAPTURE_LEN = 300
GREEDY_CONFIGS = [
    ("sink4_local16", [S(4), L(16)]),
    ("sink8_local32_topk01", [S(8), L(32), TK(0.1)]),
    ("sink2_local8_topp08", [S(2), L(8), TP(0.8)]),
    ("causal_sink002_local005_topk16", [CAUSAL, S(0.02), L(0.05), TK(16)]),
]


class Hook:
    sparse = None          # a ResearchAttention for sq = 1 calls, or None (dense everywhere)
    meta = None            # sparse_meta_data of the current sequence
    capture = None         # {layer: (q, k, v)} when set
    calls = 0
    sparse_calls = 0
    densities = []


def repeat_kv(x, n):
    return x if n == 1 else x.repeat_interleave(n, dim=1)


def dense_causal(query, key, value, scaling):
    _, H, T, d = query.shape
    Hkv, S_ = key.shape[1], key.shape[2]
    k, v = repeat_kv(key, H // Hkv), repeat_kv(value, H // Hkv)
    q_pos, k_pos = torch.arange(S_ - T, S_), torch.arange(S_)
    scores = torch.matmul(query, k.transpose(2, 3)) * scaling
    scores = scores.masked_fill(~(k_pos[None, :] <= q_pos[:, None])[None, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(probs, v).transpose(1, 2).contiguous()


def hooked_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention-function signature (batch 1, no padding). Prompt (sq > 1): dense causal
    attention (sparse_prefill false). A generated token's step (sq = 1) with Hook.sparse set: the
    reference's ResearchAttention.custom_attention, as its HF adapter calls it."""
    Hook.calls += 1
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if Hook.capture is not None:
        Hook.capture[module.layer_idx] = (query[0, :, -1].clone(), key[0].clone(), value[0].clone(), float(scaling))
    if Hook.sparse is None or query.shape[2] != 1:
        return dense_causal(query, key, value, scaling), None
    mask = attention_mask
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=query.dtype).masked_fill(~mask, torch.finfo(query.dtype).min)
    Hook.sparse_calls += 1
    R.last_mask.clear()
    out, _ = Hook.sparse.custom_attention(module, query, key, value, mask, scaling, dropout, Hook.meta,
                                          layer_idx=module.layer_idx)
    Hook.densities.append(float(R.last_mask[-1].get_density()))
    return out, None


def register_attention():
    from transformers import AttentionInterface
    AttentionInterface.register(HOOK_NAME, hooked_attention)
    try:
        from transformers import AttentionMaskInterface
        from transformers.masking_utils import eager_mask
        AttentionMaskInterface.register(HOOK_NAME, eager_mask)
    except Exception as e:
        print("note: no AttentionMaskInterface:", e, flush=True)


def load_model(model_dir, attn):
    import transformers
    try:
        m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attn)
    except TypeError:
        m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                              attn_implementation=attn)
    return m.eval()


def prompt_ids(length, seed, vocab):
    g = random.Random(seed)
    return [g.randrange(3, vocab) for _ in range(length)]


@torch.no_grad()
def greedy(model, ids, n, sparse):
    """Prompt prefilled densely; each generated token fed back as a sq = 1 step through `sparse`
    (None: dense). EOS ignored. Returns ids, per-step logits [n, vocab] and top1 - top2 margins."""
    Hook.sparse, Hook.meta = None, {}
    out = model(torch.tensor([ids]), use_cache=True)
    Hook.sparse = sparse
    past, generated, rows = out.past_key_values, [], []
    row = out.logits[0, -1].float()
    for i in range(n):
        rows.append(row)
        nxt = int(torch.argmax(row))
        generated.append(nxt)
        if i + 1 == n:
            break
        out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past, row = out.past_key_values, out.logits[0, -1].float()
    Hook.sparse = None
    logits = torch.stack(rows)
    top = torch.topk(logits, 2, dim=-1).values
    return generated, logits, (top[:, 0] - top[:, 1]).tolist()


def check_hook(eager, model, vocab, name):
    ids = prompt_ids(150, 7, vocab)
    with torch.no_grad():
        want = eager(torch.tensor([ids])).logits[0]
        before = Hook.calls
        got = model(torch.tensor([ids])).logits[0]
    layers = model.config.num_hidden_layers
    if Hook.calls - before != layers:
        sys.exit(f"{name}: the hooked attention ran {Hook.calls - before} times for {layers} layers")
    diff = float((got - want).abs().max())
    print(f"  {name}: hooked dense prefill vs transformers eager, max |logits diff| = {diff:.3g}", flush=True)
    if diff > 1e-5:
        sys.exit(f"{name}: the hook does not reproduce eager logits")
    want_ids, want_logits, _ = greedy(eager, ids[:60], 12, None)
    full = research_attention([L(1.0)])      # always FULL at decode: dense attention through custom_attention
    calls = Hook.sparse_calls
    got_ids, got_logits, _ = greedy(model, ids[:60], 12, full)
    if Hook.sparse_calls - calls != 11 * layers:
        sys.exit(f"{name}: custom_attention ran {Hook.sparse_calls - calls} times, expected {11 * layers}")
    diff = float((got_logits - want_logits).abs().max())
    print(f"  {name}: always-FULL masker list vs eager greedy, max |logits diff| = {diff:.3g}", flush=True)
    if got_ids != want_ids or diff > 1e-5:
        sys.exit(f"{name}: a FULL mask does not reproduce eager decoding")


def cmd_capture(args):
    import_reference(args.reference)
    import transformers
    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    register_attention()
    for name in MODELS:
        model = load_model(os.path.join(args.models, name), HOOK_NAME)
        ids = prompt_ids(CAPTURE_LEN, 3000 + MODELS.index(name), model.config.vocab_size)
        Hook.capture, Hook.sparse = {}, None
        with torch.no_grad():
            model(torch.tensor([ids]))
        cap, Hook.capture = Hook.capture, None
        for layer in (1, 0) if name == "llama_f32" else (1,):
            q, k, v, scaling = cap[layer]
            set_name = f"{name}_l{layer}_s{CAPTURE_LEN}"
            write_input_set(args.out, set_name, q, k, v, scaling,
                            {"kind": "model", "model": name, "layer": layer, "prompt_ids": ids,
                             "note": "q of the last prompt position (post-RoPE) and the layer's K/V of all "
                                     f"{CAPTURE_LEN} positions (post-RoPE), i.e. the decode step at position "
                                     f"{CAPTURE_LEN - 1}", "transformers": transformers.__version__,
                             "torch": torch.__version__})
            print(f"  captured {set_name}: q {tuple(q.shape)} k {tuple(k.shape)} scaling {scaling:.6g}", flush=True)
    return 0


def cmd_greedy(args):
    import_reference(args.reference)
    import transformers
    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    register_attention()
    index = []
    for name in MODELS:
        model_dir = os.path.join(args.models, name)
        eager, model = load_model(model_dir, "eager"), load_model(model_dir, HOOK_NAME)
        vocab = model.config.vocab_size
        check_hook(eager, model, vocab, name)
        for cname, maskers in GREEDY_CONFIGS:
            for attempt in range(4):  # a prompt whose steps have no near-tie (min margin >= 1e-3)
                seed = 5000 + 100 * MODELS.index(name) + 10 * GREEDY_CONFIGS.index((cname, maskers)) + attempt
                ids = prompt_ids(PROMPT_LEN, seed, vocab)
                Hook.densities = []
                out_ids, logits, margins = greedy(model, ids, NEW_TOKENS, research_attention(maskers))
                densities = Hook.densities
                if min(margins) >= 1e-3:
                    break
            dense_ids, dense_logits, _ = greedy(eager, ids, NEW_TOKENS, None)
            moved = float((logits - dense_logits).abs().max())
            if moved < 1e-4:
                sys.exit(f"{name} {cname}: the masker list does not change the logits")
            case = f"{name}_{cname}"
            d = os.path.join(args.out, "greedy", case)
            os.makedirs(d, exist_ok=True)
            write_f32(os.path.join(d, "logits.f32"), logits)
            attention = {"impl": "masked", "maskers": maskers, "sparse_prefill": False}
            layers = model.config.num_hidden_layers
            record = {"model": name, "model_dir": f"../../../models/{name}", "model_type": model.config.model_type,
                      "reference": {"repo": REFERENCE_REPO, "commit": REFERENCE_COMMIT},
                      "transformers": transformers.__version__, "torch": torch.__version__,
                      "attention": attention, "attention_arg": json.dumps(attention),
                      "prompt_seed": seed, "prompt_ids": ids, "new_tokens": NEW_TOKENS, "ignore_eos": True,
                      "output_ids": out_ids, "top2_margins": margins, "min_top2_margin": min(margins),
                      "dense_output_ids": dense_ids, "first_divergence_from_dense":
                          next((i for i, (a, b) in enumerate(zip(out_ids, dense_ids)) if a != b), None),
                      "max_abs_logit_diff_vs_dense": moved,
                      "sparse_steps": NEW_TOKENS - 1, "sparse_calls": len(densities),
                      "attention_density": sum(densities) / len(densities),
                      "attention_density_per_call": densities,
                      "logits_file": "logits.f32", "logits_shape": [NEW_TOKENS, vocab]}
            if len(densities) != (NEW_TOKENS - 1) * layers:
                sys.exit(f"{case}: {len(densities)} sparse calls, expected {(NEW_TOKENS - 1) * layers}")
            with open(os.path.join(d, "reference.json"), "w") as f:
                json.dump(record, f, indent=1)
            index.append({"name": case, "model": name, "attention": attention, "min_top2_margin": min(margins)})
            print(f"  {case:45s} min margin {min(margins):.3g} density {record['attention_density']:.3f} "
                  f"diverges from dense at {record['first_divergence_from_dense']}", flush=True)
    path = os.path.join(args.out, "greedy", "index.json")
    ours = {e["name"] for e in index}
    if os.path.exists(path):  # keep the cases research_masker_reference.py owns
        index += [c for c in json.load(open(path))["cases"] if c["name"] not in ours]
    with open(path, "w") as f:
        json.dump({"reference_commit": REFERENCE_COMMIT, "cases": index}, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=["decode", "capture", "greedy"])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "masked"))
    ap.add_argument("--models", default=os.path.join(ROOT, "tests", "golden", "models"))
    ap.add_argument("--reference", default=os.environ.get("SAH_REFERENCE", DEFAULT_REFERENCE),
                    help="folder of the sparse-attention-hub copy (with load.py)")
    ap.add_argument("--case", action="append", help="decode: only these cases (index.json is left alone)")
    args = ap.parse_args()
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    return {"decode": cmd_decode, "capture": cmd_capture, "greedy": cmd_greedy}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
