// libFuzzer target: parse_hashattention_adapter and parse_lsh_adapter (issue 13) must never
// crash, hang or leak on any bytes. Both parse every input (each rejects the other's type, so
// mutations of either seed reach both). What they reject is an InvalidArgument that says why;
// what they accept satisfies the invariants the masked attention relies on: every layer, a
// shape chain from head_dim to bits (1..64) on both sides, tensor sizes that match, finite
// values; for lsh, [head_dim + 1, C] with one C for all layers.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "adapters/hashattention_adapter_codec.h"
#include "adapters/lsh_adapter_codec.h"

namespace {

// The shape the seeds in tests/fuzz/corpus/hashattention_adapter were written for.
hotswap::ModelShape fuzz_shape() {
  hotswap::ModelShape s;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 8;
  s.hidden_size = 32;
  return s;
}

void require(bool ok) {
  if (!ok) std::abort();
}

void require_finite(const std::vector<float>& v, size_t expected_size) {
  require(v.size() == expected_size);
  for (float x : v) require(std::isfinite(x));
}

template <typename T>
void require_rejection_or(const hotswap::Result<T>& r) {
  if (!r.is_ok()) {
    require(!r.status().message().empty() && r.status().code() == hotswap::StatusCode::kInvalidArgument);
  }
}

void check_mlp(const std::vector<hotswap::HashLinear>& mlp, const hotswap::ModelShape& s, int bits) {
  require(!mlp.empty() && static_cast<int>(mlp.size()) <= hotswap::kMaxHashMlpDepth);
  int d_in = s.head_dim;
  for (const hotswap::HashLinear& x : mlp) {
    require(x.d_in == d_in && x.d_out >= 1);
    const size_t h = static_cast<size_t>(s.num_heads);
    require_finite(x.weight, h * static_cast<size_t>(x.d_in) * static_cast<size_t>(x.d_out));
    require_finite(x.bias, h * static_cast<size_t>(x.d_out));
    d_in = x.d_out;
  }
  require(d_in == bits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const hotswap::ModelShape shape = fuzz_shape();

  const auto hat = hotswap::parse_hashattention_adapter(bytes, shape);
  require_rejection_or(hat);
  if (hat.is_ok()) {
    const hotswap::HashAttentionAdapter& a = *hat.value();
    require(a.num_layers == shape.num_layers && a.num_heads == shape.num_heads && a.head_dim == shape.head_dim);
    require(a.bits >= 1 && a.bits <= hotswap::kMaxHashBits);
    require(a.layers.size() == static_cast<size_t>(shape.num_layers));
    for (const auto& layer : a.layers) {
      check_mlp(layer.query, shape, a.bits);
      check_mlp(layer.key, shape, a.bits);
    }
  }

  const auto lsh = hotswap::parse_lsh_adapter(bytes, shape);
  require_rejection_or(lsh);
  if (lsh.is_ok()) {
    const hotswap::LshAdapter& a = *lsh.value();
    require(a.num_layers == shape.num_layers && a.rows == shape.head_dim + 1);
    require(a.columns >= 1 && a.columns <= hotswap::kMaxLshColumns);
    require(a.projection.size() == static_cast<size_t>(shape.num_layers));
    for (const auto& p : a.projection) require_finite(p, static_cast<size_t>(a.rows) * static_cast<size_t>(a.columns));
  }
  require(!(hat.is_ok() && lsh.is_ok()));  // one document is never both types
  return 0;
}
