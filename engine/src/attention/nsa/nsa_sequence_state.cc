#include "attention/nsa/nsa_sequence_state.h"

#include <algorithm>

#include "core/check.h"

namespace hotswap {

NsaSequenceState::NsaSequenceState(std::shared_ptr<const NsaAdapter> adapter, CompressedBlockPool& pool)
    : adapter_(std::move(adapter)), pool_(&pool) {
  HS_CHECK(adapter_ != nullptr) << "NsaSequenceState needs an adapter";
  HS_CHECK(pool.num_kv_heads() == adapter_->num_kv_heads && pool.head_dim() == adapter_->head_dim)
      << "compressed-block pool is for Hkv=" << pool.num_kv_heads() << " d=" << pool.head_dim()
      << ", the adapter for Hkv=" << adapter_->num_kv_heads << " d=" << adapter_->head_dim;
  layers_.resize(static_cast<size_t>(adapter_->num_layers));
}

NsaSequenceState::~NsaSequenceState() { reset(); }

void NsaSequenceState::on_keys_written(int layer, int first, int count) {
  if (layer != 0) return;
  const NsaConfig& c = adapter_->config;
  for (int p = std::max(first, num_prompt_tokens_); p < first + count; ++p) {
    const double visible = static_cast<double>(p) + 1.0;
    const double read = std::min<double>(visible, static_cast<double>(c.num_selected_blocks) * c.selection_block_size) +
                        std::min<double>(visible, c.sliding_window_size) +
                        static_cast<double>(c.num_compressed_blocks(p + 1));
    density_sum_ += std::min(1.0, read / visible);
    ++density_count_;
  }
}

void NsaSequenceState::add_usage(StreamUsage* usage) const {
  if (density_count_ == 0) return;
  usage->attention_density = density_sum_ / static_cast<double>(density_count_);
  usage->attention_config = R"({"impl":"nsa"})";  // the density histogram's label
}

void NsaSequenceState::reset() {
  for (Layer& l : layers_) {
    for (int32_t page : l.pages) pool_->release(page);
    l = Layer{};
  }
}

int64_t NsaSequenceState::num_pages() const {
  int64_t n = 0;
  for (const Layer& l : layers_) n += static_cast<int64_t>(l.pages.size());
  return n;
}

Status NsaSequenceState::grow(int layer, int64_t num_entries) {
  Layer& l = layers_[static_cast<size_t>(layer)];
  const int64_t e = pool_->entries_per_page();
  const int64_t want = (num_entries + e - 1) / e;
  while (static_cast<int64_t>(l.pages.size()) < want) {
    const std::optional<int32_t> page = pool_->allocate();
    if (!page) {
      return Status::resource_exhausted("nsa compressed-block cache is full (" +
                                        std::to_string(pool_->num_pages_in_use()) + " of " +
                                        std::to_string(pool_->max_pages()) + " pages in use)");
    }
    l.pages.push_back(*page);
  }
  return Status::ok();
}

int64_t NsaSequenceState::bytes_for(const NsaAdapter& adapter, const ModelShape& shape, int64_t num_positions,
                                    int entries_per_page) {
  const int64_t e = entries_per_page;
  const int64_t pages = (adapter.config.num_compressed_blocks(num_positions) + e - 1) / e;
  return shape.num_layers * pages *
         static_cast<int64_t>(CompressedBlockPool::page_bytes_for(shape.num_kv_heads, shape.head_dim, entries_per_page));
}

Status NsaSequenceState::reserve(int64_t num_positions) {
  const int64_t entries = adapter_->config.num_compressed_blocks(num_positions);
  for (int layer = 0; layer < num_layers(); ++layer) {
    if (Status s = grow(layer, entries); !s) return s;
  }
  return Status::ok();
}

void NsaSequenceState::ensure_pages(int layer, int64_t num_entries) {
  const Status s = grow(layer, num_entries);
  HS_CHECK(s.is_ok()) << s.message() << "; reserve() pages before the forward pass when the pool is capped";
}

std::vector<float> NsaSequenceState::compressed_key(int layer, int64_t j, int kv_head) const {
  const Layer& l = layers_[static_cast<size_t>(layer)];
  HS_CHECK(j >= 0 && j < l.num_entries) << "compressed block " << j << " of layer " << layer << " does not exist";
  const int64_t e = pool_->entries_per_page(), d = pool_->head_dim();
  const float* base = pool_->keys(l.pages[static_cast<size_t>(j / e)]) + kv_head * d * e + j % e;
  std::vector<float> out(static_cast<size_t>(d));
  for (int64_t c = 0; c < d; ++c) out[static_cast<size_t>(c)] = base[c * e];
  return out;
}

std::vector<float> NsaSequenceState::compressed_value(int layer, int64_t j, int kv_head) const {
  const Layer& l = layers_[static_cast<size_t>(layer)];
  HS_CHECK(j >= 0 && j < l.num_entries) << "compressed block " << j << " of layer " << layer << " does not exist";
  const int64_t e = pool_->entries_per_page(), d = pool_->head_dim();
  const float* base = pool_->values(l.pages[static_cast<size_t>(j / e)]) + (kv_head * e + j % e) * d;
  return std::vector<float>(base, base + d);
}

}  // namespace hotswap
