// EvalTarget on the engine of this process: the same Engine::submit the server calls.
#include <chrono>

#include "cli/eval/eval_target.h"
#include "cli/stream_events.h"
#include "engine/engine.h"

namespace hotswap::cli::eval {
namespace {

class EngineTarget final : public EvalTarget {
 public:
  EngineTarget(const std::string& model_dir, int threads) : model_dir_(model_dir) {
    EngineConfig config;
    config.model_dir = model_dir;
    config.num_threads = threads;
    // Perplexity parity with PyTorch in float32: products and the KV cache alike.
    config.matmul_precision = MatmulPrecision::kF32;
    config.kv_cache_dtype = KvCacheDtype::kF32;
    engine_ = Engine::create(config);
  }

  std::string describe() const override { return "in-process engine on " + model_dir_; }
  int context_length() const override { return engine_->model_info().max_position_embeddings; }
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override {
    return engine_->encode(text, add_special_tokens);
  }

  void put_adapter(const std::string& name, const std::string& bytes, bool safetensors) override {
    auto put = engine_->put_adapter(name, bytes, safetensors ? AdapterEncoding::kSafetensors : AdapterEncoding::kJson);
    if (!put) throw EvalError("adapter '" + name + "': " + put.status().message());
  }

  EvalRun run(const EvalRequest& r) override {
    GenerateRequest request;
    request.request_id = "eval";
    request.prompt_ids = r.prompt_ids;
    request.stop.max_tokens = r.max_tokens;
    request.stop.ignore_eos = true;
    request.sampling.temperature = 0;
    request.prompt_logprobs = r.score_prompt;
    if (r.score_prompt) request.top_logprobs = 0;
    request.adapter = r.adapter;
    if (!r.attention.is_null()) {
      std::string error;
      if (!parse_attention_choice(r.attention.dump(), &request.attention, &error)) throw EvalError(error);
    }
    auto submitted = engine_->submit(std::move(request));
    if (!submitted) throw EvalError(submitted.status().message());
    std::shared_ptr<TokenStream> stream = submitted.value();
    EvalRun out;
    std::chrono::steady_clock::time_point first{}, last{};
    std::string error;
    for_each_event(*stream, [&](TokenEvent& e) {
      if (e.token_id >= 0) {
        if (out.output_ids.empty()) first = e.emitted_at;
        last = e.emitted_at;
        out.output_ids.push_back(e.token_id);
        out.text += e.text;
      }
      if (e.finish && *e.finish == FinishReason::kError) error = e.error;
    });
    if (!error.empty()) throw EvalError("generation failed: " + error);
    const StreamUsage usage = stream->usage();
    if (usage.prompt_logprobs)
      for (const PromptLogprob& p : *usage.prompt_logprobs) out.prompt_logprobs.push_back(p.logprob);
    out.density = usage.attention_density;
    out.output_error = usage.attention_output_error;
    out.decode_tokens = std::max(0, static_cast<int>(out.output_ids.size()) - 1);
    out.decode_seconds = std::chrono::duration<double>(last - first).count();
    return out;
  }

 private:
  std::string model_dir_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace

std::unique_ptr<EvalTarget> make_engine_target(const std::string& model_dir, int threads) {
  return std::make_unique<EngineTarget>(model_dir, threads);
}

}  // namespace hotswap::cli::eval
