// Shared by the masked golden tests (tests/golden/masked/README.md): reading a decode case,
// its K/V in a shuffled paged cache, the serving sparse kernel run the way the backend runs it,
// and the per-head output checks.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/hashattention_adapter_codec.h"
#include "adapters/lsh_adapter_codec.h"
#include "attention/masked/key_summaries.h"
#include "attention/masked/select_keys.h"
#include "attention/masked/sparse_attention.h"
#include "kv_cache/paged_kv_view.h"

namespace hotswap::masked_golden {

using nlohmann::json;
namespace fs = std::filesystem;

inline std::string decode_dir() { return std::string(HOTSWAP_SOURCE_DIR) + "/tests/golden/masked/decode"; }

// Tolerances (README "Ties and margins": selections exact, outputs about 1e-5).
// kOutRelTolerance: per query head, ||ours - out||_2 / ||out||_2 (norm-relative), for the
// double-precision reference kernel and for the float32 sparse kernel alike.
inline constexpr double kOutRelTolerance = 1e-5;
// kProbTolerance: |our attention probability of a selected key - the reference's sel_p|
// (probabilities are <= 1; the reference computes them in float32).
inline constexpr double kProbTolerance = 2e-6;
// kDensityTolerance: the fixture's density is the reference's float32 nnz / (H sk).
inline constexpr double kDensityTolerance = 1e-6;
// kLshWeightTolerance: MagicPig's weight p = 1 - (1 - (1 - acos(cos)/pi)^K)^L against the
// reference's float32 value.
inline constexpr double kLshWeightTolerance = 1e-6;
inline constexpr size_t kMaxBoundFloats = 2 * 1024;  // a Quest page's min and max, head_dim <= 1024

inline json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing " + path.string());
  return json::parse(in);
}

template <typename T>
std::vector<T> read_raw(const fs::path& path, size_t count) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing " + path.string());
  std::vector<T> data(count);
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(count * sizeof(T)));
  if (static_cast<size_t>(in.gcount()) != count * sizeof(T)) throw std::runtime_error("short file " + path.string());
  in.peek();
  if (!in.eof()) throw std::runtime_error("long file " + path.string());
  return data;
}

inline size_t elements(const json& entry) {
  size_t n = 1;
  for (const auto& s : entry.at("shape")) n *= s.get<size_t>();
  return n;
}

template <typename T>
std::vector<T> read_entry(const fs::path& dir, const json& entry) {
  return read_raw<T>(dir / entry.at("file").get<std::string>(), elements(entry));
}

struct DecodeCase {
  std::string name;
  json meta;  // case.json
  int H = 0, Hkv = 0, d = 0, sk = 0, layer = 0;
  double scaling = 0;
  std::vector<float> q, k, v;  // [H, d], [Hkv, sk, d], [Hkv, sk, d]
  std::vector<float> out, dense_out, sel_w, sel_p;
  std::vector<int32_t> sel_ptr, sel_idx;
};

inline DecodeCase load_case(const std::string& name) {
  DecodeCase c;
  c.name = name;
  const fs::path dir = fs::path(decode_dir()) / name;
  c.meta = read_json(dir / "case.json");
  c.H = c.meta.at("num_heads").get<int>();
  c.Hkv = c.meta.at("num_kv_heads").get<int>();
  c.d = c.meta.at("head_dim").get<int>();
  c.sk = c.meta.at("seq_len_keys").get<int>();
  c.scaling = c.meta.at("scaling").get<double>();
  const json& source = c.meta.at("source");
  c.layer = source.contains("layer") ? source.at("layer").get<int>() : 0;
  // The reference ran the maskers with the module's layer_idx, which picks the adapter layer
  // (hashattention weights, lsh projection): 0 in every decode case, whichever model layer
  // the q/K/V came from.
  for (const char* key : {"hashattention", "magic_pig"})
    if (c.meta.contains(key) && c.meta.at(key).contains("layer_idx")) c.layer = c.meta.at(key).at("layer_idx").get<int>();
  const fs::path set_dir = dir.parent_path() / "inputs" / c.meta.at("input_set").get<std::string>();
  const json inputs = read_json(set_dir / "inputs.json");
  c.q = read_entry<float>(set_dir, inputs.at("q"));
  c.k = read_entry<float>(set_dir, inputs.at("k"));
  c.v = read_entry<float>(set_dir, inputs.at("v"));
  const json& files = c.meta.at("files");
  c.out = read_entry<float>(dir, files.at("out"));
  c.dense_out = read_entry<float>(dir, files.at("dense_out"));
  c.sel_ptr = read_entry<int32_t>(dir, files.at("sel_ptr"));
  c.sel_idx = read_entry<int32_t>(dir, files.at("sel_idx"));
  c.sel_w = read_entry<float>(dir, files.at("sel_w"));
  c.sel_p = read_entry<float>(dir, files.at("sel_p"));
  // hashattention: the reference's tie order is torch.topk's; the product's rule (ties to the
  // lower position) is the reference re-run with a stable top-k (README section C).
  if (files.contains("sel_ptr_lowtie")) {
    c.out = read_entry<float>(dir, files.at("out_lowtie"));
    c.sel_ptr = read_entry<int32_t>(dir, files.at("sel_ptr_lowtie"));
    c.sel_idx = read_entry<int32_t>(dir, files.at("sel_idx_lowtie"));
    c.sel_w = read_entry<float>(dir, files.at("sel_w_lowtie"));
    c.sel_p = read_entry<float>(dir, files.at("sel_p_lowtie"));
  }
  if (c.q.size() != static_cast<size_t>(c.H) * c.d || c.k.size() != static_cast<size_t>(c.Hkv) * c.sk * c.d ||
      c.v.size() != c.k.size() || c.out.size() != c.q.size() || c.sel_ptr.size() != static_cast<size_t>(c.H) + 1)
    throw std::runtime_error(name + ": shapes do not agree with case.json");
  return c;
}

