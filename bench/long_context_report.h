// The report of long_context_masked_bench: one layer's decode step per configuration and
// context (the median over rounds), what the census found it reads and where its time goes,
// the floor its reads have at this machine's memory speed (bench/gather_floor.h), and the
// estimated whole decode step.
#pragma once

#include <string>
#include <vector>

namespace hotswap::bench {

// What one decode step reads, counted at the first decode position (see the benchmark's
// header).
struct Census {
  double density = 0;     // selection_density: mean over query heads of selected / visible
  double keys_read = 0;   // per KV head, mean: the union of its query heads' keys
  double kv_bytes = 0;    // K and V rows read by the kernel
  double summary_bytes = 0;
  double select_us = 0;   // select_keys alone
  double kernel_us = 0;   // sparse_attention over the union items alone
  double update_us = 0;   // write_keys + prepare_queries for one new key
};

// One configuration at one context.
struct LayerResult {
  int context = 0;
  std::string config;
  bool eager = false;      // the ratios' baseline
  bool masked = false;     // has select / kernel / update parts
  std::vector<double> us;  // per step, one per round
  double density = 0;
  double keys_read = 0;    // per KV head
  double kv_bytes = 0;
  double summary_bytes = 0;
  Census census;           // masked
  double setup_ms = 0;
  double floor_us = -1;    // its K/V and summary reads at the probe's rates; < 0: not computed
};

struct LayerReportSetup {
  int heads = 0, kv_heads = 0, head_dim = 0, threads = 1, rounds = 0, steps = 0;
  bool cpu_time = false;
  std::string kv_dtype;
  size_t kv_row_bytes = 0;
  double load_average = 0;
  double non_attention_ms = -1;  // < 0: no estimated whole step
  // The floor's rates: one thread streaming the cache, and gathering single scattered keys.
  double stream_gbps = 0;
  double key_gather_ns = 0;
  double probe_mb = 0;
};

double median_us(std::vector<double> v);

// Prints the layer table and the estimated whole step, contexts in the order given and
// configurations in the order of `results`.
void print_layer_report(const std::vector<LayerResult>& results, const std::vector<int>& contexts,
                        const LayerReportSetup& setup);

}  // namespace hotswap::bench
