// What the engine is built from: the model and the resources it may use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/attention_choice.h"

namespace hotswap {

struct EngineConfig {
  std::string model_dir;
  int num_threads = 0;                 // 0 = all cores
  // KV cache: capacity in tokens (rounded up to whole blocks) or, if kv_cache_bytes > 0, bytes.
  int64_t kv_cache_tokens = 65536;
  int64_t kv_cache_bytes = 0;
  int kv_block_size = 16;
  int max_batch_tokens = 512;          // tokens per engine step (decode + prefill chunks)
  int max_running_sequences = 64;
  int max_queue = 256;                 // waiting requests beyond this -> 429
  int max_prompt_tokens = 0;           // 0 = the model's max_position_embeddings
  int max_new_tokens = 4096;           // per-request upper bound for max_tokens
  AttentionChoice default_attention;   // used when a request says "auto" and has no adapter
  std::string adapter_dir;             // "" = adapters are not persisted
  int64_t adapter_resident_bytes = 256ll << 20;  // memory budget for resident adapters (LRU)
};

}  // namespace hotswap
