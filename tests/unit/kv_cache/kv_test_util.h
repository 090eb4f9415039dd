// What the KV cache tests share: a small layout, K/V values that name their token, position,
// layer and head, and the checks that every held row still reads them back.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "attention/paged/paged_pattern.h"
#include "attention/sequence_attention.h"
#include "engine/attention_choice.h"
#include "kv_cache/kv_cache_manager.h"

namespace hotswap {
namespace kv_test {

constexpr int kLayers = 2;
constexpr int kKvHeads = 2;
constexpr int kHeadDim = 4;

inline KvLayout layout(int block_size, int64_t num_blocks) {
  KvLayout l;
  l.num_layers = kLayers;
  l.num_kv_heads = kKvHeads;
  l.head_dim = kHeadDim;
  l.block_size = block_size;
  l.num_blocks = num_blocks;
  return l;
}

// The K/V values every position must hold: a function of the tokens up to it, so blocks that
// prefix sharing hands to another sequence hold exactly what that sequence would compute.
inline float kv_value(int32_t token, int pos, int layer, int head, int x, bool is_value) {
  return static_cast<float>(token) * 1000.0f + static_cast<float>(pos) + 0.1f * layer + 0.01f * head +
         0.001f * x + (is_value ? 0.5f : 0.0f);
}

inline void write_positions(KvCacheManager& kv, const BlockTable& table, const std::vector<int32_t>& tokens, int first,
                     int count) {
  std::vector<float> k(static_cast<size_t>(kKvHeads) * kHeadDim), v(k.size());
  for (int pos = first; pos < first + count; ++pos) {
    for (int layer = 0; layer < kLayers; ++layer) {
      for (int h = 0; h < kKvHeads; ++h) {
        for (int x = 0; x < kHeadDim; ++x) {
          k[h * kHeadDim + x] = kv_value(tokens[pos], pos, layer, h, x, false);
          v[h * kHeadDim + x] = kv_value(tokens[pos], pos, layer, h, x, true);
        }
      }
      kv.write_kv(table, layer, pos, k.data(), v.data());
    }
  }
}

// Every held position reads back what write_positions stored for these tokens.
inline ::testing::AssertionResult holds_tokens(const KvCacheManager& kv, const BlockTable& table,
                                        const std::vector<int32_t>& tokens) {
  for (int layer = 0; layer < kLayers; ++layer) {
    const PagedKvView view = kv.view(table, layer);
    for (int pos = 0; pos < table.num_tokens; ++pos) {
      const int page = pos / kv.block_size();
      for (int h = 0; h < kKvHeads; ++h) {
        // A released page, or a released lane of a page split per KV head, holds nothing.
        if (table.blocks[page] == kNoBlock && view.lane_page(page, h) == kNoBlock) continue;
        for (int x = 0; x < kHeadDim; ++x) {
          if (view.key(pos, h)[x] != kv_value(tokens[pos], pos, layer, h, x, false) ||
              view.value(pos, h)[x] != kv_value(tokens[pos], pos, layer, h, x, true)) {
            return ::testing::AssertionFailure() << "layer " << layer << " pos " << pos << " head " << h << " x " << x;
          }
        }
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// Prefill `tokens` (all of them) into a fresh table: match, write the rest, publish.
inline int prefill(KvCacheManager& kv, BlockTable& table, const std::string& ns, const std::vector<int32_t>& tokens) {
  const int cached = kv.match_prefix(table, ns, tokens);
  const int n = static_cast<int>(tokens.size());
  EXPECT_TRUE(kv.prepare_write(table, cached, n - cached).is_ok());
  write_positions(kv, table, tokens, cached, n - cached);
  kv.publish_full_blocks(table, ns, tokens);
  return cached;
}

// The windows of `rule` need at most this many KV pages of `page` tokens.
inline int64_t window_pages(const StreamingRule& rule, int page) {
  return (rule.sink_end + page - 1) / page + (rule.max_local_span() + page - 1) / page;
}

// The request's attention object, parsed as the server parses it.
inline AttentionChoice choice_of(const std::string& json) {
  AttentionChoice c;
  std::string error;
  EXPECT_TRUE(parse_attention_choice(json, &c, &error)) << json << ": " << error;
  return c;
}

// The streaming rule of a resolved streaming or mixed attention.
inline const StreamingRule& rule_of(const SequenceAttention& s) { return static_cast<const PagedPattern&>(*s.config).rule; }

}  // namespace kv_test
}  // namespace hotswap
