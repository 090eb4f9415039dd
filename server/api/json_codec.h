// JSON <-> hotswap.v1 messages (proto/hotswap/v1). Requests are walked with nlohmann and
// validated field by field: a wrong type or an out-of-range value yields a RequestError whose
// message names the field and what was received ("max_tokens must be an integer >= 1, got
// -5"); unknown fields are ignored, as OpenAI clients expect. Responses are written field by
// field so that OpenAI's nulls and unions come out exactly. Thread-safe (no state).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "hotswap/v1/chat.pb.h"
#include "hotswap/v1/completions.pb.h"
#include "hotswap/v1/models.pb.h"

namespace hotswap::server {

// Bounds the codec enforces; the server fills them from configs/server.json "limits".
struct CodecLimits {
  int max_n = 16;               // `n`
  int max_prompts = 16;         // prompts in one completions request
  int max_choices = 64;         // prompts x n
  int max_stop = 16;            // entries of `stop`
  int max_stop_bytes = 256;     // length of one stop string
  int max_logprobs = 20;        // completions `logprobs`, chat `top_logprobs`
  int max_messages = 4096;      // chat `messages`
  int max_tokens = 4096;        // `max_tokens` / `max_completion_tokens`: the engine's max_new_tokens
};

struct RequestError {
  std::string message;
  std::string param;  // the offending field ("messages[2].role"), "" for the whole body
  std::string code;   // "invalid_json", "invalid_utf8", "invalid_type", "invalid_value", "missing_field",
                      // "unsupported_field"
};

// nullopt on success.
std::optional<RequestError> parse_completion_request(std::string_view body, const CodecLimits& limits,
                                                     v1::CompletionRequest* out);
std::optional<RequestError> parse_chat_request(std::string_view body, const CodecLimits& limits,
                                               v1::ChatCompletionRequest* out);

// True if `text` is well-formed UTF-8; otherwise false and *bad_offset = first bad byte.
bool is_valid_utf8(std::string_view text, std::size_t* bad_offset);

// Streaming with stream_options.include_usage: absent usage is written as "usage": null.
struct ChunkJsonOptions {
  bool null_usage_when_absent = false;
};

std::string to_json(const v1::Completion& completion, const ChunkJsonOptions& options = {});
std::string to_json(const v1::ChatCompletion& completion);
std::string to_json(const v1::ChatCompletionChunk& chunk, const ChunkJsonOptions& options = {});
std::string to_json(const v1::ModelList& models);
std::string to_json(const v1::ErrorBody& error);
std::string to_json(const v1::HealthStatus& health);

}  // namespace hotswap::server
