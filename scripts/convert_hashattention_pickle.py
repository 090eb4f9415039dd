#!/usr/bin/env python3
"""Convert sparse-attention-hub's HashAttention weight pickle to a Hotswap `hashattention` adapter.

The reference (specs/maskers.md Part 2 §4.6) keeps its weights as a Python pickle of
    {layer_idx: {"query_matrix": [W_0, W_1, ...], "query_bias": [b_0, ...],
                 "key_matrix":   [...],            "key_bias":   [...]}}
with W_i of shape (H, d_in_i, d_out_i) (already (in, out)) and b_i of shape (H, d_out_i);
a missing bias list (or a None entry) means zeros. The server never unpickles anything, so
this script writes the adapter format of specs/maskers.md Part 1 ("`hashattention` adapters"):
a safetensors file with
    layers.{L}.query.{i}.weight [H, d_in, d_out]   layers.{L}.query.{i}.bias [H, d_out]
    layers.{L}.key.{i}.weight   [H, d_in, d_out]   layers.{L}.key.{i}.bias   [H, d_out]
and __metadata__ {"type": "hashattention", "activation": ...}. Upload it with
    curl -X PUT --data-binary @out.safetensors -H 'Content-Type: application/octet-stream' \
         http://host:port/v1/adapters/<name>

Usage:
    convert_hashattention_pickle.py weights.pkl out.safetensors --activation silu [--dtype F32|BF16|F16]
    convert_hashattention_pickle.py --self-test

Needs numpy; torch only to unpickle torch tensors (the reference's pickles hold them). The
safetensors file is written by hand (struct + json), so the safetensors package is not needed.
"""

import argparse
import json
import os
import pickle
import struct
import sys
import tempfile

try:
    import numpy as np
except ImportError:  # the self-test is registered with CTest: skipped (77) where numpy is absent
    if "--self-test" in sys.argv:
        print("convert_hashattention_pickle.py self-test skipped: numpy is not installed")
        sys.exit(77)
    sys.exit("error: convert_hashattention_pickle.py needs numpy (and torch to read torch tensors)")

ACTIVATIONS = ("relu", "silu", "gelu", "tanh")
SIDES = ("query", "key")
MAX_BITS = 64


class ConversionError(Exception):
    pass


def to_numpy(x, where):
    """A torch tensor or numpy array -> float32 numpy array."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().float().numpy()
    try:
        a = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"{where}: not a tensor ({type(x).__name__}): {e}")
    if not np.all(np.isfinite(a)):
        raise ConversionError(f"{where}: holds NaN or Infinity; the server accepts finite values only")
    return a


def convert_weights(weights):
    """The pickle's dict -> [(tensor name, float32 array)] in file order, validated."""
    if not isinstance(weights, dict) or not weights:
        raise ConversionError("the pickle must hold a non-empty dict {layer_idx: {...}}")
    try:
        layers = sorted((int(k), k) for k in weights)
    except (TypeError, ValueError):
        raise ConversionError(f"layer keys must be integers, got {sorted(map(repr, weights))[:5]}")
    if [l for l, _ in layers] != list(range(len(layers))):
        raise ConversionError(f"layers must be 0..n-1, got {[l for l, _ in layers]}")
    out = []
    heads = bits = None
    for layer, key in layers:
        entry = weights[key]
        for side in SIDES:
            mats = entry.get(f"{side}_matrix")
            if not mats:
                raise ConversionError(f"layer {layer}: '{side}_matrix' is missing or empty")
            biases = entry.get(f"{side}_bias") or [None] * len(mats)
            if len(biases) != len(mats):
                raise ConversionError(f"layer {layer}: {len(mats)} {side} matrices but {len(biases)} biases")
            for i, (m, b) in enumerate(zip(mats, biases)):
                where = f"layer {layer} {side}_matrix[{i}]"
                w = to_numpy(m, where)
                if w.ndim != 3:
                    raise ConversionError(f"{where}: expected shape (H, d_in, d_out), got {w.shape}")
                heads = w.shape[0] if heads is None else heads
                if w.shape[0] != heads:
                    raise ConversionError(f"{where}: {w.shape[0]} heads, expected {heads}")
                if i > 0 and w.shape[1] != out[-2][1].shape[2]:
                    raise ConversionError(f"{where}: d_in {w.shape[1]} != previous d_out {out[-2][1].shape[2]}")
                bias = np.zeros((w.shape[0], w.shape[2]), np.float32) if b is None else to_numpy(b, f"layer {layer} {side}_bias[{i}]")
                if bias.shape != (w.shape[0], w.shape[2]):
                    raise ConversionError(f"layer {layer} {side}_bias[{i}]: expected shape {(w.shape[0], w.shape[2])}, got {bias.shape}")
                prefix = f"layers.{layer}.{side}.{i}."
                out.append((prefix + "weight", w))
                out.append((prefix + "bias", bias))
            last = out[-2][1].shape[2]
            if not 1 <= last <= MAX_BITS:
                raise ConversionError(f"layer {layer} {side}: signature bits (last d_out) {last}; expected 1..{MAX_BITS}")
            bits = last if bits is None else bits
            if last != bits:
                raise ConversionError(f"layer {layer} {side}: signature bits (last d_out) {last} differ from {bits}; "
                                      "every query and key MLP must end in the same bits")
    return out


