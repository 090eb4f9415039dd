// Decode attention at long context for the summarising maskers of the `masked` implementation
// (issue 13, item 5), against eager and NSA, on one layer of a Llama-3.2-1B shape (32 query
// heads, 8 KV heads, head_dim 64, 16-token KV pages in shuffled physical order), contexts 1K to
// 64K. Configurations:
//   eager       the dense paged kernel (attend() with no backend);
//   nsa_s8      NSA with the spec's defaults (l 16, s 8, l' 16, n 4, w 64, MLP values), as
//               bench/nsa_bench.cc runs it (nsa_attend, compressed blocks built by
//               nsa_update_cache for the prompt);
//   hat         masked: sink 128 + local 128 + hashattention_top_k heavy_size 0.05, with a random
//               hashattention adapter of the reference's shape (query and key MLPs 64->128->128->32
//               per query head, silu, weights N(0, 1/fan_in));
//   magic_pig   masked: sink 128 + local 128 + magic_pig lsh_l 8 lsh_k 8 (projections from its seed);
//   quest       masked: quest_top_k heavy_size 2048 (tokens) page_size 16.
// Data: K and V standard normal; every decode step's query is, per query head, standard normal
// noise plus (1/sqrt 8) x the sum of 8 random keys of the context ("needles" shared by the
// KV head's 4 query heads), so that scores and selections are not uniform.
//
// One run = kSteps consecutive decode steps of one sequence (positions advance; each step is
// attend() of one token, which for masked includes the summaries of the one new key:
// write_keys / prepare_queries for one key, then select_keys, then the sparse kernel). The
// prompt's summaries (signatures, codes, page bounds: a one-off per prompt) and NSA's
// compressed blocks are built before the first run and not timed; their build time is printed.
// Runs are interleaved: rounds x contexts x configurations, so that the configurations of a
// context are measured back to back, every round; the summary takes the median over rounds.
//
// A census at each context (outside the timing) calls select_keys on summaries of its own at
// the first decode position, once per query of the context (kSteps), and counts what the
// sparse kernel reads: the union of each KV head's query heads' keys. It times select_keys and
// the sparse kernel alone (means over the queries) and the summary update of one new key
// (median of 7): where a step's time goes; the rest is "other" (the backend's union and biases,
// planning, accounting), derived as step - parts.
// Bytes per step: KV = keys read x Hkv x 2 x row (K and V rows of the cache's dtype, --kv_dtype:
// f32 d x 4, bf16 d x 2, q8 d + d/32 x 4); summaries = what the masker scans (float32 whatever
// the KV dtype): HashAttention 4 bytes (32 bits) per key per query head, MagicPig L codes per
// key per KV head (a byte each at K 8), Quest 2 x d x 4 bytes per page per KV head, NSA its
// compressed K and V blocks.
//
// With --non_attention_ms the whole decode step is estimated, not run: 16 x the layer's
// attention + that non-attention part of a Llama-3.2-1B decode step. masked_whole_step_bench
// runs the whole step.
//
//   build/bin/long_context_masked_bench [--rounds=3] [--contexts=1024,4096,...] [--non_attention_ms=X]
//                                       [--cpu_time] [--kv_dtype=bf16|f32|q8] [Google Benchmark flags]
// --kv_dtype: the KV cache's element type (engine.kv_cache_dtype; default bf16, the engine's
// default): K and V are drawn in float32 and stored as the engine writes them (store_kv_row).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/adapter.h"
#include "adapters/hashattention_adapter.h"
#include "adapters/nsa_adapter.h"
#include "attention/layer_attention.h"
#include "attention/masked/key_summaries.h"
#include "attention/masked/masked_reference.h"
#include "attention/masked/masker_config.h"
#include "attention/masked/select_keys.h"
#include "attention/masked/summary_pool.h"
#include "attention/masked/sparse_attention.h"
#include "attention/nsa/nsa_attention.h"
#include "attention/sequence_attention.h"
#include "core/huge_buffer.h"
#include "engine/attention_choice.h"
#include "kv_cache/kv_storage.h"
#include "gather_floor.h"
#include "long_context_report.h"
#include "long_context_util.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hotswap {
namespace {

using bench::Census;
using bench::fill_normal;
using bench::hat_adapter;
using bench::load_average;
using bench::now_ms;

constexpr int kHeads = 32, kKvHeads = 8, kHeadDim = 64, kHidden = 2048, kGroup = kHeads / kKvHeads;
constexpr int kPage = 16;
constexpr int kSteps = 32;      // decode steps per timed run
constexpr int kAdvance = 1024;  // positions a context's runs may use after it, all rounds together
constexpr int kNeedles = 8;
constexpr float kScale = 0.125f;  // 1/sqrt(64)
constexpr size_t kF32RowBytes = kHeadDim * sizeof(float);  // summaries (Quest bounds, NSA blocks) are float32

// --kv_dtype: the KV cache's element type (engine.kv_cache_dtype's default: bf16).
KvDtype g_kv_dtype = KvDtype::kBf16;
// Bytes of one K or V row of the cache.
size_t kv_row_bytes() { return kv_row_units(g_kv_dtype, kHeadDim) * kv_dtype_size(g_kv_dtype); }

std::vector<int> g_contexts = {1024, 4096, 8192, 16384, 32768, 65536};
int g_rounds = 3;
// The non-attention part of a Llama-3.2-1B decode step (16 layers' projections and MLP, LM head),
// ms, as measured on this machine with the same threads (engine_throughput_bench's batch-1 step
// at a short context, or masked_whole_step_bench's eager step less its growth with context).
// Only for the estimated whole step, which is printed only when it is given: a figure from
// another machine or thread count (88 ms was one) made the estimate overstate the ratios.
double g_non_attention_ms = -1.0;
// --cpu_time: the table ranks by the main thread's CPU time (with OMP_NUM_THREADS=1, the work
// itself, immune to other processes' time slices); the census parts stay wall time.
bool g_cpu_time = false;

enum Config { kEager, kNsa, kHat, kPig, kQuest, kNumConfigs };
const char* const kNames[kNumConfigs] = {"eager", "nsa_s8", "hat", "magic_pig", "quest"};
const char* const kMaskedJson[kNumConfigs] = {nullptr, nullptr, bench::kHatJson, bench::kPigJson, bench::kQuestJson};
constexpr int kLshTables = 8, kLshBits = 8, kQuestPage = 16;

// One layer's paged KV cache for every context's positions, filled once, rows of g_kv_dtype,
// in huge pages as the engine's KvStorage keeps them (core/huge_buffer.h).
struct Cache {
  int capacity = 0;
  std::vector<int32_t> table;
  HugeBuffer k, v;

