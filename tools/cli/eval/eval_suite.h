// What `hotswap eval` measures (docs/eval.md): for each attention configuration, over a corpus
// of documents and a set of retrieval questions, run through an EvalTarget:
//   perplexity         exp(mean NLL) over every scored token of every document: a document is
//                      its tokens with the tokenizer's special tokens (BOS), truncated to the
//                      context; token i >= 1 is scored given tokens 0..i-1 (teacher forcing,
//                      prompt positions attended as the configuration attends a prompt);
//   retrieval          greedy continuation of each question, correct when its text (leading
//                      spaces dropped) starts with the answer; accuracy per context length;
//   density            mean usage.attention_density the server reported (masked, nsa), else
//                      for streaming the visible fraction of keys its block rule gives;
//   output error       mean usage.attention_output_error (masked with report_error);
//   decode tokens/s    over the retrieval generations, first to last generated token.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/eval/eval_target.h"

namespace hotswap::cli::eval {

struct EvalConfig {
  std::string name;
  nlohmann::json attention;  // the request's attention (string or object); null = server default
  std::string adapter_path;  // a file to register, or ""
  std::string adapter;       // the registered name, filled by the suite
};

struct RetrievalItem {
  std::string prompt, answer;
  int context_tokens = 0;  // the bucket it is reported in
};

// A corpus document: text (tokenised with the special tokens) or token ids as given.
struct Document {
  std::string text;
  std::vector<int32_t> ids;  // used when non-empty
};

struct EvalInputs {
  std::vector<EvalConfig> configs;
  std::vector<Document> documents;
  std::vector<RetrievalItem> retrieval;
  int context = 0;             // truncate documents to this many tokens (0: the model's)
  int answer_tokens = 16;      // generated per retrieval question
};

struct ConfigResult {
  std::string name;
  nlohmann::json attention;
  std::string adapter_path;
  int64_t scored_tokens = 0;
  double nll_sum = 0;
  std::optional<double> perplexity;
  std::map<int, std::pair<int, int>> retrieval;  // context -> (correct, total)
  std::optional<double> accuracy;                // over every question
  std::optional<double> density, output_error, decode_tokens_per_s;
  std::string error;  // the configuration could not run (e.g. a rejected adapter)
};

// Progress callback: (done, total, what is running).
using Progress = std::function<void(int, int, const std::string&)>;

std::vector<ConfigResult> run_suite(EvalTarget& target, EvalInputs& inputs, const Progress& progress);

// The results as one JSON document, and as a fixed-width table for the terminal.
nlohmann::json results_json(const EvalTarget& target, const EvalInputs& inputs, const std::vector<ConfigResult>& results);
std::string results_table(const std::vector<ConfigResult>& results);

// Reads a configurations file: {"configs": [{"name", "attention", "adapter"?}]} (adapter
// paths relative to the file) or a bare list; corpus lines {"text"} or {"ids"}; retrieval lines
// {"prompt", "answer", "context_tokens"}. Throws EvalError naming the file and line.
std::vector<EvalConfig> read_configs(const std::string& path);
std::vector<Document> read_corpus(const std::string& path, int max_documents);
std::vector<RetrievalItem> read_retrieval(const std::string& path, int max_items);

}  // namespace hotswap::cli::eval
