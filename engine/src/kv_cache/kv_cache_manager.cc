#include "kv_cache/kv_cache_manager.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/check.h"
#include "core/load_error.h"

namespace hotswap {

KvCacheManager::KvCacheManager(const KvLayout& layout)
    : storage_(layout), pool_(layout.num_blocks), heads_(pool_, layout) {
  HS_CHECK(layout.block_size > 0 && layout.num_kv_heads > 0 && layout.head_dim > 0 && layout.num_layers > 0)
      << "bad KV layout";
}

KvLayout KvCacheManager::plan_layout(int num_layers, int num_kv_heads, int head_dim, int block_size,
                                     int64_t capacity_tokens, int64_t capacity_bytes, KvDtype dtype) {
  if (num_layers < 1 || num_kv_heads < 1 || head_dim < 1) {
    throw LoadError("", "KV cache: num_layers, num_kv_heads and head_dim must be >= 1, got " +
                            std::to_string(num_layers) + ", " + std::to_string(num_kv_heads) + ", " +
                            std::to_string(head_dim));
  }
  if (block_size < 1) throw LoadError("", "KV cache: kv_block_size must be >= 1, got " + std::to_string(block_size));
  if (const std::string e = kv_dtype_shape_error(dtype, head_dim); !e.empty()) throw LoadError("", "KV cache: " + e);
  KvLayout layout;
  layout.num_layers = num_layers;
  layout.num_kv_heads = num_kv_heads;
  layout.head_dim = head_dim;
  layout.block_size = block_size;
  layout.dtype = dtype;
  const int64_t block_bytes = static_cast<int64_t>(layout.bytes_per_block_all_layers());
  if (capacity_bytes > 0) {
    layout.num_blocks = capacity_bytes / block_bytes;
    if (layout.num_blocks < 1) {
      throw LoadError("", "KV cache: kv_cache_bytes " + std::to_string(capacity_bytes) +
                              " holds no block; one block of " + std::to_string(block_size) + " tokens takes " +
                              std::to_string(block_bytes) + " bytes");
    }
  } else {
    if (capacity_tokens < 1) {
      throw LoadError("", "KV cache: kv_cache_tokens must be >= 1, got " + std::to_string(capacity_tokens));
    }
    layout.num_blocks = (capacity_tokens + block_size - 1) / block_size;
  }
  if (layout.num_blocks > INT32_MAX) {
    throw LoadError("", "KV cache: " + std::to_string(layout.num_blocks) + " blocks exceed the 32-bit block ids");
  }
  return layout;
}

PagedKvView KvCacheManager::view(const BlockTable& table, int layer) const {
  return storage_.view(layer, table.blocks, table.lane_pages);
}

void KvCacheManager::write_kv(const BlockTable& table, int layer, int pos, const float* k, const float* v) {
  write_kv(table, layer, pos, 1, k, v);
}

void KvCacheManager::write_kv(const BlockTable& table, int layer, int first_pos, int count, const float* k,
                              const float* v) {
  const KvLayout& l = layout();
  HS_CHECK(first_pos >= 0 && first_pos + count <= table.num_tokens)
      << "write of positions [" << first_pos << ", " << first_pos + count << ") beyond the "
      << table.num_tokens << " reserved";
  const PagedKvView view_k = view(table, layer);
  const size_t d = static_cast<size_t>(l.head_dim);
  for (int i = 0; i < count; ++i) {
    const int pos = first_pos + i;
    HS_CHECK(table.blocks[pos / l.block_size] != kNoBlock) << "write to released position " << pos;
    for (int h = 0; h < l.num_kv_heads; ++h) {
      const size_t dst = view_k.offset(pos, h);
      const size_t src = (static_cast<size_t>(i) * l.num_kv_heads + h) * d;
      store_kv_row(l.dtype, k + src, l.head_dim, storage_.key_data(layer), dst);
      store_kv_row(l.dtype, v + src, l.head_dim, storage_.value_data(layer), dst);
    }
  }
}

int64_t KvCacheManager::blocks_needed(const BlockTable& table, int first_pos, int count) const {
  if (count <= 0) return 0;
  const int bs = block_size();
  const int first = first_pos / bs;
  const int last = (first_pos + count - 1) / bs;
  int64_t n = 0;
  for (int i = first; i <= last; ++i) {
    if (i >= static_cast<int>(table.blocks.size()) || table.blocks[i] == kNoBlock) {
      ++n;
    } else if (pool_.ref_count(table.blocks[i]) > 1) {
      ++n;  // copy-on-write
    }
  }
  return n;
}

Status KvCacheManager::prepare_write(BlockTable& table, int first_pos, int count) {
  HS_CHECK(first_pos >= 0 && count >= 0 && first_pos <= table.num_tokens)
      << "prepare_write [" << first_pos << ", +" << count << ") on a table of " << table.num_tokens << " tokens";
  if (count == 0) return Status::ok();
  const int bs = block_size();
  const int first = first_pos / bs;
  const int last = (first_pos + count - 1) / bs;
  const int64_t needed = blocks_needed(table, first_pos, count);
  if (needed > pool_.num_free()) {
    return Status::resource_exhausted("KV cache full: positions [" + std::to_string(first_pos) + ", " +
                                      std::to_string(first_pos + count) + ") need " + std::to_string(needed) +
                                      " free blocks, " + std::to_string(pool_.num_free()) + " of " +
                                      std::to_string(pool_.num_blocks()) + " are free");
  }
  // From here on every allocation succeeds: the checks above counted each one.
  for (int i = first; i <= last; ++i) {
    if (i >= static_cast<int>(table.blocks.size())) {
      HS_CHECK(i == static_cast<int>(table.blocks.size())) << "hole in block table at " << i;
      table.blocks.push_back(*pool_.allocate());
      continue;
    }
    int32_t& b = table.blocks[i];
    // A released page is behind every future query's window: nothing writes there.
    HS_CHECK(b != kNoBlock) << "write into released logical block " << i;
    if (pool_.ref_count(b) > 1) {
      const int32_t copy = *pool_.allocate();
      copy_block(b, copy);
      pool_.release(b);
      b = copy;
    } else if (pool_.is_cached(b)) {
      // Rewriting a published block: its key no longer describes it.
      pool_.forget_cached(b);
    }
  }
  // A rewrite of published positions invalidates the chain from there on.
  if (static_cast<int>(table.prefix_keys.size()) > first) table.prefix_keys.resize(static_cast<size_t>(first));
  table.num_tokens = std::max(table.num_tokens, first_pos + count);
  return Status::ok();
}

void KvCacheManager::free(BlockTable& table) {
  // Tail first, so that a sequence's last blocks (least likely shared by later prompts) are
  // the first cached blocks to be evicted.
  for (auto it = table.blocks.rbegin(); it != table.blocks.rend(); ++it) {
    if (*it != kNoBlock) pool_.release(*it);
  }
  for (int32_t b : table.state_blocks) pool_.release(b);
  for (int32_t g : table.lane_pages) {
    if (g != kNoBlock) heads_.release(g);
  }
  table = BlockTable{};
}

Status KvCacheManager::hold_state_bytes(BlockTable& table, int64_t bytes) {
  const int64_t more = blocks_for_bytes(bytes) - static_cast<int64_t>(table.state_blocks.size());
  if (more <= 0) return Status::ok();
  if (more > pool_.num_free()) {
    return Status::resource_exhausted("KV cache full: the attention state's " + std::to_string(bytes) +
                                      " bytes need " + std::to_string(more) + " more blocks, " +
                                      std::to_string(pool_.num_free()) + " of " + std::to_string(pool_.num_blocks()) +
                                      " are free");
  }
  for (int64_t i = 0; i < more; ++i) table.state_blocks.push_back(*pool_.allocate());
  return Status::ok();
}

void KvCacheManager::fork(const BlockTable& parent, BlockTable& child) {
  HS_CHECK(child.empty()) << "fork into a non-empty table";
  for (int32_t b : parent.blocks) {
    if (b != kNoBlock) pool_.retain(b);
  }
  for (int32_t g : parent.lane_pages) {
    if (g != kNoBlock) heads_.retain(g);
  }
  child = parent;
  child.state_blocks.clear();
}

int KvCacheManager::release_invisible(BlockTable& table, const StreamingRule& rule, int next_query_pos) {
  const int bs = block_size();
  const int first = (rule.sink_end + bs - 1) / bs;             // first page wholly after the sinks
  const int end = rule.local_start(next_query_pos) / bs;       // pages before it end <= local_start
  const int stop = std::min(end, static_cast<int>(table.blocks.size()));
  int released = 0;
  for (int i = std::max(first, table.release_cursor); i < stop; ++i) {
    if (table.blocks[i] == kNoBlock) continue;
    pool_.release(table.blocks[i]);
    table.blocks[i] = kNoBlock;
    ++released;
  }
  table.release_cursor = std::max(table.release_cursor, stop);
  return released;
}

int KvCacheManager::match_prefix(BlockTable& table, std::string_view cache_namespace,
                                 std::span<const int32_t> tokens) {
  HS_CHECK(table.empty()) << "match_prefix on a table that already holds " << table.num_tokens << " tokens";
  if (tokens.empty()) return 0;
  const int bs = block_size();
  const size_t max_blocks = (tokens.size() - 1) / static_cast<size_t>(bs);
  PrefixKey key = prefix_key_root(cache_namespace);
  for (size_t i = 0; i < max_blocks; ++i) {
    key = prefix_key_next(key, tokens.subspan(i * bs, static_cast<size_t>(bs)));
    const std::optional<int32_t> b = pool_.find_cached(key);
    if (!b) break;
    pool_.acquire_cached(*b);
    table.blocks.push_back(*b);
    table.prefix_keys.push_back(key);
  }
  table.num_tokens = static_cast<int>(table.blocks.size()) * bs;
  return table.num_tokens;
}

int KvCacheManager::publish_full_blocks(BlockTable& table, std::string_view cache_namespace,
                                        std::span<const int32_t> tokens) {
  const int bs = block_size();
  const size_t num_full = std::min(static_cast<size_t>(table.num_tokens), tokens.size()) / static_cast<size_t>(bs);
  int published = 0;
  for (size_t i = table.prefix_keys.size(); i < num_full; ++i) {
    const PrefixKey parent = i == 0 ? prefix_key_root(cache_namespace) : table.prefix_keys[i - 1];
    const PrefixKey key = prefix_key_next(parent, tokens.subspan(i * bs, static_cast<size_t>(bs)));
    table.prefix_keys.push_back(key);
    // A released page cannot be published; a key another sequence already published keeps
    // its block (ours stays private and is freed with the sequence).
    const int32_t b = table.blocks[i];
    if (b != kNoBlock && pool_.register_cached(b, key)) ++published;
  }
  return published;
}

KvCacheStats KvCacheManager::stats() const {
  KvCacheStats s;
  s.num_blocks = pool_.num_blocks();
  s.num_used = pool_.num_used();
  s.num_free = pool_.num_free();
  s.num_cached_free = pool_.num_cached_free();
  s.num_cached = pool_.num_cached();
  s.num_carved = heads_.num_carved_blocks();
  s.num_head_pages_used = heads_.num_used_pages();
  s.block_size = block_size();
  s.bytes_per_block = layout().bytes_per_block_all_layers();
  s.dtype = layout().dtype;
  return s;
}

int64_t KvCacheManager::peak_blocks(const std::optional<StreamingRule>& rule, int64_t num_positions,
                                    int64_t max_step_tokens, int num_kept_lanes) const {
  const int64_t all = blocks_for_positions(num_positions);
  if (!rule) return all;
  // During a step of up to C new positions the sequence holds the sink pages plus the pages
  // from the first query's local window start to the last new position: a span of at most
  // max_local_span - 1 + C positions, which can straddle one more page than it fills.
  const int64_t step = std::max<int64_t>(1, max_step_tokens);
  const int64_t sink_pages = blocks_for_positions(rule->sink_end);
  const int64_t window_pages = blocks_for_positions(rule->max_local_span() - 1 + step) + 1;
  const int64_t whole = std::min(all, sink_pages + window_pages);
  if (num_kept_lanes <= 0) return whole;
  if (!layout().head_pages_fit()) return all;
  // The other pages were split: their kept lanes fill carved blocks. A block is carved only
  // when the free head pages cannot take a page's kept lanes, so one sequence alone fills all
  // but the last of its carved blocks: ceil(split pages * kept / lanes) of them.
  const int64_t lanes = layout().lanes_per_block();
  const int64_t kept = std::min<int64_t>(num_kept_lanes, lanes);
  return std::min(all, whole + ((all - whole) * kept + lanes - 1) / lanes);
}

void KvCacheManager::copy_block(int32_t from, int32_t to) {
  const KvLayout& l = layout();
  const size_t n = l.block_elems() * kv_dtype_size(l.dtype);  // bytes
  for (int layer = 0; layer < l.num_layers; ++layer) {
    for (void* base : {storage_.key_data(layer), storage_.value_data(layer)}) {
      auto* bytes = static_cast<unsigned char*>(base);
      std::memcpy(bytes + static_cast<size_t>(to) * n, bytes + static_cast<size_t>(from) * n, n);
    }
  }
}

}  // namespace hotswap
