// What the safetensors adapter codecs (nsa, hashattention, lsh) share to read untrusted
// tensors: the header parse without exceptions, the F32/F16/BF16 -> float32 conversion with
// the finiteness check, canonical indices in tensor names, and the message wording for each.
// read_adapter_safetensors() builds on parse_safetensors() (core/safetensors_file.h).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "engine/status.h"
#include "core/safetensors_file.h"

namespace hotswap {

// Canonical decimal index (digits only, no sign, no leading zeros, at most 9 digits), so two
// spellings of one layer or head cannot pass as different tensors.
std::optional<int> parse_canonical_index(std::string_view s);

// "<prefix><layer>.<rest>" -> (layer, rest) with a canonical layer index; nullopt otherwise.
std::optional<std::pair<int, std::string_view>> split_layer_prefix(std::string_view key, std::string_view prefix);

// "tensor 'K'" or "tensor 'K' (layer 3)", the name cut to 120 characters.
std::string tensor_where(std::string_view key, std::optional<int> layer = std::nullopt);

// parse_safetensors() with its LoadError (or any exception) as an InvalidArgument whose
// message starts with `what`. Views point into `bytes`. Never throws.
Result<SafetensorsHeader> read_adapter_safetensors(std::string_view bytes, const std::string& what);

// The header's __metadata__ "type" must be `expected`:
//   __metadata__ key 'type': missing; expected "hashattention"
//   __metadata__ key 'type': expected "hashattention", got 'lsh'
Status check_metadata_type(const std::map<std::string, std::string>& metadata, std::string_view expected);

// Ok for F32, F16 and BF16; otherwise "<where>: dtype I32; expected F32, F16 or BF16".
Status check_float_dtype(const std::string& where, DType dtype);

// Element i of little-endian raw data of an F32, F16 or BF16 tensor, as float32.
float float_element(DType dtype, const void* data, size_t i);

// "<where>: element 5 is NaN; expected finite values" (or Infinity / -Infinity).
Status non_finite_element(const std::string& where, size_t index, float value);

// The whole tensor (F32, F16 or BF16, checked by check_float_dtype first) as float32, every
// element finite; `numel` elements are read from `data`.
Status tensor_to_finite_f32(const std::string& where, DType dtype, const void* data, size_t numel,
                            std::vector<float>* out);

}  // namespace hotswap
