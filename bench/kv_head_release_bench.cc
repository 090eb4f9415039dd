// KV bytes per token of a DuoAttention deployment (`mixed` with gate_threshold) against eager,
// issue 16 item 4: half the KV heads of every layer streaming (sink + recent window), the
// other half dense. A Llama-3.2-1B shape: 16 layers, 8 KV heads, head_dim 64, 16-token pages,
// a bf16 cache (32 KiB per token for all layers). One sequence grows to each context through
// KvCacheManager as the scheduler drives it (512-token prefill chunks, then decode steps, each
// followed by the release the scheduler does) and the pool's used blocks are counted: what
// hotswap_kv_blocks_used reports. No model runs: which memory is held does not depend on the
// values, and the parity tests show the logits are bit-identical with and without release.
//
// Columns: held KV bytes per token at the end and at the peak, as a fraction of eager; the
// admission bound (KvCacheManager::peak_blocks, what Engine::check_fits charges); the time the
// per-head release takes per token (copying the dense heads' rows into head pages).
//
// Then the decode attention of that `mixed` deployment (32 query heads, one token, 16 layers)
// with the same K/V kept in whole pages and with the pages split per KV head: the dense heads
// then read head pages. ms per step (median of --rounds, interleaved) and whether the outputs
// are bit-identical.
//
//   build/bin/kv_head_release_bench [--contexts=4096,16384] [--sink=128] [--recent=256] [--block=128] [--rounds=5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <cmath>
#include <memory>
#include <random>

#include "adapters/mixed_adapter_codec.h"
#include "attention/layer_attention.h"
#include "attention_bench_util.h"
#include "attention/paged_attention.h"
#include "attention/sequence_attention.h"
#include "kv_cache/kv_cache_manager.h"

