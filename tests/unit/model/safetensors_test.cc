// Safetensors headers come from users' checkpoints and adapter uploads: every malformed or
// hostile header is a LoadError naming the problem, never a view outside the bytes.
#include "core/safetensors_file.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/load_error.h"

namespace hotswap {
namespace {

std::string image(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\x01');
}

std::string error_of(const std::string& bytes) {
  try {
    parse_safetensors(bytes, "x.safetensors");
  } catch (const LoadError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ParsesTensorsAndMetadata) {
  const auto h = parse_safetensors(
      image(R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"__metadata__":{"k":"v"}})", 12), "x");
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors.at("a").dtype, DType::kBF16);
  EXPECT_EQ(h.tensors.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h.metadata.at("k"), "v");
}

TEST(Safetensors, RejectsMalformedHeadersWithSpecificMessages) {
  struct Case {
    std::string bytes, expected;
  };
  std::string huge_len(8, '\xff');
  const Case cases[] = {
      {"abc", "shorter than its 8-byte header length"},
      {huge_len + "{}", "header length"},
      {image("not json", 0), "not a JSON object"},
      {image(R"([1,2])", 0), "not a JSON object"},
      {image(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8), "unsupported dtype 'F64'"},
      {image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), "needs 8 bytes, data_offsets give 4"},
      {image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4096]}})", 4), "outside the data region"},
      {image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8), "outside the data region"},
      {image(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "shape entries must be non-negative"},
      {image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}})", 4),
       "shape is too large"},
      {image(R"({"a":{"dtype":"F32","shape":[1]}})", 4), "'data_offsets' must be two non-negative integers"},
      {image(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), "missing string 'dtype'"},
      {image(R"({"a":3})", 0), "entry must be an object"},
      {image(R"({"__metadata__":{"k":1}})", 0), "__metadata__ value 'k' must be a string"},
  };
  for (const Case& c : cases) EXPECT_NE(error_of(c.bytes).find(c.expected), std::string::npos) << error_of(c.bytes);
}

}  // namespace
}  // namespace hotswap
