// The masked backend's flow per layer: dense prompt positions (sparse_prefill false) go to the
// eager paged kernel; every other query is selected by the maskers (select_keys, in parallel
// over queries), turned into one SparseAttentionItem per (query, KV head) — the union of the
// group's keys with per-query-head biases -log(w + 1e-6) — and attended by the sparse kernel
// in one parallel region. Density (and, when asked, the error against dense) accumulates in
// the sequence's state and is reported in the response's usage.
#include "attention/masked/masked_backend.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention/eager/eager_backend.h"
#include "attention/kernel_dispatch.h"
#include "attention/masked/key_summaries.h"
#include "attention/masked/masked_reference.h"
#include "attention/masked/masker_config.h"
#include "attention/masked/select_keys.h"
#include "attention/masked/summary_pool.h"
#include "attention/masked/sparse_attention.h"
#include "attention/sequence_attention.h"
#include "core/check.h"

namespace hotswap {
namespace {

using masked::HeadSelection;
using masked::MaskedConfig;

struct MaskedBackendConfig : BackendConfig {
  MaskedConfig config;
  std::string key;
  bool seeded = false;     // a masker draws from the request's seed: results depend on it
  bool summaries = false;  // a masker keeps key summaries (KeySummaries)
  std::shared_ptr<const HashAttentionAdapter> hat;
  std::shared_ptr<const LshAdapter> lsh;
};

// With a hashattention adapter and no masker list, `auto` (and `masked`) mean the reference's
// fixed HashAttention configuration (specs/maskers.md Part 1, Part 2 §8).
constexpr const char* kHashAttentionDefault =
    R"({"impl":"masked","maskers":[{"type":"sink","sink_size":128},{"type":"local","window_size":128},)"
    R"({"type":"hashattention_top_k","heavy_size":0.1}]})";

class MaskedState final : public BackendSequenceState {
 public:
  MaskedState(const SequenceFacts& facts, bool report_seed, std::string config,
              std::unique_ptr<masked::KeySummaries> summaries)
      : facts_(facts), report_seed_(report_seed), config_(std::move(config)), summaries_(std::move(summaries)) {}
  const SequenceFacts& facts() const { return facts_; }
  masked::KeySummaries* summaries() const { return summaries_.get(); }
  // Positions recomputed after a preemption must not count twice; the summaries go with the KV.
  void on_preempted() override {
    density_ = error_ = Mean{};
    if (summaries_) summaries_->reset();
  }
  void add_usage(StreamUsage* usage) const override {
    usage->attention_config = config_;
    if (density_.count > 0) usage->attention_density = density_.value();
    if (error_.count > 0) usage->attention_output_error = error_.value();
    if (report_seed_) usage->attention_seed = facts_.seed;
  }
  void add(double density, double error, bool has_error) {
    density_.add(density);
    if (has_error) error_.add(error);
  }

