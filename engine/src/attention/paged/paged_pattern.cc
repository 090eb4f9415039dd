#include "attention/paged/paged_pattern.h"

#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "attention/sequence_attention.h"

namespace hotswap {
namespace {

constexpr const char* kValidFields = "impl, sink_window_size, recent_window_size, block_size, gate_threshold";
constexpr int64_t kMaxWindow = int64_t{1} << 30;  // matches adapters' kMaxWindowTokens

Status read_window(const nlohmann::json& v, const std::string& field, int64_t min_value, std::optional<int>* out) {
  if (!v.is_number_integer() || v.get<int64_t>() < min_value || v.get<int64_t>() > kMaxWindow ||
      (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kMaxWindow))) {
    return Status::invalid_argument("attention: field '" + field + "' must be an integer in [" +
                                    std::to_string(min_value) + ", " + std::to_string(kMaxWindow) + "], got " +
                                    v.dump());
  }
  *out = static_cast<int>(v.get<int64_t>());
  return Status::ok();
}

}  // namespace

const PagedPattern& paged_pattern(const LayerAttentionCall& call) {
  static const PagedPattern kEager;
  return call.seq != nullptr && call.seq->config ? static_cast<const PagedPattern&>(*call.seq->config) : kEager;
}

Status read_window_params(const nlohmann::json& params, WindowParams* out) {
  WindowParams p;
  if (params.is_object()) {
    for (const auto& [key, value] : params.items()) {
      Status s = Status::ok();
      if (key == "impl") continue;
      if (key == "sink_window_size") s = read_window(value, key, 0, &p.sink_window_size);
      else if (key == "recent_window_size") s = read_window(value, key, 1, &p.recent_window_size);
      else if (key == "block_size") s = read_window(value, key, 1, &p.block_size);
      else if (key == "gate_threshold") {
        if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0.0 ||
            value.get<double>() > 1.0) {
          return Status::invalid_argument("attention: field 'gate_threshold' must be a number in [0, 1], got " +
                                          value.dump());
        }
        p.gate_threshold = value.get<float>();
      } else {
        return Status::invalid_argument("attention: unknown field '" + key.substr(0, 64) +
                                        "'; valid fields: " + kValidFields);
      }
      if (!s) return s;
    }
  }
  *out = p;
  return Status::ok();
}

Status check_window(const StreamingWindow& w, const char* impl) {
  auto bad = [&](const char* field, int value, int min_value) {
    return Status::invalid_argument(std::string("attention '") + impl + "': " + field + " must be in [" +
                                    std::to_string(min_value) + ", " + std::to_string(kMaxWindow) + "], got " +
                                    std::to_string(value));
  };
  if (w.sink_window_size < 0 || w.sink_window_size > kMaxWindow) return bad("sink_window_size", w.sink_window_size, 0);
  if (w.recent_window_size < 1 || w.recent_window_size > kMaxWindow) {
    return bad("recent_window_size", w.recent_window_size, 1);
  }
  if (w.block_size < 1 || w.block_size > kMaxWindow) return bad("block_size", w.block_size, 1);
  return Status::ok();
}

void apply_window_overrides(const WindowParams& p, StreamingWindow* w) {
  if (p.sink_window_size) w->sink_window_size = *p.sink_window_size;
  if (p.recent_window_size) w->recent_window_size = *p.recent_window_size;
  if (p.block_size) w->block_size = *p.block_size;
}

std::string window_key(const StreamingWindow& w) {
  return "sink=" + std::to_string(w.sink_window_size) + ",recent=" + std::to_string(w.recent_window_size) +
         ",block=" + std::to_string(w.block_size);
}

}  // namespace hotswap
