#include "cli/eval/eval_suite.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hotswap::cli::eval {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw EvalError("cannot read '" + path + "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Each non-empty line of a JSON-lines file, parsed; `visit` may throw EvalError(what).
template <typename Visit>
void for_each_json_line(const std::string& path, Visit visit) {
  std::istringstream lines(read_file(path));
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw EvalError(path + ":" + std::to_string(n) + ": not a JSON object");
    try {
      if (!visit(j)) return;
    } catch (const json::exception& e) {
      throw EvalError(path + ":" + std::to_string(n) + ": " + e.what());
    }
  }
}

// Streaming's visible fraction of keys for a query at t (specs/attention.md `streaming`):
// sink blocks [0, ceil(S/B)) and local blocks [b - ceil(R/B) + 1, b], causally.
double streaming_density(int64_t t, int64_t S, int64_t R, int64_t B) {
  const int64_t b = t / B, sink_blocks = (S + B - 1) / B, local_blocks = (R + B - 1) / B;
  int64_t visible = 0;
  for (int64_t blk = 0; blk <= b; ++blk) {
    if (blk < sink_blocks || blk > b - local_blocks) visible += std::min(B, t + 1 - blk * B);
  }
  return static_cast<double>(visible) / static_cast<double>(t + 1);
}

// The mean streaming density over query positions 1..n-1 when the attention names its windows.
std::optional<double> analytic_density(const json& attention, int64_t n) {
  if (!attention.is_object() || attention.value("impl", "") != "streaming" || n < 2) return std::nullopt;
  if (!attention.contains("sink_window_size") || !attention.contains("recent_window_size")) return std::nullopt;
  const int64_t S = attention["sink_window_size"].get<int64_t>(), R = attention["recent_window_size"].get<int64_t>();
  const int64_t B = attention.value("block_size", int64_t{128});
  double sum = 0;
  for (int64_t t = 1; t < n; ++t) sum += streaming_density(t, S, R, B);
  return sum / static_cast<double>(n - 1);
}

std::string ltrim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\n"));
  return s;
}

}  // namespace

std::vector<EvalConfig> read_configs(const std::string& path) {
  const json j = json::parse(read_file(path), nullptr, false);
  if (j.is_discarded()) throw EvalError(path + ": not JSON");
  const json& list = j.is_object() ? j.value("configs", json()) : j;
  if (!list.is_array() || list.empty()) throw EvalError(path + ": expected {\"configs\": [...]} with at least one");
  std::vector<EvalConfig> out;
  const fs::path base = fs::path(path).parent_path();
  for (size_t i = 0; i < list.size(); ++i) {
    const json& c = list[i];
    const std::string where = path + ": configs[" + std::to_string(i) + "]";
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string())
      throw EvalError(where + ": needs a string \"name\"");
    EvalConfig config;
    config.name = c["name"].get<std::string>();
    config.attention = c.value("attention", json());
    if (c.contains("adapter")) {
      if (!c["adapter"].is_string()) throw EvalError(where + ": \"adapter\" must be a path");
      const fs::path p = c["adapter"].get<std::string>();
      config.adapter_path = (p.is_absolute() ? p : base / p).string();
    }
    for (const EvalConfig& seen : out)
      if (seen.name == config.name) throw EvalError(where + ": duplicate name '" + config.name + "'");
    out.push_back(std::move(config));
  }
  return out;
}

std::vector<Document> read_corpus(const std::string& path, int max_documents) {
  std::vector<Document> docs;
  for_each_json_line(path, [&](const json& j) {
    Document d;
    if (j.contains("ids")) d.ids = j.at("ids").get<std::vector<int32_t>>();
    else d.text = j.at("text").get<std::string>();
    docs.push_back(std::move(d));
    return max_documents <= 0 || static_cast<int>(docs.size()) < max_documents;
  });
  if (docs.empty()) throw EvalError(path + ": no documents");
  return docs;
}

