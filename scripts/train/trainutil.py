"""Small training helpers shared by the train_*.py scripts."""
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F


def device_or_die():
    if not torch.cuda.is_available():
        print("note: no CUDA device; running on the CPU (slow)", flush=True)
        return "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True      # training only; evaluation turns it off
    torch.backends.cudnn.allow_tf32 = True
    return "cuda"


def cosine_lr(step, total, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


class Batches:
    """Deterministic batches: batch i has n_ret(i) = floor((i+1) B f) - floor(i B f) retrieval rows
    (from the pre-built arrays, f = retrieval_frac) and B - n_ret(i) random windows of the training
    stream. Yields (ids, weights) as int64 / float32 CPU tensors [B, T]."""

    def __init__(self, stream, ret_ids, ret_w, steps, B, T, frac, seed):
        self.stream, self.ret_ids, self.ret_w = stream, ret_ids, ret_w
        self.steps, self.B, self.T, self.frac = steps, B, T, frac
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def retrieval_rows_needed(steps, B, frac):
        return int(math.floor(steps * B * frac + 1e-9))

    def __iter__(self):
        r = 0
        for i in range(self.steps):
            n_ret = self.retrieval_rows_needed(i + 1, self.B, self.frac) - self.retrieval_rows_needed(i, self.B, self.frac)
            starts = self.rng.integers(0, len(self.stream) - self.T, size=self.B - n_ret)
            text = np.stack([self.stream[s:s + self.T] for s in starts]).astype(np.int64) if len(starts) else \
                np.zeros((0, self.T), dtype=np.int64)
            ids = np.concatenate([self.ret_ids[r:r + n_ret], text])
            w = np.concatenate([self.ret_w[r:r + n_ret], np.ones_like(text, dtype=np.float32)])
            r += n_ret
            yield torch.from_numpy(ids), torch.from_numpy(w)


def lm_loss(model, ids, weights, attention, extra_loss=None):
    """Weighted next-token cross-entropy (weights[:, p] weighs predicting ids[:, p]); returns
    (weighted loss, plain mean loss)."""
    h = model.hidden_states(ids, attention)
    logits = model.logits(h)[:, :-1]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="none")
    w = weights[:, 1:].reshape(-1)
    return (ce * w).sum() / w.sum(), ce.mean()


class Timer:
    def __init__(self):
        self.t0 = time.time()

    def __call__(self):
        return time.time() - self.t0


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)
    print("wrote", path, flush=True)


def gpu_name():
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def load_frozen(model_dir, device):
    """The reference model (bf16 weights upcast to float32), every parameter frozen."""
    from llama import load_hf_dir
    model = load_hf_dir(model_dir, device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_eval_data(eval_dir, max_docs=None, max_per_length=None):
    """(corpus documents, retrieval samples) as the reference script wrote them."""
    import data
    docs = data.read_jsonl(os.path.join(eval_dir, "corpus.jsonl"))
    samples = data.read_jsonl(os.path.join(eval_dir, "retrieval.jsonl"))
    if max_docs is not None:
        docs = docs[:max_docs]
    if max_per_length is not None:
        seen, kept = {}, []
        for s in samples:
            n = seen.get(s["context_tokens"], 0)
            if n < max_per_length:
                kept.append(s)
                seen[s["context_tokens"]] = n + 1
        samples = kept
    return docs, samples


def adapter_training_batches(tok_dir, work, steps, B, T, retrieval_frac, answer_weight, seed):
    """Batches for adapter training: the reference model's training stream and fresh retrieval rows."""
    import data
    stream = np.load(os.path.join(work, "train_stream.npy"))
    tok = data.load_tokenizer(os.path.join(tok_dir, "tokenizer.json"))
    n = Batches.retrieval_rows_needed(steps, B, retrieval_frac)
    ret_ids, ret_w = data.retrieval_training_rows(tok, stream, n, T, seed + 1, answer_weight)
    return Batches(stream, ret_ids, ret_w, steps, B, T, retrieval_frac, seed + 2)


def adapter_arg_parser(doc, seed, steps, lr, seq=4096):
    """The arguments every adapter trainer takes (the frozen model, its work and eval folders,
    where the adapter goes, and the run's seed, length and step size); each adds its own."""
    import argparse
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--eval-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--seq", type=int, default=seq)
    ap.add_argument("--lr", type=float, default=lr)
    return ap

