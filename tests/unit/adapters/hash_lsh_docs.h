// Builds hashattention and lsh adapter documents (safetensors images) for the codec and
// registry tests: tensors with chosen dtypes and shapes, values derived from a seed, and
// hooks to break any one of them.
#pragma once

#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <cstdint>
#include <functional>
#include <set>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/model_shape.h"
#include "core/dtype.h"
#include "engine/status.h"

namespace hotswap::testing {

struct StTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;  // converted to `dtype` when written
  std::string dtype = "F32";  // F32 | F16 | BF16 | I32 (written as int32 of the values)
};
using StTensors = std::vector<std::pair<std::string, StTensor>>;  // in file order

// The raw little-endian bytes of one tensor.
inline std::string tensor_bytes(const StTensor& t) {
  std::string out;
  for (float f : t.values) {
    if (t.dtype == "F32" || t.dtype == "I32") {
      const int32_t i = static_cast<int32_t>(f);
      char b[4];
      if (t.dtype == "F32") std::memcpy(b, &f, 4);
      else std::memcpy(b, &i, 4);
      out.append(b, 4);
    } else {
      const uint16_t h = t.dtype == "BF16" ? f32_to_bf16(f) : f32_to_f16(f);
      char b[2];
      std::memcpy(b, &h, 2);
      out.append(b, 2);
    }
  }
  return out;
}

// An 8-byte little-endian header length, the header JSON ({__metadata__, name: {dtype, shape,
// data_offsets}}), then the data.
inline std::string st_image(const std::map<std::string, std::string>& metadata, const StTensors& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& [name, t] : tensors) {
    const size_t begin = data.size();
    data += tensor_bytes(t);
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string h = header.dump();
  std::string out(8, '\0');
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + h + data;
}

inline StTensor seeded(std::vector<int64_t> shape, int seed, const std::string& dtype = "F32") {
  StTensor t{std::move(shape), {}, dtype};
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  // Multiples of 1/64 in [-0.75, 0.77]: exact in F16 and BF16 as well.
  for (int64_t i = 0; i < n; ++i) t.values.push_back(static_cast<float>(((seed * 37 + i * 11) % 97) - 48) / 64.0f);
  return t;
}

// The tensors of a hashattention adapter: per layer, query and key MLPs with these widths
// (the first is head_dim, the last the bits).
inline StTensors hash_tensors(const ModelShape& m, const std::vector<int>& query_widths,
                              const std::vector<int>& key_widths, int seed = 1, const std::string& dtype = "F32") {
  StTensors out;
  for (int l = 0; l < m.num_layers; ++l) {
    for (const auto& [side, widths] : {std::pair{"query", query_widths}, std::pair{"key", key_widths}}) {
      for (size_t i = 0; i + 1 < widths.size(); ++i) {
        const std::string p = "layers." + std::to_string(l) + "." + side + "." + std::to_string(i) + ".";
        out.emplace_back(p + "weight", seeded({m.num_heads, widths[i], widths[i + 1]}, seed + l * 7 + static_cast<int>(i), dtype));
        out.emplace_back(p + "bias", seeded({m.num_heads, widths[i + 1]}, seed + l * 5 + static_cast<int>(i) + 3, dtype));
      }
    }
  }
  return out;
}

inline std::map<std::string, std::string> hash_metadata(const std::string& activation = "silu") {
  return {{"type", "hashattention"}, {"activation", activation}};
}

inline std::string hash_doc(const ModelShape& m, int seed = 1, const std::string& dtype = "F32") {
  return st_image(hash_metadata(), hash_tensors(m, {m.head_dim, 32, 16}, {m.head_dim, 16}, seed, dtype));
}

inline StTensors lsh_tensors(const ModelShape& m, int columns, int seed = 1, const std::string& dtype = "F32") {
  StTensors out;
  for (int l = 0; l < m.num_layers; ++l)
    out.emplace_back("layers." + std::to_string(l) + ".projection", seeded({m.head_dim + 1, columns}, seed + l, dtype));
  return out;
}

inline std::string lsh_doc(const ModelShape& m, int columns = 64, int seed = 1, const std::string& dtype = "F32") {
  return st_image({{"type", "lsh"}}, lsh_tensors(m, columns, seed, dtype));
}

// The tensor called `name` in `t` (which must hold it).
inline StTensor& find_tensor(StTensors& t, const std::string& name) {
  for (auto& [n, x] : t)
    if (n == name) return x;
  static StTensor none;
  return none;
}

inline void erase_tensor(StTensors& t, const std::string& name) {
  std::erase_if(t, [&](const auto& p) { return p.first == name; });
}


// A document a codec must reject, with its message: exact, or a substring when !exact.
struct BadCase {
  const char* what;
  std::function<std::string()> doc;
  std::string message;
  bool exact = true;
};

// Every case rejected with InvalidArgument and its own message (no two alike).
template <typename Parse>
void expect_each_rejected(const std::vector<BadCase>& cases, Parse parse) {
  std::set<std::string> messages;
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = parse(c.doc());
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    if (c.exact) EXPECT_EQ(r.status().message(), c.message);
    else EXPECT_THAT(r.status().message(), ::testing::HasSubstr(c.message));
    messages.insert(r.status().message());
  }
  EXPECT_EQ(messages.size(), cases.size()) << "every bad document has its own message";
}

}  // namespace hotswap::testing