  explicit Cache(int cap) : capacity(cap) {
    const int blocks = (cap + kPage - 1) / kPage;
    table.resize(static_cast<size_t>(blocks));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937_64(2));
    const size_t rows_per_block = static_cast<size_t>(kKvHeads) * kPage;
    const size_t per_block = rows_per_block * kHeadDim;  // float32 values drawn per block
    const size_t ru = kv_row_units(g_kv_dtype, kHeadDim);
    const size_t block_bytes = rows_per_block * ru * kv_dtype_size(g_kv_dtype);
    k = allocate_huge_buffer(block_bytes * blocks);
    v = allocate_huge_buffer(block_bytes * blocks);
    // Seeded by logical block: position p holds the same K and V whatever the capacity (and,
    // before rounding, whatever the dtype); stored as the engine stores a row.
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; ++b) {
      std::vector<float> rows(per_block);
      const size_t at = rows_per_block * static_cast<size_t>(table[static_cast<size_t>(b)]);
      for (int side = 0; side < 2; ++side) {
        fill_normal(rows.data(), per_block, 2 * static_cast<uint64_t>(b) + side);
        void* base = side ? v.get() : k.get();
        for (size_t r = 0; r < rows_per_block; ++r)
          store_kv_row(g_kv_dtype, rows.data() + r * kHeadDim, kHeadDim, base, (at + r) * ru);
      }
    }
  }
  PagedKvView view() const {
    PagedKvView kv{k.get(), v.get(), table.data(), static_cast<int>(table.size()), kPage, kKvHeads, kHeadDim};
    kv.dtype = g_kv_dtype;
    return kv;
  }
};

