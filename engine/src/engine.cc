// The engine: one thread owns the scheduler, the KV cache and the model step. Its loop
// reads like the data path: admit → schedule → execute → sample → update → emit.
// submit() and the stream's cancel() only hand work to that thread.
#include "engine/engine.h"

#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "adapters/adapter_registry.h"
#include "attention/sequence_attention.h"
#include "chat/chat_template.h"
#include "core/load_error.h"
#include "engine/request_fields.h"
#include "kernels/linear.h"
#include "kernels/q8.h"
#include "kv_cache/kv_cache_manager.h"
#include "model/model.h"
#include "scheduler/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace hotswap {
namespace {

struct PendingRequest {
  GenerateRequest request;
  std::shared_ptr<TokenStream> stream;
  SequenceAttention attention;
};

class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(const EngineConfig& config)
      : config_(config),
        model_(Model::load(config.model_dir, ModelLoadOptions{config.weights, {.cache_dir = config.cache_dir},
                                                                config.matmul_precision})),
        tokenizer_(Tokenizer::load(config.model_dir)),
        kv_(KvCacheManager::plan_layout(model_->config().num_layers, model_->config().num_kv_heads,
                                        model_->config().head_dim, config.kv_block_size, config.kv_cache_tokens,
                                        config.kv_cache_bytes,
                                        kv_dtype_of(config.kv_cache_dtype))),
        attention_resources_(model_shape()),
        scheduler_(kv_,
                   SchedulerLimits{config.max_batch_tokens, config.max_running_sequences,
                                   config.max_prefill_tokens_while_decoding},
                   model_shape()),
        adapters_(shape_of(model_->config()), std::filesystem::path(config.model_dir).filename().string(),
                  config.adapter_dir, config.adapter_resident_bytes,
                  AdapterSyncOptions{.rescan_ms = config.adapter_rescan_ms}) {
    const int loaded = adapters_.load_directory();
    if (!config.adapter_dir.empty()) spdlog::info("loaded {} adapters from {}", loaded, config.adapter_dir);
    stats_.max_running = config_.max_running_sequences;
    stats_.kv_block_size = config_.kv_block_size;
    stats_.kv_blocks_total = kv_.num_blocks();
    stats_.kv_bytes_per_block = static_cast<int64_t>(kv_.layout().bytes_per_block_all_layers());
    stats_.kv_cache_dtype = config_.kv_cache_dtype;
    spdlog::info("event=kv_cache dtype={} blocks={} block_size={} bytes_per_block={} tokens={} bytes={}",
                 kv_cache_dtype_name(config_.kv_cache_dtype), kv_.num_blocks(), kv_.block_size(),
                 stats_.kv_bytes_per_block, kv_.num_blocks() * kv_.block_size(),
                 kv_.num_blocks() * stats_.kv_bytes_per_block);
    if (config_.num_threads > 0) omp_set_num_threads(config_.num_threads);
    kernels::set_linear_precision(linear_precision_for(config_.matmul_precision, *model_));
    spdlog::info("event=kernels isa={} matmul_precision={} linear_precision={}", kernels::linear_isa(),
                 matmul_precision_name(config_.matmul_precision),
                 kernels::linear_precision() == kernels::LinearPrecision::kBf16Dot ? "bf16" : "f32");
    if (const QuantizedWeights* q = model_->quantized())
      spdlog::info("event=weights format={} isa={} source={} cache={} bytes={}", kernels::quant_format_name(q->format()),
                   kernels::linear_q8_isa(),
                   q->source() == QuantizedWeights::Source::kCache ? "cache" : "quantized",
                   q->cache_path().empty() ? "none" : q->cache_path(), q->bytes());
    if (const PackedBf16Weights* p = model_->packed())
      spdlog::info("event=weights format=bf16_amx_packed bytes={} seconds={:.2f}", p->bytes(), p->seconds());
    const ModelConfig& mc = model_->config();
    info_.id = std::filesystem::path(config.model_dir).filename().string();
    if (info_.id.empty()) info_.id = std::filesystem::path(config.model_dir).parent_path().filename().string();
    info_.model_type = mc.model_type;
    info_.vocab_size = mc.vocab_size;
    info_.max_position_embeddings = mc.max_position_embeddings;
    info_.eos_token_ids = mc.eos_token_ids;
    info_.chat_template = tokenizer_->config().chat_template;
    info_.bos_token = tokenizer_->config().bos_token;
    info_.eos_token = tokenizer_->config().eos_token;
    if (info_.eos_token_ids.empty() && !info_.eos_token.empty())
      if (auto id = tokenizer_->token_to_id(info_.eos_token)) info_.eos_token_ids.push_back(*id);
    if (!info_.chat_template.empty()) {
      auto compiled = ChatTemplate::compile(info_.chat_template);
      if (compiled) chat_template_ = std::make_unique<ChatTemplate>(std::move(compiled.value()));
      else spdlog::warn("chat template does not compile: {}", compiled.status().message());
    }
    thread_ = std::thread([this] { run(); });
  }

