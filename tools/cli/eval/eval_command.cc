// `hotswap eval`: quality, density and speed of attention configurations on one model
// (docs/eval.md), in this process or against a running server.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/commands.h"
#include "cli/eval/eval_suite.h"
#include "cli/eval/png_chart.h"
#include "cli/options.h"

namespace hotswap::cli {
namespace {

using eval::ConfigResult;

// "[#########-----------]  12/40  eager: perplexity" on one terminal line (stderr only).
eval::Progress progress_bar() {
  const bool tty = isatty(STDERR_FILENO) != 0;
  return [tty](int done, int total, const std::string& what) {
    if (!tty) return;
    constexpr int kWidth = 30;
    const int filled = total > 0 ? done * kWidth / total : kWidth;
    std::fprintf(stderr, "\r[%s%s] %4d/%d  %-40.40s", std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(kWidth - filled), '-').c_str(), done, total, what.c_str());
    if (done >= total) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
}

// Quality against density (perplexity and retrieval), retrieval against context length: one
// series per configuration, in the same order in every panel, so colours match the legend.
std::vector<eval::Panel> charts(const std::vector<ConfigResult>& results) {
  eval::Panel ppl{"perplexity vs density", "attention density", "perplexity", false, {}};
  eval::Panel acc{"retrieval vs density", "attention density", "accuracy", false, {}};
  eval::Panel len{"retrieval vs context", "context tokens", "accuracy", true, {}};
  for (const ConfigResult& r : results) {
    eval::Series a{r.name, {}, false}, b{r.name, {}, false}, c{r.name, {}, true};
    const double density = r.density.value_or(1.0);  // eager and mixed read every key
    if (r.perplexity) a.points.push_back({density, *r.perplexity});
    if (r.accuracy) b.points.push_back({density, *r.accuracy});
    for (const auto& [length, counts] : r.retrieval)
      c.points.push_back({static_cast<double>(length), static_cast<double>(counts.first) / counts.second});
    ppl.series.push_back(a), acc.series.push_back(b), len.series.push_back(c);
  }
  return {ppl, acc, len};
}

struct EvalArgs {
  std::string model, server, configs, corpus, retrieval, json, png;
  int context = 0, max_documents = 0, max_questions = 0, answer_tokens = 16, threads = 0;
};

int run_eval(const CLI::App& cmd, const EvalArgs& args) {
  eval::EvalInputs inputs;
  std::unique_ptr<eval::EvalTarget> target;
  try {
    inputs.configs = eval::read_configs(args.configs);
    inputs.documents = eval::read_corpus(args.corpus, args.max_documents);
    if (!args.retrieval.empty()) inputs.retrieval = eval::read_retrieval(args.retrieval, args.max_questions);
    inputs.context = args.context;
    inputs.answer_tokens = args.answer_tokens;
    if (inputs.answer_tokens < 1) throw UsageError("--answer-tokens must be at least 1");
    target = cmd.count("--server") > 0 ? eval::make_http_target(args.server, args.model)
                                       : eval::make_engine_target(args.model, args.threads);
  } catch (const eval::EvalError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "evaluating %zu configurations on %s: %zu documents, %zu retrieval questions\n",
               inputs.configs.size(), target->describe().c_str(), inputs.documents.size(), inputs.retrieval.size());
  const std::vector<ConfigResult> results = eval::run_suite(*target, inputs, progress_bar());
  std::fputs(eval::results_table(results).c_str(), stdout);
  const nlohmann::json out = eval::results_json(*target, inputs, results);
  if (const std::string& path = args.json; !path.empty()) {
    std::ofstream f(path);
    f << out.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "error: cannot write '%s'\n", path.c_str());
      return 1;
    }
  }
  if (!args.png.empty()) eval::write_png_chart(args.png, charts(results));
  for (const ConfigResult& r : results)
    if (!r.error.empty()) return 1;  // a configuration that could not run fails the command
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "perplexity, retrieval, density and speed per attention configuration\n"
      "Perplexity, retrieval accuracy, attention density and decode speed per attention configuration.");
  cmd->add_option("--model", args->model,
                  "Hugging Face model directory (in-process; with --server: the served model's tokenizer)")
      ->type_name("DIR")
      ->required();
  cmd->add_option("--server", args->server,
                  "a running `hotswap serve` (http://host:port) to evaluate instead of loading the model")
      ->type_name("URL");
  cmd->add_option("--configs", args->configs,
                  "JSON file: {\"configs\": [{\"name\", \"attention\", \"adapter\"?}]} (docs/eval.md)")
      ->type_name("FILE")
      ->required();
  cmd->add_option("--corpus", args->corpus, "JSON lines {\"text\"}: documents for perplexity")->type_name("FILE")->required();
  cmd->add_option("--retrieval", args->retrieval,
                  "JSON lines {\"prompt\", \"answer\", \"context_tokens\"}: retrieval questions (default: none)")
      ->type_name("FILE");
  decimal(cmd->add_option("--context", args->context, "truncate documents to this many tokens (0: the model's context)")
              ->type_name("N")
              ->capture_default_str());
  decimal(cmd->add_option("--max-documents", args->max_documents, "use at most this many documents (0: all)")
              ->type_name("N")
              ->capture_default_str());
  decimal(cmd->add_option("--max-questions", args->max_questions, "use at most this many retrieval questions (0: all)")
              ->type_name("N")
              ->capture_default_str());
  decimal(cmd->add_option("--answer-tokens", args->answer_tokens, "tokens generated per retrieval question")
              ->type_name("N")
              ->capture_default_str());
  decimal(cmd->add_option("--threads", args->threads, "worker threads of the in-process engine (0 = all cores)")
              ->type_name("N")
              ->capture_default_str());
  cmd->add_option("--json", args->json, "write the results as JSON to this file")->type_name("FILE");
  cmd->add_option("--png", args->png, "write the charts (quality vs density, accuracy vs context) as PNG to this file")
      ->type_name("FILE");
  cmd->callback([cmd, args, exit_code] { *exit_code = run_eval(*cmd, *args); });
}

}  // namespace hotswap::cli
