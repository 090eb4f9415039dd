#include "long_context_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace hotswap::bench {
namespace {

std::string mb(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, bytes >= 1e6 ? "%.1f MB" : "%.0f KB", bytes >= 1e6 ? bytes / 1e6 : bytes / 1e3);
  return b;
}

const LayerResult* eager_at(const std::vector<LayerResult>& results, int context) {
  for (const LayerResult& r : results)
    if (r.eager && r.context == context && !r.us.empty()) return &r;
  return nullptr;
}

}  // namespace

double median_us(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

void print_layer_report(const std::vector<LayerResult>& results, const std::vector<int>& contexts,
                        const LayerReportSetup& s) {
  std::printf(
      "\nDecode attention per step, one layer (H %d, Hkv %d, d %d, 16-token pages), %d thread(s), median of %d "
      "rounds x %d steps, %s, %s KV (%zu-byte rows), load average now %.2f\n",
      s.heads, s.kv_heads, s.head_dim, s.threads, s.rounds, s.steps, s.cpu_time ? "CPU time" : "wall time",
      s.kv_dtype.c_str(), s.kv_row_bytes, s.load_average);
  std::printf(
      "  ratio = eager / config; density = mean over query heads of selected / visible keys (timed steps); "
      "keys/KVh = keys the kernel reads per KV head (union of its %d query heads); select = select_keys alone; "
      "setup = prompt summaries, one-off\n"
      "  masked step = select (select_keys) + kernel (sparse_attention over the union) + update (summaries of "
      "the new key) + other (union, biases, plan, accounting; derived): census at the first decode position, "
      "mean over the context's %d queries\n",
      s.heads / s.kv_heads, s.steps);
  if (s.stream_gbps > 0)
    std::printf(
        "  floor = the step's reads at this machine's rates, one thread, measured now on a %.0f MB cache "
        "just streamed through, as this benchmark's layer is (bench/gather_floor.h): K/V streamed at %.1f GB/s (eager), or K/V rows gathered as the kernel takes "
        "them (single keys ~%.1f ns a key; Quest's 16-key pages faster) plus the summaries streamed; "
        "x floor = us/step / floor\n",
        s.probe_mb, s.stream_gbps, s.key_gather_ns);
  std::printf("%7s %-10s %10s %7s %8s %9s %10s %10s %9s %9s %9s %9s %9s %9s %7s\n", "context", "config", "us/step",
              "ratio", "density", "keys/KVh", "KV read", "summaries", "select", "kernel", "update", "other",
              "setup ms", "floor", "x floor");
  for (int context : contexts) {
    const LayerResult* e = eager_at(results, context);
    const double eager = e ? median_us(e->us) : NAN;
    for (const LayerResult& r : results) {
      if (r.context != context || r.us.empty()) continue;
      const double t = median_us(r.us);
      char parts[4][32] = {"-", "-", "-", "-"};
      if (r.masked) {
        const Census& c = r.census;
        const double v[4] = {c.select_us, c.kernel_us, c.update_us, t - c.select_us - c.kernel_us - c.update_us};
        for (int i = 0; i < 4; ++i) std::snprintf(parts[i], sizeof parts[i], "%.0f", v[i]);
      }
      char floor[2][32] = {"-", "-"};
      if (r.floor_us >= 0) {
        std::snprintf(floor[0], sizeof floor[0], "%.0f", r.floor_us);
        std::snprintf(floor[1], sizeof floor[1], "%.1fx", t / r.floor_us);
      }
      std::printf("%7d %-10s %10.1f %6.1fx %7.2f%% %9.0f %10s %10s %9s %9s %9s %9s %9.0f %9s %7s\n", context,
                  r.config.c_str(), t, eager / t, 100.0 * r.density, r.keys_read, mb(r.kv_bytes).c_str(),
                  mb(r.summary_bytes).c_str(), parts[0], parts[1], parts[2], parts[3], r.setup_ms, floor[0], floor[1]);
    }
  }
  if (s.non_attention_ms < 0) {
    std::printf("\nWhole decode step: build/bin/masked_whole_step_bench runs it (or --non_attention_ms=X, this "
                "machine's non-attention part of a step, estimates it from the table above)\n");
    return;
  }
  std::printf("\nEstimated whole decode step (ms) = 16 layers x the attention above + %.1f ms non-attention "
              "(--non_attention_ms); ratio = eager / config\n%7s",
              s.non_attention_ms, "context");
  std::vector<std::string> names;
  for (const LayerResult& r : results)
    if (std::find(names.begin(), names.end(), r.config) == names.end()) names.push_back(r.config);
  for (const std::string& n : names) std::printf(" %10s %6s", n.c_str(), "ratio");
  std::printf("\n");
  for (int context : contexts) {
    std::printf("%7d", context);
    const auto whole = [&](const std::string& name) {
      for (const LayerResult& r : results)
        if (r.context == context && r.config == name && !r.us.empty())
          return 16 * median_us(r.us) / 1e3 + s.non_attention_ms;
      return static_cast<double>(NAN);
    };
    const LayerResult* e = eager_at(results, context);
    const double eager = e ? whole(e->config) : NAN;
    for (const std::string& n : names) std::printf(" %10.1f %5.2fx", whole(n), eager / whole(n));
    std::printf("\n");
  }
}

}  // namespace hotswap::bench
