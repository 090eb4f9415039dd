#include "server_config.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/request_fields.h"

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

double get_field(const json& v, const std::string& where, const FieldRange& range) {
  if (!v.is_number() || !range.contains(v.get<double>())) bad(where, range.expectation(), v);
  return v.get<double>();
}

std::string get_string(const json& v, const std::string& where) {
  if (!v.is_string()) bad(where, "a string", v);
  return v.get<std::string>();
}

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
constexpr int64_t kBig = std::numeric_limits<int64_t>::max();

#define HS_INT(path, lvalue, lo, hi) \
  {path, [](const json& v, const std::string& w, ServerConfig* c) { lvalue = static_cast<std::decay_t<decltype(lvalue)>>(get_int(v, w, lo, hi)); }}
// A request field's default, within the field's range in the engine's table (engine/request_fields.h).
#define HS_FIELD(path, lvalue, range) \
  {path, [](const json& v, const std::string& w, ServerConfig* c) { \
     lvalue = static_cast<std::decay_t<decltype(lvalue)>>(get_field(v, w, range)); }}
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
      {"engine.weights",
       [](const json& v, const std::string& w, ServerConfig* c) {
         if (!v.is_string() || !parse_weight_format(v.get<std::string>(), &c->engine.weights))
           bad(w, "\"auto\", \"q8\" or \"q4\"", v);
       }},
      {"engine.kv_cache_dtype",
       [](const json& v, const std::string& w, ServerConfig* c) {
         if (!v.is_string() || !parse_kv_cache_dtype(v.get<std::string>(), &c->engine.kv_cache_dtype))
           bad(w, "\"f32\", \"bf16\" or \"q8\"", v);
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
      HS_FIELD("defaults.max_tokens", c->defaults.max_tokens, request_fields::kMaxTokens),
      HS_FIELD("defaults.temperature", c->defaults.temperature, request_fields::kTemperature),
      HS_FIELD("defaults.top_p", c->defaults.top_p, request_fields::kTopP),
      HS_FIELD("defaults.top_k", c->defaults.top_k, request_fields::kTopK),
      HS_FIELD("defaults.min_p", c->defaults.min_p, request_fields::kMinP),
      HS_FIELD("defaults.repetition_penalty", c->defaults.repetition_penalty, request_fields::kRepetitionPenalty),
  };
  return table;
}

#undef HS_INT
#undef HS_FIELD
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
  const char* value;  // what the value is, in --help
  const char* help;
};

const Flag kFlags[] = {
    {"--model", "model", "DIR", "Hugging Face model directory (default: the built-in demo model)"},
    {"--host", "host", "ADDR", "address to listen on (default 127.0.0.1)"},
    {"--port", "port", "N", "port (default 8080; 0 = any free port, printed at start)"},
    {"--adapter-dir", "adapter_dir", "DIR", "where uploaded adapters are persisted"},
    {"--api-key", "api_key", "KEY", "require 'Authorization: Bearer KEY' on /v1/* (also $HOTSWAP_API_KEY)"},
    {"--threads", "io_threads", "N", "HTTP I/O threads (default 2)"},
    {"--cache-dir", "cache_dir", "DIR", "where the demo model and, for a read-only model directory, q8/q4 weights are cached"},
    {"--served-model-name", "served_model_name", "NAME", "model id in responses (default: directory name)"},
    {"--log-level", "log_level", "LEVEL", "trace|debug|info|warn|error"},
    {"--default-attention", "default_attention", "A", "attention when a request says auto and has no adapter"},
    {"--engine-threads", "engine.threads", "N", "compute threads (0 = all cores)"},
    {"--matmul-precision", "engine.matmul_precision", "P", "auto | f32 | bf16 (auto: bf16 arithmetic for BF16 weights)"},
    {"--weights", "engine.weights", "W",
     "auto | q8 | q4 (8- or 4-bit weights quantised at load, cached next to the model or in --cache-dir)"},
    {"--kv-cache-dtype", "engine.kv_cache_dtype", "T", "f32 | bf16 | q8: KV cache element type (bf16: half the bytes per token; q8: 9/32)"},
    {"--kv-cache-tokens", "engine.kv_cache_tokens", "N", "KV cache capacity in tokens"},
    {"--kv-cache-bytes", "engine.kv_cache_bytes", "N", "KV cache capacity in bytes (overrides tokens)"},
    {"--kv-block-size", "engine.kv_block_size", "N", "tokens per KV block"},
    {"--max-batch-tokens", "engine.max_batch_tokens", "N", "tokens per engine step"},
    {"--max-prefill-tokens-while-decoding", "engine.max_prefill_tokens_while_decoding", "N",
     "prefill tokens per step while streams decode (0 = max-batch-tokens)"},
    {"--max-running", "engine.max_running_sequences", "N", "sequences in the running batch"},
    {"--max-queue", "engine.max_queue", "N", "waiting requests before 429"},
    {"--max-prompt-tokens", "engine.max_prompt_tokens", "N", "prompt length limit (0 = model context)"},
    {"--max-new-tokens", "engine.max_new_tokens", "N", "upper bound for max_tokens"},
    {"--adapter-resident-bytes", "engine.adapter_resident_bytes", "N", "memory budget for resident adapters (LRU)"},
    {"--adapter-rescan-ms", "engine.adapter_rescan_ms", "MS",
     "follow other replicas' changes to --adapter-dir: inotify + a rescan at least this often (0 = start-up only)"},
    {"--max-body-bytes", "limits.max_body_bytes", "N", "JSON request body limit"},
    {"--max-upload-bytes", "limits.max_upload_bytes", "N", "adapter upload body limit"},
    {"--max-connections", "limits.max_connections", "N", "open connections (beyond: 503 with Retry-After)"},
    {"--max-connections-per-client", "limits.max_connections_per_client", "N",
     "open connections per client address (beyond: 429; 0 = no cap)"},
    {"--idle-timeout-ms", "timeouts.idle_ms", "MS", "keep-alive idle timeout"},
    {"--header-timeout-ms", "timeouts.header_ms", "MS", "time to receive a request header"},
    {"--body-timeout-ms", "timeouts.body_ms", "MS", "time to receive a request body"},
    {"--write-timeout-ms", "timeouts.write_ms", "MS", "time for one write to a client"},
    {"--drain-timeout-ms", "timeouts.drain_ms", "MS", "how long running requests may finish after SIGTERM"},
};

