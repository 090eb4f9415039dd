#!/usr/bin/env python3
"""Convert a Hugging Face Llama checkpoint (config.json + model.safetensors) to a GGUF v3 file
that llama.cpp loads as architecture "llama". Python 3 standard library only.

    safetensors_to_gguf.py MODEL_DIR OUT.gguf

Written for the random Llama-3.2-1B-shaped models that `hotswap make-demo-model` and
bench/engine_throughput_bench create, so that bench/llama_cpp_compare.sh can run llama.cpp on
the very same weights. What it writes:

* metadata: general.architecture = llama, the hyperparameters from config.json
  (llama.context_length, embedding_length, block_count, feed_forward_length,
  attention.head_count, attention.head_count_kv, attention.key_length / value_length,
  attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, vocab_size),
  general.file_type = 32 (mostly BF16), general.alignment = 32;
* a dummy SentencePiece-style vocabulary ("llama" tokenizer model) of vocab_size tokens:
  <unk>, then the 256 byte tokens <0x00>..<0xFF>, then "▁tokN" word placeholders; the bos/eos
  ids of config.json are control tokens named as Llama-3's (<|begin_of_text|>, <|end_of_text|>,
  <|eot_id|>). It only has to load: benchmarks feed token ids.
* tensors under llama.cpp's names (token_embd, blk.N.attn_norm / attn_q / attn_k / attn_v /
  attn_output / ffn_norm / ffn_gate / ffn_up / ffn_down, output_norm, output when the
  embedding is not tied). Matrices keep their dtype (BF16 / F16 / F32); 1-D tensors (the
  norms) are written as F32, as llama.cpp's own converter does.
* Q and K rows permuted per head from Hugging Face's rotate-half RoPE layout (pair i is
  (i, i + d/2)) to the interleaved layout llama.cpp's "llama" graph uses (pair i is
  (2i, 2i + 1)): output row h*d + 2i + j = input row h*d + j*d/2 + i.
* rope_scaling of type llama3: a rope_freqs.weight F32 tensor of head_dim/2 frequency divisors
  (1 for short wavelengths, `factor` for long ones, smooth in between), which llama.cpp applies
  to the RoPE frequencies. It does not change the amount of work, only the angles.

GGUF layout (little-endian): "GGUF", u32 version 3, u64 tensor count, u64 key/value count,
the key/values (string key, u32 type, value), the tensor infos (string name, u32 n_dims,
u64 dims innermost first, u32 ggml type, u64 offset into the data section), zero padding to
the alignment, then the tensor data, each tensor starting at a multiple of the alignment.
Tensor data is streamed from an mmap of the safetensors file, so memory use stays small.
"""
import json
import math
import mmap
import os
import struct
import sys

ALIGNMENT = 32
GGUF_VERSION = 3

# GGUF metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, \
    T_UINT64, T_INT64, T_FLOAT64 = range(13)

# ggml tensor types
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30
DTYPES = {"F32": (GGML_F32, 4), "F16": (GGML_F16, 2), "BF16": (GGML_BF16, 2)}
LLAMA_FTYPE_MOSTLY_BF16 = 32

# SentencePiece token types as llama.cpp reads them
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6

LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class Metadata:
    def __init__(self):
        self.items = []

    def add(self, key, vtype, value):
        self.items.append((key, vtype, value))

    @staticmethod
    def _scalar(vtype, value):
        fmt = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I",
               T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q",
               T_FLOAT64: "<d"}
        if vtype == T_STRING:
            return gguf_string(value)
        return struct.pack(fmt[vtype], value)

    def encode(self):
        out = []
        for key, vtype, value in self.items:
            out.append(gguf_string(key))
            if isinstance(vtype, tuple):  # (T_ARRAY, element type)
                etype = vtype[1]
                out.append(struct.pack("<IIQ", T_ARRAY, etype, len(value)))
                if etype == T_STRING:
                    out.extend(gguf_string(v) for v in value)
                elif etype == T_FLOAT32:
                    out.append(struct.pack("<%df" % len(value), *value))
                elif etype == T_INT32:
                    out.append(struct.pack("<%di" % len(value), *value))
                else:
                    out.extend(self._scalar(etype, v) for v in value)
            else:
                out.append(struct.pack("<I", vtype))
                out.append(self._scalar(vtype, value))
        return b"".join(out)


