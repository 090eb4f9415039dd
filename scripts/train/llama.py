"""A Llama-architecture causal LM in plain PyTorch, numerically the forward of transformers'
LlamaForCausalLM (RMSNorm, default RoPE, GQA, SiLU MLP, tied or untied lm_head), plus the
Hugging Face directory I/O (config.json, safetensors written and read by hand).

Runs on PyTorch 1.13 (this repository's CPU machines: /usr/bin/python3, no transformers) and on
PyTorch 2.x (the device machine). Parameter names are the Hugging Face ones, so
`model.state_dict()` is a checkpoint transformers loads.

The attention of every layer goes through a pluggable `attention` callable (see
attention_impls.py), which receives the rotated and the un-rotated queries/keys and the
attention input, so that the same model computes eager, streaming, mixed, NSA and masked
attention exactly as specs/attention.md and specs/maskers.md define them.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# Configuration

class LlamaConfig:
    FIELDS = dict(vocab_size=32000, hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                  num_attention_heads=8, num_key_value_heads=2, head_dim=64, rms_norm_eps=1e-5,
                  rope_theta=10000.0, max_position_embeddings=4096, tie_word_embeddings=True,
                  bos_token_id=1, eos_token_id=2)

    def __init__(self, **kw):
        for k, v in self.FIELDS.items():
            setattr(self, k, kw.get(k, v))
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            j = json.load(f)
        if j.get("model_type", "llama") != "llama":
            raise SystemExit(f"{path}: only model_type llama is implemented")
        rp = j.get("rope_parameters") or {}
        rs = j.get("rope_scaling") or {}
        if rp.get("rope_type", "default") != "default" or rs:
            raise SystemExit(f"{path}: only default RoPE is implemented")
        kw = {k: j[k] for k in cls.FIELDS if k in j}
        if "rope_theta" in rp:
            kw["rope_theta"] = rp["rope_theta"]
        kw.setdefault("head_dim", j.get("head_dim") or j["hidden_size"] // j["num_attention_heads"])
        return cls(**kw)

    def hf_dict(self, torch_dtype="bfloat16"):
        """config.json as transformers (4.x and 5.x) and Hotswap's loader read it."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": False,
            "mlp_bias": False,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "torch_dtype": torch_dtype,
        }


# ---------------------------------------------------------------------------------------------
# Model

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        # transformers' LlamaRMSNorm: float32 statistics, weight applied in the input dtype.
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        qd, kvd = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, qd, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, kvd, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, kvd, bias=False)
        self.o_proj = nn.Linear(qd, c.hidden_size, bias=False)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class Backbone(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(c) for _ in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class AttnInputs:
    """What a layer hands its attention implementation (batch B, positions 0..T-1).
    q [B,H,T,d] and k [B,Hkv,T,d] are rotated (RoPE applied); q_raw / k_raw are the projections
    before RoPE (NSA compresses un-rotated keys); v [B,Hkv,T,d]; x [B,T,D] is the attention input
    (post input_layernorm hidden state: the NSA gate reads it)."""

    __slots__ = ("layer", "q", "k", "v", "q_raw", "k_raw", "x", "scale", "positions")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


class Llama(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = c = config
        self.model = Backbone(c)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        inv = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.int64).float() / c.head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)

    def init_weights(self, seed, std=0.02):
        """GPT-2 style: N(0, std), residual output projections scaled by 1/sqrt(2 L), norms 1."""
        g = torch.Generator().manual_seed(seed)
        L = self.config.num_hidden_layers
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                nn.init.ones_(p)
                continue
            s = std / math.sqrt(2 * L) if name.endswith(("o_proj.weight", "down_proj.weight")) else std
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * s)

    def head_weight(self):
        return self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight

    def rope(self, positions, dtype):
        # transformers' LlamaRotaryEmbedding (default): freqs = position * inv_freq in float32.
        freqs = positions.float()[:, None] * self.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def hidden_states(self, ids, attention, capture=None):
        """ids [B,T] -> final normed hidden states [B,T,D]. `attention(inputs: AttnInputs)` returns
        [B,H,T,d]. `capture`, when given, is called with each layer's AttnInputs (for HashAttention
        training data)."""
        c = self.config
        B, T = ids.shape
        H, Hkv, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        x = self.model.embed_tokens(ids)
        positions = torch.arange(T, device=ids.device)
        cos, sin = None, None
        for i, layer in enumerate(self.model.layers):
            a = layer.self_attn
            h = layer.input_layernorm(x)
            q = a.q_proj(h).view(B, T, H, d).transpose(1, 2)
            k = a.k_proj(h).view(B, T, Hkv, d).transpose(1, 2)
            v = a.v_proj(h).view(B, T, Hkv, d).transpose(1, 2)
            if cos is None or cos.dtype != q.dtype:
                cos, sin = self.rope(positions, q.dtype)
            qr = q * cos + rotate_half(q) * sin
            kr = k * cos + rotate_half(k) * sin
            inp = AttnInputs(layer=i, q=qr, k=kr, v=v, q_raw=q, k_raw=k, x=h, scale=d ** -0.5, positions=positions)
            if capture is not None:
                capture(inp)
            o = attention(inp)                                    # [B,H,T,d]
            x = x + a.o_proj(o.transpose(1, 2).reshape(B, T, H * d))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.model.norm(x)

    def forward(self, ids, attention):
        return self.logits(self.hidden_states(ids, attention))

    def logits(self, hidden):
        return hidden @ self.head_weight().t().to(hidden.dtype)

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------------------------
# safetensors, written and read by hand (no `safetensors` package needed: works on the CPU box)

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


