// `hotswap eval`: quality, density and speed of attention configurations on one model
// (docs/eval.md), in this process or against a running server.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "cli/cli_args.h"
#include "cli/commands.h"
#include "cli/eval/eval_suite.h"
#include "cli/eval/png_chart.h"

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

}  // namespace

int run_eval(int argc, char** argv) {
  CliArgs args("eval", "Perplexity, retrieval accuracy, attention density and decode speed per attention configuration.");
  args.option("model", "Hugging Face model directory (in-process; with --server: the served model's tokenizer)")
      .option("server", "a running `hotswap serve` (http://host:port) to evaluate instead of loading the model")
      .option("configs", "JSON file: {\"configs\": [{\"name\", \"attention\", \"adapter\"?}]} (docs/eval.md)")
      .option("corpus", "JSON lines {\"text\"}: documents for perplexity")
      .option("retrieval", "JSON lines {\"prompt\", \"answer\", \"context_tokens\"}: retrieval questions", "")
      .option("context", "truncate documents to this many tokens (0: the model's context)", "0")
      .option("max-documents", "use at most this many documents (0: all)", "0")
      .option("max-questions", "use at most this many retrieval questions (0: all)", "0")
      .option("answer-tokens", "tokens generated per retrieval question", "16")
      .option("threads", "worker threads of the in-process engine (0 = all cores)", "0")
      .option("json", "write the results as JSON to this file", "")
      .option("png", "write the charts (quality vs density, accuracy vs context) as PNG to this file", "");
  if (!args.parse(argc, argv, 2)) return 0;
  eval::EvalInputs inputs;
  std::unique_ptr<eval::EvalTarget> target;
  try {
    inputs.configs = eval::read_configs(args.get("configs"));
    inputs.documents = eval::read_corpus(args.get("corpus"), args.get_int("max-documents", 0));
    if (!args.get_or("retrieval", "").empty())
      inputs.retrieval = eval::read_retrieval(args.get("retrieval"), args.get_int("max-questions", 0));
    inputs.context = args.get_int("context", 0);
    inputs.answer_tokens = args.get_int("answer-tokens", 16);
    if (inputs.answer_tokens < 1) throw UsageError("--answer-tokens must be at least 1");
    target = args.has("server") ? eval::make_http_target(args.get("server"), args.get("model"))
                                : eval::make_engine_target(args.get("model"), args.get_int("threads", 0));
  } catch (const eval::EvalError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "evaluating %zu configurations on %s: %zu documents, %zu retrieval questions\n",
               inputs.configs.size(), target->describe().c_str(), inputs.documents.size(), inputs.retrieval.size());
  const std::vector<ConfigResult> results = eval::run_suite(*target, inputs, progress_bar());
  std::fputs(eval::results_table(results).c_str(), stdout);
  const nlohmann::json out = eval::results_json(*target, inputs, results);
  if (const std::string path = args.get_or("json", ""); !path.empty()) {
    std::ofstream f(path);
    f << out.dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "error: cannot write '%s'\n", path.c_str());
      return 1;
    }
  }
  if (const std::string path = args.get_or("png", ""); !path.empty()) eval::write_png_chart(path, charts(results));
  for (const ConfigResult& r : results)
    if (!r.error.empty()) return 1;  // a configuration that could not run fails the command
  return 0;
}

}  // namespace hotswap::cli