def llama3_rope_factors(cfg, head_dim):
    rs = cfg.get("rope_scaling") or {}
    if rs.get("rope_type", rs.get("type")) != "llama3":
        return None
    base = float(cfg.get("rope_theta", 10000.0))
    factor = float(rs.get("factor", 8.0))
    low = float(rs.get("low_freq_factor", 1.0))
    high = float(rs.get("high_freq_factor", 4.0))
    old_ctx = float(rs.get("original_max_position_embeddings", 8192))
    low_wavelen = old_ctx / low
    high_wavelen = old_ctx / high
    factors = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (base ** (i / head_dim))
        wavelen = 2.0 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1.0 / ((1.0 - smooth) / factor + smooth))
    return factors


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    model_dir, out_path = argv[1], argv[2]
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or ["?"])[0]
    if cfg.get("model_type") != "llama":
        sys.exit("only model_type llama is supported (got %r, %s)" % (cfg.get("model_type"), arch))

    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_head_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or n_embd // n_head
    n_layer = cfg["num_hidden_layers"]
    n_vocab = cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", False)

    st_path = os.path.join(model_dir, "model.safetensors")
    st_file = open(st_path, "rb")
    (header_len,) = struct.unpack("<Q", st_file.read(8))
    header = json.loads(st_file.read(header_len))
    header.pop("__metadata__", None)
    data_base = 8 + header_len
    st = mmap.mmap(st_file.fileno(), 0, access=mmap.ACCESS_READ)

    # Map names; plan the tensors: (gguf name, ggml type, shape innermost first, nbytes, writer).
    tensors = []

    def plan_tensor(hf_name, info, gguf_name):
        dtype, shape = info["dtype"], info["shape"]
        if dtype not in DTYPES:
            sys.exit("%s: unsupported dtype %s" % (hf_name, dtype))
        ggml_type, esize = DTYPES[dtype]
        begin, end = info["data_offsets"]
        begin += data_base
        end += data_base
        numel = 1
        for d in shape:
            numel *= d
        assert end - begin == numel * esize, hf_name
        if len(shape) == 1:
            # 1-D (norm) weights as F32
            def write(out, begin=begin, end=end, dtype=dtype):
                raw = st[begin:end]
                if dtype == "F32":
                    out.write(raw)
                elif dtype == "BF16":
                    n = len(raw) // 2
                    vals = struct.unpack("<%dH" % n, raw)
                    out.write(struct.pack("<%dI" % n, *[v << 16 for v in vals]))
                else:  # F16
                    n = len(raw) // 2
                    out.write(struct.pack("<%df" % n, *struct.unpack("<%de" % n, raw)))
            tensors.append((gguf_name, GGML_F32, list(reversed(shape)), numel * 4, write))
            return
        assert len(shape) == 2, hf_name
        rows, cols = shape
        row_bytes = cols * esize
        heads = None
        if gguf_name.endswith("attn_q.weight"):
            heads = n_head
        elif gguf_name.endswith("attn_k.weight"):
            heads = n_head_kv
        if heads is not None:
            assert rows % (2 * heads) == 0, hf_name
            d = rows // heads
            half = d // 2

            def write(out, begin=begin, d=d, half=half, heads=heads, row_bytes=row_bytes):
                # interleave the two halves of each head: out row h*d + 2i + j = in row h*d + j*half + i
                for h in range(heads):
                    head_base = begin + h * d * row_bytes
                    parts = []
                    for i in range(half):
                        for j in (0, 1):
                            src = head_base + (j * half + i) * row_bytes
                            parts.append(st[src:src + row_bytes])
                    out.write(b"".join(parts))
        else:
            def write(out, begin=begin, end=end):
                chunk = 64 << 20
                for pos in range(begin, end, chunk):
                    out.write(st[pos:min(pos + chunk, end)])
        tensors.append((gguf_name, ggml_type, [cols, rows], rows * row_bytes, write))

    def hf_to_gguf(name):
        if name in GLOBAL_NAMES:
            return GLOBAL_NAMES[name]
        parts = name.split(".", 3)  # model, layers, N, rest
        if len(parts) == 4 and parts[0] == "model" and parts[1] == "layers" and parts[3] in LAYER_NAMES:
            return "blk.%d.%s" % (int(parts[2]), LAYER_NAMES[parts[3]])
        return None

    names = {}
    for hf_name in header:
        g = hf_to_gguf(hf_name)
        if g is None:
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue
            sys.exit("unknown tensor %s" % hf_name)
        if g == "output.weight" and tied:
            continue
        names[g] = hf_name

    order = ["token_embd.weight"]
    for i in range(n_layer):
        order += ["blk.%d.%s" % (i, v) for v in LAYER_NAMES.values()]
    order += ["output_norm.weight"]
    if "output.weight" in names:
        order.append("output.weight")
    missing = [g for g in order if g not in names]
    if missing:
        sys.exit("missing tensors: %s" % ", ".join(missing[:8]))
    rope_factors = llama3_rope_factors(cfg, head_dim)
    if rope_factors is not None:
        packed = struct.pack("<%df" % len(rope_factors), *rope_factors)
        tensors.append(("rope_freqs.weight", GGML_F32, [len(rope_factors)], len(packed),
                        lambda out, packed=packed: out.write(packed)))
    for g in order:
        plan_tensor(names[g], header[names[g]], g)

    # Metadata.
    md = Metadata()
    md.add("general.architecture", T_STRING, "llama")
    md.add("general.type", T_STRING, "model")
    md.add("general.name", T_STRING, os.path.basename(os.path.normpath(model_dir)))
    md.add("general.alignment", T_UINT32, ALIGNMENT)
    md.add("general.file_type", T_UINT32, LLAMA_FTYPE_MOSTLY_BF16)
    md.add("llama.context_length", T_UINT32, cfg.get("max_position_embeddings", 4096))
    md.add("llama.embedding_length", T_UINT32, n_embd)
    md.add("llama.block_count", T_UINT32, n_layer)
    md.add("llama.feed_forward_length", T_UINT32, cfg["intermediate_size"])
    md.add("llama.attention.head_count", T_UINT32, n_head)
    md.add("llama.attention.head_count_kv", T_UINT32, n_head_kv)
    md.add("llama.attention.key_length", T_UINT32, head_dim)
    md.add("llama.attention.value_length", T_UINT32, head_dim)
    md.add("llama.attention.layer_norm_rms_epsilon", T_FLOAT32, float(cfg.get("rms_norm_eps", 1e-5)))
    md.add("llama.rope.freq_base", T_FLOAT32, float(cfg.get("rope_theta", 10000.0)))
    md.add("llama.rope.dimension_count", T_UINT32, head_dim)
    md.add("llama.vocab_size", T_UINT32, n_vocab)

    bos = cfg.get("bos_token_id", 1)
    eos = cfg.get("eos_token_id", 2)
    eos_list = eos if isinstance(eos, list) else [eos]
    control = set([bos] + eos_list)
    tokens, scores, types = [], [], []
    # Llama-3's own texts for the control tokens, so that llama.cpp recognises the end-of-
    # generation ones as such.
    control_text = {bos: "<|begin_of_text|>"}
    for e, text in zip(eos_list, ["<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"]):
        control_text.setdefault(e, text)
    for t in range(n_vocab):
        if t in control:
            tokens.append(control_text.get(t, "<ctrl_%d>" % t))
            types.append(TOKEN_CONTROL)
        elif t == 0:
            tokens.append("<unk>")
            types.append(TOKEN_UNKNOWN)
        elif 1 <= t <= 256:
            # Named as SentencePiece's byte tokens (llama.cpp looks up "<0x0A>" for the line
            # feed) but typed normal, so they decode to that text: as bytes, ids 129..256 would
            # make the invalid UTF-8 on which llama-server's output parser fails a stream.
            tokens.append("<0x%02X>" % (t - 1))
            types.append(TOKEN_NORMAL)
        else:
            # A word piece ("\u2581" is SentencePiece's space), not "<tok_N>": llama-server runs
            # its chat-output parser over completions too, and text full of "<...>" tags makes
            # it fail a stream now and then ("Failed to parse input at pos N").
            tokens.append("\u2581tok%d" % t)
            types.append(TOKEN_NORMAL)
        scores.append(-float(t))
    md.add("tokenizer.ggml.model", T_STRING, "llama")
    md.add("tokenizer.ggml.tokens", (T_ARRAY, T_STRING), tokens)
    md.add("tokenizer.ggml.scores", (T_ARRAY, T_FLOAT32), scores)
    md.add("tokenizer.ggml.token_type", (T_ARRAY, T_INT32), types)
    md.add("tokenizer.ggml.bos_token_id", T_UINT32, bos)
    md.add("tokenizer.ggml.eos_token_id", T_UINT32, eos_list[0])
    md.add("tokenizer.ggml.unknown_token_id", T_UINT32, 0)
    md.add("tokenizer.ggml.add_bos_token", T_BOOL, True)
    md.add("tokenizer.ggml.add_eos_token", T_BOOL, False)

    # Tensor infos with aligned offsets.
    infos = []
    offset = 0
    offsets = []
    for name, ggml_type, dims, nbytes, _ in tensors:
        offset = (offset + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        offsets.append(offset)
        infos.append(gguf_string(name) + struct.pack("<I", len(dims)) +
                     struct.pack("<%dQ" % len(dims), *dims) + struct.pack("<IQ", ggml_type, offset))
        offset += nbytes

    tmp_path = out_path + ".tmp"
    with open(tmp_path, "wb") as out:
        out.write(b"GGUF" + struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(md.items)))
        out.write(md.encode())
        out.write(b"".join(infos))
        pad = (-out.tell()) % ALIGNMENT
        out.write(b"\0" * pad)
        data_start = out.tell()
        for (name, _, _, nbytes, write), off in zip(tensors, offsets):
            pos = out.tell() - data_start
            out.write(b"\0" * (off - pos))
            write(out)
            if out.tell() - data_start != off + nbytes:
                sys.exit("%s: wrote %d bytes, expected %d" % (name, out.tell() - data_start - off, nbytes))
        total = out.tell()
    os.replace(tmp_path, out_path)
    print("%s: %d tensors, %d metadata keys, %.3f GB (%s, %d layers, vocab %d, %s rope%s)" % (
        out_path, len(tensors), len(md.items), total / 1e9, arch, n_layer, n_vocab,
        "llama3-scaled" if rope_factors else "plain", ", tied embedding" if tied else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
