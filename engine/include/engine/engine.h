// The engine facade: the only engine type the server uses. One engine thread owns the
// scheduler, the KV cache and the model step; submit() and cancel() are thread-safe and
// only hand work to that thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/adapter_info.h"
#include "engine/engine_config.h"
#include "engine/chat.h"
#include "engine/status.h"
#include "engine/generate_request.h"
#include "engine/token_stream.h"

namespace hotswap {

struct ModelInfo {
  std::string id;               // the model directory's name
  std::string model_type;       // llama | qwen2 | phi3
  int vocab_size = 0;
  int max_position_embeddings = 0;
  std::vector<int32_t> eos_token_ids;
  std::string chat_template;    // "" if the model has none
  std::string bos_token, eos_token;
};

struct EngineStats {
  // Waiting to be admitted: queued requests (submitted ones the engine thread has not taken
  // yet included) and preempted sequences waiting to be recomputed.
  int waiting = 0;
  int running = 0;              // admitted sequences
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;   // held by sequences (free blocks that still hold a cached prefix are not used)
  // Bytes the attention backends hold beside the KV cache for running sequences: NSA's
  // compressed blocks, the maskers' key summaries (signatures, LSH codes, page bounds).
  int64_t attention_state_bytes = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generated_tokens_total = 0;
  int64_t steps_total = 0;
  // Distinct adapter names (sorted) of the running sequences and of the waiting ones; a name
  // can be in both. For the gateway's LoRA info gauge (docs/metrics.md).
  std::vector<std::string> running_adapters;
  std::vector<std::string> waiting_adapters;
  int max_running = 0;          // engine.max_running_sequences: also the most adapters one batch can serve
  int kv_block_size = 0;        // positions per KV block
  int64_t kv_bytes_per_block = 0;  // K and V of all layers at the cache's dtype
  KvCacheDtype kv_cache_dtype = EngineConfig{}.kv_cache_dtype;
  double sampled_at_unix_s = 0; // wall-clock time stats() took this snapshot
};

class Engine {
 public:
  // Loads the model (throws LoadError) and starts the engine thread.
  static std::unique_ptr<Engine> create(const EngineConfig& config);
  // Stops the engine thread after its current step. Requests still queued or running then get
  // no final event: drain() and wait_idle() first to let them finish.
  virtual ~Engine() = default;

  // Validates the request (limits, attention choice, adapter) and queues it. Errors:
  // InvalidArgument (bad request, or one whose KV could never fit the cache), NotFound
  // (unknown adapter), ResourceExhausted (queue full), Unavailable (draining).
  virtual Result<std::shared_ptr<TokenStream>> submit(GenerateRequest request) = 0;

  // Stops admitting new requests; running and queued ones finish.
  virtual void drain() = 0;
  // Blocks until nothing is running or queued, or the timeout passes; true if idle.
  virtual bool wait_idle(int timeout_ms) = 0;

  virtual EngineStats stats() const = 0;

  // Adapters (specs/api.md, specs/adapters.md). Thread-safe; parsing and validation run on
  // the caller's thread, never on the engine loop. A put is validated against the base
  // model before anything is replaced, persisted atomically when an adapter directory is
  // configured, and used from the next submitted request on; running requests keep the
  // version they pinned. Errors: InvalidArgument (bad name or document, message names the
  // key, layer, expected and actual), NotFound (get/remove of an unknown name).
  virtual Result<AdapterPutResult> put_adapter(const std::string& name, std::string_view body,
                                               AdapterEncoding encoding) = 0;
  virtual Result<AdapterInfo> get_adapter(const std::string& name) const = 0;
  virtual std::vector<AdapterInfo> list_adapters() const = 0;
  virtual Status delete_adapter(const std::string& name) = 0;
  virtual AdapterStats adapter_stats() const = 0;
  virtual const ModelInfo& model_info() const = 0;

  // Text <-> token ids with the model's tokenizer (thread-safe, no engine thread involved).
  virtual std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const = 0;
  // Renders the model's chat template; InvalidArgument if the model has none or the
  // messages are not acceptable to it.
  virtual Result<std::string> render_chat(const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt) const = 0;
};

}  // namespace hotswap