Cache& cache() {
  static Cache c(*std::max_element(g_contexts.begin(), g_contexts.end()) + kAdvance);
  return c;
}

// kSteps decode queries for a context (reused round after round), NSA's extra inputs.
struct Queries {
  std::vector<std::vector<float>> q, x;
  std::vector<float> ku;  // un-rotated keys for NSA's compressed blocks: one chunk, reused

  explicit Queries(int context) : q(kSteps), x(kSteps) {
    const PagedKvView kv = cache().view();
    std::mt19937 rng(static_cast<unsigned>(context));
    std::uniform_int_distribution<int> pick(0, context - 1);
    std::vector<float> buf(kHeadDim);
    for (int s = 0; s < kSteps; ++s) {
      q[s].resize(static_cast<size_t>(kHeads) * kHeadDim);
      fill_normal(q[s].data(), q[s].size(), 1000 + static_cast<uint64_t>(context) * kSteps + s);
      for (int g = 0; g < kKvHeads; ++g) {
        for (int n = 0; n < kNeedles; ++n) {
          const float* key = kv.key_row(pick(rng), g, buf.data());
          for (int a = 0; a < kGroup; ++a) {
            float* qh = q[s].data() + static_cast<size_t>(g * kGroup + a) * kHeadDim;
            for (int c = 0; c < kHeadDim; ++c) qh[c] += key[c] / std::sqrt(static_cast<float>(kNeedles));
          }
        }
      }
      x[s].resize(kHidden);
      fill_normal(x[s].data(), kHidden, 7 + static_cast<uint64_t>(s));
    }
    ku.resize(static_cast<size_t>(2048) * kKvHeads * kHeadDim);
    fill_normal(ku.data(), ku.size(), 99);
  }
};

// Every configuration of a context decodes the same queries.
const Queries& queries_for(int context) {
  static std::map<int, std::unique_ptr<Queries>> all;
  auto& q = all[context];
  if (!q) q = std::make_unique<Queries>(context);
  return *q;
}

// ---- adapters ----

NsaConfig nsa_config() {  // the spec's defaults: l 16, s 8, l' 16, n 4, w 64, MLP values
  NsaConfig c;
  c.compress_block_size = 16;
  c.compress_stride = 8;
  c.selection_block_size = 16;
  c.num_selected_blocks = 4;
  c.sliding_window_size = 64;
  c.k_compress = NsaCompression::kMaxPool;
  c.v_compress = NsaCompression::kMlp;
  c.mlp_hidden_size = 256;
  c.num_mem_tokens = 1;
  c.compress_rope = NsaCompressRope::kPre;
  return c;
}

std::shared_ptr<NsaAdapter> nsa_adapter() {
  const NsaConfig c = nsa_config();
  auto a = std::make_shared<NsaAdapter>();
  a->config = c;
  a->num_layers = 1;
  a->num_heads = kHeads;
  a->num_kv_heads = kKvHeads;
  a->head_dim = kHeadDim;
  a->hidden_size = kHidden;
  a->layers.resize(1);
  uint64_t seed = 100;
  auto fill = [&](std::vector<float>& v, size_t n) {
    v.resize(n);
    fill_normal(v.data(), n, seed++, 0.1f);
  };
  const size_t l = static_cast<size_t>(c.compress_block_size), d = kHeadDim, hkv = kKvHeads,
               hid = static_cast<size_t>(c.mlp_hidden_size);
  NsaLayerWeights& w = a->layers[0];
  for (NsaCompressor* side : {&w.k, &w.v}) {
    side->method = side == &w.k ? c.k_compress : c.v_compress;
    fill(side->pos_emb, hkv * l * d);
    if (side->method != NsaCompression::kMlp) continue;
    fill(side->w1, hkv * hid * l * d);
    fill(side->b1, hkv * hid);
    fill(side->w2, hkv * d * hid);
    fill(side->b2, hkv * d);
  }
  fill(w.mem_kv, 2 * hkv * static_cast<size_t>(c.num_mem_tokens) * d);
  fill(w.gate_w, 3 * static_cast<size_t>(kHeads) * kHidden);
  fill(w.gate_b, 3 * static_cast<size_t>(kHeads));
  return a;
}

