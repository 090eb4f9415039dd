// Server metrics for GET /metrics in the Prometheus text format (version 0.0.4).
// Counters and histograms are kept here; engine gauges (queue depth, running sequences,
// KV blocks, token counters, the adapters of running and waiting requests) are read from
// Engine::stats() at scrape time and passed in. Besides the hotswap_* metrics, the gauges of the
// Gateway API Inference Extension's model-server protocol under their vLLM names
// (vllm:num_requests_waiting, vllm:kv_cache_usage_perc, vllm:lora_requests_info, ...).
// Every metric is listed in docs/metrics.md.
// Thread-safe: sessions on every I/O thread record into one Metrics.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace hotswap::server {

// A cumulative histogram over fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value, int64_t times = 1);
  // Appends the _bucket/_sum/_count lines for `name`; `labels` (e.g. config="x") joins each line's labels.
  void render(const std::string& name, std::string* out, const std::string& labels = "") const;
  int64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; last = +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

// Gauges the server itself knows, sampled at scrape time.
struct ServerGauges {
  bool ready = false;
  bool draining = false;
  int64_t open_connections = 0;
  int64_t active_generations = 0;
  int64_t adapters_resident = 0;
  int64_t adapter_loads_total = 0;
};

class Metrics {
 public:
  Metrics();

  void record_request(const std::string& route, int status, double seconds);
  void observe_time_to_first_token(double seconds);
  // `times` observations of `seconds` (engine emission times, TokenEvent::emitted_at).
  void observe_inter_token_latency(double seconds, int64_t times);
  void record_attention_kernel(const std::string& kernel);
  // A finished `masked` choice's mean attention density, by masker configuration.
  void observe_attention_density(const std::string& config, double density);
  void record_cancelled_by_client();
  // A connection answered 503/429 at accept; reason "max_connections" | "max_connections_per_client".
  void record_connection_refused(const std::string& reason);

  // The whole exposition; `engine` is nullopt while the model loads.
  std::string render(const std::optional<EngineStats>& engine, const ServerGauges& gauges) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;  // (route, status) -> count
  std::map<std::string, int64_t> attention_kernels_;
  std::map<std::string, Histogram> attention_density_;  // masker configuration -> densities
  int64_t cancelled_by_client_ = 0;
  std::map<std::string, int64_t> connections_refused_;  // reason -> count
  Histogram request_seconds_;
  Histogram ttft_seconds_;
  Histogram inter_token_seconds_;
};

// Escapes a label value (backslash, quote, newline).
std::string prometheus_label(const std::string& value);

}  // namespace hotswap::server
