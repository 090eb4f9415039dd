#include "attention/nsa/nsa_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "attention/nsa/nsa_reference.h"
#include "nsa_serving_util.h"
#include "nsa_test_util.h"

namespace hotswap {
namespace {

using namespace testing;  // nsa_serving_util.h

// ---------------------------------------------------------------------------------------
// An independent oracle: the spec (specs/attention.md `nsa`) in double precision, written
// without any of attention/nsa/'s code.

class SpecOracle {
 public:
  SpecOracle(const RawSequence& s, const NsaAdapter& a, int layer) : s_(s), a_(a), w_(a.layers[static_cast<size_t>(layer)]) {
    const NsaConfig& c = a.config;
    const int hkv = s.m.num_kv_heads, d = s.m.head_dim, l = c.compress_block_size;
    const int64_t nb = c.num_compressed_blocks(s.T);
    ck_.assign(static_cast<size_t>(nb * hkv * d), 0.0);
    cv_ = ck_;
    const bool pre = c.compress_rope == NsaCompressRope::kPre;
    for (int h = 0; h < hkv; ++h) {
      for (int64_t j = 0; j < nb; ++j) {
        for (int side = 0; side < 2; ++side) {
          const NsaCompressor& comp = side == 0 ? w_.k : w_.v;
          const std::vector<float>& src = side == 1 ? s.v : pre ? s.ku : s.k;
          std::vector<double> x(static_cast<size_t>(l) * d);
          for (int i = 0; i < l; ++i) {
            for (int e = 0; e < d; ++e) {
              x[static_cast<size_t>(i) * d + e] = static_cast<double>(src[((j * c.compress_stride + i) * hkv + h) * d + e]) +
                                                  comp.pos_emb[(static_cast<size_t>(h) * l + i) * d + e];
            }
          }
          double* out = &(side == 0 ? ck_ : cv_)[static_cast<size_t>((j * hkv + h) * d)];
          if (comp.method == NsaCompression::kMaxPool) {
            for (int e = 0; e < d; ++e) {
              out[e] = -1e300;
              for (int i = 0; i < l; ++i) out[e] = std::max(out[e], x[static_cast<size_t>(i) * d + e]);
            }
          } else {
            const int hid = c.mlp_hidden_size, in = l * d;
            std::vector<double> hv(static_cast<size_t>(hid));
            for (int u = 0; u < hid; ++u) {
              double acc = comp.b1[static_cast<size_t>(h) * hid + u];
              for (int i = 0; i < in; ++i) acc += comp.w1[(static_cast<size_t>(h) * hid + u) * in + i] * x[static_cast<size_t>(i)];
              hv[static_cast<size_t>(u)] = std::max(acc, 0.0);
            }
            for (int e = 0; e < d; ++e) {
              double acc = comp.b2[static_cast<size_t>(h) * d + e];
              for (int u = 0; u < hid; ++u) acc += comp.w2[(static_cast<size_t>(h) * d + e) * hid + u] * hv[static_cast<size_t>(u)];
              out[e] = acc;
            }
          }
        }
      }
    }
  }