  ~EngineImpl() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Result<std::shared_ptr<TokenStream>> submit(GenerateRequest request) override {
    if (Status s = validate(request); !s) return s;
    auto attention = resolve(request);
    if (!attention) return attention.status();
    if (Status s = check_fits(request, attention.value()); !s) return s;
    auto stream = std::make_shared<TokenStream>();
    std::deque<PendingRequest> withdrawn;
    {
      std::lock_guard lock(mu_);
      if (draining_) return Status::unavailable("the server is shutting down and accepts no new requests");
      if (queued_locked() >= config_.max_queue) withdrawn = withdraw_cancelled_locked();
      if (queued_locked() >= config_.max_queue) {
        finish_withdrawn(withdrawn);
        return Status::resource_exhausted("the request queue is full (" + std::to_string(config_.max_queue) +
                                          " waiting); retry later");
      }
      inbox_.push_back({std::move(request), stream, std::move(attention.value())});
    }
    finish_withdrawn(withdrawn);
    cv_.notify_all();
    return stream;
  }

  // Requests waiting for admission: those in the inbox and those the scheduler holds
  // (as of its last step).
  int queued_locked() const { return static_cast<int>(inbox_.size()) + waiting_count_.load(); }

  // A request whose client has gone must not hold a queue slot until the engine's next step
  // (one long prefill step can see hundreds of clients come and go): when the queue looks
  // full, the cancelled requests still in the inbox leave it at once.
  std::deque<PendingRequest> withdraw_cancelled_locked() {
    std::deque<PendingRequest> withdrawn, kept;
    for (PendingRequest& p : inbox_) (p.stream->cancelled() ? withdrawn : kept).push_back(std::move(p));
    inbox_.swap(kept);
    return withdrawn;
  }

  // Ends withdrawn requests' streams as the engine ends a cancelled request; outside mu_,
  // since a push wakes the consumer.
  static void finish_withdrawn(std::deque<PendingRequest>& withdrawn) {
    for (PendingRequest& p : withdrawn) {
      TokenEvent event;
      event.finish = FinishReason::kCancelled;
      StreamUsage usage;
      usage.prompt_tokens = static_cast<int>(p.request.prompt_ids.size());
      p.stream->push(std::move(event), usage);
    }
    withdrawn.clear();
  }

  void drain() override {
    std::lock_guard lock(mu_);
    draining_ = true;
  }

