#include "server_config.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

namespace hotswap::server {
namespace {

using json = nlohmann::json;

// Typed setters shared by the file and the flags, keyed by the file's dotted path
// ("limits.max_body_bytes"); flags map onto the same keys.
using Setter = std::function<void(const json& value, const std::string& where, ServerConfig* c)>;

[[noreturn]] void bad(const std::string& where, const std::string& expectation, const json& value) {
  throw ConfigError(where + " must be " + expectation + ", got " + value.dump());
}

int64_t get_int(const json& v, const std::string& where, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) bad(where, "an integer", v);
  const int64_t i = v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
  if (i < lo || i > hi)
    bad(where, "an integer between " + std::to_string(lo) + " and " + std::to_string(hi), v);
  return i;
}

double get_number(const json& v, const std::string& where, double lo, double hi) {
  if (!v.is_number()) bad(where, "a number", v);
  const double d = v.get<double>();
  if (d < lo || d > hi) bad(where, "a number between " + std::to_string(lo) + " and " + std::to_string(hi), v);
  return d;
}

std::string get_string(const json& v, const std::string& where) {
  if (!v.is_string()) bad(where, "a string", v);
  return v.get<std::string>();
}

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
constexpr int64_t kBig = std::numeric_limits<int64_t>::max();

#define HS_INT(path, lvalue, lo, hi) \
  {path, [](const json& v, const std::string& w, ServerConfig* c) { lvalue = static_cast<std::decay_t<decltype(lvalue)>>(get_int(v, w, lo, hi)); }}
#define HS_NUM(path, lvalue, lo, hi) \
  {path, [](const json& v, const std::string& w, ServerConfig* c) { lvalue = static_cast<float>(get_number(v, w, lo, hi)); }}
#define HS_STR(path, lvalue) \
  {path, [](const json& v, const std::string& w, ServerConfig* c) { lvalue = get_string(v, w); }}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      HS_STR("host", c->host),
      HS_INT("port", c->port, 0, 65535),
      HS_INT("io_threads", c->io_threads, 1, 256),
      HS_STR("model", c->model_dir),
      HS_STR("cache_dir", c->cache_dir),
      HS_STR("adapter_dir", c->adapter_dir),
      HS_STR("api_key", c->api_key),
      HS_STR("served_model_name", c->served_model_name),
      HS_STR("log_level", c->log_level),
      HS_INT("retry_after_s", c->retry_after_s, 0, 3600),
      {"default_attention",
       [](const json& v, const std::string& w, ServerConfig* c) {
         if (v.is_string()) c->default_attention = v.get<std::string>();
         else if (v.is_object()) c->default_attention = v.dump();
         else bad(w, "a string or an object", v);
       }},
      HS_INT("limits.max_body_bytes", c->limits.max_body_bytes, 1024, kBig),
      HS_INT("limits.max_upload_bytes", c->limits.max_upload_bytes, 1024, kBig),
      HS_INT("limits.max_header_bytes", c->limits.max_header_bytes, 1024, 1 << 20),
      HS_INT("limits.max_connections", c->limits.max_connections, 1, 1 << 20),
      HS_INT("limits.max_connections_per_client", c->limits.max_connections_per_client, 0, 1 << 20),
      HS_INT("limits.max_n", c->limits.codec.max_n, 1, 1024),
      HS_INT("limits.max_prompts", c->limits.codec.max_prompts, 1, 1024),
      HS_INT("limits.max_choices", c->limits.codec.max_choices, 1, 4096),
      HS_INT("limits.max_stop", c->limits.codec.max_stop, 0, 1024),
      HS_INT("limits.max_stop_bytes", c->limits.codec.max_stop_bytes, 1, 1 << 16),
      HS_INT("limits.max_logprobs", c->limits.codec.max_logprobs, 0, 1024),
      HS_INT("limits.max_messages", c->limits.codec.max_messages, 1, 1 << 20),
      HS_INT("timeouts.idle_ms", c->timeouts.idle_ms, 1, kIntMax),
      HS_INT("timeouts.header_ms", c->timeouts.header_ms, 1, kIntMax),
      HS_INT("timeouts.body_ms", c->timeouts.body_ms, 1, kIntMax),
      HS_INT("timeouts.write_ms", c->timeouts.write_ms, 1, kIntMax),
      HS_INT("timeouts.drain_ms", c->timeouts.drain_ms, 0, kIntMax),
      HS_INT("engine.threads", c->engine.num_threads, 0, 1024),
      {"engine.matmul_precision",
       [](const json& v, const std::string& w, ServerConfig* c) {
         if (!v.is_string() || !parse_matmul_precision(v.get<std::string>(), &c->engine.matmul_precision))
           bad(w, "\"auto\", \"f32\" or \"bf16\"", v);
       }},
      HS_INT("engine.kv_cache_tokens", c->engine.kv_cache_tokens, 1, kBig),
      HS_INT("engine.kv_cache_bytes", c->engine.kv_cache_bytes, 0, kBig),
      HS_INT("engine.kv_block_size", c->engine.kv_block_size, 1, 4096),
      HS_INT("engine.max_batch_tokens", c->engine.max_batch_tokens, 1, kIntMax),
      HS_INT("engine.max_prefill_tokens_while_decoding", c->engine.max_prefill_tokens_while_decoding, 0, kIntMax),
      HS_INT("engine.max_running_sequences", c->engine.max_running_sequences, 1, kIntMax),
      HS_INT("engine.max_queue", c->engine.max_queue, 0, kIntMax),
      HS_INT("engine.max_prompt_tokens", c->engine.max_prompt_tokens, 0, kIntMax),
      HS_INT("engine.max_new_tokens", c->engine.max_new_tokens, 1, kIntMax),
      HS_INT("engine.adapter_resident_bytes", c->engine.adapter_resident_bytes, 0, kBig),
      HS_INT("engine.adapter_rescan_ms", c->engine.adapter_rescan_ms, 0, 3'600'000),
      HS_INT("defaults.max_tokens", c->defaults.max_tokens, 1, kIntMax),
      HS_NUM("defaults.temperature", c->defaults.temperature, 0, 2),
      HS_NUM("defaults.top_p", c->defaults.top_p, 1e-9, 1),
      HS_INT("defaults.top_k", c->defaults.top_k, 0, kIntMax),
      HS_NUM("defaults.min_p", c->defaults.min_p, 0, 1),
      HS_NUM("defaults.repetition_penalty", c->defaults.repetition_penalty, 1e-9, 1e9),
  };
  return table;
}