  // Output rows [H, d] of the query at position t.
  std::vector<double> attend(int64_t t) const {
    const NsaConfig& c = a_.config;
    const int H = s_.m.num_heads, hkv = s_.m.num_kv_heads, d = s_.m.head_dim, D = s_.m.hidden_size, G = H / hkv;
    const int M = c.num_mem_tokens;
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    const bool pre = c.compress_rope == NsaCompressRope::kPre;
    const int64_t nc = t >= c.compress_block_size - 1 ? (t - c.compress_block_size + 1) / c.compress_stride + 1 : 0;
    const int64_t cur = t / c.selection_block_size;
    std::vector<double> out(static_cast<size_t>(H) * d, 0.0);
    auto q_of = [&](const std::vector<float>& q, int qh) { return &q[(static_cast<size_t>(t) * H + qh) * d]; };
    auto dotd = [&](const float* a, const double* b) {
      double r = 0;
      for (int e = 0; e < d; ++e) r += a[e] * b[e];
      return r;
    };
    auto dotf = [&](const float* a, const float* b) {
      double r = 0;
      for (int e = 0; e < d; ++e) r += static_cast<double>(a[e]) * b[e];
      return r;
    };
    for (int g = 0; g < hkv; ++g) {
      std::vector<double> imp(static_cast<size_t>(cur + 1), 0.0);
      std::vector<std::vector<double>> o_cmp(static_cast<size_t>(G), std::vector<double>(static_cast<size_t>(d), 0.0));
      // data() + offset: with no memory tokens mem_kv is empty and [] would be undefined.
      const float* mem_k = w_.mem_kv.data() + static_cast<size_t>(g) * M * d;
      const float* mem_v = w_.mem_kv.data() + (static_cast<size_t>(hkv) + g) * M * d;
      for (int a = 0; a < G; ++a) {
        const float* q = q_of(pre ? s_.qu : s_.q, g * G + a);
        std::vector<double> sc;
        for (int m = 0; m < M; ++m) sc.push_back(dotf(q, mem_k + static_cast<size_t>(m) * d) * scale);
        for (int64_t j = 0; j < nc; ++j) sc.push_back(dotd(q, &ck_[static_cast<size_t>((j * hkv + g) * d)]) * scale);
        if (!sc.empty()) {
          const std::vector<double> pr = softmax(sc);
          for (size_t r = 0; r < pr.size(); ++r) {
            for (int e = 0; e < d; ++e) {
              o_cmp[static_cast<size_t>(a)][static_cast<size_t>(e)] +=
                  pr[r] * (static_cast<int>(r) < M ? static_cast<double>(mem_v[r * d + e]) : cv_[((r - M + 0) * hkv + g) * d + e]);
            }
          }
        }
        if (nc > 0) {
          const std::vector<double> p = softmax(std::vector<double>(sc.begin() + M, sc.end()));
          for (int64_t j = 0; j < nc; ++j) {
            for (int64_t b = 0; b <= cur; ++b) {
              const int64_t lo = std::max(j * c.compress_stride, b * c.selection_block_size);
              const int64_t hi = std::min(j * c.compress_stride + c.compress_block_size, (b + 1) * c.selection_block_size);
              if (lo < hi) imp[static_cast<size_t>(b)] += p[static_cast<size_t>(j)];
            }
          }
        }
      }
      // Selection.
      std::vector<int64_t> chosen;
      if (cur + 1 <= c.num_selected_blocks) {
        for (int64_t b = 0; b <= cur; ++b) chosen.push_back(b);
      } else {
        for (int64_t b : {int64_t{0}, cur, cur - 1}) {
          if (static_cast<int>(chosen.size()) < c.num_selected_blocks && std::find(chosen.begin(), chosen.end(), b) == chosen.end()) chosen.push_back(b);
        }
        while (static_cast<int>(chosen.size()) < c.num_selected_blocks) {
          int64_t best = -1;
          for (int64_t b = 0; b <= cur; ++b) {
            if (std::find(chosen.begin(), chosen.end(), b) != chosen.end()) continue;
            if (best < 0 || imp[static_cast<size_t>(b)] > imp[static_cast<size_t>(best)]) best = b;
          }
          chosen.push_back(best);
        }
      }
      std::vector<int64_t> sel_keys, win_keys;
      for (int64_t p = 0; p <= t; ++p) {
        if (std::find(chosen.begin(), chosen.end(), p / c.selection_block_size) != chosen.end()) sel_keys.push_back(p);
        if (p > t - c.sliding_window_size) win_keys.push_back(p);
      }
      for (int a = 0; a < G; ++a) {
        const int qh = g * G + a;
        const float* q = q_of(s_.q, qh);
        double o[3][256] = {};
        for (int e = 0; e < d; ++e) o[0][e] = o_cmp[static_cast<size_t>(a)][static_cast<size_t>(e)];
        for (int branch = 1; branch <= 2; ++branch) {
          const std::vector<int64_t>& keys = branch == 1 ? sel_keys : win_keys;
          std::vector<double> sc;
          for (int64_t p : keys) sc.push_back(dotf(q, &s_.k[(static_cast<size_t>(p) * hkv + g) * d]) * scale);
          const std::vector<double> pr = softmax(sc);
          for (size_t r = 0; r < keys.size(); ++r) {
            for (int e = 0; e < d; ++e) o[branch][e] += pr[r] * s_.v[(static_cast<size_t>(keys[r]) * hkv + g) * d + e];
          }
        }
        for (int b = 0; b < 3; ++b) {
          double z = w_.gate_b[static_cast<size_t>(3 * qh + b)];
          for (int i = 0; i < D; ++i) z += static_cast<double>(w_.gate_w[static_cast<size_t>(3 * qh + b) * D + i]) * s_.x[static_cast<size_t>(t) * D + i];
          const double gate = 1.0 / (1.0 + std::exp(-z));
          for (int e = 0; e < d; ++e) out[static_cast<size_t>(qh) * d + e] += gate * o[b][e];
        }
      }
    }
    return out;
  }

