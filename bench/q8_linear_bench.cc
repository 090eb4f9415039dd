// bf16, q8 and q4 weights on the Llama-3.2-1B projection shapes, interleaved: each round calls
// every form (bf16 is what matmul_precision auto runs for a bf16 checkpoint: kBf16Dot) once on
// every shape, in an order that rotates per round, so all see the same machine conditions
// (this VM's memory bandwidth drifts). Weights rotate over copies totalling >= 512 MiB per
// format and shape, so a GEMV streams from DRAM as in a real multi-layer model. Prints the
// median and the best call per case and the time ratios bf16/q8, bf16/q4 and q8/q4 of both
// (> 1: the second is faster; the best calls are robust when other jobs share the cores).
//
//   q8_linear_bench [--rounds N] [--m M ...]     (default: 60 rounds, m = 1 and 16)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kernels/q8.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace hotswap;
using namespace hotswap::kernels;

namespace {

struct Shape {
  const char* name;
  int64_t n, k;
};
// Llama-3.2-1B: hidden 2048, intermediate 8192, 8 KV heads x 64.
const Shape kShapes[] = {{"q/o 2048x2048", 2048, 2048},
                         {"k/v 512x2048", 512, 2048},
                         {"gate/up 8192x2048", 8192, 2048},
                         {"down 2048x8192", 2048, 8192}};
constexpr size_t kBytesPerFormat = size_t{1} << 29;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Aligned {
  uint8_t* p = nullptr;
  explicit Aligned(size_t n) : p(static_cast<uint8_t*>(::operator new(n, std::align_val_t{64}))) {}
  ~Aligned() { ::operator delete(p, std::align_val_t{64}); }
  Aligned(const Aligned&) = delete;
};

enum Form { kBf16, kQ8, kQ4, kForms };
const char* const kFormNames[kForms] = {"bf16", "q8", "q4"};

struct Case {
  Shape shape{};
  std::vector<std::unique_ptr<Aligned>> buffers;
  std::vector<TensorView> bf16;
  std::vector<Q8Matrix> quantized[kForms];  // [kQ8], [kQ4]
  std::vector<double> times[kForms];        // per m, appended per round
  double bytes[kForms] = {};                // read per call
};

// Copies of `first` (bytes long) totalling >= kBytesPerFormat; returns their addresses.
std::vector<const uint8_t*> copies_of(Case& c, const uint8_t* first, size_t bytes) {
  std::vector<const uint8_t*> out;
  for (size_t i = 0; i < std::max<size_t>(2, kBytesPerFormat / bytes); ++i) {
    auto b = std::make_unique<Aligned>(bytes);
    std::memcpy(b->p, first, bytes);
    out.push_back(b->p);
    c.buffers.push_back(std::move(b));
  }
  return out;
}

void make_copies(Case& c) {
  const int64_t n = c.shape.n, k = c.shape.k;
  const size_t bf16_bytes = static_cast<size_t>(n * k) * 2;
  auto first = std::make_unique<Aligned>(bf16_bytes);
  uint32_t state = 12345;
  auto* h = reinterpret_cast<uint16_t*>(first->p);
  for (int64_t i = 0; i < n * k; ++i) {
    state = state * 1664525u + 1013904223u;
    h[i] = f32_to_bf16((static_cast<float>(state >> 8) / 8388608.0f - 1.0f) * 0.05f);
  }
  const TensorView src{DType::kBF16, {n, k}, first->p};
  for (const uint8_t* p : copies_of(c, first->p, bf16_bytes)) c.bf16.push_back(TensorView{DType::kBF16, {n, k}, p});
  c.bytes[kBf16] = static_cast<double>(bf16_bytes);
  for (Form f : {kQ8, kQ4}) {
    const QuantFormat format = f == kQ4 ? QuantFormat::kQ4 : QuantFormat::kQ8;
    const size_t qs = static_cast<size_t>(quant_qs_bytes(format, n, k)), sc = static_cast<size_t>(q8_scale_count(n, k)) * 2;
    Aligned q_first(qs + sc);
    const double t0 = now();
    quantize_weights(src, format, q_first.p, reinterpret_cast<uint16_t*>(q_first.p + qs));
    std::printf("  quantize %s %s: %.1f ms (%.2f ns per weight)\n", kFormNames[f], c.shape.name, (now() - t0) * 1e3,
                (now() - t0) * 1e9 / static_cast<double>(n * k));
    for (const uint8_t* p : copies_of(c, q_first.p, qs + sc))
      c.quantized[f].push_back(Q8Matrix{p, reinterpret_cast<const uint16_t*>(p + qs), n, k, format});
    c.bytes[f] = static_cast<double>(qs + sc);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 60;
  std::vector<int64_t> ms;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
    else if (a == "--m") ms.push_back(std::atoll(argv[i + 1]));
  }
  if (ms.empty()) ms = {1, 16};
  set_linear_precision(LinearPrecision::kBf16Dot);
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  std::printf("q8 and q4 (%s) vs bf16 (%s), %d threads, %d interleaved rounds\n", linear_q8_isa(), linear_isa(),
              threads, rounds);
  std::vector<Case> cases;
  for (const Shape& s : kShapes) {
    cases.emplace_back();
    cases.back().shape = s;
    make_copies(cases.back());
  }
  for (int64_t m : ms) {
    std::vector<float> x(static_cast<size_t>(m * 8192)), y(static_cast<size_t>(m * 8192));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) / 97.0f - 0.5f;
    for (Case& c : cases)
      for (auto& t : c.times) t.clear();
    size_t call = 0;
    for (int r = 0; r < rounds; ++r) {
      for (Case& c : cases) {
        for (int o = 0; o < kForms; ++o, ++call) {
          const int f = (r + o) % kForms;
          const double t = now();
          if (f == kBf16) linear(x.data(), m, c.bf16[call % c.bf16.size()], nullptr, y.data());
          else linear_q8(x.data(), m, c.quantized[f][call % c.quantized[f].size()], nullptr, y.data());
          c.times[f].push_back(now() - t);
        }
      }
    }
    std::printf("\nm = %lld%s: median us (best call's GB/s); ratios of medians (of best calls)\n",
                static_cast<long long>(m), m == 1 ? " (decode GEMV)" : " (GEMM)");
    std::printf("  %-20s %16s %16s %16s %14s %14s %14s\n", "shape", "bf16", "q8", "q4", "bf16/q8", "bf16/q4", "q8/q4");
    double layer[kForms] = {};
    for (Case& c : cases) {
      double med[kForms], best[kForms];
      for (int f = 0; f < kForms; ++f) {
        med[f] = median(c.times[f]);
        best[f] = *std::min_element(c.times[f].begin(), c.times[f].end());
        // One layer: q, k, v, o, gate and up twice over the four shapes, down once.
        layer[f] += (&c == &cases[3] ? 1 : 2) * med[f];
      }
      std::printf("  %-20s", c.shape.name);
      for (int f = 0; f < kForms; ++f) std::printf(" %8.1f (%5.1f)", med[f] * 1e6, c.bytes[f] / best[f] / 1e9);
      std::printf(" %6.2f (%5.2f) %6.2f (%5.2f) %6.2f (%5.2f)\n", med[kBf16] / med[kQ8], best[kBf16] / best[kQ8],
                  med[kBf16] / med[kQ4], best[kBf16] / best[kQ4], med[kQ8] / med[kQ4], best[kQ8] / best[kQ4]);
    }
    std::printf("  one layer's projections (q,k,v,o,gate,up,down): bf16/q8 = %.2f, bf16/q4 = %.2f, q8/q4 = %.2f\n",
                layer[kBf16] / layer[kQ8], layer[kBf16] / layer[kQ4], layer[kQ8] / layer[kQ4]);
  }
  return 0;
}
