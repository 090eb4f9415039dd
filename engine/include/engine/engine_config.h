// What the engine is built from: the model and the resources it may use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/attention_choice.h"

namespace hotswap {

// Arithmetic of the projections (every linear layer).
enum class MatmulPrecision : uint8_t {
  // kBf16 for a model whose weights are BF16, else kF32: a bf16 checkpoint is computed the
  // way PyTorch (autocast, transformers' dtype="auto") and llama.cpp compute it.
  kAuto,
  // float32 products of exactly widened weights and float32 activations: the closest to a
  // float32 reference, whatever the weights' dtype.
  kF32,
  // For BF16 weights: activations rounded to bf16 before every projection and products summed
  // in float32, with the CPU's bf16 dot-product instructions (AVX512_BF16) in steps of 8 rows or
  // more: about twice the arithmetic rate of batched decode and prefill. Logits move by ~1e-3
  // relative on trained models. F32/F16 weights and CPUs without AVX512_BF16 keep kF32.
  kBf16,
};

inline const char* matmul_precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::kAuto ? "auto" : p == MatmulPrecision::kBf16 ? "bf16" : "f32";
}

// "auto" / "f32" / "bf16"; false (and *out unchanged) for anything else.
inline bool parse_matmul_precision(const std::string& text, MatmulPrecision* out) {
  if (text == "auto") *out = MatmulPrecision::kAuto;
  else if (text == "f32") *out = MatmulPrecision::kF32;
  else if (text == "bf16") *out = MatmulPrecision::kBf16;
  else return false;
  return true;
}

// How the projections' weights are held (engine.weights, docs/weights.md).
enum class WeightFormat : uint8_t {
  // As the checkpoint stores them (bf16 for a bf16 checkpoint), memory-mapped.
  kAuto,
  // 8-bit: int8 per block of 32 weights with an f16 scale (llama.cpp's q8_0), quantised at load
  // and cached on disk; about half the bytes of bf16 per decode step. Activations are
  // quantised to 8 bits per block too; matmul_precision does not apply to these projections.
  kQ8,
  // 4-bit: 4-bit codes per block of 32 weights with an f16 scale (llama.cpp's q4_0), otherwise
  // as kQ8 (same activations, arithmetic and cache); about a quarter of bf16's bytes.
  kQ4,
};

inline const char* weight_format_name(WeightFormat f) {
  return f == WeightFormat::kQ8 ? "q8" : f == WeightFormat::kQ4 ? "q4" : "auto";
}

// The accepted spellings, for error messages.
inline constexpr const char* kWeightFormatChoices = "auto, q8 or q4";

// "auto" / "q8" / "q4"; false (and *out unchanged) for anything else.
inline bool parse_weight_format(const std::string& text, WeightFormat* out) {
  if (text == "auto") *out = WeightFormat::kAuto;
  else if (text == "q8") *out = WeightFormat::kQ8;
  else if (text == "q4") *out = WeightFormat::kQ4;
  else return false;
  return true;
}

// Element type of the KV cache. kBf16 rounds each stored K/V element to bf16 (nearest even):
// half the bytes per token, so a byte budget holds twice the tokens and long-context decode
// reads half the bytes; logits move slightly (tests/golden/kv_cache_dtype_test.cc). kBf16 is the
// default (llama.cpp keeps f16); the parity tests against the references ask for kF32.
enum class KvCacheDtype : uint8_t { kF32, kBf16, kQ8 };
// kQ8 stores each K/V row as int8 values with one float32 scale per 32 (llama.cpp q8_0
// semantics, engine/README.md "KV element types"): 9/32 of the float32 bytes; logits move
// more than with bf16 (same test). Needs head_dim % 32 == 0 (refused at load otherwise).

inline const char* kv_cache_dtype_name(KvCacheDtype t) {
  return t == KvCacheDtype::kBf16 ? "bf16" : t == KvCacheDtype::kQ8 ? "q8" : "f32";
}

// The accepted names, for error messages.
inline constexpr const char* kKvCacheDtypeChoices = "f32, bf16 or q8";

// "f32" / "bf16" / "q8"; false (and *out unchanged) for anything else.
inline bool parse_kv_cache_dtype(const std::string& text, KvCacheDtype* out) {
  if (text == "f32") *out = KvCacheDtype::kF32;
  else if (text == "bf16") *out = KvCacheDtype::kBf16;
  else if (text == "q8") *out = KvCacheDtype::kQ8;
  else return false;
  return true;
}

struct EngineConfig {
  std::string model_dir;
  WeightFormat weights = WeightFormat::kAuto;
  // Where derived files may be cached (quantised weights, when the model directory is not
  // writable); "" = next to the model only.
  std::string cache_dir;
  int num_threads = 0;                 // 0 = all cores
  // Process-wide (the kernels have one setting): the last engine created decides.
  MatmulPrecision matmul_precision = MatmulPrecision::kAuto;
  // KV cache: capacity in tokens (rounded up to whole blocks) or, if kv_cache_bytes > 0, bytes.
  int64_t kv_cache_tokens = 65536;
  int64_t kv_cache_bytes = 0;
  KvCacheDtype kv_cache_dtype = KvCacheDtype::kBf16;  // bytes per block (and so tokens per byte) follow it
  int kv_block_size = 16;
  int max_batch_tokens = 512;          // tokens per engine step (decode + prefill chunks)
  // Prefill tokens per step while other sequences decode (0 = max_batch_tokens): bounds how
  // long a new prompt can stall the running streams' next token.
  int max_prefill_tokens_while_decoding = 128;
  int max_running_sequences = 64;
  int max_queue = 256;                 // waiting requests beyond this -> 429
  int max_prompt_tokens = 0;           // 0 = the model's max_position_embeddings
  int max_new_tokens = 4096;           // per-request upper bound for max_tokens
  AttentionChoice default_attention;   // used when a request says "auto" and has no adapter
  std::string adapter_dir;             // "" = adapters are not persisted
  int64_t adapter_resident_bytes = 256ll << 20;  // memory budget for resident adapters (LRU)
  // > 0: follow changes other processes make to adapter_dir (replicas sharing one directory):
  // inotify events, and a rescan at least every adapter_rescan_ms. 0: read it at start-up only.
  int adapter_rescan_ms = 2000;
};

}  // namespace hotswap