// ---- one sequence per (configuration, context) ----

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Runner {
  Config config;
  int context;
  int pos;  // the next decode position
  const Queries& queries;
  std::vector<float> out = std::vector<float>(static_cast<size_t>(kHeads) * kHeadDim);
  // masked
  std::shared_ptr<const Adapter> adapter;
  SequenceAttention attention;
  std::unique_ptr<BackendResources> resources;
  std::unique_ptr<BackendSequenceState> state;
  // nsa
  std::shared_ptr<NsaAdapter> nsa;
  std::unique_ptr<CompressedBlockPool> pool;
  std::unique_ptr<NsaSequenceState> nsa_state;
  double setup_ms = 0;  // the prompt's summaries / compressed blocks (one-off, not timed)
  Census census;

  Runner(Config c, int ctx) : config(c), context(ctx), pos(ctx), queries(queries_for(ctx)) {
    const double t0 = now_ms();
    if (config == kNsa) {
      nsa = nsa_adapter();
      pool = std::make_unique<CompressedBlockPool>(kKvHeads, kHeadDim);
      nsa_state = std::make_unique<NsaSequenceState>(nsa, *pool);
      for (int first = 0; first < context; first += 2048) {
        const int n = std::min(2048, context - first);
        LayerAttentionCall call = make_call(first, n, queries.q[0].data());
        nsa_update_cache(call, NsaLayerInputs{nullptr, queries.ku.data(), nullptr, kHidden}, *nsa, *nsa_state);
      }
      setup_ms = now_ms() - t0;
      nsa_census();
    } else if (config != kEager) {
      AttentionChoice choice;
      std::string error;
      if (!parse_attention_choice(kMaskedJson[config], &choice, &error)) std::abort();
      if (config == kHat) adapter = hat_adapter(1);
      const ModelShape shape{1, kHeads, kKvHeads, kHeadDim, kHidden, ""};
      Result<SequenceAttention> resolved = resolve_attention(choice, adapter, shape);
      if (!resolved) {
        std::fprintf(stderr, "%s\n", resolved.status().message().c_str());
        std::abort();
      }
      attention = std::move(resolved.value());
      resources = std::make_unique<BackendResources>(shape);
      state = attention.backend->new_state(attention, SequenceFacts{1, context}, *resources);
      // The prompt's last token (dense; its write_keys signs / bounds the whole prompt), then
      // the first decode token (MagicPig's backlog of codes): both one-off, not timed.
      attend(make_call(context - 1, 1, queries.q[0].data()));
      step();
      setup_ms = now_ms() - t0;
      masked_census();
    }
  }

  LayerAttentionCall make_call(int first, int n, const float* q) {
    LayerAttentionCall c;
    c.q = q;
    c.num_tokens = n;
    c.first_position = first;
    c.num_heads = kHeads;
    c.num_kv_heads = kKvHeads;
    c.head_dim = kHeadDim;
    c.scale = kScale;
    c.kv = cache().view();
    c.seq = config == kEager || config == kNsa ? nullptr : &attention;
    c.state = state.get();
    c.out = out.data();
    return c;
  }

  // One decode token at `pos`.
  void step() {
    if (pos >= cache().capacity) {
      std::fprintf(stderr, "context %d ran past the cache (more rounds than kAdvance allows)\n", context);
      std::abort();
    }
    const int s = (pos - context) % kSteps;
    const LayerAttentionCall call = make_call(pos, 1, queries.q[static_cast<size_t>(s)].data());
    if (config == kNsa) {
      const float* ku = queries.ku.data() + static_cast<size_t>(pos % 2048) * kKvHeads * kHeadDim;
      nsa_attend(call, NsaLayerInputs{call.q, ku, queries.x[static_cast<size_t>(s)].data(), kHidden}, *nsa,
                 *nsa_state);
    } else {
      attend(call);
    }
    ++pos;
  }

  double density() const {
    if (!state) return config == kEager ? 1.0 : census.density;
    StreamUsage u;
    state->add_usage(&u);
    return u.attention_density.value_or(0.0);
  }

  void nsa_census() {
    const NsaConfig c = nsa_config();
    const int64_t sk = context + 1;
    const double keys = std::min<double>(static_cast<double>(c.num_selected_blocks) * c.selection_block_size, sk) +
                        std::min<double>(c.sliding_window_size, sk);
    census.keys_read = keys;
    census.density = keys / static_cast<double>(sk);
    census.kv_bytes = keys * kKvHeads * 2 * kv_row_bytes();
    census.summary_bytes =
        static_cast<double>(c.num_compressed_blocks(sk) + c.num_mem_tokens) * kKvHeads * 2 * kF32RowBytes;
  }

  // select_keys on summaries of its own at the first decode position (query 0).
  void masked_census() {
    const auto config_json = nlohmann::json::parse(kMaskedJson[config]);
    const masked::MaskedConfig mc = masked::parse_masked_config(config_json).value();
    masked::SummaryPool spool;
    masked::KeySummaries ks(mc, masked::SummaryShape{1, kHeads, kKvHeads, kHeadDim}, spool,
                            adapter ? adapter->hashattention() : nullptr, nullptr);
    const PagedKvView kv = cache().view();
    const int t = context;  // the first decode position
    ks.write_keys(0, kv, t + 1);
    ks.prepare_queries(0, kv, t, t, [&mc](size_t m, int64_t sk) { return masked::masker_reached(mc, m, sk); });
    masked::QueryContext ctx;
    ctx.position = t;
    ctx.seed = 1;
    ctx.scale = kScale;
    ctx.summaries = &ks;
    masked::SelectionScratch scratch;
    std::vector<masked::HeadSelection> sel;
    masked::select_keys(mc, ctx, queries.q[0].data(), kHeads, kv, scratch, &sel);  // warm-up
    double select_us = 0, kernel_us = 0, density = 0, total = 0;
    const int64_t sk = t + 1;
    for (int s = 0; s < kSteps; ++s) {  // every query of the context, at the first decode position
      const float* q = queries.q[static_cast<size_t>(s)].data();
      double t0 = now_ms();
      masked::select_keys(mc, ctx, q, kHeads, kv, scratch, &sel);
      select_us += (now_ms() - t0) * 1e3;
      density += masked::selection_density(sel, t);
      // The kernel's items as the backend builds them: per KV head the union of its query
      // heads' keys, bias -log(w + 1e-6) where a head selected the key, -inf elsewhere (all
      // keys, bias 0, when a head is dense).
      std::vector<std::vector<int32_t>> keys(kKvHeads);
      std::vector<std::vector<float>> bias(kKvHeads);
      std::vector<SparseAttentionItem> items;
      for (int g = 0; g < kKvHeads; ++g) {
        std::vector<int32_t>& u = keys[static_cast<size_t>(g)];
        bool dense = false;
        for (int a = 0; a < kGroup; ++a) {
          const masked::HeadSelection& h = sel[static_cast<size_t>(g * kGroup + a)];
          dense |= h.dense;
          u.insert(u.end(), h.keys.begin(), h.keys.end());
        }
        if (dense) {
          u.resize(static_cast<size_t>(sk));
          std::iota(u.begin(), u.end(), 0);
        }
        std::sort(u.begin(), u.end());
        u.erase(std::unique(u.begin(), u.end()), u.end());
        std::vector<float>& b = bias[static_cast<size_t>(g)];
        b.assign(static_cast<size_t>(kGroup) * u.size(), dense ? 0.0f : -INFINITY);
        for (int a = 0; a < kGroup && !dense; ++a) {
          const masked::HeadSelection& h = sel[static_cast<size_t>(g * kGroup + a)];
          for (size_t i = 0; i < h.keys.size(); ++i) {
            const size_t at = static_cast<size_t>(std::lower_bound(u.begin(), u.end(), h.keys[i]) - u.begin());
            b[static_cast<size_t>(a) * u.size() + at] = -std::log(h.weights[i] + 1e-6f);
          }
        }
        total += static_cast<double>(u.size());
        SparseAttentionItem it;
        it.q = q + static_cast<size_t>(g) * kGroup * kHeadDim;
        it.group = kGroup;
        it.kv_head = g;
        it.kv = &kv;
        it.keys = u.data();
        it.num_keys = static_cast<int>(u.size());
        it.bias = b.data();
        it.scale = kScale;
        it.out = out.data() + static_cast<size_t>(g) * kGroup * kHeadDim;
        items.push_back(it);
      }
      t0 = now_ms();
      sparse_attention(items.data(), static_cast<int>(items.size()));
      kernel_us += (now_ms() - t0) * 1e3;
    }
    census.select_us = select_us / kSteps;
    census.kernel_us = kernel_us / kSteps;
    census.density = density / kSteps;
    census.keys_read = total / kSteps / kKvHeads;
    census.kv_bytes = total / kSteps * 2 * kv_row_bytes();
    std::vector<double> times;
    // One new key at a time, as a decode step does (after the selection: it moves the caches on).
    times.clear();
    for (int j = t + 1; j < t + 8; ++j) {
      const double t0 = now_ms();
      ks.write_keys(0, kv, j + 1);
      ks.prepare_queries(0, kv, j, j, [&mc](size_t m, int64_t n) { return masked::masker_reached(mc, m, n); });
      times.push_back((now_ms() - t0) * 1e3);
    }
    census.update_us = median_of(times);
    const bool all_dense = std::all_of(sel.begin(), sel.end(), [](const auto& h) { return h.dense; });
    if (all_dense) return;  // a FULL short-circuit: no masker ran, nothing scanned
    if (config == kHat) census.summary_bytes = static_cast<double>(sk) * kHeads * ks.hat_word_bytes();
    if (config == kPig) census.summary_bytes = static_cast<double>(sk) * kKvHeads * kLshTables * masked::pig_code_bytes_for(kLshBits);
    if (config == kQuest)
      census.summary_bytes = static_cast<double>((sk + kQuestPage - 1) / kQuestPage) * kKvHeads * 2 * kF32RowBytes;
  }
};

