// hotswap: one binary, one subcommand per job (specs/api.md).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "core/load_error.h"
#include "serve_command.h"

namespace {

constexpr const char* kUsage =
    "usage: hotswap <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve             run the HTTP daemon (built-in demo model unless --model)\n"
    "  generate          one generation\n"
    "  logits            float32 logits for a prompt\n"
    "  tokenize          text -> token ids\n"
    "  detokenize        token ids -> text\n"
    "  make-demo-model   write the deterministic demo model (or a benchmark shape)\n"
    "  eval              perplexity, retrieval, density and speed per attention configuration\n"
    "\n"
    "`hotswap <command> --help` lists a command's options.\n";

int dispatch(int argc, char** argv) {
  const std::string command = argv[1];
  using namespace hotswap::cli;
  if (command == "serve") return hotswap::server::run_serve_command(argc - 1, argv + 1);
  if (command == "generate") return run_generate(argc, argv);
  if (command == "logits") return run_logits(argc, argv);
  if (command == "tokenize") return run_tokenize(argc, argv);
  if (command == "detokenize") return run_detokenize(argc, argv);
  if (command == "make-demo-model") return run_make_demo_model(argc, argv);
  if (command == "eval") return run_eval(argc, argv);
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "hotswap: unknown command '%s'\n\n%s", command.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  // stdout carries the commands' JSON; logs always go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("hotswap"));
  try {
    return dispatch(argc, argv);
  } catch (const hotswap::cli::UsageError& e) {
    std::fprintf(stderr, "hotswap %s: %s (see --help)\n", argv[1], e.what());
    return 2;
  } catch (const hotswap::LoadError& e) {
    std::fprintf(stderr, "hotswap %s: %s\n", argv[1], e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hotswap %s: error: %s\n", argv[1], e.what());
    return 1;
  }
}
