#include "serve_command.h"

#include <cstdio>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "server.h"
#include "server_config.h"

namespace hotswap::server {

int run_serve_command(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  ServeOptions options;
  try {
    options = parse_serve_args(args);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "hotswap serve: %s\n", e.what());
    return 2;
  }
  if (options.help) {
    std::fputs(serve_usage().c_str(), stdout);
    return 0;
  }
  // Logs go to stderr (stdout carries only the "listening on" line), one logfmt-style line each.
  auto logger = spdlog::stderr_logger_mt("hotswap-serve");
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
  const spdlog::level::level_enum level = spdlog::level::from_str(options.config.log_level);
  if (level == spdlog::level::off && options.config.log_level != "off") {
    std::fprintf(stderr, "hotswap serve: --log-level must be trace, debug, info, warn, error or off, got '%s'\n",
                 options.config.log_level.c_str());
    return 2;
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);

  Server server(std::move(options.config));
  return server.run();
}

}  // namespace hotswap::server
