// libFuzzer target: AdapterRegistry::put with any name, body and encoding must never crash,
// and must either register exactly the uploaded bytes (get/pin report their sha256) or
// refuse with InvalidArgument and a message while leaving what is registered unchanged.
// Input: byte 0 = flags (bit 0: safetensors, bit 1: remove the name afterwards), byte 1 =
// name length, then the name, then the body. The registry has no adapter directory: this
// target is about parsing, naming and the map, not the filesystem.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "adapters/adapter_registry.h"
#include "adapters/sha256.h"

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

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hotswap;
  static AdapterRegistry registry(fuzz_shape(), "fuzz/base", "", 1 << 20);
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const size_t name_length = std::min<size_t>(data[1] % 70, size - 2);
  const std::string name(reinterpret_cast<const char*>(data + 2), name_length);
  const std::string_view body(reinterpret_cast<const char*>(data + 2 + name_length), size - 2 - name_length);
  const AdapterEncoding encoding = (flags & 1) ? AdapterEncoding::kSafetensors : AdapterEncoding::kJson;

  const Result<AdapterInfo> before = registry.get(name);
  const int64_t registered_before = registry.stats().registered;
  const Result<AdapterPutResult> put = registry.put(name, body, encoding);
  if (put.is_ok()) {
    check(validate_adapter_name(name).is_ok());
    check(put.value().created == !before.is_ok());
    const std::string digest = sha256_hex(body);
    check(put.value().info.sha256 == digest);
    check(registry.get(name).is_ok() && registry.get(name).value().sha256 == digest);
    const Result<std::shared_ptr<const Adapter>> pinned = registry.pin(name);
    check(pinned.is_ok() && pinned.value()->sha256() == digest && pinned.value()->name() == name);
    check(pinned.value()->num_layers() == fuzz_shape().num_layers);
  } else {
    check(put.status().code() == StatusCode::kInvalidArgument && !put.status().message().empty());
    check(registry.stats().registered == registered_before);
    const Result<AdapterInfo> after = registry.get(name);
    check(after.is_ok() == before.is_ok());
    if (before.is_ok()) check(after.value().sha256 == before.value().sha256);
  }
  if ((flags & 2) && registry.get(name).is_ok()) {
    check(registry.remove(name).is_ok());
    check(registry.get(name).status().code() == StatusCode::kNotFound);
  }
  if (registry.stats().registered > 64) {
    for (const AdapterInfo& info : registry.list()) check(registry.remove(info.name).is_ok());
  }
  return 0;
}