  const std::vector<double>& compressed_keys() const { return ck_; }

 private:
  static std::vector<double> softmax(std::vector<double> x) {
    const double m = *std::max_element(x.begin(), x.end());
    double sum = 0;
    for (double& v : x) sum += (v = std::exp(v - m));
    for (double& v : x) v /= sum;
    return x;
  }

  const RawSequence& s_;
  const NsaAdapter& a_;
  const NsaLayerWeights& w_;
  std::vector<double> ck_, cv_;  // [num_blocks, Hkv, d]
};

// ---------------------------------------------------------------------------------------

struct NsaCase {
  const char* name;
  int l, s, sel, n, w;
  NsaCompression k, v;
  int mem;
  NsaCompressRope rope;
  int T;          // tokens of the incremental test
  int head_dim;
  int num_heads;  // query heads (2 KV heads)
};

std::ostream& operator<<(std::ostream& os, const NsaCase& c) { return os << c.name; }

ModelShape shape_of(const NsaCase& c) {
  ModelShape m;
  m.num_layers = 2;
  m.num_heads = c.num_heads;
  m.num_kv_heads = 2;
  m.head_dim = c.head_dim;
  m.hidden_size = 32;
  return m;
}

std::shared_ptr<NsaAdapter> adapter_of(const NsaCase& c, uint64_t seed) {
  NsaConfig cfg;
  cfg.compress_block_size = c.l;
  cfg.compress_stride = c.s;
  cfg.selection_block_size = c.sel;
  cfg.num_selected_blocks = c.n;
  cfg.sliding_window_size = c.w;
  cfg.k_compress = c.k;
  cfg.v_compress = c.v;
  cfg.mlp_hidden_size = cfg.uses_mlp() ? c.l * c.head_dim / 2 + 3 : 0;
  cfg.num_mem_tokens = c.mem;
  cfg.compress_rope = c.rope;
  return testing::random_nsa_adapter(shape_of(c), cfg, seed);
}

constexpr auto kMax = NsaCompression::kMaxPool;
constexpr auto kMlp = NsaCompression::kMlp;
constexpr auto kPre = NsaCompressRope::kPre;
constexpr auto kPost = NsaCompressRope::kPost;

const NsaCase kCases[] = {
    {"defaults_pre", 16, 8, 16, 4, 64, kMax, kMlp, 1, kPre, 2000, 16, 4},
    {"paper_mlp_post", 32, 16, 64, 4, 100, kMlp, kMlp, 2, kPost, 2000, 16, 8},
    {"l_gt_sel_maxpool", 8, 4, 4, 3, 32, kMax, kMax, 0, kPre, 1200, 24, 4},
    {"stride_eq_l_n2", 12, 12, 24, 2, 20, kMlp, kMax, 3, kPost, 1000, 8, 2},
    {"stride1_n1_odd", 5, 1, 3, 1, 7, kMax, kMlp, 0, kPost, 600, 16, 4},
    {"window1_many_blocks", 16, 4, 8, 6, 1, kMlp, kMlp, 1, kPre, 800, 20, 6},
};

class NsaServing : public ::testing::TestWithParam<NsaCase> {};

// The compressed cache's invariant and the reference's rows, at every decode step.
TEST_P(NsaServing, DecodeWithCompressedCacheEqualsRecomputationAtEveryStep) {
  const NsaCase& c = GetParam();
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 100);
  const RawSequence s = random_sequence(m, c.T, 200);
  std::vector<float> ref(static_cast<size_t>(c.T) * m.num_heads * m.head_dim);
  NsaReferenceTrace trace;
  nsa_attention_reference(s.inputs(), *adapter, 1, ref.data(), &trace);

