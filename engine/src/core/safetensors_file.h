// Safetensors files, memory-mapped: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}} (+ optional __metadata__), then the raw data.
// Every offset, dtype and shape is validated before a view is handed out, so a hostile
// file cannot make a view point outside the mapping.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace hotswap {

struct SafetensorsHeader {
  std::map<std::string, TensorView> tensors;  // views into the data region
  std::map<std::string, std::string> metadata;
};

// Parses and validates a whole in-memory safetensors image (header + data). The views point
// into `bytes`, which must outlive them. Throws LoadError(path_for_errors, ...).
SafetensorsHeader parse_safetensors(std::string_view bytes, const std::string& path_for_errors);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws LoadError

  const SafetensorsHeader& header() const { return header_; }
  const MappedFile& file() const { return *file_; }

 private:
  std::unique_ptr<MappedFile> file_;
  SafetensorsHeader header_;
};

}  // namespace hotswap