std::map<std::pair<int, int>, std::unique_ptr<Runner>> g_runners;  // (config, context)

Runner& runner(Config c, int context) {
  auto& r = g_runners[{c, context}];
  if (!r) r = std::make_unique<Runner>(c, context);
  return *r;
}

void BM_DecodeStep(benchmark::State& state) {
  const Config config = static_cast<Config>(state.range(0));
  const int context = static_cast<int>(state.range(1));
  Runner& r = runner(config, context);
  for (auto _ : state) r.step();
  state.SetLabel(kNames[config]);
  state.counters["context"] = context;
  state.counters["config"] = config;
  state.counters["density"] = r.density();
}

// Times per (config, context): one per round.
class Reporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::pair<int, int>, std::vector<double>> us;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      const int config = static_cast<int>(r.counters.at("config").value);
      const int context = static_cast<int>(r.counters.at("context").value);
      us[{config, context}].push_back(g_cpu_time ? r.GetAdjustedCPUTime() : r.GetAdjustedRealTime());
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

// The census's reads at the probe's rates: eager streams its K and V rows; a masked or NSA
// step gathers its keys' rows (in runs of `run` positions: Quest's pages) and streams its
// summaries. NSA's selected blocks are counted as scattered keys, its compressed blocks as
// its summaries.
double floor_us(bench::RowGatherProbe& probe, double stream_gbps, const bench::LayerResult& r, int run) {
  const double stream_us = (r.eager ? r.kv_bytes : r.summary_bytes) / (stream_gbps * 1e3);
  if (r.eager) return stream_us;
  const double density = std::min(1.0, r.keys_read / (r.context + 1));
  return r.keys_read * kKvHeads * probe.scattered_ns_per_key(run, density, bench::Residency::kWarm) / 1e3 + stream_us;
}