  CompressedBlockPool pool(m.num_kv_heads, m.head_dim, 4);
  PagedKv kv(c.T, m.num_kv_heads, m.head_dim, 16, 300);
  const int row = m.num_heads * m.head_dim;
  {
    NsaSequenceState state(adapter, pool);
    double worst = 0;
    serve(s, *adapter, 1, state, kv, std::vector<int>(static_cast<size_t>(c.T), 1), [&](int first, int, const std::vector<float>& out) {
      const int64_t length = first + 1;
      const int64_t expected = length < c.l ? 0 : (length - c.l) / c.s + 1;
      ASSERT_EQ(state.num_compressed(1), expected) << "length " << length;
      ASSERT_EQ(state.num_compressed(0), 0) << "layer 0 was never attended";
      ASSERT_EQ(pool.num_pages_in_use(), (expected + 3) / 4) << "length " << length;
      for (int i = 0; i < row; ++i) {
        const double diff = std::fabs(static_cast<double>(out[static_cast<size_t>(i)]) - ref[static_cast<size_t>(first) * row + i]);
        ASSERT_LE(diff, 2e-5) << "position " << first << " element " << i;
        worst = std::max(worst, diff);
      }
    });
    // Every cached block is the reference's, bit for bit (computed once, never changed).
    const int64_t nb = state.num_compressed(1);
    ASSERT_EQ(static_cast<size_t>(nb * m.num_kv_heads * m.head_dim), trace.compressed_keys.size());
    for (int64_t j = 0; j < nb; ++j) {
      for (int h = 0; h < m.num_kv_heads; ++h) {
        for (int e = 0; e < m.head_dim; ++e) {
          const size_t at = static_cast<size_t>((j * m.num_kv_heads + h) * m.head_dim + e);
          ASSERT_EQ(state.compressed_key(1, j, h)[e], trace.compressed_keys[at]) << "block " << j;
          ASSERT_EQ(state.compressed_value(1, j, h)[e], trace.compressed_values[at]) << "block " << j;
        }
      }
    }
    RecordProperty("max_abs_diff", std::to_string(worst));
  }
  EXPECT_EQ(pool.num_pages_in_use(), 0) << "pages are freed with the sequence";
}

// Prefill in one pass, chunked prefill, then decode: the same rows as the reference.
TEST_P(NsaServing, PrefillAndChunksEqualTheReference) {
  const NsaCase& c = GetParam();
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 101);
  const int T = std::min(c.T, 700);
  const RawSequence s = random_sequence(m, T, 201);
  std::vector<float> ref(static_cast<size_t>(T) * m.num_heads * m.head_dim);
  nsa_attention_reference(s.inputs(), *adapter, 0, ref.data());
  const int row = m.num_heads * m.head_dim;
  std::mt19937 rng(5);
  const std::vector<std::vector<int>> schedules = [&] {
    std::vector<int> whole = {T};
    std::vector<int> prefill_then_decode = {T / 3 + 1};
    while (std::accumulate(prefill_then_decode.begin(), prefill_then_decode.end(), 0) < T) prefill_then_decode.push_back(1);
    std::vector<int> random_chunks;
    for (int left = T; left > 0;) {
      const int n = std::min(left, 1 + static_cast<int>(rng() % 53));
      random_chunks.push_back(n);
      left -= n;
    }
    return std::vector<std::vector<int>>{whole, prefill_then_decode, random_chunks};
  }();
  CompressedBlockPool pool(m.num_kv_heads, m.head_dim, 3);
  for (const std::vector<int>& chunks : schedules) {
    PagedKv kv(T, m.num_kv_heads, m.head_dim, 7, 301);
    NsaSequenceState state(adapter, pool);
    serve(s, *adapter, 0, state, kv, chunks, [&](int first, int n, const std::vector<float>& out) {
      for (int64_t i = 0; i < static_cast<int64_t>(n) * row; ++i) {
        ASSERT_NEAR(out[static_cast<size_t>(i)], ref[static_cast<size_t>(first) * row + i], 2e-5)
            << "chunks of " << chunks.size() << ", position " << first + i / row;
      }
    });
    EXPECT_EQ(state.num_compressed(0), adapter->config.num_compressed_blocks(T));
  }
}

