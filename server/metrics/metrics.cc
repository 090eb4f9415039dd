#include "metrics/metrics.h"

#include <cmath>
#include <cstdio>

namespace hotswap::server {
namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void header(std::string* out, const char* name, const char* type, const char* help) {
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
}

void sample(std::string* out, const char* name, int64_t value) {
  *out += name;
  *out += ' ';
  *out += std::to_string(value);
  *out += '\n';
}

void scalar(std::string* out, const char* name, const char* type, const char* help, int64_t value) {
  header(out, name, type, help);
  sample(out, name, value);
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += ',';
    out += n;
  }
  return out;
}

// The Gateway API Inference Extension's model-server protocol (docs/metrics.md, "Gateway API
// Inference Extension"), under the vLLM names its endpoint picker reads by default. Same
// numbers as the hotswap_* gauges; `engine` is nullopt while the model loads, when the two info
// gauges have no sample (there is no engine configuration to describe yet).
void render_gateway(std::string* out, const std::optional<EngineStats>& engine) {
  const EngineStats stats = engine.value_or(EngineStats{});
  const double kv_usage = stats.kv_blocks_total > 0
                              ? static_cast<double>(stats.kv_blocks_used) / static_cast<double>(stats.kv_blocks_total)
                              : 0.0;
  scalar(out, "vllm:num_requests_waiting", "gauge",
         "Requests waiting to be processed (model-server protocol TotalQueuedRequests; = hotswap_queue_depth).",
         stats.waiting);
  scalar(out, "vllm:num_requests_running", "gauge",
         "Requests in the running batch (model-server protocol TotalRunningRequests; = hotswap_running_sequences).",
         stats.running);
  header(out, "vllm:kv_cache_usage_perc", "gauge",
         "KV-cache usage, used / total KV blocks; 1 means 100 percent (model-server protocol KVCacheUtilization).");
  *out += "vllm:kv_cache_usage_perc " + number(kv_usage) + "\n";
  header(out, "vllm:gpu_cache_usage_perc", "gauge",
         "Deprecated name of vllm:kv_cache_usage_perc (the protocol's name before gateway-api-inference-extension v1.3.0).");
  *out += "vllm:gpu_cache_usage_perc " + number(kv_usage) + "\n";
  header(out, "vllm:lora_requests_info", "gauge",
         "Adapters of the running and of the waiting requests (comma-separated names), and max_lora, the most adapters "
         "one batch serves (engine.max_running_sequences); value: Unix time of the sample.");
  if (engine) {
    char when[32];
    std::snprintf(when, sizeof when, "%.3f", stats.sampled_at_unix_s);
    *out += "vllm:lora_requests_info{max_lora=\"" + std::to_string(stats.max_running) + "\",running_lora_adapters=\"" +
            prometheus_label(joined(stats.running_adapters)) + "\",waiting_lora_adapters=\"" +
            prometheus_label(joined(stats.waiting_adapters)) + "\"} " + when + "\n";
  }
  header(out, "vllm:cache_config_info", "gauge",
         "KV cache configuration in the labels: block_size (positions per block), num_gpu_blocks (blocks in the pool); value 1.");
  if (engine)
    *out += "vllm:cache_config_info{block_size=\"" + std::to_string(stats.kv_block_size) + "\",num_gpu_blocks=\"" +
            std::to_string(stats.kv_blocks_total) + "\"} 1\n";
}

}  // namespace

std::string prometheus_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value, int64_t times) {
  if (times <= 0) return;
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i] += times;
  sum_ += value * static_cast<double>(times);
  count_ += times;
}

void Histogram::render(const std::string& name, std::string* out, const std::string& labels) const {
  int64_t cumulative = 0;
  const std::string prefix = labels.empty() ? "" : labels + ",";
  const std::string own = labels.empty() ? "" : "{" + labels + "}";
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    *out += name + "_bucket{" + prefix + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  *out += name + "_sum" + own + " " + number(sum_) + "\n";
  *out += name + "_count" + own + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : request_seconds_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}),
      ttft_seconds_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      inter_token_seconds_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}) {}

void Metrics::record_request(const std::string& route, int status, double seconds) {
  std::lock_guard lock(mu_);
  ++requests_[{route, status}];
  request_seconds_.observe(seconds);
}

void Metrics::observe_time_to_first_token(double seconds) {
  std::lock_guard lock(mu_);
  ttft_seconds_.observe(seconds);
}

void Metrics::observe_inter_token_latency(double seconds, int64_t times) {
  std::lock_guard lock(mu_);
  inter_token_seconds_.observe(seconds, times);
}

void Metrics::observe_attention_density(const std::string& config, double density) {
  std::lock_guard lock(mu_);
  auto it = attention_density_.find(config);
  if (it == attention_density_.end())
    it = attention_density_.emplace(config, Histogram({0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1})).first;
  it->second.observe(density);
}

void Metrics::record_attention_kernel(const std::string& kernel) {
  if (kernel.empty()) return;
  std::lock_guard lock(mu_);
  ++attention_kernels_[kernel];
}

void Metrics::record_cancelled_by_client() {
  std::lock_guard lock(mu_);
  ++cancelled_by_client_;
}

void Metrics::record_connection_refused(const std::string& reason) {
  std::lock_guard lock(mu_);
  ++connections_refused_[reason];
}

