// Where `hotswap eval` sends its requests: the engine in this process, or a running server
// over HTTP (POST /v1/completions with echo + logprobs for scoring, PUT /v1/adapters/{name}
// for adapters). Both run the same requests through the same serving path, so the numbers
// of the two modes agree.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hotswap::cli::eval {

// A request the target could not serve (its message says why).
class EvalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct EvalRequest {
  std::vector<int32_t> prompt_ids;
  int max_tokens = 0;          // 0: score the prompt only
  bool score_prompt = false;   // log-probability of every prompt token after the first
  nlohmann::json attention;    // the request's `attention` (null: the server's default)
  std::string adapter;         // a registered adapter name, or ""
};

struct EvalRun {
  std::vector<double> prompt_logprobs;  // score_prompt: entry i scores prompt token i + 1
  std::vector<int32_t> output_ids;      // greedy continuation
  std::string text;
  std::optional<double> density;        // usage.attention_density (masked)
  std::optional<double> output_error;   // usage.attention_output_error (masked, report_error)
  double decode_seconds = 0;            // from the first generated token to the last
  int decode_tokens = 0;                // tokens generated after the first
};

class EvalTarget {
 public:
  virtual ~EvalTarget() = default;
  virtual std::string describe() const = 0;
  virtual int context_length() const = 0;  // the model's max_position_embeddings
  virtual std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const = 0;
  // Registers an adapter document under `name` (replacing any); throws EvalError.
  virtual void put_adapter(const std::string& name, const std::string& bytes, bool safetensors) = 0;
  // One greedy request (temperature 0, EOS ignored); throws EvalError.
  virtual EvalRun run(const EvalRequest& request) = 0;
};

// The engine in this process on `model_dir` (threads 0 = all cores).
std::unique_ptr<EvalTarget> make_engine_target(const std::string& model_dir, int threads);
// A running `hotswap serve` at `url` (http://host:port); `tokenizer_dir` holds the served
// model's tokenizer.json and config.json (prompts travel as token ids).
std::unique_ptr<EvalTarget> make_http_target(const std::string& url, const std::string& tokenizer_dir);

}  // namespace hotswap::cli::eval