constexpr const char* kServeDescription =
    "run the HTTP daemon (built-in demo model unless --model)\n"
    "Serves the OpenAI-compatible HTTP API (docs: specs/api.md, server/README.md). Settings come from the\n"
    "built-in defaults (configs/server.json), then --config FILE, then $HOTSWAP_API_KEY, then the flags below.\n"
    "Prints 'listening on http://HOST:PORT' on stdout once the socket is bound; SIGTERM/SIGINT drain.";

json flag_value(const std::string& key, const std::string& text) {
  static const char* const kStringKeys[] = {"host", "model", "adapter_dir", "api_key", "cache_dir",
                                            "served_model_name", "log_level", "engine.matmul_precision",
                                            "engine.weights", "engine.kv_cache_dtype"};
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

void add_serve_flags(CLI::App& command, ServeArgs* args) {
  command.description(kServeDescription);
  // serve's own --help: it only marks the request, so that resolve_serve_config still runs.
  command.set_help_flag();
  command.add_flag("-h,--help", args->help, "print this help and exit (after checking --config FILE and the flags)");
  command.add_option("--config", args->config_file, "JSON config file (configs/server.json documents every key)")
      ->type_name("FILE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  for (const Flag& f : kFlags)
    command
        .add_option_function<std::string>(
            f.name, [args, &f](const std::string& value) { args->flags.emplace_back(f.name, value); }, f.help)
        ->type_name(f.value)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last one wins
}

ServerConfig resolve_serve_config(const ServeArgs& args) {
  ServerConfig config;
  // Precedence: defaults < config file < $HOTSWAP_API_KEY < flags. The environment comes after
  // the file so that a file's "api_key": "" (configs/server.json has one) cannot silently
  // drop a key given as a secret in the environment.
  if (!args.config_file.empty()) apply_config_json(read_file(args.config_file), args.config_file, &config);
  if (const char* key = std::getenv("HOTSWAP_API_KEY"); key && *key) config.api_key = key;
  for (const auto& [name, value] : args.flags) {
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags)
      if (name == f.name) flag = &f;
    if (!flag) throw ConfigError("unknown flag " + name + " (see --help)");
    setters().at(flag->key)(flag_value(flag->key, value), name, &config);
  }
  return config;
}

ServeOptions parse_serve_args(const std::vector<std::string>& args) {
  CLI::App command("", "serve");
  ServeArgs parsed;
  add_serve_flags(command, &parsed);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  if (!reversed.empty() && reversed.back() == "serve") reversed.pop_back();
  try {
    command.parse(reversed);
  } catch (const CLI::ParseError& e) {
    throw ConfigError(std::string(e.what()) + " (see --help)");
  }
  return {resolve_serve_config(parsed), parsed.help};
}

std::string serve_usage() {
  CLI::App command("", "serve");
  ServeArgs unused;
  add_serve_flags(command, &unused);
  return command.help("hotswap");
}

std::string resolved_cache_dir(const ServerConfig& config) {
  if (!config.cache_dir.empty()) return config.cache_dir;
  if (const char* v = std::getenv("HOTSWAP_CACHE_DIR"); v && *v) return v;
  if (const char* v = std::getenv("XDG_CACHE_HOME"); v && *v) return std::string(v) + "/hotswap";
  if (const char* v = std::getenv("HOME"); v && *v) return std::string(v) + "/.cache/hotswap";
  return ".hotswap-cache";
}

}  // namespace hotswap::server
