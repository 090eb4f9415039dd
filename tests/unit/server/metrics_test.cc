#include "metrics/metrics.h"

#include <gtest/gtest.h>

namespace hotswap::server {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Metrics, CountsRequestsByRouteAndStatus) {
  Metrics m;
  m.record_request("/v1/completions", 200, 0.01);
  m.record_request("/v1/completions", 200, 0.02);
  m.record_request("/v1/completions", 400, 0.001);
  const std::string text = m.render(std::nullopt, {});
  EXPECT_TRUE(has_line(text, "hotswap_requests_total{route=\"/v1/completions\",status=\"200\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "hotswap_requests_total{route=\"/v1/completions\",status=\"400\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE hotswap_requests_total counter"));
}

TEST(Metrics, EngineGaugesIncludeFreeKvBlocks) {
  Metrics m;
  EngineStats stats;
  stats.waiting = 3;
  stats.running = 5;
  stats.kv_blocks_total = 100;
  stats.kv_blocks_used = 30;
  stats.kv_block_size = 16;
  stats.kv_bytes_per_block = 4096;
  stats.kv_cache_dtype = KvCacheDtype::kBf16;
  stats.prompt_tokens_total = 1234;
  stats.generated_tokens_total = 567;
  const std::string text = m.render(stats, {.ready = true});
  EXPECT_TRUE(has_line(text, "hotswap_queue_depth 3"));
  EXPECT_TRUE(has_line(text, "hotswap_running_sequences 5"));
  EXPECT_TRUE(has_line(text, "hotswap_kv_blocks_used 30"));
  EXPECT_TRUE(has_line(text, "hotswap_kv_blocks_free 70"));
  EXPECT_TRUE(has_line(text, "hotswap_kv_cache_bytes_total 409600")) << text;
  EXPECT_TRUE(has_line(text, "hotswap_kv_cache_bytes_used 122880")) << text;
  EXPECT_TRUE(has_line(text, "hotswap_kv_cache_info{dtype=\"bf16\",block_size=\"16\",bytes_per_block=\"4096\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "hotswap_prompt_tokens_total 1234"));
  EXPECT_TRUE(has_line(text, "hotswap_generation_tokens_total 567"));
  stats.kv_cache_dtype = KvCacheDtype::kQ8;
  stats.kv_bytes_per_block = 1152;
  const std::string q8 = m.render(stats, {.ready = true});
  EXPECT_TRUE(has_line(q8, "hotswap_kv_cache_bytes_total 115200")) << q8;
  EXPECT_TRUE(has_line(q8, "hotswap_kv_cache_info{dtype=\"q8\",block_size=\"16\",bytes_per_block=\"1152\"} 1")) << q8;
  EXPECT_TRUE(has_line(text, "hotswap_ready 1"));
  EXPECT_TRUE(has_line(text, "hotswap_adapters_resident 0"));
  EXPECT_TRUE(has_line(text, "hotswap_adapter_loads_total 0"));
}

// The Gateway API Inference Extension's model-server protocol, vLLM names (docs/metrics.md).
TEST(Metrics, GatewayProtocolGauges) {
  Metrics m;
  EngineStats stats;
  stats.waiting = 3;
  stats.running = 5;
  stats.kv_blocks_total = 200;
  stats.kv_blocks_used = 50;
  stats.max_running = 64;
  stats.kv_block_size = 16;
  stats.running_adapters = {"a", "b.v2"};
  stats.waiting_adapters = {"c"};
  stats.sampled_at_unix_s = 1767225600.25;
  const std::string text = m.render(stats, {.ready = true});
  EXPECT_TRUE(has_line(text, "# TYPE vllm:num_requests_waiting gauge")) << text;
  EXPECT_TRUE(has_line(text, "vllm:num_requests_waiting 3")) << text;
  EXPECT_TRUE(has_line(text, "vllm:num_requests_running 5")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE vllm:kv_cache_usage_perc gauge")) << text;
  EXPECT_TRUE(has_line(text, "vllm:kv_cache_usage_perc 0.25")) << text;
  EXPECT_TRUE(has_line(text, "vllm:gpu_cache_usage_perc 0.25")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE vllm:lora_requests_info gauge")) << text;
  EXPECT_TRUE(has_line(text,
                       "vllm:lora_requests_info{max_lora=\"64\",running_lora_adapters=\"a,b.v2\","
                       "waiting_lora_adapters=\"c\"} 1767225600.250"))
      << text;
  EXPECT_TRUE(has_line(text, "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"200\"} 1")) << text;
  // The hotswap_* names stay.
  EXPECT_TRUE(has_line(text, "hotswap_queue_depth 3")) << text;
  EXPECT_TRUE(has_line(text, "hotswap_kv_blocks_used 50")) << text;
}

TEST(Metrics, GatewayProtocolGaugesWhenIdleOrLoading) {
  Metrics m;
  EngineStats idle;
  idle.kv_blocks_total = 100;
  idle.max_running = 1;
  idle.kv_block_size = 16;
  idle.sampled_at_unix_s = 5;
  std::string text = m.render(idle, {.ready = true});
  EXPECT_TRUE(has_line(text, "vllm:num_requests_waiting 0")) << text;
  EXPECT_TRUE(has_line(text, "vllm:kv_cache_usage_perc 0")) << text;
  EXPECT_TRUE(has_line(text, "vllm:lora_requests_info{max_lora=\"1\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"} 5.000"))
      << text;
  // While the model loads: the gauges are 0 and the info gauges have no sample.
  text = m.render(std::nullopt, {});
  EXPECT_TRUE(has_line(text, "vllm:num_requests_waiting 0")) << text;
  EXPECT_TRUE(has_line(text, "vllm:kv_cache_usage_perc 0")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE vllm:lora_requests_info gauge")) << text;
  EXPECT_EQ(text.find("vllm:lora_requests_info{"), std::string::npos) << text;
  EXPECT_EQ(text.find("vllm:cache_config_info{"), std::string::npos) << text;
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.5, 2);
  h.observe(7);
  std::string out;
  h.render("x", &out);
  EXPECT_TRUE(has_line(out, "x_bucket{le=\"0.1\"} 1")) << out;
  EXPECT_TRUE(has_line(out, "x_bucket{le=\"1\"} 3")) << out;
  EXPECT_TRUE(has_line(out, "x_bucket{le=\"+Inf\"} 4")) << out;
  EXPECT_TRUE(has_line(out, "x_sum 8.05")) << out;
  EXPECT_TRUE(has_line(out, "x_count 4")) << out;
}

TEST(Metrics, LatencyHistogramsAreExposed) {
  Metrics m;
  m.observe_time_to_first_token(0.02);
  m.observe_inter_token_latency(0.004, 3);
  const std::string text = m.render(std::nullopt, {});
  EXPECT_TRUE(has_line(text, "hotswap_time_to_first_token_seconds_count 1"));
  EXPECT_TRUE(has_line(text, "hotswap_inter_token_latency_seconds_count 3"));
  EXPECT_TRUE(has_line(text, "# TYPE hotswap_inter_token_latency_seconds histogram"));
}

TEST(Metrics, LabelValuesAreEscaped) { EXPECT_EQ(prometheus_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd"); }

}  // namespace
}  // namespace hotswap::server
