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
//   build/bin/kv_head_release_bench [--contexts=4096,16384] [--sink=128] [--recent=256] [--block=128]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "kv_cache/kv_cache_manager.h"

namespace hotswap {
namespace {

constexpr int kLayers = 16, kKvHeads = 8, kHeadDim = 64, kPage = 16, kChunk = 512, kDecode = 256;

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
  int sink = 128, recent = 256, block = 128;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) { return a.rfind(flag, 0) == 0 ? a.substr(std::strlen(flag)) : std::string(); };
    if (!value("--contexts=").empty()) contexts = parse_list(value("--contexts="));
    else if (!value("--sink=").empty()) sink = std::atoi(value("--sink=").c_str());
    else if (!value("--recent=").empty()) recent = std::atoi(value("--recent=").c_str());
    else if (!value("--block=").empty()) block = std::atoi(value("--block=").c_str());
    else {
      std::fprintf(stderr, "usage: %s [--contexts=4096,16384] [--sink=128] [--recent=256] [--block=128]\n", argv[0]);
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
  return 0;
}
