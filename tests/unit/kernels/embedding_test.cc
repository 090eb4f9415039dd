#include "kernels/embedding.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "isa_params.h"

namespace hotswap::kernels {
namespace {

class EmbeddingTest : public ForcedIsaTest {};

TEST_P(EmbeddingTest, RowsMatchReferenceExactly) {
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t dim : {1, 7, 16, 17, 100, 4096}) {
      const int64_t vocab = 5;
      const size_t elem = dtype_size(dtype);
      std::vector<uint8_t> bytes(static_cast<size_t>(vocab * dim) * elem + 8);
      uint8_t* data = bytes.data() + 2;  // unaligned, as inside a safetensors file
      for (int64_t i = 0; i < vocab * dim; ++i) {
        const float v = static_cast<float>(i % 101) * 0.37f - 17.0f;
        if (dtype == DType::kF32) {
          std::memcpy(data + i * 4, &v, 4);
        } else {
          const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
          std::memcpy(data + i * 2, &h, 2);
        }
      }
      const TensorView table{dtype, {vocab, dim}, data};
      for (int32_t id : {0, 3, 4}) {
        std::vector<float> out(static_cast<size_t>(dim)), ref(out.size());
        embedding_lookup(table, id, out.data());
        embedding_lookup_reference(table, id, ref.data());
        EXPECT_EQ(out, ref) << dtype_name(dtype) << " dim " << dim << " id " << id;
      }
    }
  }
}

TEST(EmbeddingDeathTest, OutOfRangeIdIsABug) {
  const float data[6] = {};
  const TensorView table{DType::kF32, {2, 3}, data};
  float out[3];
  EXPECT_DEATH(embedding_lookup(table, 2, out), "outside vocab");
}

INSTANTIATE_TEST_SUITE_P(AllIsas, EmbeddingTest, testing::ValuesIn(isas_on_this_cpu()), isa_param_name);

}  // namespace
}  // namespace hotswap::kernels
