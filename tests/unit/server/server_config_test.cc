#include "server_config.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

namespace hotswap::server {
namespace {

TEST(ServerConfig, DefaultsMatchTheShippedConfigFile) {
  ServerConfig from_file;
  std::ifstream in(std::string(HOTSWAP_SOURCE_DIR) + "/configs/server.json");
  ASSERT_TRUE(in) << "configs/server.json is missing";
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  apply_config_json(text, "configs/server.json", &from_file);
  const ServerConfig builtin;
  EXPECT_EQ(from_file.host, builtin.host);
  EXPECT_EQ(from_file.port, builtin.port);
  EXPECT_EQ(from_file.io_threads, builtin.io_threads);
  EXPECT_EQ(from_file.limits.max_body_bytes, builtin.limits.max_body_bytes);
  EXPECT_EQ(from_file.limits.max_upload_bytes, builtin.limits.max_upload_bytes);
  EXPECT_EQ(from_file.limits.codec.max_n, builtin.limits.codec.max_n);
  EXPECT_EQ(from_file.timeouts.idle_ms, builtin.timeouts.idle_ms);
  EXPECT_EQ(from_file.timeouts.drain_ms, builtin.timeouts.drain_ms);
  EXPECT_EQ(from_file.engine.kv_cache_tokens, builtin.engine.kv_cache_tokens);
  EXPECT_EQ(from_file.engine.matmul_precision, builtin.engine.matmul_precision);
  EXPECT_EQ(from_file.engine.weights, builtin.engine.weights);
  EXPECT_EQ(from_file.engine.kv_cache_dtype, builtin.engine.kv_cache_dtype);
  EXPECT_EQ(from_file.engine.max_prefill_tokens_while_decoding, builtin.engine.max_prefill_tokens_while_decoding);
  EXPECT_EQ(from_file.engine.max_queue, builtin.engine.max_queue);
  EXPECT_EQ(from_file.engine.max_new_tokens, builtin.engine.max_new_tokens);
  EXPECT_EQ(from_file.engine.adapter_resident_bytes, builtin.engine.adapter_resident_bytes);
  EXPECT_EQ(from_file.engine.adapter_rescan_ms, builtin.engine.adapter_rescan_ms);
  EXPECT_EQ(from_file.default_attention, builtin.default_attention);
  EXPECT_EQ(from_file.defaults.max_tokens, builtin.defaults.max_tokens);
  EXPECT_EQ(from_file.defaults.temperature, builtin.defaults.temperature);
}

TEST(ServerConfig, FlagsOverrideDefaults) {
  ServeOptions o = parse_serve_args({"serve", "--model", "/m", "--host", "0.0.0.0", "--port=0", "--threads", "4",
                                     "--api-key", "k", "--adapter-dir", "/a", "--adapter-rescan-ms", "250", "--max-queue", "7", "--default-attention",
                                     "{\"impl\":\"streaming\",\"sink_window_size\":4}"});
  EXPECT_EQ(o.config.model_dir, "/m");
  EXPECT_EQ(o.config.host, "0.0.0.0");
  EXPECT_EQ(o.config.port, 0);
  EXPECT_EQ(o.config.io_threads, 4);
  EXPECT_EQ(o.config.api_key, "k");
  EXPECT_EQ(o.config.adapter_dir, "/a");
  EXPECT_EQ(o.config.engine.adapter_rescan_ms, 250);
  EXPECT_EQ(o.config.engine.max_queue, 7);
  EXPECT_NE(o.config.default_attention.find("streaming"), std::string::npos);
  EXPECT_FALSE(o.help);
}

TEST(ServerConfig, FileThenFlags) {
  const std::string path = ::testing::TempDir() + "/hotswap_server_config_test.json";
  {
    std::ofstream out(path);
    out << R"({"_comment": "ignored", "port": 9000, "limits": {"max_body_bytes": 4096}, "engine": {"max_queue": 3},
              "defaults": {"temperature": 0.5}, "timeouts": {"drain_ms": 1500}})";
  }
  ServeOptions o = parse_serve_args({"serve", "--max-queue", "9", "--config", path});
  EXPECT_EQ(o.config.port, 9000);
  EXPECT_EQ(o.config.limits.max_body_bytes, 4096u);
  EXPECT_EQ(o.config.engine.max_queue, 9) << "a flag wins over the file, wherever it stands";
  EXPECT_FLOAT_EQ(o.config.defaults.temperature, 0.5f);
  EXPECT_EQ(o.config.timeouts.drain_ms, 1500);
  std::remove(path.c_str());
}

