#include "model/quantized_weights.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <new>

#include "core/load_error.h"

namespace hotswap {
namespace {

namespace fs = std::filesystem;

// One projection: where it comes from, where its quantised view goes, and its name in the layout.
struct Entry {
  std::string name;
  const TensorView* source;
  kernels::Q8Matrix* target;
};

uint64_t align64(uint64_t v) { return (v + 63) / 64 * 64; }

uint64_t qs_bytes(kernels::QuantFormat f, const TensorView& t) {
  return static_cast<uint64_t>(kernels::quant_qs_bytes(f, t.shape[0], t.shape[1]));
}

uint64_t entry_bytes(kernels::QuantFormat f, const TensorView& t) {
  return qs_bytes(f, t) + align64(static_cast<uint64_t>(kernels::q8_scale_count(t.shape[0], t.shape[1])) * 2);
}

// Points every entry's view into `payload` (entries back to back, each 64-byte aligned).
void place(kernels::QuantFormat f, const std::vector<Entry>& entries, const uint8_t* payload) {
  uint64_t offset = 0;
  for (const Entry& e : entries) {
    e.target->qs = payload + offset;
    e.target->scales = reinterpret_cast<const uint16_t*>(payload + offset + qs_bytes(f, *e.source));
    e.target->n = e.source->shape[0];
    e.target->k = e.source->shape[1];
    e.target->format = f;
    offset += entry_bytes(f, *e.source);
  }
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::vector<std::string> q8_cache_paths(const std::string& model_dir, const WeightCacheOptions& options,
                                        kernels::QuantFormat format) {
  const std::string suffix = std::string("-") + kernels::quant_format_name(format) + ".cache";
  std::vector<std::string> paths;
  if (options.next_to_model) paths.push_back((fs::path(model_dir) / ("hotswap" + suffix)).string());
  if (!options.cache_dir.empty()) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(model_dir, ec);
    if (ec) canonical = fs::absolute(model_dir);
    const std::string text = canonical.string();
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the model path: one cache file per model
    for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
    paths.push_back((fs::path(options.cache_dir) / "weights" / (hex64(h) + suffix)).string());
  }
  return paths;
}

std::unique_ptr<QuantizedWeights> QuantizedWeights::load(const std::string& model_dir, const ModelWeights& weights,
                                                         kernels::QuantFormat format,
                                                         const WeightCacheOptions& options) {
  std::unique_ptr<QuantizedWeights> q(new QuantizedWeights());
  q->format_ = format;
  q->layers.resize(weights.layers.size());
  std::vector<Entry> entries;
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    const LayerWeights& w = weights.layers[l];
    QuantizedLayer& t = q->layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    entries.push_back({p + "q_proj", &w.q_proj, &t.q_proj});
    entries.push_back({p + "k_proj", &w.k_proj, &t.k_proj});
    entries.push_back({p + "v_proj", &w.v_proj, &t.v_proj});
    entries.push_back({p + "o_proj", &w.o_proj, &t.o_proj});
    entries.push_back({p + "gate_proj", &w.gate_proj, &t.gate_proj});
    entries.push_back({p + "up_proj", &w.up_proj, &t.up_proj});
    entries.push_back({p + "down_proj", &w.down_proj, &t.down_proj});
  }
  entries.push_back({"lm_head", &weights.lm_head, &q->lm_head});
  std::string layout;
  uint64_t payload_bytes = 0;
  for (const Entry& e : entries) {
    layout += e.name + " " + shape_string(e.source->shape) + " " + std::string(dtype_name(e.source->dtype)) + "\n";
    payload_bytes += entry_bytes(format, *e.source);
  }
  q->bytes_ = payload_bytes;
  std::vector<const SafetensorsFile*> shards;
  for (const auto& f : weights.files()) shards.push_back(f.get());
  const std::string key = q8_cache_key(shards, layout, format);
  const std::vector<std::string> paths = q8_cache_paths(model_dir, options, format);

  for (const std::string& path : paths) {
    std::string why;
    Q8CacheFile cached = open_q8_cache(path, key, payload_bytes, &why);
    if (cached.file == nullptr) {
      spdlog::debug("event=q8_cache_skipped path={} reason=\"{}\"", path, why);
      continue;
    }
    q->mapped_ = std::move(cached);
    place(format, entries, q->mapped_.payload);
    q->source_ = Source::kCache;
    q->cache_path_ = path;
    return q;
  }

  q->owned_ = static_cast<uint8_t*>(::operator new(payload_bytes, std::align_val_t{64}));
  uint64_t offset = 0;
  for (const Entry& e : entries) {
    uint8_t* qs = q->owned_ + offset;
    auto* scales = reinterpret_cast<uint16_t*>(qs + qs_bytes(format, *e.source));
    const std::string error = kernels::quantize_weights(*e.source, format, qs, scales);
    if (!error.empty())
      throw LoadError(model_dir, "cannot quantise " + e.name + " to " + kernels::quant_format_name(format) + ": " + error);
    // The padding between entries: deterministic bytes, so the checksum is reproducible.
    const uint64_t used =
        qs_bytes(format, *e.source) + static_cast<uint64_t>(kernels::q8_scale_count(e.source->shape[0], e.source->shape[1])) * 2;
    std::fill(qs + used, qs + entry_bytes(format, *e.source), uint8_t{0});
    offset += entry_bytes(format, *e.source);
  }
  place(format, entries, q->owned_);
  std::string reasons;
  for (const std::string& path : paths) {
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    std::string why;
    if (write_q8_cache(path, key, q->owned_, payload_bytes, &why)) {
      q->cache_path_ = path;
      return q;
    }
    reasons += (reasons.empty() ? "" : "; ") + why;
  }
  if (!paths.empty()) spdlog::warn("event=q8_cache_not_written reason=\"{}\" (the next start quantises again)", reasons);
  return q;
}

QuantizedWeights::~QuantizedWeights() {
  if (owned_ != nullptr) ::operator delete(owned_, std::align_val_t{64});
}

}  // namespace hotswap
