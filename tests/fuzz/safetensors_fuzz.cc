// Arbitrary bytes as a safetensors image (checkpoints, NSA adapter uploads): a LoadError or
// views that lie wholly inside the bytes, never a crash.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/load_error.h"
#include "core/safetensors_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto header = hotswap::parse_safetensors(bytes, "fuzz.safetensors");
    for (const auto& [name, view] : header.tensors) {
      const char* begin = static_cast<const char*>(view.data);
      if (begin < bytes.data() || begin + view.nbytes() > bytes.data() + bytes.size()) std::abort();
    }
  } catch (const hotswap::LoadError&) {
  }
  return 0;
}
