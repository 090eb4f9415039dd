#!/usr/bin/env python3
"""Replays one `masked` greedy fixture (tests/golden/masked/greedy/<case>) of the phi3 test model
through the reference implementation (sparse-attention-hub's ResearchAttention.custom_attention,
imported as masker_reference.py does), with a small float32 PyTorch re-implementation of Phi3
instead of transformers (so it runs with Debian's python3-torch: /usr/bin/python3). It checks
that it reproduces the fixture (output ids; logits to ~1e-5), prints every sparse call's
smallest oracle-top-k gap (k-th vs (k+1)-th unscaled q.k among the inactive keys, float64) and,
with --lower-position-ties, replaces torch.topk by a stable top-k that breaks ties towards the
lower position, the product's documented rule (specs/maskers.md; tests/golden/masked/README.md
"Ties and margins"), and prints the continuation that rule gives.

Why: phi3_f32_causal_sink002_local005_topk16 feeds token 0 (the pad token, whose embedding row
is all zero) at step 15, so layer 0's query is exactly zero, every score ties, and the reference's
top-k picks by torch.topk's unspecified order (tests/golden/masked_cli_parity_test.py KNOWN_TIES).

    /usr/bin/python3 scripts/reference/masked_greedy_replay.py phi3_f32_causal_sink002_local005_topk16 \
        [--lower-position-ties]

Its Phi3 class (and load_weights) is also what research_masker_reference.py `greedy` drives to make
the hashattention_top_k / magic_pig / quest_top_k greedy fixtures (that script adds a Llama).
"""
import argparse
import json
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import masker_reference as mr  # noqa: E402


