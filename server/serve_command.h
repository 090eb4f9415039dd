// `hotswap serve ...`: the entry point main.cc dispatches to.
#pragma once

namespace hotswap::server {

// argv[0] is "serve". Returns the process exit code.
int run_serve_command(int argc, char** argv);

}  // namespace hotswap::server
