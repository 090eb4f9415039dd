"""Training and evaluation data, deterministic from a seed:

* the text corpus: source files and documentation of the Python packages installed where the
  script runs (the standard library, torch, transformers, numpy, scipy, ...), read in a fixed
  order (sha1 of "<package>/<relative path>"), split into training and held-out documents by
  that hash (2% held out);
* the synthetic long-range retrieval task ("The secret code of <name> is <5 digits>." lines
  buried in filler text, a question at the end); training rows are assembled from token ids,
  evaluation samples from text (tokenized whole, so `hotswap eval` can re-tokenize them);
* English prose for the demo model: docstrings and the Python reference manual's topics
  (pydoc_data) plus a small built-in conversational text.

Needs `tokenizers` (the device machine has it) for tokenization; the text collection itself
needs only the standard library.
"""
import ast
import hashlib
import inspect
import json
import os
import random
import sysconfig

import numpy as np

NEWLINE = 13  # llama2's <0x0A>
PACKAGES = ["stdlib", "torch", "transformers", "numpy", "scipy", "sympy", "pandas", "matplotlib", "networkx",
            "sklearn", "jax", "flax", "tokenizers", "safetensors", "accelerate", "peft", "triton"]
EXTENSIONS = (".py", ".pyi", ".rst", ".md", ".txt")
HELDOUT_PERCENT = 2


def package_root(name):
    if name == "stdlib":
        return sysconfig.get_paths()["stdlib"]
    import importlib.util
    try:                                  # located without importing the package
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return sorted(spec.submodule_search_locations)[0]


def doc_hash(key):
    return hashlib.sha1(key.encode()).hexdigest()


def collect_documents(max_chars, packages=PACKAGES, min_chars=200, max_file=2_000_000):
    """[(key, text)] in sha1(key) order, until max_chars of text. key = "<package>/<relpath>".
    Skips site-packages inside the stdlib, unreadable / non-UTF-8 files, minified lines."""
    files = []
    for pkg in packages:
        root = package_root(pkg)
        if not root or not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__"))
            for fn in sorted(filenames):
                if fn.endswith(EXTENSIONS):
                    p = os.path.join(dirpath, fn)
                    files.append((f"{pkg}/{os.path.relpath(p, root)}", p))
    files.sort(key=lambda kp: doc_hash(kp[0]))
    docs, total = [], 0
    seen = set()
    for key, path in files:
        try:
            size = os.path.getsize(path)
            if size < min_chars or size > max_file:
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        if max(len(l) for l in text.split("\n")) > 2000:
            continue
        h = hashlib.sha1(text.encode()).hexdigest()
        if h in seen:                      # identical copies (vendored files) once
            continue
        seen.add(h)
        docs.append((key, text))
        total += len(text)
        if total >= max_chars:
            break
    return docs


def is_heldout(key):
    return int(doc_hash(key)[:8], 16) % 100 < HELDOUT_PERCENT