std::vector<RetrievalItem> read_retrieval(const std::string& path, int max_items) {
  std::vector<RetrievalItem> items;
  for_each_json_line(path, [&](const json& j) {
    items.push_back({j.at("prompt").get<std::string>(), j.at("answer").get<std::string>(), j.value("context_tokens", 0)});
    return max_items <= 0 || static_cast<int>(items.size()) < max_items;
  });
  return items;
}

std::vector<ConfigResult> run_suite(EvalTarget& target, EvalInputs& inputs, const Progress& progress) {
  const int context = inputs.context > 0 ? std::min(inputs.context, target.context_length()) : target.context_length();
  // Tokenised once; documents truncated to the context, questions to leave room for the answer.
  std::vector<std::vector<int32_t>> docs, questions;
  for (const Document& d : inputs.documents) {
    std::vector<int32_t> ids = d.ids.empty() ? target.encode(d.text, true) : d.ids;
    if (static_cast<int>(ids.size()) > context) ids.resize(static_cast<size_t>(context));
    if (ids.size() >= 2) docs.push_back(std::move(ids));
  }
  for (const RetrievalItem& r : inputs.retrieval) {
    std::vector<int32_t> ids = target.encode(r.prompt, true);
    const int room = context - inputs.answer_tokens;
    if (static_cast<int>(ids.size()) > room) ids.erase(ids.begin() + 1, ids.begin() + 1 + (static_cast<int>(ids.size()) - room));
    questions.push_back(std::move(ids));
  }
  const int per_config = static_cast<int>(docs.size() + questions.size());
  const int total = per_config * static_cast<int>(inputs.configs.size());
  int done = 0;

  std::vector<ConfigResult> results;
  for (size_t ci = 0; ci < inputs.configs.size(); ++ci) {
    EvalConfig& config = inputs.configs[ci];
    ConfigResult r;
    r.name = config.name;
    r.attention = config.attention;
    r.adapter_path = config.adapter_path;
    try {
      if (!config.adapter_path.empty()) {
        config.adapter = "eval-" + std::to_string(ci);
        std::ifstream in(config.adapter_path, std::ios::binary);
        if (!in) throw EvalError("cannot read adapter '" + config.adapter_path + "'");
        std::ostringstream bytes;
        bytes << in.rdbuf();
        target.put_adapter(config.adapter, bytes.str(), fs::path(config.adapter_path).extension() == ".safetensors");
      }
      double density_sum = 0, error_sum = 0, decode_s = 0;
      int densities = 0, errors = 0, decode_n = 0;
      auto note = [&](const EvalRun& run) {
        if (run.density) density_sum += *run.density, ++densities;
        if (run.output_error) error_sum += *run.output_error, ++errors;
      };
      for (const std::vector<int32_t>& ids : docs) {
        progress(done++, total, config.name + ": perplexity");
        const EvalRun run = target.run({ids, 0, true, config.attention, config.adapter});
        if (run.prompt_logprobs.size() != ids.size() - 1)
          throw EvalError("the target scored " + std::to_string(run.prompt_logprobs.size()) + " of " +
                          std::to_string(ids.size() - 1) + " tokens");
        for (double lp : run.prompt_logprobs) r.nll_sum -= lp;
        r.scored_tokens += static_cast<int64_t>(run.prompt_logprobs.size());
        note(run);
        if (const auto d = analytic_density(config.attention, static_cast<int64_t>(ids.size())); d && !run.density)
          density_sum += *d, ++densities;
      }
      int correct_all = 0;
      for (size_t qi = 0; qi < questions.size(); ++qi) {
        progress(done++, total, config.name + ": retrieval");
        const EvalRun run = target.run({questions[qi], inputs.answer_tokens, false, config.attention, config.adapter});
        const bool correct = ltrim(run.text).rfind(ltrim(inputs.retrieval[qi].answer), 0) == 0;
        auto& bucket = r.retrieval[inputs.retrieval[qi].context_tokens];
        bucket.first += correct;
        bucket.second += 1;
        correct_all += correct;
        note(run);
        decode_s += run.decode_seconds;
        decode_n += run.decode_tokens;
      }
      if (r.scored_tokens > 0) r.perplexity = std::exp(r.nll_sum / static_cast<double>(r.scored_tokens));
      if (!questions.empty()) r.accuracy = static_cast<double>(correct_all) / static_cast<double>(questions.size());
      if (densities > 0) r.density = density_sum / densities;
      if (errors > 0) r.output_error = error_sum / errors;
      if (decode_s > 0) r.decode_tokens_per_s = decode_n / decode_s;
    } catch (const EvalError& e) {
      r.error = e.what();
      done = static_cast<int>((ci + 1) * per_config);
    }
    results.push_back(std::move(r));
  }
  progress(total, total, "done");
  return results;
}

