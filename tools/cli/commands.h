// The offline subcommands of `hotswap` (specs/api.md): generate, logits, tokenize,
// detokenize, make-demo-model, eval. Each add_*_command registers its subcommand and its
// options on the binary's CLI::App (app/main.cc assembles them); the subcommand's
// description is "summary line\nwhat its --help says". Once the command line has parsed, the
// chosen subcommand's callback runs it and stores the process exit code in *exit_code.
// Usage errors throw UsageError (options.h: exit 2), load errors LoadError (exit 1).
#pragma once

namespace CLI {
class App;
}

namespace hotswap::cli {

void add_generate_command(CLI::App& app, int* exit_code);         // model_commands.cc
void add_logits_command(CLI::App& app, int* exit_code);           // model_commands.cc
void add_tokenize_command(CLI::App& app, int* exit_code);         // text_commands.cc
void add_detokenize_command(CLI::App& app, int* exit_code);       // text_commands.cc
void add_make_demo_model_command(CLI::App& app, int* exit_code);  // text_commands.cc
void add_eval_command(CLI::App& app, int* exit_code);             // eval/eval_command.cc

}  // namespace hotswap::cli
