// The offline subcommands of `hotswap` (specs/api.md): generate, logits, tokenize,
// detokenize, make-demo-model, eval. Each returns the process exit code.
#pragma once

namespace hotswap::cli {

int run_generate(int argc, char** argv);
int run_logits(int argc, char** argv);
int run_tokenize(int argc, char** argv);
int run_detokenize(int argc, char** argv);
int run_make_demo_model(int argc, char** argv);
int run_eval(int argc, char** argv);  // cli/eval/eval_command.cc

}  // namespace hotswap::cli
