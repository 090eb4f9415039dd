#!/usr/bin/env python3
"""PyTorch reference of Hotswap's `streaming` and `mixed` attention (specs/attention.md),
hooked into transformers' own Llama / Qwen2 / Phi-3 models, and the fixtures the engine is
checked against.

Run where PyTorch and transformers are installed, from the repository root:

    python3 scripts/reference/attention_reference.py \
        --models tests/golden/models --out tests/golden/attention

What it does, per model (llama_f32, qwen2_f32, phi3_f32):
  1. Replaces the model's attention function by `pattern_attention` (below), which computes
     eager, streaming or mixed attention from the query/key positions alone.
  2. FIRST checks that with windows covering every token it reproduces transformers' own
     eager logits (max abs difference <= 1e-5) and greedy continuation, for streaming
     (token and block granular) and mixed with random gates. It aborts otherwise.
  3. Writes tests/golden/attention/<model>_<case>/:
       reference.json   prompt ids, the --attention argument, adapter file (mixed), versions,
                        greedy continuations (40 tokens, EOS ignored) of prompts of 17 and
                        300 tokens
       logits_<n>.f32   float32 logits [n, vocab] for every position of prompts of 17 and
                        160 tokens (raw little-endian)
       adapter_weight.json   (mixed) the gates, in the format of specs/adapters.md
     for the cases streaming_block (sink 8, recent 32, block 16), streaming_token (sink 4,
     recent 16, block 1) and mixed (random gates including 0 and 1; the adapter's windows
     sink 4, recent 24, block 8).

Semantics implemented (specs/attention.md), for a query at position t:
  streaming: with block size B, sink S, recent R, it sees keys p <= t with
             p < ceil(S/B)*B  or  p >= max(0, (t//B - ceil(R/B) + 1) * B).
             Positions keep their RoPE (no shift); decode uses the same rule.
  mixed:     per query head, out = a * eager_out + (1 - a) * streaming_out before o_proj,
             a = gate[layer][kv_head] repeated to the kv head's query heads (or one gate per
             query head when the adapter lists H of them).
Everything runs on the CPU in float32.
"""
import argparse
import json
import math
import os
import random
import sys

import numpy
import torch

NEW_TOKENS = 40
LOGIT_LENGTHS = [17, 160]
GREEDY_LENGTHS = [17, 300]
MODELS = ["llama_f32", "qwen2_f32", "phi3_f32"]


