// Configuration of `hotswap serve`: built-in defaults (the same values as
// configs/server.json), overridden by a JSON config file, overridden by command-line flags.
// Load time only: errors throw ConfigError naming the file or flag and the key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "api/request_codec.h"
#include "engine/engine_config.h"

namespace CLI {
class App;
}

namespace hotswap::server {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ServerLimits {
  std::size_t max_body_bytes = 1 << 20;           // JSON request bodies
  std::size_t max_upload_bytes = 512ull << 20;    // adapter uploads (PUT /v1/adapters/{name})
  std::size_t max_header_bytes = 16 << 10;
  int max_connections = 1024;                     // beyond this, a new connection gets 503 + Retry-After
  int max_connections_per_client = 0;             // per client address; beyond it 429 + Retry-After; 0 = no cap
  CodecLimits codec;
};

// Milliseconds. idle: between requests on a keep-alive connection; header: from the first
// byte of a request to the end of its header, and from accept to the first byte of a
// connection's first request; body: reading the body; write: one write
// (a client that stops reading a stream is dropped and its request cancelled); drain:
// how long running requests may take to finish after SIGTERM/SIGINT.
struct ServerTimeouts {
  int idle_ms = 60000;
  int header_ms = 10000;
  int body_ms = 30000;
  int write_ms = 30000;
  int drain_ms = 30000;
};

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0 = any free port; the chosen one is printed
  int io_threads = 2;
  std::string model_dir;           // "" = the built-in demo model
  std::string cache_dir;           // the demo model; q8/q4 weights of read-only models; "" = see resolved_cache_dir()
  std::string adapter_dir;
  std::string api_key;             // "" = no authentication
  std::string served_model_name;   // "" = the model's id (its directory's name), filled in at load
  std::string log_level = "info";  // trace | debug | info | warn | error
  int retry_after_s = 1;           // Retry-After on 429 and 503
  std::string default_attention = "auto";  // a name or the JSON object form; "auto" = eager without adapter
  ServerLimits limits;
  ServerTimeouts timeouts;
  RequestDefaults defaults;        // for fields a request leaves out
  EngineConfig engine;             // model_dir and default_attention are filled at start-up
};

struct ServeOptions {
  ServerConfig config;
  bool help = false;
};

// What `hotswap serve`'s command line gave: --config FILE, --help, and the value of every
// other flag given (a flag given twice: the last value), in the flag table's order.
struct ServeArgs {
  std::string config_file;
  bool help = false;
  std::vector<std::pair<std::string, std::string>> flags;  // (flag, value)
};

// Applies a JSON document (the config file format) over *config. Unknown keys are errors
// (typos must not pass silently); keys starting with "_" are comments.
void apply_config_json(const std::string& json_text, const std::string& source, ServerConfig* config);

// Registers serve's description and options on `command` (CLI11; the binary's `serve`
// subcommand, server/serve_command.cc): --config FILE, -h/--help, and one flag per config key
// it sets (the flag table in server_config.cc). Flags take "--flag value" or "--flag=value".
// Parsing fills *args, which must outlive the parse. --help only sets args->help: serve
// checks the config and the flags before it prints the help (`serve --config F --help`).
void add_serve_flags(CLI::App& command, ServeArgs* args);

// The configuration: built-in defaults < the --config file < $HOTSWAP_API_KEY < the flags,
// each flag's value through the same setter (and checks) as its config file key.
ServerConfig resolve_serve_config(const ServeArgs& args);

// add_serve_flags + resolve_serve_config on the arguments after "serve" (args[0] may be
// "serve" and is skipped); every error, a parse error included, is a ConfigError.
ServeOptions parse_serve_args(const std::vector<std::string>& args);

// What `hotswap serve --help` prints (with CLI11's default formatter).
std::string serve_usage();

// The cache (demo model, q8/q4 weights of read-only model directories): --cache-dir, else $HOTSWAP_CACHE_DIR, else $XDG_CACHE_HOME/hotswap,
// else $HOME/.cache/hotswap, else ./.hotswap-cache.
std::string resolved_cache_dir(const ServerConfig& config);

}  // namespace hotswap::server
