// generate and logits: the engine and the model, driven from the command line.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "attention/sequence_attention.h"
#include "cli/adapter_file.h"
#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/stream_events.h"
#include "engine/engine.h"
#include "kernels/linear.h"
#include "model/model.h"
#include "runner/sequence_session.h"

namespace hotswap::cli {
namespace {

AttentionChoice attention_from(const CliArgs& args) {
  AttentionChoice choice;
  if (!args.has("attention")) return choice;
  std::string error;
  if (!parse_attention_choice(args.get("attention"), &choice, &error)) throw UsageError("--attention: " + error);
  return choice;
}

MatmulPrecision matmul_precision_from(const CliArgs& args) {
  MatmulPrecision p = MatmulPrecision::kAuto;
  if (args.has("matmul-precision") && !parse_matmul_precision(args.get("matmul-precision"), &p))
    throw UsageError("--matmul-precision must be auto, f32 or bf16, got '" + args.get("matmul-precision") + "'");
  return p;
}

constexpr const char* kMatmulPrecisionHelp =
    "auto | f32 | bf16 (auto: bf16 activations and products for BF16 weights, as PyTorch computes them)";

}  // namespace

int run_generate(int argc, char** argv) {
  CliArgs args("generate", "Generate a continuation with the engine (the same path the server uses).");
  args.option("model", "Hugging Face model directory")
      .option("prompt", "prompt text (encoded with the model's tokenizer, special tokens added)")
      .option("prompt-ids", "prompt as comma-separated token ids")
      .option("max-tokens", "tokens to generate", "64")
      .option("temperature", "0 = greedy", "1.0")
      .option("top-p", "nucleus sampling", "1.0")
      .option("top-k", "0 = off", "0")
      .option("min-p", "0 = off", "0")
      .option("repetition-penalty", "1 = off", "1.0")
      .option("seed", "sampling seed")
      .option("stop", "a stop string")
      .option("attention", "eager | streaming | mixed | nsa | masked | auto, or a JSON object (specs: attention.md, maskers.md)")
      .option("adapter", "adapter_weight.json file or directory")
      .option("threads", "worker threads (0 = all cores)", "0")
      .option("matmul-precision", kMatmulPrecisionHelp, "auto")
      .flag("ignore-eos", "do not stop at EOS")
      .flag("json", "print {\"prompt_ids\",\"output_ids\",\"text\"} as JSON");
  if (!args.parse(argc, argv, 2)) return 0;
  if (args.has("prompt") == args.has("prompt-ids")) throw UsageError("give exactly one of --prompt and --prompt-ids");

  EngineConfig config;
  config.model_dir = args.get("model");
  config.num_threads = args.get_int("threads", 0);
  config.matmul_precision = matmul_precision_from(args);
  auto engine = Engine::create(config);

  GenerateRequest request;
  request.request_id = "cli";
  request.prompt_ids =
      args.has("prompt") ? engine->encode(args.get("prompt"), true) : parse_id_list(args.get("prompt-ids"), "prompt-ids");
  request.stop.max_tokens = args.get_int("max-tokens", 64);
  request.stop.ignore_eos = args.is_set("ignore-eos");
  if (args.has("stop")) request.stop.stop_strings.push_back(args.get("stop"));
  request.sampling.temperature = static_cast<float>(args.get_double("temperature", 1.0));
  request.sampling.top_p = static_cast<float>(args.get_double("top-p", 1.0));
  request.sampling.top_k = args.get_int("top-k", 0);
  request.sampling.min_p = static_cast<float>(args.get_double("min-p", 0));
  request.sampling.repetition_penalty = static_cast<float>(args.get_double("repetition-penalty", 1.0));
  if (args.has("seed")) request.sampling.seed = static_cast<uint64_t>(std::stoull(args.get("seed")));
  request.attention = attention_from(args);
  if (args.has("adapter")) request.adapter = engine_adapter_from_file(*engine, args.get("adapter"));
  const std::vector<int32_t> prompt_ids = request.prompt_ids;

  auto submitted = engine->submit(std::move(request));
  if (!submitted) {
    std::fprintf(stderr, "error: %s\n", submitted.status().message().c_str());
    return 1;
  }
  std::vector<int32_t> output_ids;
  std::string text, error;
  const bool stream_text = !args.is_set("json");
  for_each_event(*submitted.value(), [&](TokenEvent& e) {
    if (e.token_id >= 0) output_ids.push_back(e.token_id);
    text += e.text;
    if (stream_text) std::fputs(e.text.c_str(), stdout), std::fflush(stdout);
    if (e.finish) error = e.error;
  });
  if (!error.empty()) {
    std::fprintf(stderr, "error: %s\n", error.c_str());
    return 1;
  }
  if (stream_text) {
    std::fputs("\n", stdout);
  } else {
    nlohmann::json out = {{"prompt_ids", prompt_ids}, {"output_ids", output_ids}, {"text", text}};
    print_json(out);
  }
  return 0;
}

int run_logits(int argc, char** argv) {
  CliArgs args("logits", "Print the model's float32 logits for a prompt.");
  args.option("model", "Hugging Face model directory")
      .option("prompt-ids", "comma-separated token ids")
      .option("attention", "eager | streaming | mixed | nsa | masked | auto, or a JSON object (specs: attention.md, maskers.md)")
      .option("adapter", "adapter_weight.json file or directory")
      .option("matmul-precision", kMatmulPrecisionHelp, "auto")
      .flag("all-positions", "logits for every position, not only the last");
  if (!args.parse(argc, argv, 2)) return 0;
  const std::vector<int32_t> ids = parse_id_list(args.get("prompt-ids"), "prompt-ids");
  const MatmulPrecision precision = matmul_precision_from(args);
  auto model = Model::load(args.get("model"));
  kernels::set_linear_precision(linear_precision_for(precision, *model));
  const ModelConfig& c = model->config();
  for (int32_t id : ids)
    if (id >= c.vocab_size)
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(c.vocab_size));
  auto attention = load_sequence_attention(attention_from(args), args.get_or("adapter", ""),
                                           ModelShape{c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size, ""});
  if (!attention) {
    std::fprintf(stderr, "error: %s\n", attention.status().message().c_str());
    return 1;
  }
  SequenceSession session(*model, static_cast<int>(ids.size()), &attention.value());
  const bool all = args.is_set("all-positions");
  const std::vector<float> logits = session.append(ids, all);
  print_logits_json(logits, c.vocab_size);
  return 0;
}

}  // namespace hotswap::cli
