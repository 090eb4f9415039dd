// q8 weights against bf16 on the Llama-3.2-1B projection shapes, interleaved: each round calls
// the q8 form and the bf16 form (what matmul_precision auto runs for a bf16 checkpoint:
// kBf16Dot) once on every shape, so both see the same machine conditions (this VM's memory
// bandwidth drifts). Weights rotate over copies totalling >= 512 MiB per format and shape, so a GEMV
// streams from DRAM as in a real multi-layer model. Prints the median and the best call per case
// and the bf16/q8 time ratios of both (> 1: q8 is faster; the best calls are robust when other
// jobs share the cores).
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

struct Case {
  Shape shape;
  std::vector<std::unique_ptr<Aligned>> bf16, q8;
  std::vector<TensorView> bf16_views;
  std::vector<Q8Matrix> q8_views;
  std::vector<double> bf16_times, q8_times;  // per m, appended per round
};

void make_copies(Case& c) {
  const int64_t n = c.shape.n, k = c.shape.k;
  const size_t bf16_bytes = static_cast<size_t>(n * k) * 2;
  const size_t qs = static_cast<size_t>(q8_qs_bytes(n, k)), sc = static_cast<size_t>(q8_scale_count(n, k)) * 2;
  auto first = std::make_unique<Aligned>(bf16_bytes);
  uint32_t state = 12345;
  auto* h = reinterpret_cast<uint16_t*>(first->p);
  for (int64_t i = 0; i < n * k; ++i) {
    state = state * 1664525u + 1013904223u;
    h[i] = f32_to_bf16((static_cast<float>(state >> 8) / 8388608.0f - 1.0f) * 0.05f);
  }
  const TensorView src{DType::kBF16, {n, k}, first->p};
  auto q_first = std::make_unique<Aligned>(qs + sc);
  const double t0 = now();
  quantize_q8(src, q_first->p, reinterpret_cast<uint16_t*>(q_first->p + qs));
  std::printf("  quantize_q8 %s: %.1f ms (%.2f ns per weight)\n", c.shape.name, (now() - t0) * 1e3,
              (now() - t0) * 1e9 / static_cast<double>(n * k));
  const size_t copies = std::max<size_t>(2, kBytesPerFormat / bf16_bytes);
  for (size_t i = 0; i < copies; ++i) {
    auto b = std::make_unique<Aligned>(bf16_bytes);
    std::memcpy(b->p, first->p, bf16_bytes);
    c.bf16_views.push_back(TensorView{DType::kBF16, {n, k}, b->p});
    c.bf16.push_back(std::move(b));
  }
  for (size_t i = 0; i < std::max<size_t>(2, kBytesPerFormat / (qs + sc)); ++i) {
    auto q = std::make_unique<Aligned>(qs + sc);
    std::memcpy(q->p, q_first->p, qs + sc);
    c.q8_views.push_back(Q8Matrix{q->p, reinterpret_cast<const uint16_t*>(q->p + qs), n, k});
    c.q8.push_back(std::move(q));
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
  std::printf("q8 (%s) vs bf16 (%s), %d threads, %d interleaved rounds\n", linear_q8_isa(), linear_isa(), threads,
              rounds);
  std::vector<Case> cases;
  for (const Shape& s : kShapes) {
    cases.push_back(Case{s, {}, {}, {}, {}, {}, {}});
    make_copies(cases.back());
  }
  for (int64_t m : ms) {
    std::vector<float> x(static_cast<size_t>(m * 8192)), y(static_cast<size_t>(m * 8192));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) / 97.0f - 0.5f;
    for (Case& c : cases) c.bf16_times.clear(), c.q8_times.clear();
    size_t bi = 0, qi = 0;
    for (int r = 0; r < rounds; ++r) {
      for (Case& c : cases) {
        double t = now();
        linear_q8(x.data(), m, c.q8_views[qi++ % c.q8_views.size()], nullptr, y.data());
        c.q8_times.push_back(now() - t);
        t = now();
        linear(x.data(), m, c.bf16_views[bi++ % c.bf16_views.size()], nullptr, y.data());
        c.bf16_times.push_back(now() - t);
      }
    }
    std::printf("\nm = %lld%s\n", static_cast<long long>(m), m == 1 ? " (decode GEMV)" : " (GEMM)");
    // Medians, and the best calls (robust when other jobs share the cores).
    std::printf("  %-20s %10s %10s %8s %10s %10s %8s %8s\n", "shape", "q8 med us", "bf16 med", "bf16/q8", "q8 best GB/s",
                "bf16 best", "bf16/q8", "");
    for (Case& c : cases) {
      const double q = median(c.q8_times), b = median(c.bf16_times);
      const double qb = *std::min_element(c.q8_times.begin(), c.q8_times.end());
      const double bb = *std::min_element(c.bf16_times.begin(), c.bf16_times.end());
      const double q_bytes = static_cast<double>(q8_qs_bytes(c.shape.n, c.shape.k) + 2 * q8_scale_count(c.shape.n, c.shape.k));
      const double b_bytes = static_cast<double>(c.shape.n * c.shape.k * 2);
      std::printf("  %-20s %10.1f %10.1f %8.2f %10.1f %10.1f %8.2f\n", c.shape.name, q * 1e6, b * 1e6, b / q,
                  q_bytes / qb / 1e9, b_bytes / bb / 1e9, bb / qb);
    }
    std::printf("  one layer's projections (q,k,v,o,gate,up,down): bf16/q8 = %.2f\n",
                (2 * median(cases[0].bf16_times) + 2 * median(cases[1].bf16_times) + 2 * median(cases[2].bf16_times) +
                 median(cases[3].bf16_times)) /
                    (2 * median(cases[0].q8_times) + 2 * median(cases[1].q8_times) + 2 * median(cases[2].q8_times) +
                     median(cases[3].q8_times)));
  }
  return 0;
}
