// generate and logits: the engine and the model, driven from the command line.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "attention/sequence_attention.h"
#include "cli/adapter_file.h"
#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/options.h"
#include "cli/stream_events.h"
#include "engine/engine.h"
#include "kernels/linear.h"
#include "model/model.h"
#include "runner/sequence_session.h"

namespace hotswap::cli {
namespace {

// What generate and logits share: the model and how it attends and multiplies.
struct ModelArgs {
  std::string model, attention, adapter, matmul_precision = "auto", weights = "auto", cache_dir,
      kv_cache_dtype = kv_cache_dtype_name(EngineConfig{}.kv_cache_dtype);
};

constexpr const char* kAttentionHelp =
    "eager | streaming | mixed | nsa | masked | auto, or a JSON object (specs: attention.md, maskers.md)";
constexpr const char* kMatmulPrecisionHelp =
    "auto | f32 | bf16 (auto: bf16 activations and products for BF16 weights, as PyTorch computes them)";

constexpr const char* kWeightsHelp =
    "auto | q8 | q4 (8- or 4-bit weights quantised at load and cached next to the model or in --cache-dir; "
    "docs/weights.md)";

WeightFormat weights_from(const ModelArgs& args) {
  WeightFormat w = WeightFormat::kAuto;
  if (!parse_weight_format(args.weights, &w)) throw UsageError(std::string("--weights must be ") + kWeightFormatChoices + ", got '" + args.weights + "'");
  return w;
}

AttentionChoice attention_from(const CLI::App& cmd, const ModelArgs& args) {
  AttentionChoice choice;
  if (cmd.count("--attention") == 0) return choice;
  std::string error;
  if (!parse_attention_choice(args.attention, &choice, &error)) throw UsageError("--attention: " + error);
  return choice;
}

MatmulPrecision matmul_precision_from(const ModelArgs& args) {
  MatmulPrecision p = MatmulPrecision::kAuto;
  if (!parse_matmul_precision(args.matmul_precision, &p))
    throw UsageError("--matmul-precision must be auto, f32 or bf16, got '" + args.matmul_precision + "'");
  return p;
}

constexpr const char* kKvCacheDtypeHelp =
    "f32 | bf16 | q8 (bf16: K/V stored rounded to bf16, half the bytes; q8: int8 per 32 values + scale, 9/32 of them)";

KvCacheDtype kv_cache_dtype_from(const ModelArgs& args) {
  KvCacheDtype t = KvCacheDtype::kF32;
  if (!parse_kv_cache_dtype(args.kv_cache_dtype, &t))
    throw UsageError(std::string("--kv-cache-dtype must be ") + kKvCacheDtypeChoices + ", got '" + args.kv_cache_dtype + "'");
  return t;
}

struct GenerateArgs : ModelArgs {
  std::string prompt, prompt_ids, stop;
  int max_tokens = 64, top_k = 0, threads = 0;
  double temperature = 1.0, top_p = 1.0, min_p = 0, repetition_penalty = 1.0;
  uint64_t seed = 0;
  bool ignore_eos = false, json = false;
};

struct LogitsArgs : ModelArgs {
  std::string prompt_ids;
  bool all_positions = false;
};

int run_generate(const CLI::App& cmd, const GenerateArgs& args) {
  if ((cmd.count("--prompt") > 0) == (cmd.count("--prompt-ids") > 0))
    throw UsageError("give exactly one of --prompt and --prompt-ids");

  EngineConfig config;
  config.model_dir = args.model;
  config.num_threads = args.threads;
  config.matmul_precision = matmul_precision_from(args);
  config.weights = weights_from(args);
  config.cache_dir = args.cache_dir;
  config.kv_cache_dtype = kv_cache_dtype_from(args);
  auto engine = Engine::create(config);

  GenerateRequest request;
  request.request_id = "cli";
  request.prompt_ids =
      cmd.count("--prompt") > 0 ? engine->encode(args.prompt, true) : parse_id_list(args.prompt_ids, "prompt-ids");
  request.stop.max_tokens = args.max_tokens;
  request.stop.ignore_eos = args.ignore_eos;
  if (cmd.count("--stop") > 0) request.stop.stop_strings.push_back(args.stop);
  request.sampling.temperature = static_cast<float>(args.temperature);
  request.sampling.top_p = static_cast<float>(args.top_p);
  request.sampling.top_k = args.top_k;
  request.sampling.min_p = static_cast<float>(args.min_p);
  request.sampling.repetition_penalty = static_cast<float>(args.repetition_penalty);
  if (cmd.count("--seed") > 0) request.sampling.seed = args.seed;
  request.attention = attention_from(cmd, args);
  if (cmd.count("--adapter") > 0) request.adapter = engine_adapter_from_file(*engine, args.adapter);
  const std::vector<int32_t> prompt_ids = request.prompt_ids;

  auto submitted = engine->submit(std::move(request));
  if (!submitted) {
    std::fprintf(stderr, "error: %s\n", submitted.status().message().c_str());
    return 1;
  }
  std::vector<int32_t> output_ids;
  std::string text, error;
  const bool stream_text = !args.json;
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

int run_logits(const CLI::App& cmd, const LogitsArgs& args) {
  const std::vector<int32_t> ids = parse_id_list(args.prompt_ids, "prompt-ids");
  const MatmulPrecision precision = matmul_precision_from(args);
  auto model = Model::load(args.model, ModelLoadOptions{weights_from(args), {.cache_dir = args.cache_dir}});
  kernels::set_linear_precision(linear_precision_for(precision, *model));
  const ModelConfig& c = model->config();
  for (int32_t id : ids)
    if (id >= c.vocab_size)
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(c.vocab_size));
  auto attention = load_sequence_attention(attention_from(cmd, args), args.adapter,
                                           ModelShape{c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size, ""});
  if (!attention) {
    std::fprintf(stderr, "error: %s\n", attention.status().message().c_str());
    return 1;
  }
  const KvDtype kv_dtype = kv_dtype_of(kv_cache_dtype_from(args));
  if (const std::string e = kv_dtype_shape_error(kv_dtype, c.head_dim); !e.empty()) throw UsageError("--kv-cache-dtype: " + e);
  SequenceSession session(*model, static_cast<int>(ids.size()), &attention.value(), 16, kv_dtype);
  const bool all = args.all_positions;
  const std::vector<float> logits = session.append(ids, all);
  print_logits_json(logits, c.vocab_size);
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "one generation\nGenerate a continuation with the engine (the same path the server uses).");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->type_name("DIR")->required();
  cmd->add_option("--prompt", args->prompt, "prompt text (encoded with the model's tokenizer, special tokens added)")
      ->type_name("TEXT");
  cmd->add_option("--prompt-ids", args->prompt_ids, "prompt as comma-separated token ids")->type_name("IDS");
  decimal(cmd->add_option("--max-tokens", args->max_tokens, "tokens to generate")->type_name("N")->capture_default_str());
  cmd->add_option("--temperature", args->temperature, "0 = greedy")->type_name("T")->capture_default_str();
  cmd->add_option("--top-p", args->top_p, "nucleus sampling")->type_name("P")->capture_default_str();
  decimal(cmd->add_option("--top-k", args->top_k, "0 = off")->type_name("K")->capture_default_str());
  cmd->add_option("--min-p", args->min_p, "0 = off")->type_name("P")->capture_default_str();
  cmd->add_option("--repetition-penalty", args->repetition_penalty, "1 = off")->type_name("R")->capture_default_str();
  decimal(cmd->add_option("--seed", args->seed, "sampling seed")->type_name("S"));
  cmd->add_option("--stop", args->stop, "a stop string")->type_name("TEXT");
  cmd->add_option("--attention", args->attention, kAttentionHelp)->type_name("A");
  cmd->add_option("--adapter", args->adapter, "adapter_weight.json file or directory")->type_name("FILE_OR_DIR");
  decimal(cmd->add_option("--threads", args->threads, "worker threads (0 = all cores)")->type_name("N")->capture_default_str());
  cmd->add_option("--matmul-precision", args->matmul_precision, kMatmulPrecisionHelp)->type_name("P")->capture_default_str();
  cmd->add_option("--weights", args->weights, kWeightsHelp)->type_name("W")->capture_default_str();
  cmd->add_option("--cache-dir", args->cache_dir, "where q8/q4 weights are cached when the model directory is read-only")
      ->type_name("DIR");
  cmd->add_option("--kv-cache-dtype", args->kv_cache_dtype, kKvCacheDtypeHelp)->type_name("T")->capture_default_str();
  cmd->add_flag("--ignore-eos", args->ignore_eos, "do not stop at EOS");
  cmd->add_flag("--json", args->json, "print {\"prompt_ids\",\"output_ids\",\"text\"} as JSON");
  cmd->callback([cmd, args, exit_code] { *exit_code = run_generate(*cmd, *args); });
}

void add_logits_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<LogitsArgs>();
  CLI::App* cmd = app.add_subcommand("logits", "float32 logits for a prompt\nPrint the model's float32 logits for a prompt.");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->type_name("DIR")->required();
  cmd->add_option("--prompt-ids", args->prompt_ids, "comma-separated token ids")->type_name("IDS")->required();
  cmd->add_option("--attention", args->attention, kAttentionHelp)->type_name("A");
  cmd->add_option("--adapter", args->adapter, "adapter_weight.json file or directory")->type_name("FILE_OR_DIR");
  cmd->add_option("--matmul-precision", args->matmul_precision, kMatmulPrecisionHelp)->type_name("P")->capture_default_str();
  cmd->add_option("--weights", args->weights, kWeightsHelp)->type_name("W")->capture_default_str();
  cmd->add_option("--cache-dir", args->cache_dir, "where q8/q4 weights are cached when the model directory is read-only")
      ->type_name("DIR");
  cmd->add_option("--kv-cache-dtype", args->kv_cache_dtype, kKvCacheDtypeHelp)->type_name("T")->capture_default_str();
  cmd->add_flag("--all-positions", args->all_positions, "logits for every position, not only the last");
  cmd->callback([cmd, args, exit_code] { *exit_code = run_logits(*cmd, *args); });
}

}  // namespace hotswap::cli