def load_weights(model_dir):
    raw = open(os.path.join(model_dir, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    weights = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            sys.exit(f"{name}: only float32 checkpoints are supported")
        a, b = entry["data_offsets"]
        weights[name] = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(entry["shape"])
    return weights


class Phi3:
    """transformers' Phi3ForCausalLM forward (default RoPE, fused qkv and gate_up), batch 1, float32."""

    def __init__(self, model_dir, attention):
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        if cfg["model_type"] != "phi3" or cfg.get("rope_parameters", {}).get("rope_type", "default") != "default":
            sys.exit("only phi3 with default RoPE is re-implemented here")
        self.w = load_weights(model_dir)
        self.H, self.Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.d = cfg["hidden_size"] // self.H
        self.eps, self.layers = cfg["rms_norm_eps"], cfg["num_hidden_layers"]
        theta = cfg["rope_parameters"]["rope_theta"]
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.d, 2, dtype=torch.int64).float() / self.d))
        self.attention, self.cache = attention, {}

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rope(self, x, pos):
        fr = pos[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat((fr, fr), -1)
        half = self.d // 2
        return x * emb.cos()[None, None] + torch.cat((-x[..., half:], x[..., :half]), -1) * emb.sin()[None, None]

    def forward(self, ids, start):
        w, H, Hkv, d = self.w, self.H, self.Hkv, self.d
        x = w["model.embed_tokens.weight"][torch.tensor(ids)][None]
        T = len(ids)
        pos = torch.arange(start, start + T)
        for layer in range(self.layers):
            p = f"model.layers.{layer}."
            qkv = self.rms(x, w[p + "input_layernorm.weight"]) @ w[p + "self_attn.qkv_proj.weight"].T
            q = qkv[..., :H * d].view(1, T, H, d).transpose(1, 2)
            k = qkv[..., H * d:(H + Hkv) * d].view(1, T, Hkv, d).transpose(1, 2)
            v = qkv[..., (H + Hkv) * d:].view(1, T, Hkv, d).transpose(1, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if layer in self.cache:
                k, v = torch.cat([self.cache[layer][0], k], 2), torch.cat([self.cache[layer][1], v], 2)
            self.cache[layer] = (k, v)
            a = self.attention(layer, q, k, v, d ** -0.5).reshape(1, T, H * d)
            x = x + a @ w[p + "self_attn.o_proj.weight"].T
            gate, up = (self.rms(x, w[p + "post_attention_layernorm.weight"]) @ w[p + "mlp.gate_up_proj.weight"].T).chunk(2, -1)
            x = x + (up * torch.nn.functional.silu(gate)) @ w[p + "mlp.down_proj.weight"].T
        return (self.rms(x, w["model.norm.weight"]) @ w["lm_head.weight"].T)[0]


def stable_topk(input, k, dim=-1, largest=True, sorted=True):
    vals, idx = torch.sort(input, dim=dim, descending=largest, stable=True)
    return torch.return_types.topk((vals.narrow(dim, 0, k), idx.narrow(dim, 0, k)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case")
    ap.add_argument("--lower-position-ties", action="store_true")
    ap.add_argument("--reference", default=os.environ.get("SAH_REFERENCE", mr.DEFAULT_REFERENCE))
    args = ap.parse_args()
    mr.import_reference(args.reference)
    if args.lower_position_ties:
        torch.topk = stable_topk
        torch.Tensor.topk = lambda self, k, dim=-1, largest=True, sorted=True: stable_topk(self, k, dim, largest)
    case_dir = os.path.join(ROOT, "tests", "golden", "masked", "greedy", args.case)
    ref = json.load(open(os.path.join(case_dir, "reference.json")))
    maskers = ref["attention"]["maskers"]
    topk = [m for m in maskers if m["type"] == "oracle_top_k"]
    state = {"ra": None, "step": 0, "calls": []}

    def attention(layer, q, k, v, scaling):
        if state["ra"] is None or q.shape[2] != 1:
            return mr.dense_causal(q, k, v, scaling)
        out, _ = state["ra"].custom_attention(mr.LayerModule(layer), q, k, v, torch.zeros((1, 1, 1, k.shape[2])),
                                              scaling, 0.0, state["meta"], layer_idx=layer)
        state["calls"].append((state["step"], layer, q[0, :, 0].clone(), k[0].clone(), mr.R.last_mask[-1]))
        mr.R.last_mask.clear()
        return out

    model = Phi3(os.path.normpath(os.path.join(case_dir, ref["model_dir"])), attention)
    ids, n = ref["prompt_ids"], len(ref["output_ids"])
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    with torch.no_grad():
        row = model.forward(ids, 0)[-1]
        state["ra"], state["meta"] = mr.research_attention(maskers), {}
        out, rows = [], []
        for i in range(n):
            rows.append(row)
            out.append(int(torch.argmax(row)))
            if i + 1 < n:
                state["step"] = i + 1
                row = model.forward([out[-1]], len(ids) + i)[-1]
    logits = torch.stack(rows)
    want = torch.frombuffer(bytearray(open(os.path.join(case_dir, ref["logits_file"]), "rb").read()),
                            dtype=torch.float32).reshape(ref["logits_shape"])
    print(f"output_ids {out}")
    print(f"equal to the fixture: {out == ref['output_ids']}; max |logits - fixture| {float((logits - want).abs().max()):.3g}")
    for step, layer, q, k, mask in state["calls"]:
        if not topk:
            break
        sk, G = k.shape[1], q.shape[0] // k.shape[0]
        s = torch.einsum("hd,hsd->hs", q.double(), k.repeat_interleave(G, 0).double())
        kk = mr.eff(topk[0]["heavy_size"], sk)
        before = [m for m in maskers[:maskers.index(topk[0])] if m["type"] in ("sink", "local")]
        gaps = []
        for h in range(s.shape[0]):
            active = torch.zeros(sk, dtype=torch.bool)
            for m in before:
                size = mr.eff(m.get("sink_size", m.get("window_size")), sk)
                if m["type"] == "sink":
                    active[:size] = True
                else:
                    active[sk - size:] = True
            vals = torch.sort(s[h, ~active], descending=True).values
            gaps.append(float(vals[kk - 1] - vals[kk]) if kk < len(vals) else float("inf"))
        print(f"step {step:2d} layer {layer}: fed token {out[step - 1]:3d}, |q| min {float(q.norm(dim=-1).min()):.3g}, "
              f"smallest top-k gap {min(gaps):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
