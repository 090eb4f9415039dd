#include "serve_command.h"

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "server.h"
#include "server_config.h"

namespace hotswap::server {
namespace {

int run_serve(const CLI::App& command, const ServeArgs& args) {
  ServerConfig config;
  try {
    config = resolve_serve_config(args);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "hotswap serve: %s\n", e.what());
    return 2;
  }
  if (args.help) {
    const CLI::App* parent = command.get_parent();
    std::fputs(command.help(parent ? parent->get_name() : "").c_str(), stdout);
    return 0;
  }
  // Logs go to stderr (stdout carries only the "listening on" line), one logfmt-style line each.
  auto logger = spdlog::stderr_logger_mt("hotswap-serve");
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
  const spdlog::level::level_enum level = spdlog::level::from_str(config.log_level);
  if (level == spdlog::level::off && config.log_level != "off") {
    std::fprintf(stderr, "hotswap serve: --log-level must be trace, debug, info, warn, error or off, got '%s'\n",
                 config.log_level.c_str());
    return 2;
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);

  Server server(std::move(config));
  return server.run();
}

}  // namespace

void add_serve_command(CLI::App& app, int* exit_code) {
  CLI::App* command = app.add_subcommand("serve");
  auto args = std::make_shared<ServeArgs>();
  add_serve_flags(*command, args.get());
  command->callback([command, args, exit_code] { *exit_code = run_serve(*command, *args); });
}

}  // namespace hotswap::server