 private:
  // Sums in fixed point (2^-40 resolution), so the mean does not depend on the order in which
  // queries were attended: the same request chunked or batched differently reports the same.
  struct Mean {
    static constexpr double kUnit = 1099511627776.0;  // 2^40
    int64_t sum = 0;
    int64_t count = 0;
    void add(double x) {
      sum += static_cast<int64_t>(std::llround(x * kUnit));
      ++count;
    }
    double value() const { return static_cast<double>(sum) / kUnit / static_cast<double>(count); }
  };
  SequenceFacts facts_;
  bool report_seed_;
  std::string config_;  // the masker configuration's canonical key (metric label)
  std::unique_ptr<masked::KeySummaries> summaries_;  // null when no masker keeps any
  Mean density_, error_;
};

std::string masker_at(const MaskedConfig& c, const masked::MaskerSpec& m) {
  return "maskers[" + std::to_string(&m - c.maskers.data()) + "] (" + masked::masker_type_name(m.type) + ")";
}

// The request's adapter against its masker list: hashattention_top_k needs a hashattention
// adapter, an lsh adapter needs a magic_pig whose lsh_l * lsh_k is its column count, and
// neither adapter may go unused. Other adapter types are pinned and unused, as eager does.
Status check_adapter(MaskedBackendConfig& cfg, const std::shared_ptr<const Adapter>& adapter, const ModelShape& shape) {
  const MaskedConfig& c = cfg.config;
  const masked::MaskerSpec* hat = c.find(masked::MaskerType::kHashAttentionTopK);
  const masked::MaskerSpec* pig = c.find(masked::MaskerType::kMagicPig);
  const std::string prefix = "attention 'masked': ";
  const std::string have = adapter ? adapter_label(*adapter) : "the request has no adapter";
  if (hat != nullptr && !(adapter && adapter->type() == AdapterType::kHashAttention))
    return Status::invalid_argument(prefix + masker_at(c, *hat) +
                                    " needs a hashattention adapter (the request's `adapter`); " + have);
  if (adapter && adapter->type() == AdapterType::kHashAttention) {
    if (hat == nullptr)
      return Status::invalid_argument(prefix + have + ", but no masker uses it (add a hashattention_top_k masker)");
    cfg.hat = adapter->hashattention();
  }
  if (adapter && adapter->type() == AdapterType::kLsh) {
    if (pig == nullptr)
      return Status::invalid_argument(prefix + have + ", but no masker uses it (add a magic_pig masker)");
    const int columns = adapter->lsh()->columns;
    if (static_cast<int64_t>(pig->lsh_l) * pig->lsh_k != columns)
      return Status::invalid_argument(prefix + masker_at(c, *pig) + ": lsh_l * lsh_k = " +
                                      std::to_string(pig->lsh_l * pig->lsh_k) + ", but " + adapter_label(*adapter) +
                                      " with " + std::to_string(columns) + " projection columns");
    cfg.lsh = adapter->lsh();
  }
  // The summaries' records must fit a pool page (64 KiB).
  const size_t page = masked::SummaryPool::kPageBytes;
  if (pig != nullptr) {
    const size_t code = static_cast<size_t>(masked::pig_code_bytes_for(pig->lsh_k));
    if (static_cast<size_t>(shape.num_kv_heads) * pig->lsh_l * code > page)
      return Status::invalid_argument(prefix + masker_at(c, *pig) + ": lsh_l " + std::to_string(pig->lsh_l) +
                                      " is too many tables for " + std::to_string(shape.num_kv_heads) +
                                      " KV heads with lsh_k " + std::to_string(pig->lsh_k) + " (at most " +
                                      std::to_string(page / code / shape.num_kv_heads) + ")");
  }
  if (const masked::MaskerSpec* q = c.find(masked::MaskerType::kQuestTopK);
      q != nullptr && static_cast<size_t>(shape.num_kv_heads) * 2 * shape.head_dim * sizeof(float) > page)
    return Status::invalid_argument(prefix + masker_at(c, *q) + ": page bounds of this model do not fit a summary page");
  return Status::ok();
}

// One sparse query of the layer: call, token index, and where its items start.
struct SparseQuery {
  int call = 0;
  int token = 0;
};

const MaskedBackendConfig& config_of(const SequenceAttention& s) {
  return static_cast<const MaskedBackendConfig&>(*s.config);
}

// First token of a chunk that goes through the maskers: prompt positions are dense unless
// sparse_prefill.
int first_sparse_token(const SequenceAttention& seq, const BackendSequenceState& state, int first_position,
                       int num_tokens) {
  if (config_of(seq).config.sparse_prefill) return 0;
  const int prompt = static_cast<const MaskedState&>(state).facts().num_prompt_tokens;
  return std::clamp(prompt - first_position, 0, num_tokens);
}

// Per step: where each chunk's sparse queries start (the same in every layer).
struct MaskedStepPlan : StepMetadata {
  std::vector<std::pair<const BackendSequenceState*, int>> first_sparse;

  int first_sparse_of(const LayerAttentionCall& c) const {
    for (const auto& [state, first] : first_sparse)
      if (state == c.state) return first;
    return first_sparse_token(*c.seq, *c.state, c.first_position, c.num_tokens);  // not planned
  }
};

class MaskedBackend final : public AttentionBackend {
 public:
  const char* name() const override { return "masked"; }

  bool chosen_by_auto_for(std::optional<AdapterType> type) const override {
    return type == AdapterType::kHashAttention;
  }

  // No masker list (the name alone, or `auto`) is decided in resolve(), once the adapter is
  // known: a hashattention adapter's default list, or the error that a list is required.
  Status check_params(const nlohmann::json& params) const override {
    if (without_maskers(params)) return Status::ok();
    return masked::parse_masked_config(params).status();
  }

