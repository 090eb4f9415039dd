// `hotswap serve`: registered on the binary's command line by app/main.cc.
#pragma once

namespace CLI {
class App;
}

namespace hotswap::server {

// Adds the `serve` subcommand (its flags: add_serve_flags, server_config.h) to `app`. Once the
// command line has parsed, its callback checks the configuration, prints --help or runs the
// server, and stores the process exit code in *exit_code (2: a bad flag or config file).
void add_serve_command(CLI::App& app, int* exit_code);

}  // namespace hotswap::server