std::string Metrics::render(const std::optional<EngineStats>& engine, const ServerGauges& gauges) const {
  const EngineStats stats = engine.value_or(EngineStats{});
  std::string out;
  out.reserve(4096);
  scalar(&out, "hotswap_ready", "gauge", "1 when the model is loaded and requests are accepted.", gauges.ready ? 1 : 0);
  scalar(&out, "hotswap_draining", "gauge", "1 after SIGTERM/SIGINT while running requests finish.", gauges.draining ? 1 : 0);
  scalar(&out, "hotswap_open_connections", "gauge", "Open HTTP connections.", gauges.open_connections);
  scalar(&out, "hotswap_active_generations", "gauge", "Generation requests being served.", gauges.active_generations);
  scalar(&out, "hotswap_queue_depth", "gauge", "Requests queued in the engine, not yet admitted.", stats.waiting);
  scalar(&out, "hotswap_running_sequences", "gauge", "Sequences admitted to the running batch.", stats.running);
  scalar(&out, "hotswap_kv_blocks_total", "gauge", "KV cache blocks in the pool.", stats.kv_blocks_total);
  scalar(&out, "hotswap_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", stats.kv_blocks_used);
  scalar(&out, "hotswap_kv_blocks_free", "gauge", "KV cache blocks free.", stats.kv_blocks_total - stats.kv_blocks_used);
  scalar(&out, "hotswap_kv_cache_bytes_total", "gauge", "Bytes of the KV cache pool (K and V, all layers, at its dtype).",
         stats.kv_blocks_total * stats.kv_bytes_per_block);
  scalar(&out, "hotswap_kv_cache_bytes_used", "gauge", "KV cache bytes held by sequences.",
         stats.kv_blocks_used * stats.kv_bytes_per_block);
  header(&out, "hotswap_kv_cache_info", "gauge", "The KV cache's element type and geometry.");
  out += "hotswap_kv_cache_info{dtype=\"" + std::string(kv_cache_dtype_name(stats.kv_cache_dtype)) +
         "\",block_size=\"" + std::to_string(stats.kv_block_size) + "\",bytes_per_block=\"" +
         std::to_string(stats.kv_bytes_per_block) + "\"} 1\n";
  scalar(&out, "hotswap_attention_state_bytes", "gauge",
         "Bytes held beside the KV cache by attention backends (NSA compressed blocks, masker key summaries).",
         stats.attention_state_bytes);
  scalar(&out, "hotswap_prompt_tokens_total", "counter", "Prompt tokens processed.", stats.prompt_tokens_total);
  scalar(&out, "hotswap_generation_tokens_total", "counter", "Tokens generated.", stats.generated_tokens_total);
  scalar(&out, "hotswap_engine_steps_total", "counter", "Engine steps run.", stats.steps_total);
  scalar(&out, "hotswap_adapters_resident", "gauge", "Adapters resident in memory.", gauges.adapters_resident);
  scalar(&out, "hotswap_adapter_loads_total", "counter", "Adapter loads (uploads and reloads).", gauges.adapter_loads_total);
  render_gateway(&out, engine);

  std::lock_guard lock(mu_);
  scalar(&out, "hotswap_requests_cancelled_by_client_total", "counter",
         "Generation requests cancelled because the client disconnected.", cancelled_by_client_);
  header(&out, "hotswap_connections_refused_total", "counter",
         "Connections answered 503/429 at accept, by the limit they met (limits.max_connections, limits.max_connections_per_client).");
  for (const auto& [reason, count] : connections_refused_)
    out += "hotswap_connections_refused_total{reason=\"" + prometheus_label(reason) + "\"} " + std::to_string(count) + "\n";
  header(&out, "hotswap_requests_total", "counter", "HTTP requests by route and status.");
  for (const auto& [key, count] : requests_)
    out += "hotswap_requests_total{route=\"" + prometheus_label(key.first) + "\",status=\"" + std::to_string(key.second) +
           "\"} " + std::to_string(count) + "\n";
  header(&out, "hotswap_attention_kernel_requests_total", "counter", "Generation choices by the attention kernel that ran.");
  for (const auto& [kernel, count] : attention_kernels_)
    out += "hotswap_attention_kernel_requests_total{kernel=\"" + prometheus_label(kernel) + "\"} " + std::to_string(count) + "\n";
  header(&out, "hotswap_request_duration_seconds", "histogram", "HTTP request latency, first byte read to last byte written.");
  request_seconds_.render("hotswap_request_duration_seconds", &out);
  header(&out, "hotswap_time_to_first_token_seconds", "histogram", "Time from submission to the first generated token.");
  ttft_seconds_.render("hotswap_time_to_first_token_seconds", &out);
  header(&out, "hotswap_inter_token_latency_seconds", "histogram", "Time between successive tokens of one choice.");
  inter_token_seconds_.render("hotswap_inter_token_latency_seconds", &out);
  header(&out, "hotswap_attention_density", "histogram",
         "Mean attention density of finished `masked` choices (keys attended / keys visible), by masker configuration.");
  for (const auto& [config, histogram] : attention_density_)
    histogram.render("hotswap_attention_density", &out, "config=\"" + prometheus_label(config) + "\"");
  return out;
}

}  // namespace hotswap::server