  bool wait_idle(int timeout_ms) override {
    std::unique_lock lock(mu_);
    return idle_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                             [&] { return inbox_.empty() && engine_idle_; });
  }

  // The engine thread's last snapshot plus the requests still in the inbox (submitted, not yet
  // taken by the engine thread: a long step can keep many there), which are waiting too.
  EngineStats stats() const override {
    EngineStats s;
    {
      std::lock_guard lock(stats_mu_);
      s = stats_;
    }
    {
      std::lock_guard lock(mu_);
      s.waiting += static_cast<int>(inbox_.size());
      for (const PendingRequest& p : inbox_)
        if (!p.request.adapter.empty()) s.waiting_adapters.push_back(p.request.adapter);
    }
    distinct(s.waiting_adapters);
    s.sampled_at_unix_s =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return s;
  }
  const ModelInfo& model_info() const override { return info_; }

  Result<AdapterPutResult> put_adapter(const std::string& name, std::string_view body,
                                       AdapterEncoding encoding) override {
    return adapters_.put(name, body, encoding);
  }
  Result<AdapterInfo> get_adapter(const std::string& name) const override { return adapters_.get(name); }
  std::vector<AdapterInfo> list_adapters() const override { return adapters_.list(); }
  Status delete_adapter(const std::string& name) override { return adapters_.remove(name); }
  AdapterStats adapter_stats() const override { return adapters_.stats(); }

  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override {
    return tokenizer_->encode(text, add_special_tokens);
  }
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override {
    return tokenizer_->decode(ids, skip_special_tokens);
  }
  Result<std::string> render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const override {
    if (!chat_template_)
      return Status::invalid_argument("model '" + info_.id + "' has no chat template; use /v1/completions instead");
    nlohmann::json msgs = nlohmann::json::array();
    for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    nlohmann::json context = {{"messages", msgs},
                              {"add_generation_prompt", add_generation_prompt},
                              {"bos_token", info_.bos_token},
                              {"eos_token", info_.eos_token}};
    Result<std::string> rendered = chat_template_->render(context);
    // A render bound hit (output size, steps, call depth) comes from these messages, not from
    // load on the server: the request is refused (400), not asked to retry (429).
    if (!rendered && rendered.status().code() == StatusCode::kResourceExhausted)
      return Status::invalid_argument(rendered.status().message());
    return rendered;
  }

 private:
  Status validate(const GenerateRequest& r) const {
    const ModelConfig& mc = model_->config();
    if (r.prompt_ids.empty()) return Status::invalid_argument("the prompt is empty");
    for (int32_t id : r.prompt_ids)
      if (id < 0 || id >= mc.vocab_size)
        return Status::invalid_argument("prompt token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                        std::to_string(mc.vocab_size) + ")");
    const int max_prompt = config_.max_prompt_tokens > 0 ? config_.max_prompt_tokens : mc.max_position_embeddings;
    if (static_cast<int>(r.prompt_ids.size()) > max_prompt)
      return Status::invalid_argument("the prompt has " + std::to_string(r.prompt_ids.size()) +
                                      " tokens; the limit is " + std::to_string(max_prompt));
    const int min_tokens = r.prompt_logprobs ? 0 : 1;  // scoring a prompt may generate nothing
    const FieldRange max_tokens = request_fields::kMaxTokens.with_bounds(min_tokens, config_.max_new_tokens);
    if (Status s = check_field(max_tokens, r.stop.max_tokens); !s)
      return Status::invalid_argument(s.message() +
                                      (r.prompt_logprobs ? "" : " (0 only when scoring the prompt: echo with logprobs)"));
    if (static_cast<int64_t>(r.prompt_ids.size()) + r.stop.max_tokens > mc.max_position_embeddings)
      return Status::invalid_argument("prompt (" + std::to_string(r.prompt_ids.size()) + " tokens) plus max_tokens (" +
                                      std::to_string(r.stop.max_tokens) + ") exceeds the model's context of " +
                                      std::to_string(mc.max_position_embeddings) + " tokens");
    return check_sampling_params(r.sampling);
  }

  // A request whose KV footprint (with its attention state's, which the scheduler charges to
  // the same pool) exceeds the whole cache would wait forever: refuse it now.
  Status check_fits(const GenerateRequest& r, const SequenceAttention& attention) const {
    const int64_t positions = static_cast<int64_t>(r.prompt_ids.size()) + r.stop.max_tokens;
    int kept_lanes = 0;
    for (uint8_t k : attention.kept_lanes) kept_lanes += k != 0;
    const int64_t kv = kv_.peak_blocks(attention.release_rule, positions, config_.max_batch_tokens, kept_lanes);
    const int64_t state =
        attention.backend ? kv_.blocks_for_bytes(attention.backend->state_bytes(attention, model_shape(), positions)) : 0;
    if (kv + state > kv_.num_blocks()) {
      const std::string with_state =
          state > 0 ? " and " + std::to_string(state) + " more for its attention state (" +
                          attention.backend->name() + ": key summaries / compressed caches)"
                    : std::string();
      return Status::invalid_argument("the request needs up to " + std::to_string(kv) + " KV blocks (" +
                                      std::to_string(positions) + " positions)" + with_state +
                                      " but the cache holds " + std::to_string(kv_.num_blocks()) +
                                      "; shorten the prompt or max_tokens");
    }
    return Status::ok();
  }

  // The request pins the adapter version current at submission; later replacement or
  // deletion does not affect it.
  Result<SequenceAttention> resolve(const GenerateRequest& r) {
    AttentionChoice choice = r.attention;
    if (choice.impl == "auto" && r.adapter.empty()) choice = config_.default_attention;
    std::shared_ptr<const Adapter> adapter;
    if (!r.adapter.empty()) {
      auto pinned = adapters_.pin(r.adapter);
      if (!pinned) return pinned.status();
      adapter = pinned.value();
    }
    return resolve_attention(choice, std::move(adapter), model_shape());
  }

  static ModelShape shape_of(const ModelConfig& c) {
    return ModelShape{c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size, ""};
  }
  ModelShape model_shape() const { return shape_of(model_->config()); }

  // ---- engine thread ----

  void run() {
    // OpenMP's thread count is per thread: set it where the kernels run (the constructor's
    // call only affects the thread that built the engine).
    if (config_.num_threads > 0) omp_set_num_threads(config_.num_threads);
    Workspace ws;
    while (true) {
      if (!admit_new_requests()) return;
      cancel_requested();
      StepPlan plan = scheduler_.schedule();
      if (plan.empty()) {
        publish_stats();
        continue;
      }
      // While the step runs (a long prefill can take seconds), /metrics shows what it runs:
      // the sequences just admitted and the blocks reserved for them.
      publish_stats(/*step_done=*/false);
      Logits logits = execute(plan, ws);
      score_prompts(plan, logits);
      scheduler_.commit(plan);
      sample_and_emit(plan, logits);
      publish_stats();
    }
  }

  // Moves the inbox into the scheduler; blocks while there is nothing to do. False = stop.
  bool admit_new_requests() {
    std::deque<PendingRequest> incoming;
    {
      std::unique_lock lock(mu_);
      if (scheduler_.idle() && inbox_.empty()) {
        engine_idle_ = true;
        idle_cv_.notify_all();
        cv_.wait(lock, [&] { return stopping_ || !inbox_.empty(); });
      }
      if (stopping_) return false;
      engine_idle_ = false;
      incoming.swap(inbox_);
    }
    for (auto& p : incoming) {
      prompt_total_ += static_cast<int64_t>(p.request.prompt_ids.size());
      auto seq = std::make_unique<Sequence>(next_id_++, std::move(p.request), std::move(p.stream),
                                            std::move(p.attention), *tokenizer_, info_.eos_token_ids);
      const SequenceFacts facts{seq->sampler.seed(), seq->num_prompt_tokens};
      seq->attention_state = seq->attention.backend->new_state(seq->attention, facts, attention_resources_);
      scheduler_.add(std::move(seq));
    }
    return true;
  }

  void cancel_requested() {
    for (Sequence* seq : scheduler_.all())
      if (seq->stream->cancelled()) finish(seq, FinishReason::kCancelled, "");
  }

  Logits execute(const StepPlan& plan, Workspace& ws) {
    ForwardBatch batch;
    for (const ScheduledChunk& c : plan.chunks) {
      SequenceChunk chunk;
      chunk.tokens = std::span<const int32_t>(c.seq->tokens).subspan(c.seq->num_computed, c.num_tokens);
      chunk.first_position = c.seq->num_computed;
      chunk.block_table = c.seq->blocks.blocks;
      chunk.lane_pages = c.seq->blocks.lane_pages;
      chunk.attention = &c.seq->attention;
      chunk.state = c.seq->attention_state.get();
      chunk.logits = c.seq->scores_prompt() ? LogitsWanted::kAll
                     : c.samples()            ? LogitsWanted::kLast
                                              : LogitsWanted::kNone;
      batch.chunks.push_back(chunk);
    }
    Logits logits = model_->forward(batch, kv_.storage(), ws);
    // Where each sampling chunk samples: its last row (-1: the chunk does not sample).
    sample_rows_.assign(plan.chunks.size(), -1);
    for (size_t i = 0; i < plan.chunks.size(); ++i)
      if (plan.chunks[i].samples())
        sample_rows_[i] = logits.first_row[i] + (batch.chunks[i].logits == LogitsWanted::kAll ? plan.chunks[i].num_tokens - 1 : 0);
    return logits;
  }

  // Prompt scoring (GenerateRequest::prompt_logprobs): each computed prompt position p scores
  // token p + 1 from its row. Before commit(): num_computed is still the chunk's first position.
  void score_prompts(const StepPlan& plan, const Logits& logits) {
    for (size_t i = 0; i < plan.chunks.size(); ++i) {
      const ScheduledChunk& c = plan.chunks[i];
      Sequence* seq = c.seq;
      if (!seq->scores_prompt() || logits.first_row[i] < 0) continue;
      const int first = seq->num_computed;
      const int n_prompt = seq->num_prompt_tokens;
      seq->prompt_scores.resize(static_cast<size_t>(std::max(0, n_prompt - 1)));
      const int top = std::max(0, seq->request.top_logprobs);
      for (int k = 0; k < c.num_tokens && first + k + 1 < n_prompt; ++k) {
        std::span<const float> row(logits.data.data() + static_cast<size_t>(logits.first_row[i] + k) * logits.vocab_size,
                                   static_cast<size_t>(logits.vocab_size));
        Logprobs lp = compute_logprobs(row, seq->tokens[static_cast<size_t>(first + k + 1)], top);
        seq->prompt_scores[static_cast<size_t>(first + k)] = {lp.chosen, std::move(lp.top)};
      }
      if (first + c.num_tokens >= n_prompt && !seq->prompt_logprobs)
        seq->prompt_logprobs = std::make_shared<const std::vector<PromptLogprob>>(seq->prompt_scores);
    }
  }

  void sample_and_emit(const StepPlan& plan, Logits& logits) {
    for (size_t i = 0; i < plan.chunks.size(); ++i) {
      Sequence* seq = plan.chunks[i].seq;
      if (sample_rows_[i] < 0) continue;  // a prefill chunk short of the end
      if (seq->request.stop.max_tokens == 0) {  // scored the prompt; generates nothing
        finish(seq, FinishReason::kLength, "");
        continue;
      }
      std::span<float> row(logits.data.data() + static_cast<size_t>(sample_rows_[i]) * logits.vocab_size,
                           static_cast<size_t>(logits.vocab_size));
      TokenEvent event;
      std::vector<float> raw;
      if (seq->request.top_logprobs >= 0) raw.assign(row.begin(), row.end());
      const int32_t token = seq->sampler.sample(row, seq->prompt(), seq->output());
      if (!raw.empty()) {
        Logprobs lp = compute_logprobs(raw, token, seq->request.top_logprobs);
        event.logprob = lp.chosen;
        event.top_logprobs = std::move(lp.top);
      }
      seq->tokens.push_back(token);
      event.token_id = token;
      const std::string piece = seq->decoder.push(token);
      StopDecision decision = seq->stop.on_token(token, piece);
      event.text = std::move(decision.text_to_emit);
      const auto now = Clock::now();
      seq->last_token_time = now;
      seq->first_token_sent = true;
      if (decision.finish) {
        // Bytes the decoder still holds (an incomplete character) end the text at a length stop.
        if (*decision.finish == FinishReason::kLength) event.text += seq->decoder.flush();
        event.finish = decision.finish;
        seq->stream->push(std::move(event), usage(*seq));
        ++generated_total_;
        scheduler_.finish(seq);
        continue;
      }
      seq->stream->push(std::move(event), usage(*seq));
      ++generated_total_;
    }
  }

  void finish(Sequence* seq, FinishReason reason, const std::string& error) {
    TokenEvent event;
    event.finish = reason;
    event.error = error;
    seq->stream->push(std::move(event), usage(*seq));
    scheduler_.finish(seq);
  }

  StreamUsage usage(const Sequence& seq) const {
    StreamUsage u;
    u.prompt_tokens = seq.num_prompt_tokens;
    u.completion_tokens = seq.num_generated();
    u.cached_prompt_tokens = seq.num_cached_prompt;
    u.attention_kernel = attention_kernel_name(&seq.attention, model_shape());
    if (seq.attention_state) seq.attention_state->add_usage(&u);
    u.prompt_logprobs = seq.prompt_logprobs;
    return u;
  }

  // Sorts and removes duplicates.
  static void distinct(std::vector<std::string>& names) {
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
  }

  // step_done: after a step (or an empty plan), counted in steps_total; false: before the step runs.
  void publish_stats(bool step_done = true) {
    // Collected outside the lock: the scheduler is this thread's.
    std::vector<std::string> running_adapters, waiting_adapters;
    for (const auto& seq : scheduler_.running())
      if (!seq->request.adapter.empty()) running_adapters.push_back(seq->request.adapter);
    for (const auto& seq : scheduler_.waiting())
      if (!seq->request.adapter.empty()) waiting_adapters.push_back(seq->request.adapter);
    distinct(running_adapters);
    distinct(waiting_adapters);
    std::lock_guard lock(stats_mu_);
    stats_.waiting = scheduler_.num_waiting();
    stats_.running = scheduler_.num_running();
    stats_.kv_blocks_total = kv_.num_blocks();
    stats_.kv_blocks_used = kv_.num_used_blocks();
    stats_.attention_state_bytes = attention_resources_.bytes_in_use();
    stats_.generated_tokens_total = generated_total_;
    stats_.prompt_tokens_total = prompt_total_;
    stats_.running_adapters.swap(running_adapters);
    stats_.waiting_adapters.swap(waiting_adapters);
    if (step_done) ++stats_.steps_total;
    waiting_count_ = stats_.waiting;
  }

  EngineConfig config_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_template_;
  ModelInfo info_;
  KvCacheManager kv_;
  BackendResources attention_resources_;  // what backends share across sequences (outlives them)
  std::vector<int64_t> sample_rows_;      // per chunk of the running step: the logits row it samples, or -1
  Scheduler scheduler_;

  AdapterRegistry adapters_;  // thread-safe; shared with the I/O threads

  mutable std::mutex mu_;  // guards inbox_, draining_, stopping_, engine_idle_
  std::condition_variable cv_, idle_cv_;
  std::deque<PendingRequest> inbox_;
  bool draining_ = false, stopping_ = false, engine_idle_ = true;
  std::atomic<int> waiting_count_{0};

  mutable std::mutex stats_mu_;
  EngineStats stats_;
  int64_t generated_total_ = 0, prompt_total_ = 0;
  uint64_t next_id_ = 1;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Engine> Engine::create(const EngineConfig& config) { return std::make_unique<EngineImpl>(config); }
}  // namespace hotswap

namespace hotswap {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "error";
}

}  // namespace hotswap