// The serving kernel against the spec written independently in double precision.
TEST_P(NsaServing, MatchesAnIndependentDoublePrecisionOracle) {
  const NsaCase& c = GetParam();
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 102);
  const int T = std::min(c.T, 260);
  const RawSequence s = random_sequence(m, T, 202);
  CompressedBlockPool pool(m.num_kv_heads, m.head_dim);
  NsaSequenceState state(adapter, pool);
  PagedKv kv(T, m.num_kv_heads, m.head_dim, 16, 302);
  const SpecOracle oracle(s, *adapter, 1);
  const int row = m.num_heads * m.head_dim;
  serve(s, *adapter, 1, state, kv, {T / 2, T - T / 2}, [&](int first, int n, const std::vector<float>& out) {
    for (int i = 0; i < n; ++i) {
      const std::vector<double> want = oracle.attend(first + i);
      for (int e = 0; e < row; ++e) {
        ASSERT_NEAR(out[static_cast<size_t>(i) * row + e], want[static_cast<size_t>(e)], 1e-4) << "position " << first + i;
      }
    }
  });
  // What the scheduler charges to the KV cache for the sequence is what its cache holds (per
  // layer: serve() runs layer 1 alone).
  EXPECT_EQ(pool.bytes_in_use() * m.num_layers, NsaSequenceState::bytes_for(*adapter, m, T));
  // The cached compressed keys are the spec's compression of the right keys.
  for (int64_t j = 0; j < state.num_compressed(1); ++j) {
    for (int h = 0; h < m.num_kv_heads; ++h) {
      for (int e = 0; e < m.head_dim; ++e) {
        ASSERT_NEAR(state.compressed_key(1, j, h)[e], oracle.compressed_keys()[static_cast<size_t>((j * m.num_kv_heads + h) * m.head_dim + e)], 1e-4);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, NsaServing, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<NsaCase>& i) { return std::string(i.param.name); });

// ---------------------------------------------------------------------------------------

TEST(NsaReference, IsCausal) {
  const NsaCase& c = kCases[0];
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 103);
  const RawSequence s = random_sequence(m, 500, 203);
  const size_t row = static_cast<size_t>(m.num_heads) * m.head_dim;
  std::vector<float> full(500 * row);
  nsa_attention_reference(s.inputs(), *adapter, 0, full.data());
  for (int prefix : {1, 14, 15, 16, 233, 499}) {
    std::vector<float> part(static_cast<size_t>(prefix) * row);
    nsa_attention_reference(s.inputs(prefix), *adapter, 0, part.data());
    ASSERT_TRUE(std::equal(part.begin(), part.end(), full.begin())) << "prefix " << prefix;
  }
}

