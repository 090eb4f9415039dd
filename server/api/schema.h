// The HTTP API's request and response bodies (specs/api.md) as plain structs: the one model
// between the JSON on the wire (request_codec, response_codec) and the handlers. Requests land
// directly in the engine's types (SamplingParams, StopConditions, AttentionChoice), so what a
// handler submits is what the codec parsed; responses mirror OpenAI's JSON, nulls included.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/adapter_info.h"
#include "engine/attention_choice.h"
#include "engine/sampling_params.h"

namespace hotswap::server {

// ---- requests ----

// The fields both generation endpoints share. Absent fields keep the server's defaults, which
// the codec fills in before it reads the body (RequestDefaults).
struct GenerationFields {
  std::string model;              // "" = the base model; else possibly an adapter (vLLM style)
  SamplingParams sampling;
  StopConditions stop;            // max_tokens: given, or the completions default
  bool max_tokens_given = false;  // chat's default depends on the rendered prompt
  AttentionChoice attention;
  std::string adapter;            // "" = none
  int n = 1;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage, only while streaming
};

// One completions prompt: text, or token ids.
struct Prompt {
  std::string text;
  std::vector<int32_t> token_ids;
  bool is_tokens = false;
};

// POST /v1/completions. Each prompt yields `n` choices; choice index = prompt_index * n + i.
struct CompletionRequest {
  GenerationFields fields;
  std::vector<Prompt> prompts;
  int logprobs = -1;  // -1 = none; else the sampled token and that many alternatives
  bool echo = false;
};

struct ChatMessageIn {
  std::string role;     // system | developer | user | assistant | tool | function | ipython
  std::string content;  // a string, or the concatenated "text" parts of a content array
  std::string name;
};

// POST /v1/chat/completions.
struct ChatRequest {
  GenerationFields fields;
  std::vector<ChatMessageIn> messages;  // non-empty
  int logprobs = -1;  // -1 = `logprobs` false; else top_logprobs (0 when not given)
};

// ---- responses ----

// What every body and chunk starts with (the object name comes from its type).
struct ResponseHeader {
  std::string id;
  int64_t created = 0;  // unix seconds
  std::string model;
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;      // total_tokens is their sum
  int cached_tokens = 0;          // prompt_tokens_details.cached_tokens
  std::string attention_kernel;   // extension: which kernel ran (specs/attention.md); "" = not written
  // `masked` (specs/maskers.md): mean density of the sparse queries, their mean relative L2
  // error against dense (with report_error), the seed its sampling maskers used.
  std::optional<double> attention_density;
  std::optional<double> attention_output_error;
  std::optional<uint64_t> attention_seed;
};

struct TopLogprob {
  std::string token;
  float logprob = 0;
};

// Completions: one token of a choice (written as OpenAI's parallel arrays).
struct CompletionTokenLogprob {
  std::string token;
  std::optional<float> logprob;           // null for an echoed prompt token nothing scored
  std::vector<TopLogprob> top_logprobs;   // null when logprob is
  int text_offset = 0;
};

struct CompletionChoice {
  int index = 0;
  std::string text;
  std::optional<std::vector<CompletionTokenLogprob>> logprobs;  // null unless requested
  std::optional<std::string> finish_reason;                     // null in chunks until the choice ends
};

// The /v1/completions body, and also each streamed chunk: OpenAI uses one shape for both.
struct Completion {
  ResponseHeader header;
  std::vector<CompletionChoice> choices;
  std::optional<Usage> usage;
};

// Chat: one token (its UTF-8 bytes are written from its text).
struct ChatTokenLogprob {
  std::string token;
  float logprob = 0;
  std::vector<TopLogprob> top_logprobs;
};

// A chat choice: the assistant's whole message (the body) or what a chunk adds to it (role
// and empty content open a choice; later chunks carry content, or nothing when they only end it).
struct ChatChoice {
  int index = 0;
  std::optional<std::string> role;
  std::optional<std::string> content;
  std::optional<std::vector<ChatTokenLogprob>> logprobs;  // {"content": [...]}; null unless requested
  std::optional<std::string> finish_reason;               // null in chunks until the choice ends
};

// The /v1/chat/completions body ("chat.completion", choices under "message") or one streamed
// chunk ("chat.completion.chunk", choices under "delta").
struct ChatCompletion {
  bool chunk = false;
  ResponseHeader header;
  std::vector<ChatChoice> choices;
  std::optional<Usage> usage;
};

// GET /v1/models: the base model, then every adapter.
struct ModelCard {
  std::string id;
  int64_t created = 0;
  std::string root;                   // the base model an adapter applies to; the id itself for the base
  std::optional<std::string> parent;  // null for the base model
  int max_model_len = 0;              // 0 = unknown, not written
};

struct ModelList {
  std::vector<ModelCard> data;
};

// GET /health, /ready.
struct HealthStatus {
  std::string status;  // "ok" | "ready" | "loading" | "draining"
};

// {"error": {...}}, the body of every non-2xx response and of a stream's failure event.
struct ErrorBody {
  std::string message;  // what was wrong, specific; names the field where there is one
  std::string type;     // invalid_request_error | authentication_error | not_found_error | ...
  std::string param;    // the offending field; "" is written as null
  std::string code;     // short machine-readable code
};

// Adapters: a description is the engine's AdapterInfo (PUT, GET /v1/adapters/{name}).
struct AdapterList {  // GET /v1/adapters, sorted by name
  std::vector<AdapterInfo> adapters;
};

struct AdapterDeleted {  // DELETE /v1/adapters/{name}
  std::string name;
};

}  // namespace hotswap::server