// The shipped config file says "api_key": "": it must not drop a key given in the
// environment (defaults < file < $HOTSWAP_API_KEY < --api-key).
TEST(ServerConfig, ApiKeyFromTheEnvironmentSurvivesTheConfigFile) {
  const std::string path = ::testing::TempDir() + "/hotswap_server_config_key_test.json";
  {
    std::ofstream out(path);
    out << R"({"api_key": "", "port": 9001})";
  }
  ::setenv("HOTSWAP_API_KEY", "from-env", 1);
  EXPECT_EQ(parse_serve_args({"serve", "--config", path}).config.api_key, "from-env");
  EXPECT_EQ(parse_serve_args({"serve", "--config", path, "--api-key", "from-flag"}).config.api_key, "from-flag");
  ::unsetenv("HOTSWAP_API_KEY");
  EXPECT_EQ(parse_serve_args({"serve", "--config", path}).config.api_key, "");
  std::remove(path.c_str());
}

TEST(ServerConfig, UnknownKeysAndBadValuesNameTheKey) {
  ServerConfig c;
  try {
    apply_config_json(R"({"limits": {"max_bodybytes": 5}})", "f.json", &c);
    FAIL() << "unknown key accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key 'limits.max_bodybytes'"), std::string::npos) << e.what();
  }
  try {
    apply_config_json(R"({"port": "http"})", "f.json", &c);
    FAIL() << "string port accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("f.json: port must be an integer"), std::string::npos) << e.what();
  }
  EXPECT_THROW(apply_config_json(R"({"port": 70000})", "f.json", &c), ConfigError);
  EXPECT_THROW(apply_config_json("{not json", "f.json", &c), ConfigError);
}