TEST(NsaCache, PagesAreFreedWithTheirSequenceOnly) {
  const NsaCase& c = kCases[0];  // l = 16, s = 8
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 104);
  const RawSequence s = random_sequence(m, 120, 204);
  CompressedBlockPool pool(m.num_kv_heads, m.head_dim, 4);
  auto run_both_layers = [&](NsaSequenceState& state, int T) {
    PagedKv kv(T, m.num_kv_heads, m.head_dim, 16, 7);
    for (int layer = 0; layer < 2; ++layer) serve(s, *adapter, layer, state, kv, {T}, [](int, int, const std::vector<float>&) {});
  };
  auto a = std::make_unique<NsaSequenceState>(adapter, pool);
  auto b = std::make_unique<NsaSequenceState>(adapter, pool);
  run_both_layers(*a, 120);  // 14 blocks per layer -> 4 pages per layer
  run_both_layers(*b, 40);   // 4 blocks per layer -> 1 page per layer
  EXPECT_EQ(a->num_compressed(0), 14);
  EXPECT_EQ(b->num_compressed(1), 4);
  EXPECT_EQ(a->num_pages(), 8);
  EXPECT_EQ(b->num_pages(), 2);
  EXPECT_EQ(pool.num_pages_in_use(), 10);
  a.reset();
  EXPECT_EQ(pool.num_pages_in_use(), 2);
  b->reset();
  EXPECT_EQ(pool.num_pages_in_use(), 0);
  EXPECT_EQ(b->num_compressed(0), 0);
  EXPECT_EQ(b->num_positions(0), 0);
}

TEST(NsaCache, CappedPoolReportsExhaustionOnReserve) {
  const NsaCase& c = kCases[0];
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 105);
  CompressedBlockPool pool(m.num_kv_heads, m.head_dim, 4, /*max_pages=*/3);
  NsaSequenceState state(adapter, pool);
  EXPECT_TRUE(state.reserve(40).is_ok());  // 4 blocks: 1 page x 2 layers
  EXPECT_EQ(pool.num_pages_in_use(), 2);
  const Status s = state.reserve(120);     // 14 blocks: 4 pages x 2 layers
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("3 of 3 pages"), std::string::npos) << s.message();
}

TEST(NsaCache, CachedBlocksAreReadNotRecomputed) {
  const NsaCase& c = kCases[0];
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 106);
  const RawSequence s = random_sequence(m, 64, 206);
  CompressedBlockPool pool(m.num_kv_heads, m.head_dim, 4);
  NsaSequenceState state(adapter, pool);
  PagedKv kv(64, m.num_kv_heads, m.head_dim, 16, 8);
  std::vector<float> before, after;
  serve(s, *adapter, 0, state, kv, {62}, [](int, int, const std::vector<float>&) {});
  // Overwrite cached block 0 of KV head 0 (keys are stored [d, E] per head); the decode steps
  // must keep and use it.
  float* entry = pool.keys(state.layer(0).pages[0]);
  for (int c = 0; c < m.head_dim; ++c) entry[c * pool.entries_per_page()] = 1000.0f;
  NsaSequenceState fresh(adapter, pool);
  PagedKv kv2(64, m.num_kv_heads, m.head_dim, 16, 8);
  // Continue the poisoned state by hand for positions 62, 63 and compare with a clean run.
  const int H = m.num_heads, d = m.head_dim;
  auto step = [&](NsaSequenceState& st, PagedKv& cache, int pos, std::vector<float>& out) {
    cache.write(s, pos, 1);
    out.assign(static_cast<size_t>(H) * d, 0.0f);
    LayerAttentionCall call;
    call.layer = 0;
    call.q = &s.q[static_cast<size_t>(pos) * H * d];
    call.num_tokens = 1;
    call.first_position = pos;
    call.num_heads = H;
    call.num_kv_heads = m.num_kv_heads;
    call.head_dim = d;
    call.scale = 1.0f / std::sqrt(static_cast<float>(d));
    call.kv = cache.view();
    call.out = out.data();
    NsaLayerInputs extra{&s.qu[static_cast<size_t>(pos) * H * d], &s.ku[static_cast<size_t>(pos) * m.num_kv_heads * d],
                         &s.x[static_cast<size_t>(pos) * m.hidden_size], m.hidden_size};
    nsa_attend(call, extra, *adapter, st);
  };
  serve(s, *adapter, 0, fresh, kv2, {62}, [](int, int, const std::vector<float>&) {});
  for (int pos = 62; pos < 64; ++pos) {
    step(state, kv, pos, after);
    step(fresh, kv2, pos, before);
    EXPECT_EQ(entry[0], 1000.0f) << "block 0 was recomputed at position " << pos;
    double diff = 0;
    for (size_t i = 0; i < after.size(); ++i) diff = std::max(diff, std::fabs(static_cast<double>(after[i]) - before[i]));
    EXPECT_GT(diff, 1e-3) << "the cached (poisoned) block 0 was not read at position " << pos;
  }
}