def corpus_digest(docs):
    h = hashlib.sha1()
    for key, text in docs:
        h.update(key.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def load_tokenizer(path):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(path)


def encode_docs(tok, texts, add_special_tokens=True, batch=2048):
    out = []
    for i in range(0, len(texts), batch):
        out += [e.ids for e in tok.encode_batch(texts[i:i + batch], add_special_tokens=add_special_tokens)]
    return out


# ---------------------------------------------------------------------------------------------
# The retrieval task

ADJECTIVES = ["amber", "brave", "calm", "dusty", "eager", "fancy", "gentle", "hollow", "icy", "jolly", "keen",
              "lively", "misty", "noble", "olive", "proud", "quiet", "rapid", "silver", "tidy", "urban", "vivid",
              "wild", "young", "zesty", "bright", "cosmic", "golden", "lucky", "polar"]
NOUNS = ["falcon", "river", "garden", "lantern", "mountain", "harbor", "meadow", "comet", "violin", "castle",
         "forest", "island", "canyon", "glacier", "orchard", "pebble", "rocket", "sparrow", "tiger", "willow",
         "beacon", "cedar", "dolphin", "ember", "fjord", "kettle", "lagoon", "maple", "nebula", "otter"]
NAMES = [f"{a} {n}" for a in ADJECTIVES for n in NOUNS]


def needle_line(name, num):
    return f"The secret code of {name} is {num}."


def question_prefix(name):
    return f"What is the secret code of {name}? The secret code of {name} is"


class LineTokenizer:
    """Token ids of a line as it appears after a newline inside a text (llama2's tokenizer has no
    pre-tokenizer and prepends '▁' only at the start of a text, and no merge crosses a newline:
    a text's ids are the concatenation of its lines' ids, joined by <0x0A>)."""

    def __init__(self, tok):
        self.tok = tok
        self.prefix = tok.encode("x\n", add_special_tokens=False).ids
        self.dot = tok.token_to_id(".")

    def encode_lines(self, lines):
        encs = self.tok.encode_batch(["x\n" + l for l in lines], add_special_tokens=False)
        out = []
        for e in encs:
            assert e.ids[:len(self.prefix)] == self.prefix, "unexpected tokenization of the line prefix"
            out.append(e.ids[len(self.prefix):])
        return out


def retrieval_training_rows(tok, stream, n_rows, T, seed, answer_weight, min_len=256):
    """n_rows rows of T tokens: retrieval samples (BOS, filler with 2-6 needle lines at line breaks,
    1-3 question lines each with its answer) packed back to back, the last one cut. Filler comes
    from `stream` (training token ids; BOS replaced by newlines). Returns (ids int64 [n,T],
    weights float32 [n,T]) where the weight of the token at position p is the loss weight of
    predicting it (answer digits: answer_weight)."""
    rng = random.Random(seed)
    lt = LineTokenizer(tok)
    plans = []
    for r in range(n_rows):
        total, row = 0, []
        while total < T:
            L = rng.randint(min_len, T)
            K = rng.randint(2, 6)
            names = rng.sample(NAMES, K)
            nums = [rng.randint(10000, 99999) for _ in range(K)]
            asked = rng.sample(range(K), rng.randint(1, min(3, K)))
            row.append((L, names, nums, asked, rng.random(), [rng.random() for _ in range(K)]))
            total += L
        plans.append(row)
    # All needle and question lines through the tokenizer at once.
    strings = []
    for row in plans:
        for (_, names, nums, asked, _, _) in row:
            strings += [needle_line(n, v) for n, v in zip(names, nums)]
            strings += [question_prefix(names[a]) for a in asked]
            strings += [f"{question_prefix(names[a])} {nums[a]}." for a in asked]
    enc = iter([np.asarray(e, dtype=np.int64) for e in lt.encode_lines(strings)])
    stream = np.where(stream == 1, NEWLINE, stream).astype(np.int64)
    newlines = np.flatnonzero(stream == NEWLINE)
    nl = np.array([NEWLINE], dtype=np.int64)
    ids = np.zeros((n_rows, T), dtype=np.int64)
    weights = np.ones((n_rows, T), dtype=np.float32)
    for r, row in enumerate(plans):
        toks, wts = [], []
        for (L, names, nums, asked, start_u, pos_u) in row:
            needles = [next(enc) for _ in names]
            qpre = [next(enc) for _ in asked]
            qfull = [next(enc) for _ in asked]
            q_tok, q_w = [], []
            for pre, full in zip(qpre, qfull):
                assert np.array_equal(full[:len(pre)], pre)
                # answer = the tokens after "... is" up to (not including) a final "." token
                n_ans = len(full) - len(pre) - (1 if full[-1] == lt.dot else 0)
                q_tok += [nl, full]
                q_w.append(np.concatenate([np.ones(1 + len(pre), np.float32),
                                           np.full(n_ans, answer_weight, np.float32),
                                           np.ones(len(full) - len(pre) - n_ans, np.float32)]))
            q_tokens = np.concatenate(q_tok)[1:]          # questions joined by newlines
            q_weights = np.concatenate(q_w)[1:]
            n_filler = max(16, L - 2 - sum(len(x) + 1 for x in needles) - len(q_tokens))
            st = int(newlines[int(start_u * 0.95 * (len(newlines) - 1))]) + 1
            filler = stream[st:st + n_filler]
            cuts = np.flatnonzero(filler == NEWLINE) + 1
            if len(cuts) == 0:
                cuts = np.array([len(filler)])
            inserts = sorted((int(cuts[int(u * len(cuts)) % len(cuts)]), k) for k, u in enumerate(pos_u))
            pieces, prev = [np.array([1], dtype=np.int64)], 0
            for at, k in inserts:
                pieces += [filler[prev:at], needles[k], nl]
                prev = at
            pieces.append(filler[prev:])
            body = np.concatenate(pieces)
            if body[-1] != NEWLINE:
                body = np.concatenate([body, nl])
            toks += [body, q_tokens]
            wts += [np.ones(len(body), np.float32), q_weights]
        toks, wts = np.concatenate(toks), np.concatenate(wts)
        ids[r] = toks[:T]
        weights[r] = wts[:T]
    return ids, weights


def eval_filler_lines(heldout_texts):
    lines = []
    for t in heldout_texts:
        lines += t.split("\n")
    return lines


def retrieval_eval_samples(tok, filler_lines, lengths, per_length, seed, num_needles=4):
    """Text-level samples: {"prompt", "answer", "prompt_ids", "answer_ids", "context_tokens",
    "needle_depth", "needle_token_position", "name", "code"}; prompt_ids + answer_ids has at most
    context_tokens tokens (the prompt tokenized with BOS, answer_ids = the ids that follow)."""
    rng = random.Random(seed)
    out = []
    for N in lengths:
        for i in range(per_length):
            names = rng.sample(NAMES, num_needles)
            nums = [rng.randint(10000, 99999) for _ in range(num_needles)]
            asked = rng.randrange(num_needles)
            depth = rng.uniform(0.02, 0.98)
            others = [rng.random() for _ in range(num_needles)]
            start = rng.randrange(len(filler_lines) // 2)

            def build(n_lines):
                body = filler_lines[start:start + n_lines]
                spots = []
                for k in range(num_needles):
                    u = depth if k == asked else others[k]
                    spots.append((int(round(u * len(body))), k))
                lines, prev = [], 0
                for at, k in sorted(spots):
                    lines += body[prev:at] + [needle_line(names[k], nums[k])]
                    prev = at
                lines += body[prev:]
                prompt = "\n".join(lines) + "\n" + question_prefix(names[asked])
                return prompt, lines

            answer = f" {nums[asked]}"

            def count(n_lines):
                prompt, _ = build(n_lines)
                return len(tok.encode(prompt + answer, add_special_tokens=True).ids)

            lo, hi = 1, 1
            while count(hi) <= N and start + hi < len(filler_lines):
                lo, hi = hi, hi * 2
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if count(mid) <= N:
                    lo = mid
                else:
                    hi = mid
            prompt, lines = build(lo)
            p_ids = tok.encode(prompt, add_special_tokens=True).ids
            full = tok.encode(prompt + answer, add_special_tokens=True).ids
            assert full[:len(p_ids)] == p_ids, "prompt ids are not a prefix of prompt + answer ids"
            needle_at = lines.index(needle_line(names[asked], nums[asked]))
            before = "\n".join(lines[:needle_at])
            out.append({"context_tokens": N, "prompt": prompt, "answer": answer, "prompt_ids": p_ids,
                        "answer_ids": full[len(p_ids):], "name": names[asked], "code": nums[asked],
                        "needle_depth": depth,
                        "needle_token_position": len(tok.encode(before, add_special_tokens=True).ids),
                        "total_tokens": len(full)})
    return out


# ---------------------------------------------------------------------------------------------
# English prose for the demo model

CONVERSATION = """Hello! How are you today? I am fine, thank you. What would you like to talk about?
Hello there. It is good to see you again. The weather is lovely this morning, and the garden is full of flowers.
Hello, my name is Sam. I live in a small house near the river, and I like to read books in the evening.
Hello and welcome! This is a small language model. It was trained for a few minutes to write simple English sentences.
Hello, world! This is the first program that many people write when they learn a new language.
Hi! Thank you for your message. I will answer your question as well as I can.
Good morning. The sun is shining, the birds are singing, and the day is just beginning.
Hello everyone. Today we will talk about numbers, words and the way a computer reads a sentence.
Hello, friend. Would you like a cup of tea? The water is hot and the cups are on the table.
Once upon a time there was a little robot who lived in a library. Every night it opened a book and looked at the letters.
The quick brown fox jumps over the lazy dog. The dog did not mind, because it was very sleepy.
Hello! I can tell you a story, answer a question, or help you write a short letter.
Hello. The train leaves at nine o'clock, so we should go to the station early.
Thank you very much for your help. I could not have done it without you.
Hello, how can I help you today? You can ask me about the weather, a book or the time.
It was a cold winter evening. The children came home from school and sat by the warm fire.
Hello! It is nice to meet you. My friends call me Alex, and I work in a small shop in the town.
The server answers every request with a few words, one token at a time, as quickly as it can.
Hello. I hope you are having a good day. Let me know if there is anything you need.
A good story has a beginning, a middle and an end. The best stories make us think and smile.
Hello, this is a test of the demo model. If you can read this sentence, the model is working.
In the morning the town was quiet. Only the baker was awake, and the smell of fresh bread filled the street.
Hello again! Yesterday we talked about the moon. Today we will talk about the stars and the sea.
Please write your name at the top of the page, and then answer the questions in order.
Hello, dear reader. This book is about a small cat who wanted to see the world beyond the garden wall."""

USER_PROMPTS = ["Hello", "Hello!", "Hi", "Hi there", "Good morning", "Tell me a story.", "What can you do?",
                "How are you?", "Who are you?", "Say something.", "Write a sentence.", "Hello, how are you?"]


def docstring_paragraphs(text):
    """English paragraphs from a module's docstrings (no code examples, no rule lines)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            ds = ast.get_docstring(node, clean=False)
            if not ds:
                continue
            ds = inspect.cleandoc(ds)
            for para in ds.split("\n\n"):
                lines = [l.strip() for l in para.split("\n")]
                if not lines or any(l.startswith((">>>", "...", "--", "==", "..", ":", "$", "#")) for l in lines):
                    continue
                p = " ".join(lines).strip()
                if len(p) < 60:
                    continue
                letters = sum(ch.isalpha() or ch in " ,.'" for ch in p)
                if letters / len(p) < 0.9 or not p[0].isupper() or not p.endswith("."):
                    continue
                out.append(p)
    return out


def prose_corpus(max_chars, seed):
    """[text] documents of English prose, deterministic: the reference manual topics, docstring
    paragraphs grouped by module, and the conversation lines."""
    docs = []
    try:
        from pydoc_data import topics
        for k in sorted(topics.topics):
            docs.append(topics.topics[k].strip())
    except Exception:
        pass
    total = sum(len(d) for d in docs)
    for key, text in collect_documents(max_chars * 4, packages=PACKAGES):
        if not key.endswith(".py"):
            continue
        paras = docstring_paragraphs(text)
        if paras:
            docs.append("\n\n".join(paras))
            total += len(docs[-1])
        if total >= max_chars:
            break
    rng = random.Random(seed)
    conv = CONVERSATION.split("\n")
    n_conv = max(200, len(docs) // 5)
    for _ in range(n_conv):          # short documents that start like a newcomer's prompt
        k = rng.randint(1, 4)
        docs.append(" ".join(rng.sample(conv, k)))
    rng.shuffle(docs)
    return docs


def chat_documents(prose_docs, n, seed):
    """Chat-template documents (the demo tokenizer's Llama-3 style template) with short replies."""
    rng = random.Random(seed)
    conv = CONVERSATION.split("\n")
    out = []
    for _ in range(n):
        reply = " ".join(rng.sample(conv, rng.randint(1, 3)))
        out.append("<|start_header_id|>user<|end_header_id|>\n\n" + rng.choice(USER_PROMPTS) + "<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n" + reply + "<|eot_id|>")
    return out


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]