void print_summary(const Reporter& rep) {
  bench::LayerReportSetup setup;
  setup.heads = kHeads, setup.kv_heads = kKvHeads, setup.head_dim = kHeadDim;
#ifdef _OPENMP
  setup.threads = omp_get_max_threads();
#endif
  setup.rounds = g_rounds, setup.steps = kSteps, setup.cpu_time = g_cpu_time;
  setup.kv_dtype = kv_dtype_name(g_kv_dtype), setup.kv_row_bytes = kv_row_bytes();
  setup.load_average = load_average(), setup.non_attention_ms = g_non_attention_ms;
  // The probe's cache has the layer cache's size, rows and pages, so its reads meet the same
  // caches and TLB as the benchmark's.
  const Cache& c = cache();
  bench::RowGatherProbe probe(2 * c.table.size() * kKvHeads * kPage * kv_row_bytes(), kv_row_bytes(), kPage);
  setup.stream_gbps = probe.stream_gbps();
  setup.key_gather_ns = probe.scattered_ns_per_key(1, 0.2, bench::Residency::kWarm);
  setup.probe_mb = probe.bytes() / 1e6;
  std::vector<bench::LayerResult> results;
  for (int context : g_contexts) {
    for (int cfg = 0; cfg < kNumConfigs; ++cfg) {
      const auto it = rep.us.find({cfg, context});
      if (it == rep.us.end()) continue;
      const Runner& r = *g_runners.at({cfg, context});
      bench::LayerResult x;
      x.context = context, x.config = kNames[cfg], x.eager = cfg == kEager, x.masked = cfg >= kHat;
      x.us = it->second, x.density = r.density(), x.setup_ms = r.setup_ms, x.census = r.census;
      const double sk = context + 1;
      x.kv_bytes = x.eager ? sk * kKvHeads * 2 * kv_row_bytes() : r.census.kv_bytes;
      x.keys_read = x.eager ? sk : r.census.keys_read;
      x.summary_bytes = r.census.summary_bytes;
      // Quest reads whole pages, NSA whole selected blocks (l' 16); the others single keys.
      x.floor_us = floor_us(probe, setup.stream_gbps, x, cfg == kQuest ? kQuestPage : cfg == kNsa ? 16 : 1);
      results.push_back(std::move(x));
    }
  }
  bench::print_layer_report(results, g_contexts, setup);
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  using namespace hotswap;
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--rounds=", 0) == 0) {
      g_rounds = std::max(1, std::atoi(arg.c_str() + 9));
    } else if (arg == "--cpu_time" || arg == "--cpu_time=true") {
      g_cpu_time = true;
    } else if (arg.rfind("--kv_dtype=", 0) == 0) {
      if (!bench::parse_kv_dtype(arg.substr(11), &g_kv_dtype)) return 2;
    } else if (arg.rfind("--non_attention_ms=", 0) == 0) {
      g_non_attention_ms = std::atof(arg.c_str() + 19);
    } else if (arg.rfind("--contexts=", 0) == 0) {
      g_contexts.clear();
      for (const char* p = arg.c_str() + 11; *p;) {
        g_contexts.push_back(std::atoi(p));
        p = std::strchr(p, ',');
        if (p == nullptr) break;
        ++p;
      }
    } else {
      std::fprintf(stderr, "unknown argument %s (--rounds=N, --contexts=A,B,..., --non_attention_ms=X, --cpu_time, --kv_dtype=f32|bf16|q8, Google Benchmark's flags)\n",
                   arg.c_str());
      return 2;
    }
  }
  if (g_rounds * kSteps + 1 >= kAdvance) {
    std::fprintf(stderr, "--rounds too large (at most %d)\n", (kAdvance - 2) / kSteps);
    return 2;
  }
  for (int round = 0; round < g_rounds; ++round)
    for (int context : g_contexts)
      for (int c = 0; c < kNumConfigs; ++c)
        benchmark::RegisterBenchmark(("decode/" + std::string(kNames[c]) + "/" + std::to_string(context) + "/round" +
                                      std::to_string(round)).c_str(),
                                     BM_DecodeStep)
            ->Args({c, context})
            ->Iterations(kSteps)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
  Reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_summary(reporter);
  benchmark::Shutdown();
  return 0;
}
