// Arbitrary bytes as a q8 / q4 weight cache file (model/q8_cache.h, an untrusted file next to
// the model or in the cache directory): refused with a reason, or accepted with a payload that
// lies wholly inside the mapping, never a crash. The expected key and payload size are those of
// the seed (tests/fuzz/corpus/q8_cache/valid.cache), so mutations of it reach every check. A
// file accepted for the q8 key is refused for the q4 one (the key carries the weight format).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "model/q8_cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/hotswap_q8_cache_fuzz_" + std::to_string(::getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  constexpr uint64_t kPayload = 256;
  std::string why;
  const hotswap::Q8CacheFile cache = hotswap::open_q8_cache(path, "hotswap q8 fuzz key\n", kPayload, &why);
  if (cache.file != nullptr) {
    const uint8_t* begin = cache.file->data();
    if (cache.payload < begin || cache.payload + kPayload > begin + cache.file->size()) std::abort();
    uint64_t sum = 0;
    for (uint64_t i = 0; i < kPayload; ++i) sum += cache.payload[i];  // reads every payload byte
    if (sum == 0xffffffffffffull) std::abort();
    std::string why_q4;
    if (hotswap::open_q8_cache(path, "hotswap q4 fuzz key\n", kPayload, &why_q4).file != nullptr) std::abort();
  } else if (why.empty()) {
    std::abort();  // a refusal always says why
  }
  std::remove(path.c_str());
  return 0;
}
