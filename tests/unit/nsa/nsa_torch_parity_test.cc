// The C++ kernels against scripts/reference/nsa_reference.py's PyTorch implementation of the
// spec on one layer of random q/k/v (tests/golden/nsa/raw_attention/): the adapter goes
// through the JSON codec, the serving kernel runs in chunks over a paged cache, and the
// output and every block selection must agree.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/nsa_adapter_codec.h"
#include "attention/nsa/nsa_attention.h"
#include "attention/nsa/nsa_reference.h"

namespace hotswap {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<float> read_f32(const std::string& path) {
  const std::string bytes = read_file(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

TEST(NsaTorchParity, RawAttentionMatchesPyTorch) {
  const std::string dir = std::string(HOTSWAP_SOURCE_DIR) + "/tests/golden/nsa/raw_attention/";
  const auto ref = nlohmann::json::parse(read_file(dir + "reference.json"));
  const int T = ref["num_tokens"], H = ref["num_heads"], hkv = ref["num_kv_heads"], d = ref["head_dim"],
            D = ref["hidden_size"];
  ModelShape shape;
  shape.num_layers = ref["num_layers"];
  shape.num_heads = H;
  shape.num_kv_heads = hkv;
  shape.head_dim = d;
  shape.hidden_size = D;
  const auto parsed = parse_nsa_adapter(read_file(dir + "adapter_weight.json"), shape);
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().message();
  const std::shared_ptr<const NsaAdapter> adapter = parsed.value();

  const std::vector<float> in = read_f32(dir + "inputs.f32");
  const size_t qn = static_cast<size_t>(T) * H * d, kn = static_cast<size_t>(T) * hkv * d;
  ASSERT_EQ(in.size(), 2 * qn + 3 * kn + static_cast<size_t>(T) * D);
  const float* q = in.data();
  const float* qu = q + qn;
  const float* k = qu + qn;
  const float* ku = k + kn;
  const float* v = ku + kn;
  const float* x = v + kn;
  const std::vector<float> want = read_f32(dir + "output.f32");
  ASSERT_EQ(want.size(), qn);

  // Reference kernel, and its selections against PyTorch's.
  NsaReferenceInputs ri{T, H, hkv, d, D, 1.0f / std::sqrt(static_cast<float>(d)), q, qu, k, ku, v, x};
  std::vector<float> out(qn);
  NsaReferenceTrace trace;
  nsa_attention_reference(ri, *adapter, 0, out.data(), &trace);
  for (size_t i = 0; i < qn; ++i) ASSERT_NEAR(out[i], want[i], 1e-5) << "reference, element " << i;
  for (const auto& s : ref["selected"]) {
    const int t = s[0], g = s[1];
    EXPECT_EQ(trace.selected[static_cast<size_t>(t * hkv + g)], s[2].get<std::vector<int32_t>>()) << "t=" << t << " group " << g;
  }

  // Serving kernel over a paged cache (block size 5), in chunks.
  const int bs = 5, blocks = (T + bs - 1) / bs;
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  std::iota(table.rbegin(), table.rend(), 0);  // reversed physical order
  std::vector<float> kc(static_cast<size_t>(blocks) * hkv * bs * d), vc(kc.size());
  PagedKvView view{kc.data(), vc.data(), table.data(), blocks, bs, hkv, d};
  for (int p = 0; p < T; ++p) {
    for (int h = 0; h < hkv; ++h) {
      std::copy_n(k + (static_cast<size_t>(p) * hkv + h) * d, d, kc.data() + view.offset(p, h));
      std::copy_n(v + (static_cast<size_t>(p) * hkv + h) * d, d, vc.data() + view.offset(p, h));
    }
  }
  CompressedBlockPool pool(hkv, d, 2);
  NsaSequenceState state(adapter, pool);
  std::fill(out.begin(), out.end(), 0.0f);
  int first = 0;
  for (int n : {1, 6, 70, 1, 1, 71}) {
    LayerAttentionCall call;
    call.q = q + static_cast<size_t>(first) * H * d;
    call.num_tokens = n;
    call.first_position = first;
    call.num_heads = H;
    call.num_kv_heads = hkv;
    call.head_dim = d;
    call.scale = 1.0f / std::sqrt(static_cast<float>(d));
    call.kv = view;
    call.out = out.data() + static_cast<size_t>(first) * H * d;
    const NsaLayerInputs extra{qu + static_cast<size_t>(first) * H * d, ku + static_cast<size_t>(first) * hkv * d,
                               x + static_cast<size_t>(first) * D, D};
    nsa_attend(call, extra, *adapter, state);
    first += n;
  }
  ASSERT_EQ(first, T);
  for (size_t i = 0; i < qn; ++i) ASSERT_NEAR(out[i], want[i], 1e-5) << "serving, element " << i;
}

}  // namespace
}  // namespace hotswap
