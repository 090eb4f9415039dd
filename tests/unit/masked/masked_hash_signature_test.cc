// hash_signature (one row, outputs held in registers) equals the batched hash_signatures
// that hashes the keys and a plain row-at-a-time MLP in the same order, bit for bit, for the
// reference's shape and ragged ones: query and key signatures must come from the same
// arithmetic.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "attention/masked/hash_functions.h"

namespace hotswap::masked {
namespace {

std::vector<HashLinear> random_mlp(const std::vector<int>& widths, int heads, std::mt19937& rng) {
  std::vector<HashLinear> mlp;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    HashLinear l;
    l.d_in = widths[i];
    l.d_out = widths[i + 1];
    std::normal_distribution<float> normal(0.0f, 1.0f / static_cast<float>(l.d_in));
    l.weight.resize(static_cast<size_t>(heads) * l.d_in * l.d_out);
    l.bias.resize(static_cast<size_t>(heads) * l.d_out);
    for (float& x : l.weight) x = normal(rng);
    for (float& x : l.bias) x = normal(rng) * 0.1f;
    mlp.push_back(std::move(l));
  }
  return mlp;
}

// The row-at-a-time form: y[o] += x_a * W[a, o] over a = 0, 1, ... for every output.
uint64_t plain_signature(const std::vector<HashLinear>& mlp, HashActivation act, int head, const float* x) {
  std::vector<float> in(x, x + mlp.front().d_in), out;
  for (size_t i = 0; i < mlp.size(); ++i) {
    const HashLinear& l = mlp[i];
    const float* w = l.weight.data() + static_cast<size_t>(head) * l.d_in * l.d_out;
    out.assign(static_cast<size_t>(l.d_out), 0.0f);
    for (int a = 0; a < l.d_in; ++a)
      for (int o = 0; o < l.d_out; ++o) out[static_cast<size_t>(o)] += in[static_cast<size_t>(a)] * w[static_cast<size_t>(a) * l.d_out + o];
    for (int o = 0; o < l.d_out; ++o) {
      const float y = out[static_cast<size_t>(o)] + l.bias[static_cast<size_t>(head) * l.d_out + o];
      out[static_cast<size_t>(o)] = i + 1 == mlp.size() ? y : apply_hash_activation(act, y);
    }
    in = out;
  }
  uint64_t sig = 0;
  for (int o = 0; o < mlp.back().d_out; ++o)
    if (in[static_cast<size_t>(o)] > 0.0f) sig |= uint64_t{1} << o;
  return sig;
}

TEST(MaskedHashSignature, OneRowEqualsTheBatchAndThePlainLoop) {
  std::mt19937 rng(5);
  const int heads = 3;
  for (const std::vector<int>& widths : {std::vector<int>{64, 128, 128, 32}, std::vector<int>{20, 37, 150, 33},
                                         std::vector<int>{64, 64}, std::vector<int>{16, 200, 64}}) {
    const std::vector<HashLinear> mlp = random_mlp(widths, heads, rng);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> rows(static_cast<size_t>(kHashBatch) * widths[0]);
    for (float& x : rows) x = normal(rng);
    const float* ptrs[kHashBatch];
    for (int b = 0; b < kHashBatch; ++b) ptrs[b] = rows.data() + static_cast<size_t>(b) * widths[0];
    std::vector<float> scratch;
    for (int h = 0; h < heads; ++h) {
      uint64_t batch[kHashBatch];
      hash_signatures(mlp, HashActivation::kSilu, h, ptrs, kHashBatch, batch, scratch);
      for (int b = 0; b < kHashBatch; ++b) {
        const uint64_t one = hash_signature(mlp, HashActivation::kSilu, h, ptrs[b], scratch);
        EXPECT_EQ(one, batch[b]) << "head " << h << " row " << b;
        EXPECT_EQ(one, plain_signature(mlp, HashActivation::kSilu, h, ptrs[b])) << "head " << h << " row " << b;
      }
    }
  }
}

}  // namespace
}  // namespace hotswap::masked