#undef HS_INT
#undef HS_NUM
#undef HS_STR

void apply_object(const json& object, const std::string& prefix, const std::string& source, ServerConfig* config) {
  for (const auto& [key, value] : object.items()) {
    if (!key.empty() && key.front() == '_') continue;
    const std::string path = prefix + key;
    if (value.is_object() && path != "default_attention") {
      apply_object(value, path + ".", source, config);
      continue;
    }
    auto it = setters().find(path);
    if (it == setters().end()) throw ConfigError(source + ": unknown key '" + path + "'");
    it->second(value, source + ": " + path, config);
  }
}

// Flags: name -> config key; values are parsed as JSON when they look like numbers.
struct Flag {
  const char* name;
  const char* key;
  const char* help;
};

const Flag kFlags[] = {
    {"--model", "model", "DIR  Hugging Face model directory (default: the built-in demo model)"},
    {"--host", "host", "ADDR  address to listen on (default 127.0.0.1)"},
    {"--port", "port", "N  port (default 8080; 0 = any free port, printed at start)"},
    {"--adapter-dir", "adapter_dir", "DIR  where uploaded adapters are persisted"},
    {"--api-key", "api_key", "KEY  require 'Authorization: Bearer KEY' on /v1/* (also $HOTSWAP_API_KEY)"},
    {"--threads", "io_threads", "N  HTTP I/O threads (default 2)"},
    {"--cache-dir", "cache_dir", "DIR  where the demo model is created"},
    {"--served-model-name", "served_model_name", "NAME  model id in responses (default: directory name)"},
    {"--log-level", "log_level", "LEVEL  trace|debug|info|warn|error"},
    {"--default-attention", "default_attention", "A  attention when a request says auto and has no adapter"},
    {"--engine-threads", "engine.threads", "N  compute threads (0 = all cores)"},
    {"--matmul-precision", "engine.matmul_precision", "P  auto | f32 | bf16 (auto: bf16 arithmetic for BF16 weights)"},
    {"--kv-cache-tokens", "engine.kv_cache_tokens", "N  KV cache capacity in tokens"},
    {"--kv-cache-bytes", "engine.kv_cache_bytes", "N  KV cache capacity in bytes (overrides tokens)"},
    {"--kv-block-size", "engine.kv_block_size", "N  tokens per KV block"},
    {"--max-batch-tokens", "engine.max_batch_tokens", "N  tokens per engine step"},
    {"--max-prefill-tokens-while-decoding", "engine.max_prefill_tokens_while_decoding",
     "N  prefill tokens per step while streams decode (0 = max-batch-tokens)"},
    {"--max-running", "engine.max_running_sequences", "N  sequences in the running batch"},
    {"--max-queue", "engine.max_queue", "N  waiting requests before 429"},
    {"--max-prompt-tokens", "engine.max_prompt_tokens", "N  prompt length limit (0 = model context)"},
    {"--max-new-tokens", "engine.max_new_tokens", "N  upper bound for max_tokens"},
    {"--adapter-resident-bytes", "engine.adapter_resident_bytes", "N  memory budget for resident adapters (LRU)"},
    {"--adapter-rescan-ms", "engine.adapter_rescan_ms",
     "MS  follow other replicas' changes to --adapter-dir: inotify + a rescan at least this often (0 = start-up only)"},
    {"--max-body-bytes", "limits.max_body_bytes", "N  JSON request body limit"},
    {"--max-upload-bytes", "limits.max_upload_bytes", "N  adapter upload body limit"},
    {"--max-connections", "limits.max_connections", "N  open connections (beyond: 503 with Retry-After)"},
    {"--max-connections-per-client", "limits.max_connections_per_client", "N  open connections per client address (beyond: 429; 0 = no cap)"},
    {"--idle-timeout-ms", "timeouts.idle_ms", "MS  keep-alive idle timeout"},
    {"--header-timeout-ms", "timeouts.header_ms", "MS  time to receive a request header"},
    {"--body-timeout-ms", "timeouts.body_ms", "MS  time to receive a request body"},
    {"--write-timeout-ms", "timeouts.write_ms", "MS  time for one write to a client"},
    {"--drain-timeout-ms", "timeouts.drain_ms", "MS  how long running requests may finish after SIGTERM"},
};

