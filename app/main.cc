// hotswap: one binary, one subcommand per job (specs/api.md). The command line is one CLI11
// App: each module registers its subcommand and that subcommand's options (serve:
// server/serve_command.h; the offline tools: tools/cli/commands.h); the subcommand that
// parsed runs from its callback and leaves the exit code.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/load_error.h"
#include "serve_command.h"

namespace {

// A subcommand's description is "summary line\nwhat its --help says": `hotswap --help` lists
// the summaries, `hotswap <command> --help` starts with the rest.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_subcommand(const CLI::App* sub) const override {
    std::string line = "  " + sub->get_name();
    line.resize(std::max(line.size() + 1, get_column_width()), ' ');
    const std::string& d = sub->get_description();
    return line + d.substr(0, d.find('\n')) + "\n";
  }
  std::string make_description(const CLI::App* app) const override {
    if (app->get_parent() == nullptr) return CLI::Formatter::make_description(app);
    const std::string& d = app->get_description();
    const size_t newline = d.find('\n');
    return (newline == std::string::npos ? d : d.substr(newline + 1)) + "\n\n";
  }
};

// argv[1..] last first, as CLI::App::parse takes them. "--name=" keeps its empty value
// (CLI11 2.1 would take the next argument as the value instead).
std::vector<std::string> reversed_args(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) {
    std::string arg = argv[i];
    if (arg.size() > 3 && arg.rfind("--", 0) == 0 && arg.find('=') == arg.size() - 1) {
      args.emplace_back();
      arg.pop_back();
    }
    args.push_back(std::move(arg));
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  // stdout carries the commands' JSON; logs always go to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("hotswap"));

  CLI::App app("", "hotswap");
  app.formatter(std::make_shared<HelpFormatter>());
  app.get_formatter()->column_width(40);
  // Every option of every subcommand: given twice, the last one wins; a flag takes no value.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)->disable_flag_override();
  app.group("Commands");  // the heading of the subcommands in --help (inherited by each)
  app.require_subcommand(1);
  int exit_code = 0;
  hotswap::server::add_serve_command(app, &exit_code);
  hotswap::cli::add_generate_command(app, &exit_code);
  hotswap::cli::add_logits_command(app, &exit_code);
  hotswap::cli::add_tokenize_command(app, &exit_code);
  hotswap::cli::add_detokenize_command(app, &exit_code);
  hotswap::cli::add_make_demo_model_command(app, &exit_code);
  hotswap::cli::add_eval_command(app, &exit_code);
  app.footer("`hotswap <command> --help` lists a command's options.");  // after the subcommands: they would inherit it

  if (argc < 2) {
    std::fputs(app.help().c_str(), stderr);
    return 2;
  }
  const std::string command = argv[1];
  if (command == "help") {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  }
  try {
    std::vector<std::string> args = reversed_args(argc, argv);
    app.parse(args);
    return exit_code;
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    if (app.get_subcommands().empty())
      std::fprintf(stderr, "hotswap: unknown command '%s' (see --help)\n", command.c_str());
    else
      std::fprintf(stderr, "hotswap %s: %s (see --help)\n", command.c_str(), e.what());
    return 2;
  } catch (const hotswap::cli::UsageError& e) {
    std::fprintf(stderr, "hotswap %s: %s (see --help)\n", command.c_str(), e.what());
    return 2;
  } catch (const hotswap::LoadError& e) {
    std::fprintf(stderr, "hotswap %s: %s\n", command.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hotswap %s: error: %s\n", command.c_str(), e.what());
    return 1;
  }
}