TEST(NsaSemantics, SlidingOnlyGateWithAFullWindowIsDenseCausalAttention) {
  NsaCase c = kCases[1];
  c.w = 1 << 20;
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 107);
  for (NsaLayerWeights& w : adapter->layers) {
    std::fill(w.gate_w.begin(), w.gate_w.end(), 0.0f);
    for (size_t r = 0; r < w.gate_b.size(); ++r) w.gate_b[r] = r % 3 == 2 ? 60.0f : -200.0f;  // g_win = 1, others 0
  }
  const int T = 300, H = m.num_heads, hkv = m.num_kv_heads, d = m.head_dim, G = H / hkv;
  const RawSequence s = random_sequence(m, T, 207);
  CompressedBlockPool pool(hkv, d);
  NsaSequenceState state(adapter, pool);
  PagedKv kv(T, hkv, d, 16, 9);
  serve(s, *adapter, 0, state, kv, {100, 1, 199}, [&](int first, int n, const std::vector<float>& out) {
    for (int i = 0; i < n; ++i) {
      const int t = first + i;
      for (int qh = 0; qh < H; ++qh) {
        std::vector<double> sc(static_cast<size_t>(t + 1));
        double mx = -1e300, sum = 0;
        for (int p = 0; p <= t; ++p) {
          double dotv = 0;
          for (int e = 0; e < d; ++e) dotv += static_cast<double>(s.q[(static_cast<size_t>(t) * H + qh) * d + e]) * s.k[(static_cast<size_t>(p) * hkv + qh / G) * d + e];
          sc[static_cast<size_t>(p)] = dotv / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, sc[static_cast<size_t>(p)]);
        }
        for (double& v : sc) sum += (v = std::exp(v - mx));
        for (int e = 0; e < d; ++e) {
          double o = 0;
          for (int p = 0; p <= t; ++p) o += sc[static_cast<size_t>(p)] / sum * s.v[(static_cast<size_t>(p) * hkv + qh / G) * d + e];
          ASSERT_NEAR(out[(static_cast<size_t>(i) * H + qh) * d + e], o, 1e-5) << "position " << t << " head " << qh;
        }
      }
    }
  });
}

TEST(NsaSemantics, CompressedBranchAloneUsesTheUnrotatedQueryForPre) {
  NsaCase c = kCases[0];
  c.mem = 2;
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 108);
  for (NsaLayerWeights& w : adapter->layers) {
    std::fill(w.gate_w.begin(), w.gate_w.end(), 0.0f);
    for (size_t r = 0; r < w.gate_b.size(); ++r) w.gate_b[r] = r % 3 == 0 ? 60.0f : -200.0f;  // g_cmp = 1
  }
  const int T = 90, H = m.num_heads, hkv = m.num_kv_heads, d = m.head_dim, G = H / hkv, M = c.mem;
  const RawSequence s = random_sequence(m, T, 208);
  CompressedBlockPool pool(hkv, d);
  NsaSequenceState state(adapter, pool);
  PagedKv kv(T, hkv, d, 16, 10);
  std::vector<float> out_all(static_cast<size_t>(T) * H * d);
  serve(s, *adapter, 1, state, kv, {T}, [&](int, int, const std::vector<float>& out) { out_all = out; });
  for (int t : {0, 14, 15, 16, 23, 24, 89}) {
    const int64_t nc = adapter->config.num_compressed_blocks(t + 1);
    for (int qh = 0; qh < H; ++qh) {
      const float* q = &s.qu[(static_cast<size_t>(t) * H + qh) * d];
      std::vector<double> sc;
      std::vector<std::vector<float>> vals;
      for (int mm = 0; mm < M; ++mm) {
        const float* k = adapter->mem_keys(1, qh / G) + static_cast<size_t>(mm) * d;
        double dv = 0;
        for (int e = 0; e < d; ++e) dv += static_cast<double>(q[e]) * k[e];
        sc.push_back(dv / std::sqrt(static_cast<double>(d)));
        const float* mv = adapter->mem_values(1, qh / G) + static_cast<size_t>(mm) * d;
        vals.emplace_back(mv, mv + d);
      }
      for (int64_t j = 0; j < nc; ++j) {
        const std::vector<float> k = state.compressed_key(1, j, qh / G);
        double dv = 0;
        for (int e = 0; e < d; ++e) dv += static_cast<double>(q[e]) * k[e];
        sc.push_back(dv / std::sqrt(static_cast<double>(d)));
        vals.push_back(state.compressed_value(1, j, qh / G));
      }
      const double mx = *std::max_element(sc.begin(), sc.end());
      double sum = 0;
      for (double& v : sc) sum += (v = std::exp(v - mx));
      for (int e = 0; e < d; ++e) {
        double o = 0;
        for (size_t r = 0; r < sc.size(); ++r) o += sc[r] / sum * vals[r][e];
        ASSERT_NEAR(out_all[(static_cast<size_t>(t) * H + qh) * d + e], o, 1e-5) << "position " << t << " head " << qh;
      }
    }
  }
}

