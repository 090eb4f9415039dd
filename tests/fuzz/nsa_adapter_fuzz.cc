// libFuzzer target: parse_nsa_adapter (JSON and safetensors, told apart by the first bytes)
// must never crash, hang or leak on any bytes. What it rejects is an InvalidArgument that says
// why; what it accepts satisfies the adapter invariants the attention kernels rely on (config
// in range, every tensor of the expected size and finite). The model shape is the tiny llama
// of tests/golden, so the NSA fixtures there are valid seeds.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "adapters/nsa_adapter_codec.h"

namespace {

hotswap::ModelShape fuzz_shape() {
  hotswap::ModelShape s;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 24;
  s.hidden_size = 64;
  return s;
}

void require(bool ok) {
  if (!ok) std::abort();
}

void require_finite(const std::vector<float>& v, size_t expected_size) {
  require(v.size() == expected_size);
  for (float x : v) require(std::isfinite(x));
}

void check_compressor(const hotswap::NsaCompressor& c, const hotswap::NsaConfig& cfg, const hotswap::ModelShape& s) {
  const size_t kv = static_cast<size_t>(s.num_kv_heads), d = static_cast<size_t>(s.head_dim);
  const size_t l = static_cast<size_t>(cfg.compress_block_size), hidden = static_cast<size_t>(cfg.mlp_hidden_size);
  require_finite(c.pos_emb, kv * l * d);
  if (c.method == hotswap::NsaCompression::kMaxPool) {
    require(c.w1.empty() && c.b1.empty() && c.w2.empty() && c.b2.empty());
    return;
  }
  require_finite(c.w1, kv * hidden * l * d);
  require_finite(c.b1, kv * hidden);
  require_finite(c.w2, kv * d * hidden);
  require_finite(c.b2, kv * d);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const hotswap::ModelShape shape = fuzz_shape();
  const auto result = hotswap::parse_nsa_adapter(bytes, shape);
  if (!result.is_ok()) {
    require(!result.status().message().empty() && result.status().code() == hotswap::StatusCode::kInvalidArgument);
    return 0;
  }
  const hotswap::NsaAdapter& a = *result.value();
  const hotswap::NsaConfig& c = a.config;
  require(c.compress_block_size >= 1 && c.compress_stride >= 1 && c.compress_stride <= c.compress_block_size);
  require(c.selection_block_size >= c.compress_stride && c.selection_block_size % c.compress_stride == 0);
  require(c.num_selected_blocks >= 1 && c.sliding_window_size >= 1 && c.num_mem_tokens >= 0);
  require(c.uses_mlp() == (c.mlp_hidden_size > 0));
  require(a.layers.size() == static_cast<size_t>(shape.num_layers));
  const size_t kv = static_cast<size_t>(shape.num_kv_heads), d = static_cast<size_t>(shape.head_dim);
  for (const hotswap::NsaLayerWeights& layer : a.layers) {
    check_compressor(layer.k, c, shape);
    check_compressor(layer.v, c, shape);
    require_finite(layer.mem_kv, 2 * kv * static_cast<size_t>(c.num_mem_tokens) * d);
    require_finite(layer.gate_w, 3 * static_cast<size_t>(shape.num_heads) * static_cast<size_t>(shape.hidden_size));
    require_finite(layer.gate_b, 3 * static_cast<size_t>(shape.num_heads));
  }
  return 0;
}
