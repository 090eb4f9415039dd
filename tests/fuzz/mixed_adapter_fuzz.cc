// libFuzzer target: parse_mixed_adapter must never crash, hang or leak on any bytes, and what
// it accepts must satisfy the adapter invariants (every gate finite and in [0, 1], one per
// layer and query head, valid windows); what it rejects must say why.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "adapters/mixed_adapter_codec.h"

namespace {

hotswap::ModelShape fuzz_shape() {
  hotswap::ModelShape s;
  s.num_layers = 3;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 8;
  s.hidden_size = 32;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view doc(reinterpret_cast<const char*>(data), size);
  const hotswap::ModelShape shape = fuzz_shape();
  const auto result = hotswap::parse_mixed_adapter(doc, shape, "fuzz");
  if (!result.is_ok()) {
    if (result.status().message().empty() || result.status().code() != hotswap::StatusCode::kInvalidArgument) {
      std::abort();
    }
    return 0;
  }
  const hotswap::MixedAdapter& m = *result.value()->mixed();
  if (m.gates.size() != static_cast<size_t>(shape.num_layers * shape.num_heads)) std::abort();
  for (float g : m.gates) {
    if (!(g >= 0.0f && g <= 1.0f)) std::abort();
  }
  if (m.window.sink_window_size < 0 || m.window.recent_window_size < 1 || m.window.block_size < 1) std::abort();
  return 0;
}