// The case's K/V in the paged layout [num_blocks, Hkv, block_size, d] behind a shuffled block
// table (one spare physical block, poisoned like every unused row).
class PagedCopy {
 public:
  PagedCopy(const DecodeCase& c, int block_size, uint32_t shuffle_seed) : bs_(block_size) {
    const int logical = (c.sk + block_size - 1) / block_size;
    const int physical = logical + 1;
    std::vector<int32_t> perm(static_cast<size_t>(physical));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(shuffle_seed));
    blocks_.assign(perm.begin(), perm.begin() + logical);
    const size_t n = static_cast<size_t>(physical) * c.Hkv * block_size * c.d;
    k_.assign(n, 1e30f);
    v_.assign(n, 1e30f);
    view_.k = k_.data();
    view_.v = v_.data();
    view_.blocks = blocks_.data();
    view_.num_logical_blocks = logical;
    view_.block_size = block_size;
    view_.num_kv_heads = c.Hkv;
    view_.head_dim = c.d;
    for (int g = 0; g < c.Hkv; ++g)
      for (int j = 0; j < c.sk; ++j) {
        const size_t src = (static_cast<size_t>(g) * c.sk + j) * c.d;
        std::copy_n(&c.k[src], c.d, k_.data() + view_.offset(j, g));
        std::copy_n(&c.v[src], c.d, v_.data() + view_.offset(j, g));
      }
  }
  const PagedKvView& view() const { return view_; }

 private:
  int bs_;
  std::vector<int32_t> blocks_;
  std::vector<float> k_, v_;
  PagedKvView view_;
};