json flag_value(const std::string& key, const std::string& text) {
  static const char* const kStringKeys[] = {"host", "model", "adapter_dir", "api_key", "cache_dir",
                                            "served_model_name", "log_level", "engine.matmul_precision"};
  for (const char* k : kStringKeys)
    if (key == k) return text;
  if (key == "default_attention") {
    if (!text.empty() && text.front() == '{') {
      json parsed = json::parse(text, nullptr, false);
      if (parsed.is_discarded()) throw ConfigError("--default-attention: not valid JSON: " + text);
      return parsed;
    }
    return text;
  }
  json parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_number()) return text;  // the setter reports "must be an integer"
  return parsed;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open config file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

void apply_config_json(const std::string& json_text, const std::string& source, ServerConfig* config) {
  json root = json::parse(json_text, nullptr, false);
  if (root.is_discarded()) throw ConfigError(source + ": not valid JSON");
  if (!root.is_object()) throw ConfigError(source + ": the config must be a JSON object");
  apply_object(root, "", source, config);
}

ServeOptions parse_serve_args(const std::vector<std::string>& args) {
  ServeOptions options;
  std::vector<std::pair<std::string, std::string>> flags;  // (name, value) in order
  std::string config_file;
  std::size_t i = (!args.empty() && args[0] == "serve") ? 1 : 0;
  for (; i < args.size(); ++i) {
    std::string name = args[i];
    if (name == "--help" || name == "-h") {
      options.help = true;
      continue;
    }
    if (name.rfind("--", 0) != 0) throw ConfigError("unexpected argument '" + name + "' (see --help)");
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) throw ConfigError(name + " needs a value");
      value = args[++i];
    }
    if (name == "--config") config_file = value;
    else flags.emplace_back(name, value);
  }
  // Precedence: defaults < config file < $HOTSWAP_API_KEY < flags. The environment comes after
  // the file so that a file's "api_key": "" (configs/server.json has one) cannot silently
  // drop a key given as a secret in the environment.
  if (!config_file.empty()) apply_config_json(read_file(config_file), config_file, &options.config);
  if (const char* key = std::getenv("HOTSWAP_API_KEY"); key && *key) options.config.api_key = key;
  for (const auto& [name, value] : flags) {
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags)
      if (name == f.name) flag = &f;
    if (!flag) throw ConfigError("unknown flag " + name + " (see --help)");
    auto it = setters().find(flag->key);
    it->second(flag_value(flag->key, value), name, &options.config);
  }
  return options;
}

std::string serve_usage() {
  std::string out =
      "usage: hotswap serve [--model DIR] [--host 127.0.0.1] [--port 8080] [--config FILE] [--adapter-dir DIR]\n"
      "                     [--api-key KEY] [--threads N] [flags...]\n\n"
      "Serves the OpenAI-compatible HTTP API (docs: specs/api.md, server/README.md). Settings come from the\n"
      "built-in defaults (configs/server.json), then --config FILE, then the flags below.\n"
      "Prints 'listening on http://HOST:PORT' on stdout once the socket is bound; SIGTERM/SIGINT drain.\n\n"
      "  --config FILE  JSON config file (configs/server.json documents every key)\n";
  for (const Flag& f : kFlags) {
    std::string line = "  ";
    line += f.name;
    line += ' ';
    line += f.help;
    out += line + "\n";
  }
  return out;
}

std::string resolved_cache_dir(const ServerConfig& config) {
  if (!config.cache_dir.empty()) return config.cache_dir;
  if (const char* v = std::getenv("HOTSWAP_CACHE_DIR"); v && *v) return v;
  if (const char* v = std::getenv("XDG_CACHE_HOME"); v && *v) return std::string(v) + "/hotswap";
  if (const char* v = std::getenv("HOME"); v && *v) return std::string(v) + "/.cache/hotswap";
  return ".hotswap-cache";
}

}  // namespace hotswap::server
