// JSON request bodies of /v1/completions and /v1/chat/completions -> the request structs of
// api/schema.h, which the handlers submit as they are. Every request field is read and
// checked here and nowhere else in the server: a wrong type or an out-of-range value yields a
// RequestError whose message names the field and what was received; the numeric sampling
// fields are checked against the engine's table (engine/request_fields.h). Unknown fields are
// ignored, as OpenAI clients expect. Thread-safe (no state).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "api/json_fields.h"
#include "api/schema.h"
#include "engine/sampling_params.h"

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

// What the fields a request leaves out take: the server's configured defaults
// (configs/server.json "defaults"; OpenAI's unless changed). The sampling fields are the
// engine's own struct, so a request starts as a copy of them.
struct RequestDefaults : SamplingParams {
  int max_tokens = 16;  // completions; chat defaults to what is left of the context
};

// The engine's parse_attention_choice() (engine/attention_choice.h). The codec's library
// links no engine code (its backends decide what `attention` may hold), so the handler
// passes it in; tests pass a stand-in.
using AttentionParser = bool (*)(const std::string& text, AttentionChoice* out, std::string* error);

struct CodecOptions {
  CodecLimits limits;
  RequestDefaults defaults;
  AttentionParser parse_attention = nullptr;  // must be set: called when a request has `attention`
};

// nullopt on success; on failure *out is left empty.
std::optional<RequestError> parse_completion_request(std::string_view body, const CodecOptions& options,
                                                     CompletionRequest* out);
std::optional<RequestError> parse_chat_request(std::string_view body, const CodecOptions& options, ChatRequest* out);

}  // namespace hotswap::server