  Result<SequenceAttention> resolve(const nlohmann::json& params, std::shared_ptr<const Adapter> adapter,
                                    const ModelShape& shape) const override {
    const bool hat_default = without_maskers(params) && adapter && adapter->type() == AdapterType::kHashAttention;
    Result<MaskedConfig> parsed = masked::parse_masked_config(
        hat_default ? nlohmann::json::parse(kHashAttentionDefault) : params.is_null() ? nlohmann::json::object() : params);
    if (!parsed) return parsed.status();
    auto cfg = std::make_shared<MaskedBackendConfig>();
    cfg->config = std::move(parsed.value());
    cfg->key = cfg->config.key();
    for (const masked::MaskerSpec& m : cfg->config.maskers) {
      cfg->seeded |= masked::uses_request_seed(m.type);
      cfg->summaries |= masked::keeps_key_summaries(m.type);
    }
    if (Status st = check_adapter(*cfg, adapter, shape); !st) return st;
    SequenceAttention s;
    if (!cfg->config.sparse_prefill) {
      // Prompt positions are dense, so the prompt's KV is eager's: share it with eager, but
      // never the generated positions' (attended sparsely).
      s.cache_namespace = "eager";
      s.share_generated_kv = false;
    } else if (!cfg->seeded) {
      // The KV depends on the adapter's weights too (hashattention, lsh): its version joins the key.
      s.cache_namespace = "masked:" + cfg->key + (adapter ? ":" + adapter->version() : std::string());
    } else {
      s.cache_namespace.clear();  // KV depends on the request's seed
    }
    s.adapter = std::move(adapter);  // pinned, as eager does; no masker served here reads one
    s.config = std::move(cfg);
    return s;
  }

  std::unique_ptr<BackendSequenceState> new_state(const SequenceAttention& attention, const SequenceFacts& facts,
                                                  BackendResources& resources) const override {
    const MaskedBackendConfig& cfg = config_of(attention);
    std::unique_ptr<masked::KeySummaries> summaries;
    if (cfg.summaries) {
      auto& pool = resources.shared<masked::SummaryPool>(this, [] { return std::make_shared<masked::SummaryPool>(); });
      const ModelShape& m = resources.shape();
      summaries = std::make_unique<masked::KeySummaries>(
          cfg.config, masked::SummaryShape{m.num_layers, m.num_heads, m.num_kv_heads, m.head_dim}, pool, cfg.hat, cfg.lsh);
    }
    return std::make_unique<MaskedState>(facts, cfg.seeded, cfg.key, std::move(summaries));
  }

  int64_t state_bytes(const SequenceAttention& attention, const ModelShape& shape,
                      int64_t num_positions) const override {
    const MaskedBackendConfig& cfg = config_of(attention);
    if (!cfg.summaries) return 0;
    return masked::summary_bytes(cfg.config,
                                 masked::SummaryShape{shape.num_layers, shape.num_heads, shape.num_kv_heads, shape.head_dim},
                                 cfg.hat ? cfg.hat->bits : 0, num_positions);
  }

  std::unique_ptr<StepMetadata> plan_step(std::span<const StepChunk> chunks) const override {
    auto plan = std::make_unique<MaskedStepPlan>();
    for (const StepChunk& c : chunks) {
      HS_CHECK(c.attention != nullptr && c.state != nullptr) << "masked chunk without its state";
      plan->first_sparse.emplace_back(c.state, first_sparse_token(*c.attention, *c.state, c.first_position, c.num_tokens));
    }
    return plan;
  }

  void attend(std::span<const LayerAttentionCall> calls, const StepMetadata* step) const override {
    const auto* plan = static_cast<const MaskedStepPlan*>(step);
    // Dense prompt positions: the eager kernel, all sequences at once.
    std::vector<LayerAttentionCall> dense;
    std::vector<SparseQuery> queries;
    for (size_t ci = 0; ci < calls.size(); ++ci) {
      const LayerAttentionCall& c = calls[ci];
      HS_CHECK(c.seq != nullptr && c.state != nullptr) << "masked attention without its state";
      const int first = plan != nullptr ? plan->first_sparse_of(c)
                                         : first_sparse_token(*c.seq, *c.state, c.first_position, c.num_tokens);
      if (first > 0) {
        LayerAttentionCall d = c;
        d.seq = nullptr;
        d.state = nullptr;
        d.num_tokens = first;
        dense.push_back(d);
      }
      for (int i = first; i < c.num_tokens; ++i) queries.push_back({static_cast<int>(ci), i});
    }
    if (!dense.empty()) eager_backend().attend(dense, nullptr);
    summarise(calls, plan);
    if (queries.empty()) return;

    // Selection, in parallel over queries (each query's maskers run on one thread). A lone
    // query runs outside any OpenMP construct, so that select_keys can spread its heads over
    // the threads (a region nested in an inactive one would start a fresh team every call).
    const int64_t nq = static_cast<int64_t>(queries.size());
    std::vector<std::vector<HeadSelection>> selections(queries.size());
    auto select = [&](int64_t qi) {
      const SparseQuery& sq = queries[static_cast<size_t>(qi)];
      const LayerAttentionCall& c = calls[static_cast<size_t>(sq.call)];
      thread_local masked::SelectionScratch scratch;
      masked::QueryContext ctx;
      ctx.layer = c.layer;
      ctx.position = c.first_position + sq.token;
      const auto& state = static_cast<const MaskedState&>(*c.state);
      ctx.seed = state.facts().seed;
      ctx.scale = c.scale;
      ctx.summaries = state.summaries();
      const float* q = c.q + static_cast<size_t>(sq.token) * c.num_heads * c.head_dim;
      masked::select_keys(config_of(*c.seq).config, ctx, q, c.num_heads, c.kv, scratch,
                          &selections[static_cast<size_t>(qi)]);
    };
    if (nq > 1 && attention_detail::kernel_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t qi = 0; qi < nq; ++qi) select(qi);
    } else {
      for (int64_t qi = 0; qi < nq; ++qi) select(qi);
    }