# ---------------------------------------------------------------------------------------
# The attention pattern, set per run through PATTERN.
class Pattern:
    def __init__(self, impl="eager", sink=0, recent=1, block=1, gates=None):
        self.impl = impl          # "eager" | "streaming" | "mixed"
        self.sink = sink
        self.recent = recent
        self.block = block
        self.gates = gates        # mixed: [L][Hkv or H] floats

    def window_mask(self, q_pos, k_pos):
        """[T, S] bool: key visible to the query under the streaming rule (causal included)."""
        B = self.block
        sink_end = math.ceil(self.sink / B) * B
        local_blocks = math.ceil(self.recent / B)
        local_start = torch.clamp((q_pos // B - local_blocks + 1) * B, min=0)
        causal = k_pos[None, :] <= q_pos[:, None]
        return causal & ((k_pos[None, :] < sink_end) | (k_pos[None, :] >= local_start[:, None]))


PATTERN = Pattern()
CALLS = [0]


def repeat_kv(x, n):
    return x if n == 1 else x.repeat_interleave(n, dim=1)


def masked_attention(query, key, value, mask, scaling):
    """Softmax attention with a boolean mask [T, S]; as transformers' eager: float32 softmax."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    scores = scores.masked_fill(~mask[None, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(probs, value)


def pattern_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
    """transformers attention-function signature: query [B, H, T, d], key/value [B, Hkv, S, d]
    (the cache included), returns ([B, T, H, d], None). Batch 1, no padding: query i sits at
    position S - T + i. The mask transformers built is not used; positions decide."""
    CALLS[0] += 1
    _, H, T, d = query.shape
    Hkv, S = key.shape[1], key.shape[2]
    if scaling is None:
        scaling = 1.0 / math.sqrt(d)
    k = repeat_kv(key, H // Hkv)
    v = repeat_kv(value, H // Hkv)
    q_pos = torch.arange(S - T, S)
    k_pos = torch.arange(S)
    causal = k_pos[None, :] <= q_pos[:, None]
    p = PATTERN
    if p.impl == "eager":
        out = masked_attention(query, k, v, causal, scaling)
    elif p.impl == "streaming":
        out = masked_attention(query, k, v, p.window_mask(q_pos, k_pos), scaling)
    elif p.impl == "mixed":
        g = p.gates[module.layer_idx]
        a = torch.tensor(g if len(g) == H else [g[h // (H // Hkv)] for h in range(H)], dtype=query.dtype)
        a = a.view(1, H, 1, 1)
        dense = masked_attention(query, k, v, causal, scaling)
        stream = masked_attention(query, k, v, p.window_mask(q_pos, k_pos), scaling)
        out = a * dense + (1 - a) * stream
    else:
        raise ValueError(p.impl)
    return out.transpose(1, 2).contiguous(), None


# ---------------------------------------------------------------------------------------
# Hooking the function into transformers.
HOOK_NAME = "hotswap_pattern"


def register_attention():
    from transformers import AttentionInterface
    AttentionInterface.register(HOOK_NAME, pattern_attention)
    try:  # masks for a custom implementation: reuse the eager (additive) ones, unused anyway
        from transformers import AttentionMaskInterface
        from transformers.masking_utils import eager_mask
        AttentionMaskInterface.register(HOOK_NAME, eager_mask)
    except Exception as e:  # older transformers build masks without this interface
        print("note: no AttentionMaskInterface:", e, flush=True)


def load(model_dir, attn):
    import transformers
    kwargs = dict(attn_implementation=attn)
    try:
        m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kwargs)
    except TypeError:
        m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, **kwargs)
    return m.eval()


@torch.no_grad()
def logits_of(model, ids):
    before = CALLS[0]
    out = model(torch.tensor([ids])).logits[0].float().contiguous()
    return out, CALLS[0] - before


@torch.no_grad()
def greedy(model, ids, n):
    """Greedy decoding with transformers' own KV cache; EOS does not stop it."""
    out = model(torch.tensor([ids]), use_cache=True)
    past, generated = out.past_key_values, []
    nxt = int(torch.argmax(out.logits[0, -1]))
    for _ in range(n):
        generated.append(nxt)
        out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = int(torch.argmax(out.logits[0, -1]))
    return generated


def prompt_ids(length, seed, vocab):
    g = random.Random(seed)
    return [g.randrange(3, vocab) for _ in range(length)]


def random_gates(num_layers, num_kv_heads, seed):
    """Gates in [0, 1] rounded to 4 decimals (exact through JSON), with exact 1 and 0 in
    layer 0 (first and last KV head) and, with more than two KV heads, in the other layers."""
    g = random.Random(seed)
    gates = [[round(g.uniform(0.05, 0.95), 4) for _ in range(num_kv_heads)] for _ in range(num_layers)]
    gates[0][0] = 1.0
    if num_kv_heads > 1:
        gates[0][-1] = 0.0
    for layer in gates[1:]:
        if num_kv_heads > 2:
            layer[1], layer[2] = 0.0, 1.0
    return gates


def adapter_document(gates, model_name, sink, recent, block):
    return {
        "adapter_type": "mixed",
        "model_name": model_name,
        "sink_window_size": sink,
        "recent_window_size": recent,
        "block_size": block,
        "adapter_weight_dict": {f"model.layers.{i}.self_attn.adapter.weight": g for i, g in enumerate(gates)},
    }


# ---------------------------------------------------------------------------------------
def check_reproduces_eager(eager_model, model, cfg, vocab, name):
    """Windows covering every token: streaming and mixed must give transformers' eager logits."""
    global PATTERN
    ids = prompt_ids(300, 7, vocab)
    want, _ = logits_of(eager_model, ids)
    want_greedy = greedy(eager_model, ids[:40], 12)
    gates = random_gates(cfg.num_hidden_layers, cfg.num_key_value_heads, 99)
    for pattern in [Pattern("eager"),
                    Pattern("streaming", sink=0, recent=400, block=1),
                    Pattern("streaming", sink=5, recent=512, block=16),
                    Pattern("streaming", sink=300, recent=1, block=1),
                    Pattern("mixed", sink=0, recent=320, block=64, gates=gates)]:
        PATTERN = pattern
        got, calls = logits_of(model, ids)
        if calls != cfg.num_hidden_layers:
            sys.exit(f"{name}: the pattern attention ran {calls} times for {cfg.num_hidden_layers} layers: not hooked")
        diff = float((got - want).abs().max())
        print(f"  {name} covering {pattern.impl} S={pattern.sink} R={pattern.recent} B={pattern.block}: "
              f"max |logits - transformers eager| = {diff:.3g}", flush=True)
        if diff > 1e-5:
            sys.exit(f"{name}: reference does not reproduce transformers' eager logits ({diff})")
        if greedy(model, ids[:40], 12) != want_greedy:
            sys.exit(f"{name}: reference greedy continuation differs from transformers' eager")
    # And a window that does not cover everything must change the logits (the hook is live).
    PATTERN = Pattern("streaming", sink=4, recent=16, block=1)
    got, _ = logits_of(model, ids)
    if float((got - want).abs().max()) < 1e-3:
        sys.exit(f"{name}: a 20-token window left the logits unchanged: the pattern is not applied")


def check_committed_golden(eager_model, model_dir):
    """The committed eager fixtures were made by this transformers; warn on a mismatch."""
    path = os.path.join(model_dir, "reference.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        ref = json.load(f)
    for p in ref["prompts"]:
        raw = numpy.fromfile(os.path.join(model_dir, p["logits_file"]), dtype="<f4")
        want = torch.from_numpy(raw).view(*p["shape"])
        got, _ = logits_of(eager_model, p["ids"])
        print(f"  committed {p['logits_file']}: max |diff| = {float((got - want).abs().max()):.3g}", flush=True)


def write_case(out_dir, case, model, vocab, attention_arg, adapter, meta):
    os.makedirs(out_dir, exist_ok=True)
    record = dict(meta, case=case, attention=attention_arg, adapter_file=None, prompts=[], greedy=[])
    if adapter is not None:
        with open(os.path.join(out_dir, "adapter_weight.json"), "w") as f:
            json.dump(adapter, f, indent=1)
        record["adapter_file"] = "adapter_weight.json"
    for i, n in enumerate(LOGIT_LENGTHS):
        ids = prompt_ids(n, 1000 + i, vocab)
        logits, _ = logits_of(model, ids)
        fname = f"logits_{n}.f32"
        logits.numpy().astype("<f4").tofile(os.path.join(out_dir, fname))
        record["prompts"].append({"ids": ids, "logits_file": fname, "shape": list(logits.shape)})
    for i, n in enumerate(GREEDY_LENGTHS):
        ids = prompt_ids(n, 2000 + i, vocab)
        record["greedy"].append({"prompt_ids": ids, "output_ids": greedy(model, ids, NEW_TOKENS)})
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(record, f)
    print("  wrote", out_dir, flush=True)


def main():
    global PATTERN
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="tests/golden/models")
    ap.add_argument("--out", default="tests/golden/attention")
    ap.add_argument("--only", nargs="*", default=MODELS)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    import transformers
    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    register_attention()

    for name in args.only:
        model_dir = os.path.join(args.models, name)
        eager_model = load(model_dir, "eager")
        model = load(model_dir, HOOK_NAME)
        cfg = model.config
        vocab = cfg.vocab_size
        print(name, flush=True)
        check_committed_golden(eager_model, model_dir)
        check_reproduces_eager(eager_model, model, cfg, vocab, name)
        meta = {"model": name, "model_dir": model_dir, "model_type": cfg.model_type,
                "transformers": transformers.__version__, "torch": torch.__version__,
                "new_tokens": NEW_TOKENS, "ignore_eos": True}

        PATTERN = Pattern("streaming", sink=8, recent=32, block=16)
        write_case(os.path.join(args.out, f"{name}_streaming_block"), "streaming_block", model, vocab,
                   {"impl": "streaming", "sink_window_size": 8, "recent_window_size": 32, "block_size": 16}, None, meta)

        PATTERN = Pattern("streaming", sink=4, recent=16, block=1)
        write_case(os.path.join(args.out, f"{name}_streaming_token"), "streaming_token", model, vocab,
                   {"impl": "streaming", "sink_window_size": 4, "recent_window_size": 16, "block_size": 1}, None, meta)

        gates = random_gates(cfg.num_hidden_layers, cfg.num_key_value_heads, 1234)
        PATTERN = Pattern("mixed", sink=4, recent=24, block=8, gates=gates)
        write_case(os.path.join(args.out, f"{name}_mixed"), "mixed", model, vocab, {"impl": "mixed"},
                   adapter_document(gates, name, 4, 24, 8), meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
