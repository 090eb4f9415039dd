#include "adapters/adapter_tensors.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>

#include "adapters/adapter_json.h"
#include "core/check.h"
#include "core/load_error.h"

namespace hotswap {

std::optional<int> parse_canonical_index(std::string_view s) {
  // Digits only: from_chars accepts a sign, and "-2" must not index layer -2.
  if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::pair<int, std::string_view>> split_layer_prefix(std::string_view key, std::string_view prefix) {
  if (!key.starts_with(prefix)) return std::nullopt;
  key.remove_prefix(prefix.size());
  const size_t dot = key.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::optional<int> layer = parse_canonical_index(key.substr(0, dot));
  if (!layer) return std::nullopt;
  return std::make_pair(*layer, key.substr(dot + 1));
}

std::string tensor_where(std::string_view key, std::optional<int> layer) {
  return "tensor " + adapter_json::quote(key) + (layer ? " (layer " + std::to_string(*layer) + ")" : std::string());
}

Result<SafetensorsHeader> read_adapter_safetensors(std::string_view bytes, const std::string& what) {
  try {
    return parse_safetensors(bytes, what);
  } catch (const LoadError& e) {
    return Status::invalid_argument(e.what());
  } catch (const std::exception& e) {
    return Status::invalid_argument(what + ": " + e.what());
  }
}

Status check_metadata_type(const std::map<std::string, std::string>& metadata, std::string_view expected) {
  std::string want = "\"";  // appended, not "literal" + string: GCC 12 warns -Wrestrict falsely
  want.append(expected);
  want += '"';
  const auto it = metadata.find("type");
  if (it == metadata.end()) {
    return Status::invalid_argument("__metadata__ key 'type': missing; expected " + want);
  }
  if (it->second != expected) {
    return Status::invalid_argument("__metadata__ key 'type': expected " + want + ", got " +
                                    adapter_json::quote(it->second));
  }
  return Status::ok();
}

Status check_float_dtype(const std::string& where, DType dtype) {
  if (dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16) return Status::ok();
  return Status::invalid_argument(where + ": dtype " + std::string(dtype_name(dtype)) + "; expected F32, F16 or BF16");
}

float float_element(DType dtype, const void* data, size_t i) {
  const char* bytes = static_cast<const char*>(data);
  switch (dtype) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, bytes + 4 * i, 4);
      return f;
    }
    case DType::kF16:
    case DType::kBF16: {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      return dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
    default: HS_CHECK(false) << "dtype " << dtype_name(dtype) << " reached conversion";
  }
  return 0;
}

Status non_finite_element(const std::string& where, size_t index, float value) {
  return Status::invalid_argument(where + ": element " + std::to_string(index) + " is " +
                                  (std::isnan(value) ? std::string("NaN") : value > 0 ? "Infinity" : "-Infinity") +
                                  "; expected finite values");
}

Status tensor_to_finite_f32(const std::string& where, DType dtype, const void* data, size_t numel,
                            std::vector<float>* out) {
  out->resize(numel);
  for (size_t i = 0; i < numel; ++i) {
    const float f = float_element(dtype, data, i);
    if (!std::isfinite(f)) {
      out->clear();
      return non_finite_element(where, i, f);
    }
    (*out)[i] = f;
  }
  return Status::ok();
}

}  // namespace hotswap