TEST(ServerConfig, MatmulPrecision) {
  EXPECT_EQ(parse_serve_args({"serve"}).config.engine.matmul_precision, MatmulPrecision::kAuto);
  EXPECT_EQ(parse_serve_args({"serve", "--matmul-precision", "f32"}).config.engine.matmul_precision,
            MatmulPrecision::kF32);
  EXPECT_EQ(parse_serve_args({"serve", "--matmul-precision", "bf16"}).config.engine.matmul_precision,
            MatmulPrecision::kBf16);
  ServerConfig c;
  apply_config_json(R"({"engine": {"matmul_precision": "bf16"}})", "f.json", &c);
  EXPECT_EQ(c.engine.matmul_precision, MatmulPrecision::kBf16);
  for (const char* bad : {R"({"engine": {"matmul_precision": "fp8"}})", R"({"engine": {"matmul_precision": 16}})"}) {
    try {
      apply_config_json(bad, "f.json", &c);
      FAIL() << bad << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(R"(f.json: engine.matmul_precision must be "auto", "f32" or "bf16")"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(c.engine.matmul_precision, MatmulPrecision::kBf16) << "a rejected value changes nothing";
  EXPECT_THROW(parse_serve_args({"serve", "--matmul-precision", "f16"}), ConfigError);
}

TEST(ServerConfig, Weights) {
  EXPECT_EQ(parse_serve_args({"serve"}).config.engine.weights, WeightFormat::kAuto);
  EXPECT_EQ(parse_serve_args({"serve", "--weights", "q8"}).config.engine.weights, WeightFormat::kQ8);
  EXPECT_EQ(parse_serve_args({"serve", "--weights", "q4"}).config.engine.weights, WeightFormat::kQ4);
  ServerConfig c;
  apply_config_json(R"({"engine": {"weights": "q4"}})", "f.json", &c);
  EXPECT_EQ(c.engine.weights, WeightFormat::kQ4);
  apply_config_json(R"({"engine": {"weights": "q8"}})", "f.json", &c);
  EXPECT_EQ(c.engine.weights, WeightFormat::kQ8);
  try {
    apply_config_json(R"({"engine": {"weights": "q3"}})", "f.json", &c);
    FAIL() << "q3 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(R"(f.json: engine.weights must be "auto", "q8" or "q4")"), std::string::npos) << e.what();
  }
  EXPECT_EQ(c.engine.weights, WeightFormat::kQ8) << "a rejected value changes nothing";
  EXPECT_THROW(parse_serve_args({"serve", "--weights", "int8"}), ConfigError);
}

TEST(ServerConfig, KvCacheDtype) {
  EXPECT_EQ(parse_serve_args({"serve"}).config.engine.kv_cache_dtype, KvCacheDtype::kBf16) << "bf16 by default";
  EXPECT_EQ(parse_serve_args({"serve", "--kv-cache-dtype", "bf16"}).config.engine.kv_cache_dtype, KvCacheDtype::kBf16);
  EXPECT_EQ(parse_serve_args({"serve", "--kv-cache-dtype", "f32"}).config.engine.kv_cache_dtype, KvCacheDtype::kF32);
  EXPECT_EQ(parse_serve_args({"serve", "--kv-cache-dtype", "q8"}).config.engine.kv_cache_dtype, KvCacheDtype::kQ8);
  ServerConfig c;
  apply_config_json(R"({"engine": {"kv_cache_dtype": "q8"}})", "f.json", &c);
  EXPECT_EQ(c.engine.kv_cache_dtype, KvCacheDtype::kQ8);
  apply_config_json(R"({"engine": {"kv_cache_dtype": "bf16"}})", "f.json", &c);
  EXPECT_EQ(c.engine.kv_cache_dtype, KvCacheDtype::kBf16);
  try {
    apply_config_json(R"({"engine": {"kv_cache_dtype": "q4"}})", "f.json", &c);
    FAIL() << "q4 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(R"(f.json: engine.kv_cache_dtype must be "f32", "bf16" or "q8")"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(c.engine.kv_cache_dtype, KvCacheDtype::kBf16) << "a rejected value changes nothing";
  EXPECT_THROW(parse_serve_args({"serve", "--kv-cache-dtype", "f16"}), ConfigError);
}

TEST(ServerConfig, BadFlags) {
  EXPECT_THROW(parse_serve_args({"serve", "--port", "abc"}), ConfigError);
  EXPECT_THROW(parse_serve_args({"serve", "--no-such-flag", "1"}), ConfigError);
  EXPECT_THROW(parse_serve_args({"serve", "--model"}), ConfigError);
  EXPECT_THROW(parse_serve_args({"serve", "positional"}), ConfigError);
  EXPECT_THROW(parse_serve_args({"serve", "--config", "/no/such/file.json"}), ConfigError);
  try {
    parse_serve_args({"serve", "--threads", "0"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--threads must be an integer between 1 and 256, got 0"), std::string::npos) << e.what();
  }
}

TEST(ServerConfig, HelpAndUsage) {
  EXPECT_TRUE(parse_serve_args({"serve", "--help"}).help);
  const std::string usage = serve_usage();
  for (const char* flag : {"--model", "--host", "--port", "--config", "--adapter-dir", "--api-key", "--threads"})
    EXPECT_NE(usage.find(flag), std::string::npos) << flag;
}

TEST(ServerConfig, CacheDirFlagWins) {
  ServerConfig c;
  c.cache_dir = "/tmp/x";
  EXPECT_EQ(resolved_cache_dir(c), "/tmp/x");
}

}  // namespace
}  // namespace hotswap::server