namespace hotswap {
namespace {

constexpr int kLayers = 16, kHeads = 32, kKvHeads = 8, kHeadDim = 64, kPage = 16, kChunk = 512, kDecode = 256;

struct Held {
  int64_t end_blocks = 0, peak_blocks = 0, bound = 0;
  double release_ms = 0;
};

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Prefill context - kDecode positions in chunks, then kDecode single-token steps.
Held grow(int context, const std::optional<StreamingRule>& rule, const std::vector<uint8_t>& kept) {
  KvCacheManager kv(KvCacheManager::plan_layout(kLayers, kKvHeads, kHeadDim, kPage, context + kPage, 0, KvDtype::kBf16));
  BlockTable t;
  Held r;
  int pos = 0;
  while (pos < context) {
    const int n = pos < context - kDecode ? std::min(kChunk, context - kDecode - pos) : 1;
    if (!kv.prepare_write(t, pos, n).is_ok()) std::abort();
    pos += n;
    r.peak_blocks = std::max(r.peak_blocks, kv.num_used_blocks());
    const double t0 = now_ms();
    kv.release_invisible(t, rule, kept, pos);
    r.release_ms += now_ms() - t0;
  }
  r.end_blocks = kv.num_used_blocks();
  int num_kept = 0;
  for (uint8_t k : kept) num_kept += k != 0;
  r.bound = kv.peak_blocks(rule, context, kChunk, num_kept);
  kv.free(t);
  if (kv.num_used_blocks() != 0) std::abort();
  return r;
}

// `mixed` with gate_threshold 0.5 on gates 0.9 (KV heads 0-3) and 0.1 (4-7) in every layer.
SequenceAttention half_streaming(int sink, int recent, int block) {
  const ModelShape shape{kLayers, kHeads, kKvHeads, kHeadDim, kHeads * kHeadDim, ""};
  std::string doc = "{\"sink_window_size\":" + std::to_string(sink) + ",\"recent_window_size\":" +
                    std::to_string(recent) + ",\"block_size\":" + std::to_string(block);
  for (int l = 0; l < kLayers; ++l)
    doc += ",\"model.layers." + std::to_string(l) + ".self_attn.adapter\":[0.9,0.9,0.9,0.9,0.1,0.1,0.1,0.1]";
  doc += "}";
  AttentionChoice choice;
  std::string error;
  if (!parse_attention_choice("{\"impl\":\"mixed\",\"gate_threshold\":0.5}", &choice, &error)) std::abort();
  return resolve_attention(choice, parse_mixed_adapter(doc, shape, "half").value(), shape).value();
}

// A bf16 cache holding positions [0, context] (the decode token's own key last), split per KV
// head after writing when `release` (the release before the token at `context`).
struct DecodeCache {
  KvCacheManager kv;
  BlockTable table;
  DecodeCache(int context, const SequenceAttention& attention, bool release)
      : kv(KvCacheManager::plan_layout(kLayers, kKvHeads, kHeadDim, kPage, context + 2 * kPage, 0, KvDtype::kBf16)) {
    if (!kv.prepare_write(table, 0, context + 1).is_ok()) std::abort();
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> rows(static_cast<size_t>(257) * kKvHeads * kHeadDim);
    for (float& x : rows) x = normal(rng);
    const size_t row = static_cast<size_t>(kKvHeads) * kHeadDim;
    for (int l = 0; l < kLayers; ++l)
      for (int p = 0; p <= context; ++p)
        kv.write_kv(table, l, p, rows.data() + static_cast<size_t>((p * 7 + l) % 257) * row,
                    rows.data() + static_cast<size_t>((p * 13 + l + 1) % 257) * row);
    if (release) kv.release_invisible(table, attention.release_rule, attention.kept_lanes, context);
  }
};

// ms per decode step (16 layers) of the token at `context`; its outputs land in out[layer].
double decode_step(DecodeCache& c, const SequenceAttention& attention, int context, const std::vector<float>& q,
                   std::vector<float>& out, int steps) {
  std::vector<LayerAttentionCall> calls(kLayers);
  for (int l = 0; l < kLayers; ++l) {
    calls[static_cast<size_t>(l)] = bench::decode_layer_call(c.kv.view(c.table, l), l, context, q.data(),
                                                             out.data() + static_cast<size_t>(l) * kHeads * kHeadDim,
                                                             &attention);
  }
  const double t0 = now_ms();
  for (int s = 0; s < steps; ++s)
    for (const LayerAttentionCall& call : calls) paged_attention(&call, 1);
  return (now_ms() - t0) / steps;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  for (size_t i = 0; i < s.size();) {
    const size_t j = std::min(s.find(',', i), s.size());
    out.push_back(std::atoi(s.substr(i, j - i).c_str()));
    i = j + 1;
  }
  return out;
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  using namespace hotswap;
  std::vector<int> contexts = {4096, 16384};
  int sink = 128, recent = 256, block = 128, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) { return a.rfind(flag, 0) == 0 ? a.substr(std::strlen(flag)) : std::string(); };
    if (!value("--contexts=").empty()) contexts = parse_list(value("--contexts="));
    else if (!value("--sink=").empty()) sink = std::atoi(value("--sink=").c_str());
    else if (!value("--recent=").empty()) recent = std::atoi(value("--recent=").c_str());
    else if (!value("--block=").empty()) block = std::atoi(value("--block=").c_str());
    else if (!value("--rounds=").empty()) rounds = std::max(1, std::atoi(value("--rounds=").c_str()));
    else {
      std::fprintf(stderr, "usage: %s [--contexts=4096,16384] [--sink=128] [--recent=256] [--block=128] [--rounds=5]\n", argv[0]);
      return 2;
    }
  }
  const StreamingRule rule = StreamingRule::from_window(sink, recent, block);
  // Per layer, KV heads 0-3 dense and 4-7 streaming: half of all lanes kept.
  std::vector<uint8_t> half(static_cast<size_t>(kLayers) * kKvHeads, 0);
  for (int l = 0; l < kLayers; ++l)
    for (int h = 0; h < kKvHeads / 2; ++h) half[static_cast<size_t>(l) * kKvHeads + h] = 1;
  const double bytes_per_block =
      static_cast<double>(KvCacheManager::plan_layout(kLayers, kKvHeads, kHeadDim, kPage, kPage, 0, KvDtype::kBf16)
                              .bytes_per_block_all_layers());
  std::printf("Llama-3.2-1B shape (16 layers x 8 KV heads x d64), bf16 KV, %d-token pages; streaming sink %d + "
              "recent %d, attention block %d; prefill chunks of %d then %d decode steps\n",
              kPage, sink, recent, block, kChunk, kDecode);
  std::printf("%-8s %-28s %12s %12s %8s %12s %8s %14s\n", "context", "gates", "end B/token", "peak B/token",
              "vs eager", "admit B/tok", "blocks", "release us/tok");
  for (int context : contexts) {
    const Held eager = grow(context, std::nullopt, {});
    struct Case {
      const char* name;
      std::optional<StreamingRule> rule;
      std::vector<uint8_t> kept;
    };
    const Case cases[] = {{"eager (all dense)", std::nullopt, {}},
                          {"half KV heads streaming", rule, half},
                          {"all streaming (whole pages)", rule, {}}};
    for (const Case& c : cases) {
      const Held r = c.rule || !c.kept.empty() ? grow(context, c.rule, c.kept) : eager;
      auto per_token = [&](int64_t blocks) { return static_cast<double>(blocks) * bytes_per_block / context; };
      std::printf("%-8d %-28s %12.0f %12.0f %8.3f %12.0f %8lld %14.2f\n", context, c.name, per_token(r.end_blocks),
                  per_token(r.peak_blocks), static_cast<double>(r.end_blocks) / static_cast<double>(eager.end_blocks),
                  per_token(r.bound), static_cast<long long>(r.end_blocks), 1000.0 * r.release_ms / context);
    }
  }
  const SequenceAttention attention = half_streaming(sink, recent, block);
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(kHeads) * kHeadDim);
  for (float& x : q) x = normal(rng);
  std::printf("\ndecode attention, mixed gate_threshold (half the KV heads streaming), kernel %s, %d rounds x 3 steps\n",
              paged_attention_kernel_name(), rounds);
  std::printf("%-8s %16s %16s %10s %10s\n", "context", "whole ms/step", "split ms/step", "split/whole", "identical");
  for (int context : contexts) {
    DecodeCache whole(context, attention, false), split(context, attention, true);
    std::vector<float> out_whole(static_cast<size_t>(kLayers) * kHeads * kHeadDim), out_split(out_whole.size());
    decode_step(whole, attention, context, q, out_whole, 1);  // warm-up: page in
    decode_step(split, attention, context, q, out_split, 1);
    std::vector<double> tw, ts;
    for (int r = 0; r < rounds; ++r) {
      tw.push_back(decode_step(whole, attention, context, q, out_whole, 3));
      ts.push_back(decode_step(split, attention, context, q, out_split, 3));
    }
    const bool same = std::memcmp(out_whole.data(), out_split.data(), out_whole.size() * sizeof(float)) == 0;
    std::printf("%-8d %16.3f %16.3f %10.3f %10s\n", context, median(tw), median(ts), median(ts) / median(tw),
                same ? "yes" : "NO");
  }
  return 0;
}
