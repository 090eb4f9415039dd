#include "kv_cache/kv_storage.h"

#include "core/huge_buffer.h"

namespace hotswap {

KvStorage::Buffer KvStorage::allocate(size_t bytes) {
  return allocate_huge_buffer(bytes);
}

KvStorage::KvStorage(const KvLayout& layout) : layout_(layout) {
  HS_CHECK(kv_dtype_shape_error(layout.dtype, layout.head_dim).empty()) << kv_dtype_shape_error(layout.dtype, layout.head_dim);
  const size_t bytes = static_cast<size_t>(layout.num_layers) * layout.layer_elems() * kv_dtype_size(layout.dtype);
  k_ = allocate(bytes);
  v_ = allocate(bytes);
}

PagedKvView KvStorage::view(int layer, std::span<const int32_t> blocks, std::span<const int32_t> lane_pages) const {
  const KvLayout& l = layout_;
  PagedKvView v;
  v.k = key_data(layer);
  v.v = value_data(layer);
  v.blocks = blocks.data();
  v.num_logical_blocks = static_cast<int>(blocks.size());
  v.block_size = l.block_size;
  v.num_kv_heads = l.num_kv_heads;
  v.head_dim = l.head_dim;
  v.dtype = l.dtype;
  if (!lane_pages.empty()) {
    const int lanes = l.lanes_per_block();
    v.lane_pages = lane_pages.data() + static_cast<size_t>(layer) * l.num_kv_heads;
    v.num_lane_blocks = static_cast<int>(lane_pages.size() / static_cast<size_t>(lanes));
    v.lanes_per_block = lanes;
    v.lane_origin = -static_cast<int64_t>(static_cast<size_t>(layer) * l.layer_elems());
  }
  return v;
}

}  // namespace hotswap