    // Items: per (query, KV head) the union of the group's keys, with per-head biases.
    std::vector<SparseAttentionItem> items;
    std::vector<std::vector<int32_t>> keys;
    std::vector<std::vector<float>> biases;
    for (size_t qi = 0; qi < queries.size(); ++qi) {
      const LayerAttentionCall& c = calls[static_cast<size_t>(queries[qi].call)];
      const int group = c.num_heads / c.num_kv_heads;
      for (int kvh = 0; kvh < c.num_kv_heads; ++kvh) {
        keys.emplace_back();
        biases.emplace_back();
        group_keys(selections[qi], kvh, group, c.first_position + queries[qi].token, &keys.back(), &biases.back());
      }
    }
    size_t next = 0;
    for (size_t qi = 0; qi < queries.size(); ++qi) {
      const LayerAttentionCall& c = calls[static_cast<size_t>(queries[qi].call)];
      const int group = c.num_heads / c.num_kv_heads;
      const size_t row = static_cast<size_t>(queries[qi].token) * c.num_heads;
      for (int kvh = 0; kvh < c.num_kv_heads; ++kvh, ++next) {
        SparseAttentionItem item;
        item.q = c.q + (row + static_cast<size_t>(kvh) * group) * c.head_dim;
        item.group = group;
        item.kv_head = kvh;
        item.kv = &c.kv;
        item.keys = keys[next].data();
        item.num_keys = static_cast<int>(keys[next].size());
        item.bias = biases[next].data();
        item.scale = c.scale;
        item.out = c.out + (row + static_cast<size_t>(kvh) * group) * c.head_dim;
        items.push_back(item);
      }
    }
    sparse_attention(items.data(), static_cast<int>(items.size()));
    account(calls, queries, selections);
  }

  const char* kernel_name(const SequenceAttention& attention, const ModelShape& shape) const override {
    (void)attention, (void)shape;
    return sparse_attention_kernel_name();
  }

 private:
  // The name alone ("masked", or "auto" picking masked for a hashattention adapter), or
  // {"impl": "auto"}; an object naming masked must list its maskers (a parse-time 400).
  static bool without_maskers(const nlohmann::json& params) {
    if (params.is_null()) return true;
    if (!params.is_object() || params.size() != 1) return false;
    const auto impl = params.find("impl");
    return impl != params.end() && impl->is_string() && impl->get_ref<const std::string&>() == "auto";
  }

  // The key summaries of every sequence of this layer, brought up to its chunk's last key
  // (signatures and page bounds for every written key, MagicPig's codes for sparse queries).
  static void summarise(std::span<const LayerAttentionCall> calls, const MaskedStepPlan* plan) {
    for (const LayerAttentionCall& c : calls) {
      masked::KeySummaries* ks = static_cast<const MaskedState&>(*c.state).summaries();
      if (ks == nullptr) continue;
      const int end = c.first_position + c.num_tokens;
      ks->write_keys(c.layer, c.kv, end);
      const int first = plan != nullptr ? plan->first_sparse_of(c)
                                         : first_sparse_token(*c.seq, *c.state, c.first_position, c.num_tokens);
      if (first >= c.num_tokens) continue;
      const MaskedConfig& config = config_of(*c.seq).config;
      ks->prepare_queries(c.layer, c.kv, c.first_position + first, end - 1,
                          [&config](size_t masker, int64_t sk) { return masked::masker_reached(config, masker, sk); });
    }
  }

