// The built-in demo model: a small Llama trained on English prose with the demo tokenizer
// (scripts/train/train_demo_model.py; models/demo/ in the repository), embedded in the binary
// so that `hotswap serve` without --model answers with words, offline, in seconds. The random
// generator (tools/model_gen) stays for benchmarks and `make-demo-model`.
#pragma once

#include <string>

namespace hotswap {

// `cache_dir`/demo-model holding the embedded model's files (its bf16 weights widened to
// float32, served with float32 arithmetic: the same text alone or in a batch), written on first use (and
// rewritten when the binary embeds another version: the directory records the version it
// holds). Concurrent callers are safe: each writes a private directory; the first to publish
// this version wins, and an older version is swapped out in one step (renameat2 exchange), so
// a reader never finds the directory missing.
std::string ensure_demo_model(const std::string& cache_dir);

// A short identifier of the embedded model's bytes (FNV-1a 64, hex).
std::string embedded_demo_model_version();

}  // namespace hotswap