json results_json(const EvalTarget& target, const EvalInputs& inputs, const std::vector<ConfigResult>& results) {
  json configs = json::array();
  for (const ConfigResult& r : results) {
    json c = {{"name", r.name}, {"attention", r.attention}, {"scored_tokens", r.scored_tokens}};
    if (!r.adapter_path.empty()) c["adapter"] = r.adapter_path;
    auto opt = [&c](const char* key, const std::optional<double>& v) { c[key] = v ? json(*v) : json(nullptr); };
    opt("perplexity", r.perplexity);
    opt("retrieval_accuracy", r.accuracy);
    opt("attention_density", r.density);
    opt("attention_output_error", r.output_error);
    opt("decode_tokens_per_s", r.decode_tokens_per_s);
    json by_length = json::array();
    for (const auto& [length, counts] : r.retrieval)
      by_length.push_back({{"context_tokens", length}, {"correct", counts.first}, {"total", counts.second},
                           {"accuracy", static_cast<double>(counts.first) / counts.second}});
    c["retrieval_by_context"] = by_length;
    if (!r.error.empty()) c["error"] = r.error;
    configs.push_back(std::move(c));
  }
  return {{"target", target.describe()},
          {"documents", inputs.documents.size()},
          {"retrieval_questions", inputs.retrieval.size()},
          {"context", inputs.context > 0 ? std::min(inputs.context, target.context_length()) : target.context_length()},
          {"configs", configs}};
}

std::string results_table(const std::vector<ConfigResult>& results) {
  std::vector<int> lengths;
  for (const ConfigResult& r : results)
    for (const auto& [length, counts] : r.retrieval)
      if (std::find(lengths.begin(), lengths.end(), length) == lengths.end()) lengths.push_back(length);
  std::sort(lengths.begin(), lengths.end());
  size_t width = 6;
  for (const ConfigResult& r : results) width = std::max(width, r.name.size());
  auto cell = [](const std::optional<double>& v, const char* fmt) {
    char buf[32];
    if (!v) return std::string("-");
    std::snprintf(buf, sizeof buf, fmt, *v);
    return std::string(buf);
  };
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-*s %10s %9s %8s %9s %9s", static_cast<int>(width), "config", "perplexity", "retrieval",
                "density", "out.error", "decode/s");
  out += line;
  for (int l : lengths) out += "  acc@" + std::to_string(l);
  out += "\n";
  for (const ConfigResult& r : results) {
    std::snprintf(line, sizeof line, "%-*s %10s %9s %8s %9s %9s", static_cast<int>(width), r.name.c_str(),
                  cell(r.perplexity, "%.4f").c_str(), cell(r.accuracy, "%.3f").c_str(), cell(r.density, "%.3f").c_str(),
                  cell(r.output_error, "%.4f").c_str(), cell(r.decode_tokens_per_s, "%.1f").c_str());
    out += line;
    for (int l : lengths) {
      auto it = r.retrieval.find(l);
      const std::string v = it == r.retrieval.end()
                                ? "-"
                                : cell(static_cast<double>(it->second.first) / it->second.second, "%.2f");
      std::snprintf(line, sizeof line, "  %*s", static_cast<int>(std::to_string(l).size()) + 4, v.c_str());
      out += line;
    }
    if (!r.error.empty()) out += "  error: " + r.error;
    out += "\n";
  }
  return out;
}

}  // namespace hotswap::cli::eval
