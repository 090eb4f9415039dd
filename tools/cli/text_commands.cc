// tokenize, detokenize and make-demo-model.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/options.h"
#include "model_gen/random_model.h"
#include "tokenizer/tokenizer.h"

namespace hotswap::cli {
namespace {

struct TokenizeArgs {
  std::string model, text;
  bool add_special_tokens = false;
};

struct DetokenizeArgs {
  std::string model, ids;
  bool skip_special_tokens = false;
};

struct MakeDemoModelArgs {
  std::string out, preset = "demo", dtype;
  int seed = 0;
};

int run_tokenize(const TokenizeArgs& args) {
  auto tok = Tokenizer::load(args.model);
  print_json({{"ids", tok->encode(args.text, args.add_special_tokens)}});
  return 0;
}

int run_detokenize(const DetokenizeArgs& args) {
  auto tok = Tokenizer::load(args.model);
  const std::vector<int32_t> ids = parse_id_list(args.ids, "ids");
  for (int32_t id : ids)
    if (id >= tok->vocab_size())
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary of " +
                       std::to_string(tok->vocab_size()));
  print_json({{"text", tok->decode(ids, args.skip_special_tokens)}});
  return 0;
}

int run_make_demo_model(const CLI::App& cmd, const MakeDemoModelArgs& args) {
  RandomModelSpec spec;
  try {
    spec = random_model_preset(args.preset);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (cmd.count("--dtype") > 0) {
    spec.dtype = args.dtype;
    if (spec.dtype != "F32" && spec.dtype != "BF16") throw UsageError("--dtype must be F32 or BF16");
  }
  if (cmd.count("--seed") > 0) spec.seed = static_cast<uint64_t>(args.seed);
  const auto start = std::chrono::steady_clock::now();
  write_random_model(spec, args.out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "wrote %s model to %s in %.2f s\n", spec.preset.c_str(), args.out.c_str(), secs);
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "text -> token ids\nEncode text with a model's tokenizer.");
  cmd->add_option("--model", args->model, "model directory or tokenizer.json")->type_name("DIR_OR_FILE")->required();
  cmd->add_option("--text", args->text, "text to encode")->type_name("TEXT")->required();
  cmd->add_flag("--add-special-tokens", args->add_special_tokens, "apply the tokenizer's post-processor (e.g. BOS)");
  cmd->callback([args, exit_code] { *exit_code = run_tokenize(*args); });
}

void add_detokenize_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<DetokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("detokenize", "token ids -> text\nDecode token ids with a model's tokenizer.");
  cmd->add_option("--model", args->model, "model directory or tokenizer.json")->type_name("DIR_OR_FILE")->required();
  cmd->add_option("--ids", args->ids, "comma-separated token ids")->type_name("IDS")->required();
  cmd->add_flag("--skip-special-tokens", args->skip_special_tokens, "leave special tokens out of the text");
  cmd->callback([args, exit_code] { *exit_code = run_detokenize(*args); });
}

void add_make_demo_model_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<MakeDemoModelArgs>();
  std::string presets;
  for (const auto& p : random_model_presets()) presets += (presets.empty() ? "" : " | ") + p;
  CLI::App* cmd = app.add_subcommand(
      "make-demo-model",
      "write the deterministic demo model (or a benchmark shape)\n"
      "Write a deterministic random Llama-architecture model (no network).");
  cmd->add_option("--out", args->out, "output directory")->type_name("DIR")->required();
  cmd->add_option("--preset", args->preset, presets)->type_name("P")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "F32 | BF16 (default: the preset's)")->type_name("D");
  decimal(cmd->add_option("--seed", args->seed, "weight seed (default: the preset's)")->type_name("S"));
  cmd->callback([cmd, args, exit_code] { *exit_code = run_make_demo_model(*cmd, *args); });
}

}  // namespace hotswap::cli
