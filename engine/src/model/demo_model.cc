#include "engine/demo_model.h"

#include <fcntl.h>  // AT_FDCWD
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string_view>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "core/dtype.h"
#include "core/load_error.h"
#include "core/safetensors_file.h"

// The files of models/demo, placed in the binary by demo_model_data.S (.incbin).
#define HOTSWAP_EMBEDDED(sym)                                       \
  extern "C" const unsigned char hotswap_demo_##sym##_begin[];      \
  extern "C" const unsigned char hotswap_demo_##sym##_end[];
HOTSWAP_EMBEDDED(config)
HOTSWAP_EMBEDDED(generation_config)
HOTSWAP_EMBEDDED(model)
HOTSWAP_EMBEDDED(tokenizer)
HOTSWAP_EMBEDDED(tokenizer_config)
#undef HOTSWAP_EMBEDDED

namespace hotswap {
namespace fs = std::filesystem;
namespace {

struct EmbeddedFile {
  const char* name;
  const unsigned char* begin;
  const unsigned char* end;
  std::string_view bytes() const {
    return {reinterpret_cast<const char*>(begin), static_cast<size_t>(end - begin)};
  }
};

const EmbeddedFile kFiles[] = {
    {"config.json", hotswap_demo_config_begin, hotswap_demo_config_end},
    {"generation_config.json", hotswap_demo_generation_config_begin, hotswap_demo_generation_config_end},
    {"model.safetensors", hotswap_demo_model_begin, hotswap_demo_model_end},
    {"tokenizer.json", hotswap_demo_tokenizer_begin, hotswap_demo_tokenizer_end},
    {"tokenizer_config.json", hotswap_demo_tokenizer_config_begin, hotswap_demo_tokenizer_config_end},
};

constexpr const char* kVersionFile = "hotswap-demo-version";

// The embedded bf16 checkpoint widened to float32 (exactly: every bf16 value is a float), so
// that the demo is served with float32 arithmetic (matmul_precision auto computes a BF16
// checkpoint in bf16, rounding activations): a request then gives the same text alone or in a
// batch up to the last bit of the packed form (ARCHITECTURE.md, "Arithmetic"), and exactly with
// steps below 8 rows, which the server's tests that compare across batches use.
std::string widened_to_f32(std::string_view bf16_image) {
  const SafetensorsHeader header = parse_safetensors(bf16_image, "embedded demo model");
  nlohmann::json out_header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, view] : header.tensors) {  // std::map: a deterministic order
    const size_t begin = data.size();
    const int64_t n = view.numel();
    data.resize(begin + static_cast<size_t>(n) * sizeof(float));
    auto* dst = reinterpret_cast<float*>(data.data() + begin);
    const auto* src = static_cast<const unsigned char*>(view.data);
    for (int64_t i = 0; i < n; ++i) {
      if (view.dtype == DType::kBF16) {
        uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        dst[i] = bf16_to_f32(v);
      } else if (view.dtype == DType::kF32) {
        std::memcpy(dst + i, src + 4 * i, 4);
      } else {
        throw LoadError("embedded demo model", "tensor '" + name + "' is neither BF16 nor F32");
      }
    }
    out_header[name] = {{"dtype", "F32"}, {"shape", view.shape}, {"data_offsets", {begin, data.size()}}};
  }
  if (!header.metadata.empty()) out_header["__metadata__"] = header.metadata;
  std::string text = out_header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data region 8-byte aligned, as writers do
  std::string image(8, '\0');
  const uint64_t len = text.size();
  std::memcpy(image.data(), &len, 8);  // little-endian host (x86-64)
  return image + text + data;
}

// The embedded weights are gzipped (the repository keeps files under 5 MB): inflated here.
std::string gunzip(std::string_view gz) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw LoadError("embedded demo model", "inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  int rc = Z_OK;
  while (rc == Z_OK) {
    char buf[1 << 16];
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) throw LoadError("embedded demo model", "the gzipped weights are corrupt");
  return out;
}

std::string read_small(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

std::string embedded_demo_model_version() {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64 over every file's name and bytes
  for (const EmbeddedFile& f : kFiles) {
    for (char c : std::string_view(f.name)) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    for (char c : f.bytes()) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  // The layout written to the cache is part of the version: a cache written by a binary that
  // stored the weights another way (bf16, before they were widened) is rewritten.
  char buf[32];
  std::snprintf(buf, sizeof buf, "f32-%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string ensure_demo_model(const std::string& cache_dir) {
  const fs::path dir = fs::path(cache_dir) / "demo-model";
  const std::string version = embedded_demo_model_version();
  // This version is there already: on entry, and again once ours is written (another process
  // may have published it meanwhile).
  auto published = [&] { return fs::exists(dir / "model.safetensors") && read_small(dir / kVersionFile) == version; };
  if (published()) return dir.string();
  fs::create_directories(cache_dir);
  const fs::path tmp = fs::path(cache_dir) / (".demo-model.tmp." + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  auto write = [&](const std::string& name, std::string_view bytes) {
    std::ofstream out(tmp / name, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw LoadError((tmp / name).string(), "cannot write the demo model there");
  };
  for (const EmbeddedFile& f : kFiles) {
    if (std::string_view(f.name) == "model.safetensors") {
      write(f.name, widened_to_f32(gunzip(f.bytes())));
    } else if (std::string_view(f.name) == "config.json") {
      nlohmann::json config = nlohmann::json::parse(f.bytes());
      config["torch_dtype"] = "float32";
      write(f.name, config.dump(2) + "\n");
    } else {
      write(f.name, f.bytes());
    }
  }
  write(kVersionFile, version);
  // Publish without a moment in which a reader finds no model there (tests and servers that
  // start together share the cache): a process that published this version meanwhile wins,
  // an older version is swapped for ours in one step, and a directory rename onto another
  // that exists fails (the other one is then complete).
  std::error_code ec;
  if (published()) {
    fs::remove_all(tmp, ec);
    return dir.string();
  }
  const fs::path old = fs::path(cache_dir) / (".demo-model.old." + std::to_string(::getpid()));
  if (fs::exists(dir)) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
      fs::remove_all(tmp, ec);  // now the older version
      return dir.string();
    }
    fs::rename(dir, old, ec);  // a filesystem without the exchange: the older one aside first
  }
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp, ec);
  fs::remove_all(old, ec);
  return dir.string();
}

}  // namespace hotswap
