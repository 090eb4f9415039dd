#include "core/safetensors_file.h"

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/load_error.h"

namespace hotswap {

SafetensorsHeader parse_safetensors(std::string_view bytes, const std::string& path) {
  if (bytes.size() < 8) throw LoadError(path, "safetensors file is shorter than its 8-byte header length");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);  // little-endian on every supported host
  if (header_len > bytes.size() - 8)
    throw LoadError(path, "safetensors header length " + std::to_string(header_len) + " exceeds the file size " +
                              std::to_string(bytes.size()));
  const std::string_view header_text = bytes.substr(8, header_len);
  const char* data = bytes.data() + 8 + header_len;
  const uint64_t data_size = bytes.size() - 8 - header_len;

  nlohmann::json j = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw LoadError(path, "safetensors header is not a JSON object");

  SafetensorsHeader out;
  for (auto& [name, entry] : j.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw LoadError(path, "__metadata__ must be an object of strings");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw LoadError(path, "__metadata__ value '" + k + "' must be a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) throw LoadError(path, where + ": entry must be an object");
    auto dt = entry.find("dtype");
    auto sh = entry.find("shape");
    auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) throw LoadError(path, where + ": missing string 'dtype'");
    if (sh == entry.end() || !sh->is_array()) throw LoadError(path, where + ": missing array 'shape'");
    if (off == entry.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      throw LoadError(path, where + ": 'data_offsets' must be two non-negative integers");
    TensorView view;
    if (!parse_safetensors_dtype(dt->get<std::string>(), &view.dtype))
      throw LoadError(path, where + ": unsupported dtype '" + dt->get<std::string>() + "'");
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) throw LoadError(path, where + ": shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / dim)
        throw LoadError(path, where + ": shape is too large");
      numel *= dim;
      view.shape.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size)
      throw LoadError(path, where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                ") outside the data region of " + std::to_string(data_size) + " bytes");
    if (end - begin != numel * dtype_size(view.dtype))
      throw LoadError(path, where + ": shape " + shape_string(view.shape) + " of " +
                                std::string(dtype_name(view.dtype)) + " needs " +
                                std::to_string(numel * dtype_size(view.dtype)) + " bytes, data_offsets give " +
                                std::to_string(end - begin));
    view.data = data + begin;
    out.tensors.emplace(name, std::move(view));
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  header_ = parse_safetensors(
      std::string_view(reinterpret_cast<const char*>(file_->data()), file_->size()), path);
}

}  // namespace hotswap