def write_safetensors(path, tensors, metadata=None, dtype=None):
    """tensors: {name: tensor}; dtype: None keeps each tensor's dtype, or a torch dtype for all.
    Writes to a temporary file and renames it."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if dtype is not None:
            t = t.to(dtype)
        if t.dtype == torch.float32:
            raw = t.view(torch.int32).numpy().tobytes()
        else:
            raw = t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode() + b"".join(blobs))
    os.replace(tmp, path)


def read_safetensors(path, to_float=True):
    """-> ({name: tensor (float32 if to_float)}, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        if e["dtype"] == "F32":
            t = torch.frombuffer(buf, dtype=torch.float32)
        elif e["dtype"] in ("BF16", "F16"):
            t = torch.frombuffer(buf, dtype=torch.int16).view(DTYPES[e["dtype"]])
        else:
            raise SystemExit(f"{path}: {name}: dtype {e['dtype']} not supported")
        t = t.reshape(e["shape"])
        out[name] = t.float() if to_float else t
    return out, header.get("__metadata__", {})


def save_hf_dir(model, out_dir, tokenizer_files, generator, dtype=torch.bfloat16, extra_config=None):
    """Writes config.json, generation_config.json, model.safetensors (dtype) and copies the
    tokenizer files. Returns the state dict as it was written (rounded to dtype, as float32)."""
    os.makedirs(out_dir, exist_ok=True)
    c = model.config
    cfg = c.hf_dict("bfloat16" if dtype == torch.bfloat16 else "float32")
    if extra_config:
        cfg.update(extra_config)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"], "do_sample": False}, f,
                  indent=2)
    sd = {k: v for k, v in model.state_dict().items() if k != "inv_freq"}
    write_safetensors(os.path.join(out_dir, "model.safetensors"), sd,
                      {"format": "pt", "generator": generator}, dtype=dtype)
    for src in tokenizer_files:
        with open(src, "rb") as fi, open(os.path.join(out_dir, os.path.basename(src)), "wb") as fo:
            fo.write(fi.read())
    return {k: v.detach().to(dtype).float() for k, v in sd.items()}


def load_hf_dir(model_dir, device="cpu"):
    """A Llama from a Hugging Face directory; weights upcast to float32 (the evaluation precision)."""
    config = LlamaConfig.from_json(os.path.join(model_dir, "config.json"))
    model = Llama(config)
    sd, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    if config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if m != "inv_freq"]
    if missing or unexpected:
        raise SystemExit(f"{model_dir}: missing {missing}, unexpected {unexpected}")
    return model.float().to(device).eval()