  // The keys of KV head `kvh`'s query heads, merged ascending, and each head's bias per key:
  // -log(w + 1e-6) where the head selected it, -inf where it did not. A dense head (FULL or
  // EMPTY mask, or a row that selected nothing) reads every key 0..t with bias 0.
  static void group_keys(const std::vector<HeadSelection>& sel, int kvh, int group, int t, std::vector<int32_t>* keys,
                         std::vector<float>* bias) {
    const HeadSelection* first = &sel[static_cast<size_t>(kvh) * group];
    bool any_dense = false;
    for (int h = 0; h < group; ++h) any_dense |= first[h].dense;
    if (any_dense) {
      keys->resize(static_cast<size_t>(t) + 1);
      for (int j = 0; j <= t; ++j) (*keys)[static_cast<size_t>(j)] = j;
      bias->assign(static_cast<size_t>(group) * keys->size(), 0.0f);
      for (int h = 0; h < group; ++h) {
        if (first[h].dense) continue;
        float* b = bias->data() + static_cast<size_t>(h) * keys->size();
        std::fill(b, b + keys->size(), -std::numeric_limits<float>::infinity());
        for (size_t i = 0; i < first[h].keys.size(); ++i)
          b[first[h].keys[i]] = -std::log(first[h].weights[i] + 1e-6f);
      }
      return;
    }
    // The union of the heads' lists as one bit per key 0..t, read back in order (a merge of
    // interleaved lists costs a mispredicted branch per key), and each key's place in it.
    UnionScratch& u = union_scratch();
    u.bits.assign(static_cast<size_t>(t) / 64 + 1, 0);
    for (int h = 0; h < group; ++h)
      for (const int32_t j : first[h].keys) u.bits[static_cast<size_t>(j) >> 6] |= uint64_t{1} << (j & 63);
    keys->clear();
    for (size_t w = 0; w < u.bits.size(); ++w)
      for (uint64_t b = u.bits[w]; b != 0; b &= b - 1) keys->push_back(static_cast<int32_t>(w * 64 + std::countr_zero(b)));
    const size_t n = keys->size();
    if (u.slot.size() < static_cast<size_t>(t) + 1) u.slot.resize(static_cast<size_t>(t) + 1);
    for (size_t i = 0; i < n; ++i) u.slot[static_cast<size_t>((*keys)[i])] = static_cast<int32_t>(i);
    bias->assign(static_cast<size_t>(group) * n, -std::numeric_limits<float>::infinity());
    const float certain = -std::log(1.0f + 1e-6f);  // w = 1: sink, local, top-k, HashAttention, Quest keys
    for (int h = 0; h < group; ++h) {
      const HeadSelection& s = first[h];
      float* b = bias->data() + static_cast<size_t>(h) * n;
      for (size_t i = 0; i < s.keys.size(); ++i) {
        const float w = s.weights[i];
        b[u.slot[static_cast<size_t>(s.keys[i])]] = w == 1.0f ? certain : -std::log(w + 1e-6f);
      }
    }
  }

  struct UnionScratch {
    std::vector<uint64_t> bits;  // key j is in the union
    std::vector<int32_t> slot;   // a union key's index in the merged list
  };
  static UnionScratch& union_scratch() {
    thread_local UnionScratch u;
    return u;
  }

  // Density of every sparse query, and its relative L2 error against dense attention when
  // the request asked for it (a dense pass: research, not speed).
  static void account(std::span<const LayerAttentionCall> calls, const std::vector<SparseQuery>& queries,
                      const std::vector<std::vector<HeadSelection>>& selections) {
    std::vector<float> dense;
    for (size_t qi = 0; qi < queries.size(); ++qi) {
      const LayerAttentionCall& c = calls[static_cast<size_t>(queries[qi].call)];
      const int t = c.first_position + queries[qi].token;
      auto& state = static_cast<MaskedState&>(*c.state);
      double error = 0;
      bool has_error = false;
      if (config_of(*c.seq).config.report_error) {
        const size_t n = static_cast<size_t>(c.num_heads) * c.head_dim;
        dense.resize(n);
        masked::QueryContext ctx;
        ctx.layer = c.layer;
        ctx.position = t;
        ctx.scale = c.scale;
        const float* q = c.q + static_cast<size_t>(queries[qi].token) * n;
        masked::dense_attention_reference(q, c.num_heads, c.kv, ctx, dense.data());
        error = masked::relative_l2_error(dense.data(), c.out + static_cast<size_t>(queries[qi].token) * n, n);
        has_error = true;
      }
      state.add(masked::selection_density(selections[qi], t), error, has_error);
    }
  }
};

}  // namespace

const AttentionBackend& masked_backend() {
  static const MaskedBackend backend;
  return backend;
}

}  // namespace hotswap