def encode(a, dtype):
    """float32 array -> little-endian bytes of `dtype`."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        h = a.astype("<f2")
        if not np.all(np.isfinite(h)):
            raise ConversionError("a value overflows F16; use --dtype F32 or BF16")
        return h.tobytes()
    # BF16: round to nearest even, as torch does.
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def write_safetensors(path, tensors, metadata, dtype="F32"):
    header = {"__metadata__": metadata}  # first, so the server's type probe stops early
    blobs, offset = [], 0
    for name, a in tensors:
        data = encode(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the safetensors package writes it
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    """-> (metadata, {name: (dtype, shape, float32 array)}); F32/F16/BF16 only (for the self-test)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        buf = data[b:e]
        if t["dtype"] == "F32":
            a = np.frombuffer(buf, "<f4")
        elif t["dtype"] == "F16":
            a = np.frombuffer(buf, "<f2").astype(np.float32)
        else:
            a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        out[name] = (t["dtype"], tuple(t["shape"]), a.reshape(t["shape"]))
    return metadata, out


def convert(src, dst, activation, dtype="F32"):
    if activation not in ACTIVATIONS:
        raise ConversionError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    with open(src, "rb") as f:
        weights = pickle.load(f)  # trusted input only: unpickling runs code
    tensors = convert_weights(weights)
    metadata = {"type": "hashattention", "activation": activation, "source": os.path.basename(src)}
    write_safetensors(dst, tensors, metadata, dtype)
    return tensors


def self_test():
    """Random pickle -> safetensors -> read back: names, shapes, dtypes, values, zero biases."""
    rng = np.random.default_rng(7)
    try:
        import torch
        make = lambda *s: torch.from_numpy(rng.standard_normal(s).astype(np.float32))
    except ImportError:
        make = lambda *s: rng.standard_normal(s).astype(np.float32)
    H, d = 4, 8
    widths = {"query": [d, 16, 12], "key": [d, 12]}
    weights = {}
    for layer in range(3):
        entry = {}
        for side, w in widths.items():
            entry[f"{side}_matrix"] = [make(H, w[i], w[i + 1]) for i in range(len(w) - 1)]
            entry[f"{side}_bias"] = [make(H, w[i + 1]) for i in range(len(w) - 1)]
        weights[layer] = entry
    del weights[1]["key_bias"]          # a missing bias list: zeros
    weights[2]["query_bias"][1] = None  # one missing bias: zeros
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "hat.pkl")
        with open(src, "wb") as f:
            pickle.dump(weights, f)
        for dtype, tol in (("F32", 0.0), ("BF16", 2.0 ** -8), ("F16", 2.0 ** -10)):
            dst = os.path.join(tmp, f"hat_{dtype}.safetensors")
            convert(src, dst, "silu", dtype)
            metadata, tensors = read_safetensors(dst)
            assert metadata["type"] == "hashattention" and metadata["activation"] == "silu", metadata
            expected = set()
            for layer in range(3):
                for side, w in widths.items():
                    for i in range(len(w) - 1):
                        p = f"layers.{layer}.{side}.{i}."
                        expected |= {p + "weight", p + "bias"}
                        dt, shape, wt = tensors[p + "weight"]
                        assert dt == dtype and shape == (H, w[i], w[i + 1]), (p, dt, shape)
                        ref = np.asarray(weights[layer][f"{side}_matrix"][i], np.float32)
                        assert np.allclose(wt, ref, rtol=tol, atol=tol and 1e-7), (p, dtype)
                        _, bshape, bt = tensors[p + "bias"]
                        assert bshape == (H, w[i + 1]), (p, bshape)
                        biases = weights[layer].get(f"{side}_bias")
                        if biases is None or biases[i] is None:
                            assert not bt.any(), (p, "missing bias must be zeros")
                        else:
                            assert np.allclose(bt, np.asarray(biases[i], np.float32), rtol=tol, atol=tol and 1e-7), p
            assert set(tensors) == expected, sorted(set(tensors) ^ expected)
        # Broken inputs are refused with a message.
        bad = {0: {"query_matrix": [make(H, d, 70)], "key_matrix": [make(H, d, 70)]}}
        try:
            convert_weights(bad)
            raise AssertionError("70 bits accepted")
        except ConversionError as e:
            assert "1..64" in str(e), e
    print("convert_hashattention_pickle.py self-test passed")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", nargs="?", help="the reference's pickle (trusted: unpickling runs code)")
    p.add_argument("output", nargs="?", help="the safetensors adapter to write")
    p.add_argument("--activation", choices=ACTIVATIONS, help="hat_mlp_activation of the reference's config")
    p.add_argument("--dtype", choices=("F32", "BF16", "F16"), default="F32", help="tensor dtype written (default F32)")
    p.add_argument("--self-test", action="store_true", help="round-trip a random pickle and check the result")
    args = p.parse_args(argv)
    if args.self_test:
        self_test()
        return 0
    if not args.input or not args.output or not args.activation:
        p.error("input, output and --activation are required")
    try:
        tensors = convert(args.input, args.output, args.activation, args.dtype)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    layers = len({n.split(".")[1] for n, _ in tensors})
    bits = tensors[-2][1].shape[2]
    print(f"wrote {args.output}: {layers} layers, {tensors[0][1].shape[0]} heads, {bits} bits, {len(tensors)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
