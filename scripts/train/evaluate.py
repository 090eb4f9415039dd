"""Evaluation shared by the training scripts and pytorch_eval.py (scripts/train/README.md has the
definitions in words).

perplexity: for each document, ids = the document's token ids (BOS first, as the tokenizer adds
  it) truncated to `context` tokens; every token but the first (BOS) is scored by the model's
  float32 logits at the previous position: nll_i = -log_softmax(logits[i-1])[ids[i]], i = 1..n-1.
  Perplexity = exp(sum of nll over all scored tokens of all documents / number of scored tokens).
retrieval: for each sample, ids = prompt_ids + answer_ids (one forward pass, teacher forcing);
  correct when, at every answer position, the argmax of the logits that predict it equals the
  answer token (= greedy decoding reproduces the answer); accuracy per context_tokens.
"""
import math
import time

import torch

from attention_impls import make_attention


def set_exact_float32():
    """Plain float32 matmuls (no TF32) for evaluation on a GPU."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


@torch.no_grad()
def token_logits(model, ids, attention, device):
    x = torch.tensor([ids], dtype=torch.long, device=device)
    return model.logits(model.hidden_states(x, attention))[0].float()      # [T, V]


@torch.no_grad()
def doc_nll(model, ids, attention, device):
    logits = token_logits(model, ids, attention, device)
    target = torch.tensor(ids[1:], dtype=torch.long, device=device)
    logp = torch.log_softmax(logits[:-1], dim=-1)
    nll = -logp.gather(-1, target[:, None])[:, 0]
    return float(nll.double().sum()), len(ids) - 1


def perplexity(model, docs, attention, device, context):
    per_doc = []
    for d in docs:
        ids = d["ids"][:context]
        s, n = doc_nll(model, ids, attention, device)
        per_doc.append({"id": d.get("id"), "nll_sum": s, "tokens": n, "perplexity": math.exp(s / n)})
    s = sum(p["nll_sum"] for p in per_doc)
    n = sum(p["tokens"] for p in per_doc)
    return {"perplexity": math.exp(s / n), "mean_nll": s / n, "nll_sum": s, "tokens": n, "context": context,
            "documents": len(per_doc), "per_document": per_doc}


@torch.no_grad()
def retrieval(model, samples, attention, device):
    per_sample, by_len = [], {}
    for s in samples:
        p, a = s["prompt_ids"], s["answer_ids"]
        logits = token_logits(model, p + a, attention, device)
        rows = logits[len(p) - 1:len(p) - 1 + len(a)]
        target = torch.tensor(a, dtype=torch.long, device=device)
        ok = bool((rows.argmax(-1) == target).all())
        nll = float(-torch.log_softmax(rows, -1).gather(-1, target[:, None]).double().sum())
        per_sample.append({"context_tokens": s["context_tokens"], "correct": ok, "answer_nll": nll})
        by_len.setdefault(s["context_tokens"], []).append(ok)
    acc = {str(n): sum(v) / len(v) for n, v in sorted(by_len.items())}
    return {"accuracy": acc, "samples_per_length": {str(n): len(v) for n, v in sorted(by_len.items())},
            "per_sample": per_sample}


def evaluate(model, attn, adapter, docs, samples, device, context, label=None, nsa_impl="fast"):
    """One attention configuration: perplexity + retrieval (+ density where the impl reports it)."""
    t0 = time.time()
    impl = make_attention(attn, model.config, adapter, device=device, nsa_impl=nsa_impl)
    out = {"label": label or (attn if isinstance(attn, str) else attn["impl"]), "attention": attn,
           "adapter": adapter}
    out["perplexity"] = perplexity(model, docs, impl, device, context) if docs else None
    out["retrieval"] = retrieval(model, samples, impl, device) if samples else None
    out["attention_density"] = impl.density()
    out["seconds"] = round(time.time() - t0, 2)
    ppl = f'{out["perplexity"]["perplexity"]:9.4f}' if docs else "        -"
    acc = out["retrieval"]["accuracy"] if samples else {}
    dens = out["attention_density"]
    print(f"  eval {out['label']:<28} ppl {ppl}  retrieval {acc}  density "
          f"{'-' if dens is None else f'{dens:.3f}'}  ({out['seconds']} s)", flush=True)
    return out


def summary_row(result):
    """Compact {label, perplexity, retrieval accuracy per length, density}."""
    return {"label": result["label"],
            "perplexity": result["perplexity"]["perplexity"] if result["perplexity"] else None,
            "retrieval_accuracy": result["retrieval"]["accuracy"] if result["retrieval"] else None,
            "attention_density": result["attention_density"]}