// ||a_h - b_h||_2 / ||b_h||_2 for one head (b the reference).
inline double head_rel_error(const float* a, const float* b, int d) {
  double num = 0, den = 0;
  for (int i = 0; i < d; ++i) {
    const double diff = static_cast<double>(a[i]) - b[i];
    num += diff * diff;
    den += static_cast<double>(b[i]) * b[i];
  }
  return den == 0 ? (num == 0 ? 0 : std::numeric_limits<double>::infinity()) : std::sqrt(num / den);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// The largest per-head relative error; every head is checked against kOutRelTolerance.
inline double check_output(const DecodeCase& c, const std::vector<float>& ours, const std::vector<float>& ref,
                    const std::string& what) {
  double worst = 0;
  for (int h = 0; h < c.H; ++h) {
    const double e = head_rel_error(&ours[static_cast<size_t>(h) * c.d], &ref[static_cast<size_t>(h) * c.d], c.d);
    worst = std::max(worst, e);
    EXPECT_LT(e, kOutRelTolerance) << what << ": head " << h;
  }
  return worst;
}

// The backend's items (masked_backend.cc): per KV head the union of its query heads' keys,
// ascending, with bias -log(w + 1e-6) where a head selected the key and -inf where it did not;
// a dense selection reads keys 0..sk-1 with bias 0.
inline std::vector<float> run_sparse_kernel(const DecodeCase& c, const PagedKvView& kv,
                                     const std::vector<masked::HeadSelection>& sel, float scale) {
  const int group = c.H / c.Hkv;
  std::vector<float> out(static_cast<size_t>(c.H) * c.d, std::nanf(""));
  std::vector<std::vector<int32_t>> keys(static_cast<size_t>(c.Hkv));
  std::vector<std::vector<float>> bias(static_cast<size_t>(c.Hkv));
  std::vector<SparseAttentionItem> items;
  for (int g = 0; g < c.Hkv; ++g) {
    auto& kk = keys[static_cast<size_t>(g)];
    auto& bb = bias[static_cast<size_t>(g)];
    const masked::HeadSelection* first = &sel[static_cast<size_t>(g) * group];
    bool any_dense = false;
    for (int a = 0; a < group; ++a) any_dense |= first[a].dense;
    std::set<int32_t> all;
    for (int a = 0; a < group; ++a) all.insert(first[a].keys.begin(), first[a].keys.end());
    if (any_dense) {  // a dense head reads every key with bias 0; the others keep their own
      kk.resize(static_cast<size_t>(c.sk));
      std::iota(kk.begin(), kk.end(), 0);
    } else {
      kk.assign(all.begin(), all.end());
    }
    bb.assign(static_cast<size_t>(group) * kk.size(), -std::numeric_limits<float>::infinity());
    for (int a = 0; a < group; ++a) {
      if (first[a].dense) {
        std::fill_n(bb.begin() + static_cast<std::ptrdiff_t>(a * kk.size()), kk.size(), 0.0f);
        continue;
      }
      for (size_t i = 0; i < first[a].keys.size(); ++i) {
        const size_t at = static_cast<size_t>(std::lower_bound(kk.begin(), kk.end(), first[a].keys[i]) - kk.begin());
        bb[static_cast<size_t>(a) * kk.size() + at] = -std::log(first[a].weights[i] + 1e-6f);
      }
    }
    SparseAttentionItem item;
    item.q = c.q.data() + static_cast<size_t>(g) * group * c.d;
    item.group = group;
    item.kv_head = g;
    item.kv = &kv;
    item.keys = kk.data();
    item.num_keys = static_cast<int>(kk.size());
    item.bias = bb.data();
    item.scale = scale;
    item.out = out.data() + static_cast<size_t>(g) * group * c.d;
    items.push_back(item);
  }
  sparse_attention(items.data(), static_cast<int>(items.size()));
  return out;
}

// softmax over the head's selection of (scale q.k - log(w + 1e-6)), in double: the reference's
// sel_p (its returned attention probability of each selected key).
inline std::vector<double> selection_probabilities(const DecodeCase& c, int h, const masked::HeadSelection& s) {
  const int g = h / (c.H / c.Hkv);
  std::vector<double> l(s.keys.size());
  double mx = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < s.keys.size(); ++i) {
    const float* qh = &c.q[static_cast<size_t>(h) * c.d];
    const float* kj = &c.k[(static_cast<size_t>(g) * c.sk + s.keys[i]) * c.d];
    double dot = 0;
    for (int x = 0; x < c.d; ++x) dot += static_cast<double>(qh[x]) * kj[x];
    l[i] = c.scaling * dot - std::log(static_cast<double>(s.weights[i]) + 1e-6);
    mx = std::max(mx, l[i]);
  }
  double den = 0;
  for (double& x : l) den += (x = std::exp(x - mx));
  for (double& x : l) x /= den;
  return l;
}

// The case's adapter (hat.safetensors / lsh.safetensors beside case.json) through the
// product's own codec, validated against the case's shape, and the sequence's key summaries
// brought up to the query (every key written, the query as the first sparse one).
struct CaseSummaries {
  masked::SummaryPool pool;
  std::shared_ptr<const HashAttentionAdapter> hat;
  std::shared_ptr<const LshAdapter> lsh;
  std::unique_ptr<masked::KeySummaries> summaries;
  int num_layers = 1;
};

inline std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing " + path.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::unique_ptr<CaseSummaries> case_summaries(const DecodeCase& c, const masked::MaskedConfig& config,
                                                     const PagedKvView& kv) {
  auto out = std::make_unique<CaseSummaries>();
  out->num_layers = c.layer + 1;
  const fs::path dir = fs::path(decode_dir()) / c.name;
  for (const char* key : {"hashattention", "magic_pig"}) {
    if (!c.meta.contains(key) || !c.meta.at(key).contains("adapter")) continue;
    out->num_layers = c.meta.at(key).at("adapter_layers").get<int>();
    ModelShape shape{out->num_layers, c.H, c.Hkv, c.d, c.H * c.d, ""};
    const std::string bytes = read_bytes(dir / c.meta.at(key).at("adapter").get<std::string>());
    if (std::string(key) == "hashattention") {
      auto parsed = parse_hashattention_adapter(bytes, shape);
      if (!parsed) throw std::runtime_error(c.name + ": " + parsed.status().message());
      out->hat = parsed.value();
    } else {
      auto parsed = parse_lsh_adapter(bytes, shape);
      if (!parsed) throw std::runtime_error(c.name + ": " + parsed.status().message());
      out->lsh = parsed.value();
    }
  }
  out->summaries = std::make_unique<masked::KeySummaries>(
      config, masked::SummaryShape{out->num_layers, c.H, c.Hkv, c.d}, out->pool, out->hat, out->lsh);
  out->summaries->write_keys(c.layer, kv, c.sk);
  out->summaries->prepare_queries(c.layer, kv, c.sk - 1, c.sk - 1, [&config](size_t m, int64_t sk) {
    return masked::masker_reached(config, m, sk);
  });
  return out;
}

}  // namespace hotswap::masked_golden
