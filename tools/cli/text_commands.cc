// tokenize, detokenize and make-demo-model.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/json_output.h"
#include "model/random_model.h"
#include "tokenizer/tokenizer.h"

namespace hotswap::cli {

int run_tokenize(int argc, char** argv) {
  CliArgs args("tokenize", "Encode text with a model's tokenizer.");
  args.option("model", "model directory or tokenizer.json")
      .option("text", "text to encode")
      .flag("add-special-tokens", "apply the tokenizer's post-processor (e.g. BOS)");
  if (!args.parse(argc, argv, 2)) return 0;
  auto tok = Tokenizer::load(args.get("model"));
  print_json({{"ids", tok->encode(args.get("text"), args.is_set("add-special-tokens"))}});
  return 0;
}

int run_detokenize(int argc, char** argv) {
  CliArgs args("detokenize", "Decode token ids with a model's tokenizer.");
  args.option("model", "model directory or tokenizer.json")
      .option("ids", "comma-separated token ids")
      .flag("skip-special-tokens", "leave special tokens out of the text");
  if (!args.parse(argc, argv, 2)) return 0;
  auto tok = Tokenizer::load(args.get("model"));
  const std::vector<int32_t> ids = parse_id_list(args.get("ids"), "ids");
  for (int32_t id : ids)
    if (id >= tok->vocab_size())
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary of " +
                       std::to_string(tok->vocab_size()));
  print_json({{"text", tok->decode(ids, args.is_set("skip-special-tokens"))}});
  return 0;
}

int run_make_demo_model(int argc, char** argv) {
  std::string presets;
  for (const auto& p : random_model_presets()) presets += (presets.empty() ? "" : " | ") + p;
  CliArgs args("make-demo-model", "Write a deterministic random Llama-architecture model (no network).");
  args.option("out", "output directory")
      .option("preset", presets, "demo")
      .option("dtype", "F32 | BF16 (default: the preset's)")
      .option("seed", "weight seed (default: the preset's)");
  if (!args.parse(argc, argv, 2)) return 0;
  RandomModelSpec spec;
  try {
    spec = random_model_preset(args.get("preset"));
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  if (args.has("dtype")) {
    spec.dtype = args.get("dtype");
    if (spec.dtype != "F32" && spec.dtype != "BF16") throw UsageError("--dtype must be F32 or BF16");
  }
  if (args.has("seed")) spec.seed = static_cast<uint64_t>(args.get_int("seed", 0));
  const auto start = std::chrono::steady_clock::now();
  write_random_model(spec, args.get("out"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "wrote %s model to %s in %.2f s\n", spec.preset.c_str(), args.get("out").c_str(), secs);
  return 0;
}

}  // namespace hotswap::cli
