// EvalTarget on a running server: the OpenAI-compatible completions API with echo + logprobs
// (max_tokens 0) to score a prompt, a streamed greedy completion to generate (its chunks time
// the decode), PUT /v1/adapters/{name} for adapters. Prompts travel as token ids, encoded with
// the served model's tokenizer read from a local copy of its directory.
#include <chrono>
#include <fstream>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "cli/eval/eval_target.h"
#include "tokenizer/tokenizer.h"

namespace hotswap::cli::eval {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using nlohmann::json;

struct Url {
  std::string host, port;
};

Url parse_url(const std::string& url) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos) throw EvalError("--server: only http:// URLs, got '" + url + "'");
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "80"};
  return {rest.substr(0, colon), rest.substr(colon + 1)};
}

class HttpTarget final : public EvalTarget {
 public:
  HttpTarget(const std::string& url, const std::string& tokenizer_dir) : url_(url), where_(parse_url(url)) {
    tokenizer_ = Tokenizer::load(tokenizer_dir);
    std::ifstream in(tokenizer_dir + "/config.json");
    if (!in) throw EvalError("--model " + tokenizer_dir + ": no config.json (the served model's directory)");
    context_ = json::parse(in).value("max_position_embeddings", 4096);
  }

  std::string describe() const override { return "server " + url_; }
  int context_length() const override { return context_; }
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens) const override {
    return tokenizer_->encode(text, add_special_tokens);
  }

  void put_adapter(const std::string& name, const std::string& bytes, bool safetensors) override {
    const auto [status, body] =
        exchange(http::verb::put, "/v1/adapters/" + name, bytes, safetensors ? "application/octet-stream" : "application/json");
    if (status / 100 != 2) throw EvalError("PUT /v1/adapters/" + name + ": HTTP " + std::to_string(status) + " " + body);
  }

  EvalRun run(const EvalRequest& r) override {
    json body = {{"prompt", r.prompt_ids}, {"max_tokens", r.max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
    if (!r.attention.is_null()) body["attention"] = r.attention;
    if (!r.adapter.empty()) body["adapter"] = r.adapter;
    if (r.score_prompt) body["echo"] = true, body["logprobs"] = 0;
    const bool stream = r.max_tokens > 0;
    if (stream) body["stream"] = true, body["stream_options"] = {{"include_usage", true}};
    const auto [status, text] = exchange(http::verb::post, "/v1/completions", body.dump(), "application/json");
    if (status != 200) throw EvalError("POST /v1/completions: HTTP " + std::to_string(status) + " " + text);
    return stream ? from_stream(text, r) : from_response(json::parse(text), r);
  }

 private:
  // A whole response (a streamed one is read to its end; chunk times come from arrival).
  std::pair<int, std::string> exchange(http::verb verb, const std::string& target, const std::string& payload,
                                       const char* content_type) {
    try {
      net::io_context io;
      net::ip::tcp::resolver resolver(io);
      beast::tcp_stream socket(io);
      socket.connect(resolver.resolve(where_.host, where_.port));
      http::request<http::string_body> req{verb, target, 11};
      req.set(http::field::host, where_.host);
      req.set(http::field::content_type, content_type);
      req.body() = payload;
      req.prepare_payload();
      http::write(socket, req);
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(1ull << 32);
      // Read the body piece by piece, stamping when each SSE data line arrives.
      http::read_header(socket, buffer, parser);
      chunk_times_.clear();
      size_t scan = 0;
      while (!parser.is_done()) {
        http::read_some(socket, buffer, parser);
        const std::string& b = parser.get().body();
        for (size_t at = b.find("data: ", scan); at != std::string::npos; at = b.find("data: ", scan)) {
          chunk_times_.push_back(std::chrono::steady_clock::now());
          scan = at + 6;
        }
      }
      beast::error_code ec;
      socket.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
      return {static_cast<int>(parser.get().result_int()), parser.get().body()};
    } catch (const std::exception& e) {
      throw EvalError(url_ + target + ": " + e.what());
    }
  }

  static void read_usage(const json& usage, EvalRun* out) {
    if (!usage.is_object()) return;
    if (usage.contains("attention_density")) out->density = usage["attention_density"].get<double>();
    if (usage.contains("attention_output_error")) out->output_error = usage["attention_output_error"].get<double>();
  }

  static EvalRun from_response(const json& j, const EvalRequest& r) {
    EvalRun out;
    const json& choice = j.at("choices").at(0);
    const json& lp = choice.at("logprobs");
    if (r.score_prompt) {
      const json& values = lp.at("token_logprobs");
      for (size_t i = 1; i < r.prompt_ids.size() && i < values.size(); ++i) out.prompt_logprobs.push_back(values[i].get<double>());
    }
    read_usage(j.value("usage", json()), &out);
    return out;
  }

  EvalRun from_stream(const std::string& body, const EvalRequest& r) const {
    EvalRun out;
    std::istringstream lines(body);
    std::string line;
    size_t event = 0;
    std::chrono::steady_clock::time_point first{}, last{};
    bool have_first = false;
    int completion_tokens = 0;
    while (std::getline(lines, line)) {
      if (line.rfind("data: ", 0) != 0) continue;
      const auto at = event < chunk_times_.size() ? chunk_times_[event] : std::chrono::steady_clock::now();
      ++event;
      const std::string data = line.substr(6);
      if (data == "[DONE]") break;
      const json j = json::parse(data);
      if (j.contains("error")) throw EvalError("generation failed: " + j["error"].dump());
      read_usage(j.value("usage", json()), &out);
      if (j.contains("usage") && j["usage"].is_object()) completion_tokens = j["usage"].value("completion_tokens", 0);
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const json& c = j["choices"][0];
      out.text += c.value("text", "");
      if (r.score_prompt && c.contains("logprobs") && c["logprobs"].is_object() && out.prompt_logprobs.empty()) {
        const json& values = c["logprobs"]["token_logprobs"];
        for (size_t i = 1; i < r.prompt_ids.size() && i < values.size(); ++i)
          out.prompt_logprobs.push_back(values[i].get<double>());
      }
      if (!c.value("text", "").empty()) {
        if (!have_first) first = at, have_first = true;
        last = at;
      }
    }
    out.output_ids = tokenizer_->encode(out.text, false);  // the text is what retrieval compares
    out.decode_tokens = std::max(0, completion_tokens - 1);
    out.decode_seconds = std::chrono::duration<double>(last - first).count();
    return out;
  }

  std::string url_;
  Url where_;
  std::unique_ptr<Tokenizer> tokenizer_;
  int context_ = 4096;
  std::vector<std::chrono::steady_clock::time_point> chunk_times_;
};

}  // namespace

std::unique_ptr<EvalTarget> make_http_target(const std::string& url, const std::string& tokenizer_dir) {
  return std::make_unique<HttpTarget>(url, tokenizer_dir);
}

}  // namespace hotswap::cli::eval