TEST(NsaSemantics, NoMemoryTokensAndNoBlockGivesAZeroCompressedBranch) {
  NsaCase c = kCases[2];  // mem 0, l = 8
  const ModelShape m = shape_of(c);
  auto adapter = adapter_of(c, 109);
  const RawSequence s = random_sequence(m, 12, 209);
  std::vector<float> out(static_cast<size_t>(12) * m.num_heads * m.head_dim);
  NsaReferenceTrace trace;
  nsa_attention_reference(s.inputs(), *adapter, 0, out.data(), &trace);
  const int d = m.head_dim;
  for (int t = 0; t < 12; ++t) {
    for (int qh = 0; qh < m.num_heads; ++qh) {
      const float* o_cmp = &trace.branches[(static_cast<size_t>(t) * m.num_heads + qh) * 3 * d];
      const bool any = std::any_of(o_cmp, o_cmp + d, [](float v) { return v != 0.0f; });
      EXPECT_EQ(any, t >= 7) << "position " << t << ": block 0 exists from t = l - 1 = 7";
    }
  }
}

TEST(NsaSemantics, MemoryTokensDoNotEnterImportance) {
  NsaCase with_mem = kCases[0];
  with_mem.mem = 3;
  NsaCase without = with_mem;
  without.mem = 0;
  const ModelShape m = shape_of(with_mem);
  auto a = adapter_of(with_mem, 110);
  auto b = adapter_of(without, 110);
  for (size_t i = 0; i < a->layers.size(); ++i) {  // identical except the memory tokens
    b->layers[i].k = a->layers[i].k;
    b->layers[i].v = a->layers[i].v;
    b->layers[i].gate_w = a->layers[i].gate_w;
    b->layers[i].gate_b = a->layers[i].gate_b;
    for (float& f : a->layers[i].mem_kv) f *= 40.0f;  // memory keys that would dominate any softmax
  }
  const RawSequence s = random_sequence(m, 400, 210);
  std::vector<float> out(static_cast<size_t>(400) * m.num_heads * m.head_dim);
  NsaReferenceTrace ta, tb;
  nsa_attention_reference(s.inputs(), *a, 0, out.data(), &ta);
  nsa_attention_reference(s.inputs(), *b, 0, out.data(), &tb);
  std::set<int32_t> chosen_by_importance;
  for (size_t i = 0; i < ta.selected.size(); ++i) {
    ASSERT_EQ(ta.selected[i], tb.selected[i]) << "query/group " << i;
    const int32_t current = static_cast<int32_t>(i / 2 / 16);  // i = t * Hkv + group, l' = 16
    for (int32_t b : ta.selected[i]) {
      if (current >= 4 && b != 0 && b != current && b != current - 1) chosen_by_importance.insert(b);
    }
  }
  EXPECT_GT(chosen_by_importance.size(), 5u) << "importance actually chose among blocks";
}

}  // namespace
}  // namespace hotswap
