// What the engine is built from: the model and the resources it may use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/attention_choice.h"

namespace hotswap {

// Arithmetic of the projections (every linear layer) for BF16-weight models.
enum class MatmulPrecision : uint8_t {
  // float32 products of exactly widened weights and float32 activations (the default).
  kF32,
  // For BF16 weights: activations rounded to bf16, products summed in float32 with the CPU's
  // bf16 dot-product instructions (AVX512_BF16) in batched steps — what PyTorch and
  // llama.cpp compute for a bf16 model; about twice the arithmetic rate of batched decode and
  // prefill. Logits move by ~1e-3 relative. F32/F16 weights and CPUs without AVX512_BF16
  // keep kF32.
  kBf16,
};

inline const char* matmul_precision_name(MatmulPrecision p) { return p == MatmulPrecision::kBf16 ? "bf16" : "f32"; }

// "f32" / "bf16"; false (and *out unchanged) for anything else.
inline bool parse_matmul_precision(const std::string& text, MatmulPrecision* out) {
  if (text != "f32" && text != "bf16") return false;
  *out = text == "bf16" ? MatmulPrecision::kBf16 : MatmulPrecision::kF32;
  return true;
}

struct EngineConfig {
  std::string model_dir;
  int num_threads = 0;                 // 0 = all cores
  // Process-wide (the kernels have one setting): the last engine created decides.
  MatmulPrecision matmul_precision = MatmulPrecision::kF32;
  // KV cache: capacity in tokens (rounded up to whole blocks) or, if kv_cache_bytes > 0, bytes.
  int64_t kv_cache_tokens = 65536;
  int64_t kv_cache_bytes = 0;
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
};

}  // namespace hotswap
