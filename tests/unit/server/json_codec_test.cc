// The request codec (api/request_codec.h) and the response writers (api/response_codec.h).
#include "api/request_codec.h"

#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/response_codec.h"

namespace hotswap::server {
namespace {

using json = nlohmann::json;

// Stands in for the engine's parse_attention_choice(), which the codec's library does not
// link: keeps the text it was given, and refuses "bogus" as the engine refuses unknown names.
bool keep_attention(const std::string& text, AttentionChoice* out, std::string* error) {
  if (text == "bogus") {
    *error = "attention: unknown implementation 'bogus'";
    return false;
  }
  out->impl = "given";
  out->params = text;
  return true;
}

CodecOptions options(CodecLimits limits = {}) {
  CodecOptions o;
  o.limits = limits;
  o.parse_attention = keep_attention;
  return o;
}

struct Malformed {
  const char* name;
  std::string body;
  const char* param;     // expected RequestError::param
  const char* fragment;  // must appear in the message
};

std::vector<Malformed> completion_cases() {
  return {
      {"empty_body", "", "", "not valid JSON"},
      {"truncated_json", R"({"prompt": "hi")", "", "not valid JSON"},
      {"trailing_garbage", R"({"prompt": "hi"} x)", "", "not valid JSON"},
      // Found by request_codec_fuzz: nlohmann throws out_of_range, not parse_error, here.
      {"number_overflow", R"({"prompt": "hi", "max_tokens": 1e400})", "", "number overflow"},
      {"array_body", R"(["prompt"])", "", "must be a JSON object, got an array"},
      {"string_body", R"("hello")", "", "must be a JSON object"},
      {"bad_utf8", std::string("{\"prompt\": \"caf\xC3\x28\"}"), "", "not valid UTF-8"},
      {"overlong_utf8", std::string("{\"prompt\": \"\xC0\xAF\"}"), "", "not valid UTF-8"},
      {"surrogate_utf8", std::string("{\"prompt\": \"\xED\xA0\x80\"}"), "", "not valid UTF-8"},
      {"deep_nesting", "{\"prompt\": " + std::string(100, '[') + std::string(100, ']') + "}", "", "deeper than 64"},
      {"missing_prompt", R"({"model": "m"})", "prompt", "prompt is required"},
      {"prompt_number", R"({"prompt": 5})", "prompt", "prompt must be a string, an array of token ids"},
      {"prompt_empty_array", R"({"prompt": []})", "prompt", "must not be an empty array"},
      {"prompt_negative_id", R"({"prompt": [1, -2, 3]})", "prompt[1]", "prompt[1] must be a token id (an integer >= 0), got -2"},
      {"prompt_float_id", R"({"prompt": [1, 2.5]})", "prompt[1]", "got 2.5"},
      {"prompt_mixed_array", R"({"prompt": ["a", 1]})", "prompt[1]", "a string like the other prompts"},
      {"prompt_object", R"({"prompt": {"text": "hi"}})", "prompt", "got an object"},
      {"max_tokens_negative", R"({"prompt": "hi", "max_tokens": -5})", "max_tokens", "max_tokens must be an integer between 1 and 4096 (the server's max_new_tokens), got -5"},
      // max_tokens 0 parses for completions (prompt scoring); the handler requires echo + logprobs
      // (tests/integration/server/eval.test.js).
      {"max_tokens_string", R"({"prompt": "hi", "max_tokens": "10"})", "max_tokens", "got a string \"10\""},
      {"max_tokens_fraction", R"({"prompt": "hi", "max_tokens": 1.5})", "max_tokens", "got 1.5"},
      {"max_tokens_huge", R"({"prompt": "hi", "max_tokens": 99999999999999})", "max_tokens",
       "max_tokens must be an integer between 1 and 4096 (the server's max_new_tokens), got 99999999999999"},
      {"max_tokens_above_limit", R"({"prompt": "hi", "max_tokens": 4097})", "max_tokens",
       "max_tokens must be an integer between 1 and 4096 (the server's max_new_tokens), got 4097"},
      {"max_tokens_beyond_int64", R"({"prompt": "hi", "max_tokens": 1e30})", "max_tokens",
       "max_tokens must be an integer between 1 and 4096 (the server's max_new_tokens), got 1e+30"},
      {"temperature_string", R"({"prompt": "hi", "temperature": "hot"})", "temperature", "temperature must be a number between 0 and 2"},
      {"temperature_high", R"({"prompt": "hi", "temperature": 3.5})", "temperature", "got 3.5"},
      {"temperature_negative", R"({"prompt": "hi", "temperature": -0.1})", "temperature", "got -0.1"},
      {"top_p_zero", R"({"prompt": "hi", "top_p": 0})", "top_p", "top_p must be a number > 0 and <= 1, got 0"},
      {"top_p_bool", R"({"prompt": "hi", "top_p": true})", "top_p", "got true"},
      {"n_zero", R"({"prompt": "hi", "n": 0})", "n", "n must be an integer between 1 and 16, got 0"},
      {"n_too_many", R"({"prompt": "hi", "n": 100})", "n", "got 100"},
      {"stop_number", R"({"prompt": "hi", "stop": 7})", "stop", "stop must be a string or an array of strings, got 7"},
      {"stop_entry_number", R"({"prompt": "hi", "stop": ["a", 3]})", "stop[1]", "stop[1] must be a string, got 3"},
      {"stop_empty_string", R"({"prompt": "hi", "stop": [""]})", "stop[0]", "must not be an empty string"},
      {"stop_too_many", R"({"prompt": "hi", "stop": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]})",
       "stop", "at most 16"},
      {"stream_string", R"({"prompt": "hi", "stream": "yes"})", "stream", "stream must be a boolean"},
      {"stream_options_array", R"({"prompt": "hi", "stream_options": []})", "stream_options", "must be an object"},
      {"include_usage_number", R"({"prompt": "hi", "stream_options": {"include_usage": 1}})", "stream_options.include_usage",
       "stream_options.include_usage must be a boolean, got 1"},
      {"logprobs_high", R"({"prompt": "hi", "logprobs": 21})", "logprobs", "logprobs must be an integer between 0 and 20, got 21"},
      {"logprobs_bool", R"({"prompt": "hi", "logprobs": true})", "logprobs", "got true"},
      {"echo_number", R"({"prompt": "hi", "echo": 1})", "echo", "echo must be a boolean"},
      {"seed_string", R"({"prompt": "hi", "seed": "abc"})", "seed", "seed must be an integer"},
      {"seed_fraction", R"({"prompt": "hi", "seed": 0.5})", "seed", "seed must be an integer"},
      {"presence_penalty_high", R"({"prompt": "hi", "presence_penalty": 2.5})", "presence_penalty", "between -2 and 2"},
      {"frequency_penalty_string", R"({"prompt": "hi", "frequency_penalty": "x"})", "frequency_penalty", "between -2 and 2"},
      {"top_k_negative", R"({"prompt": "hi", "top_k": -2})", "top_k", "top_k must be an integer >= -1, got -2"},
      {"min_p_high", R"({"prompt": "hi", "min_p": 1.5})", "min_p", "min_p must be a number between 0 and 1"},
      {"repetition_penalty_zero", R"({"prompt": "hi", "repetition_penalty": 0})", "repetition_penalty", "must be a number > 0"},
      {"ignore_eos_string", R"({"prompt": "hi", "ignore_eos": "true"})", "ignore_eos", "ignore_eos must be a boolean"},
      {"attention_number", R"({"prompt": "hi", "attention": 3})", "attention", "attention must be a string"},
      {"adapter_number", R"({"prompt": "hi", "adapter": 3})", "adapter", "adapter must be a string"},
      {"model_number", R"({"prompt": "hi", "model": 3})", "model", "model must be a string"},
      {"logit_bias_nonempty", R"({"prompt": "hi", "logit_bias": {"5": 10}})", "logit_bias", "logit_bias is not supported"},
      {"best_of_differs", R"({"prompt": "hi", "best_of": 3})", "best_of", "best_of is not supported"},
      {"suffix_given", R"({"prompt": "hi", "suffix": "end"})", "suffix", "suffix is not supported"},
      {"too_many_choices", R"({"prompt": ["a","b","c","d","e"], "n": 16})", "n", "at most 64"},
      {"empty_token_array_in_batch", R"({"prompt": [[1, 2], []]})", "prompt[1]", "must not be an empty array of token ids"},
  };
}

class MalformedCompletion : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedCompletion, IsRejectedWithAMessageNamingTheField) {
  const Malformed& c = GetParam();
  CompletionRequest request;
  std::optional<RequestError> error = parse_completion_request(c.body, options(), &request);
  ASSERT_TRUE(error.has_value()) << c.name << " was accepted";
  EXPECT_EQ(error->param, c.param) << error->message;
  EXPECT_NE(error->message.find(c.fragment), std::string::npos) << "message: " << error->message << "\nwanted: " << c.fragment;
  EXPECT_FALSE(error->code.empty());
  EXPECT_TRUE(request.prompts.empty()) << "a rejected request leaves the struct empty";
}

INSTANTIATE_TEST_SUITE_P(JsonCodec, MalformedCompletion, ::testing::ValuesIn(completion_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

std::vector<Malformed> chat_cases() {
  return {
      {"missing_messages", R"({"model": "m"})", "messages", "messages is required"},
      {"messages_empty", R"({"messages": []})", "messages", "messages must be a non-empty array"},
      {"messages_string", R"({"messages": "hi"})", "messages", "messages must be a non-empty array of messages, got a string"},
      {"message_not_object", R"({"messages": ["hi"]})", "messages[0]", "messages[0] must be an object"},
      {"role_missing", R"({"messages": [{"content": "hi"}]})", "messages[0].role", "messages[0].role is required"},
      {"role_unknown", R"({"messages": [{"role": "wizard", "content": "hi"}]})", "messages[0].role", "got \"wizard\""},
      {"role_number", R"({"messages": [{"role": 1, "content": "hi"}]})", "messages[0].role", "must be a string, got 1"},
      {"content_missing_user", R"({"messages": [{"role": "user"}]})", "messages[0].content", "messages[0].content is required"},
      {"content_number", R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content", "got 5"},
      {"content_image_part",
       R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})",
       "messages[0].content[0].type", "only supported content part"},
      {"content_part_no_text", R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})",
       "messages[0].content[0].text", "is required"},
      {"second_message_bad", R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": null}]})",
       "messages[1].content", "messages[1].content is required"},
      {"logprobs_number", R"({"messages": [{"role": "user", "content": "a"}], "logprobs": 3})", "logprobs",
       "logprobs must be a boolean"},
      {"top_logprobs_without_logprobs", R"({"messages": [{"role": "user", "content": "a"}], "top_logprobs": 3})", "top_logprobs",
       "needs logprobs to be true"},
      {"top_logprobs_high", R"({"messages": [{"role": "user", "content": "a"}], "logprobs": true, "top_logprobs": 50})",
       "top_logprobs", "between 0 and 20, got 50"},
      {"max_completion_tokens_negative", R"({"messages": [{"role": "user", "content": "a"}], "max_completion_tokens": -1})",
       "max_completion_tokens", "max_completion_tokens must be an integer between 1 and 4096 (the server's max_new_tokens), got -1"},
  };
}

class MalformedChat : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedChat, IsRejectedWithAMessageNamingTheField) {
  const Malformed& c = GetParam();
  ChatRequest request;
  std::optional<RequestError> error = parse_chat_request(c.body, options(), &request);
  ASSERT_TRUE(error.has_value()) << c.name << " was accepted";
  EXPECT_EQ(error->param, c.param) << error->message;
  EXPECT_NE(error->message.find(c.fragment), std::string::npos) << "message: " << error->message << "\nwanted: " << c.fragment;
}

INSTANTIATE_TEST_SUITE_P(JsonCodec, MalformedChat, ::testing::ValuesIn(chat_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(JsonCodec, ParsesACompletionRequestWithEveryField) {
  const char* body = R"({
    "model": "demo", "prompt": "Hello", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "n": 2,
    "stop": "\n", "presence_penalty": 0.5, "frequency_penalty": -0.5, "seed": 42, "stream": true,
    "stream_options": {"include_usage": true}, "logprobs": 3, "echo": true, "user": "u",
    "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2, "ignore_eos": true, "attention": "streaming",
    "adapter": "a1", "some_future_field": {"x": 1}})";
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(body, options(), &r).has_value());
  const GenerationFields& g = r.fields;
  EXPECT_EQ(g.model, "demo");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_FALSE(r.prompts[0].is_tokens);
  EXPECT_EQ(r.prompts[0].text, "Hello");
  EXPECT_EQ(g.stop.max_tokens, 7);
  EXPECT_TRUE(g.max_tokens_given);
  EXPECT_EQ(g.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(g.sampling.top_p, 0.5f);
  EXPECT_EQ(g.n, 2);
  EXPECT_EQ(g.stop.stop_strings, std::vector<std::string>{"\n"});
  EXPECT_FLOAT_EQ(g.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(g.sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(g.sampling.seed, 42u);
  EXPECT_TRUE(g.stream);
  EXPECT_TRUE(g.include_usage);
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(g.sampling.top_k, 5);
  EXPECT_FLOAT_EQ(g.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(g.sampling.repetition_penalty, 1.2f);
  EXPECT_TRUE(g.stop.ignore_eos);
  EXPECT_EQ(g.attention.params, "streaming") << "the attention text goes to the engine's parser as given";
  EXPECT_EQ(g.adapter, "a1");
}

TEST(JsonCodec, NullFieldsMeanNotGiven) {
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","max_tokens":null,"temperature":null,"stop":null,"seed":null})",
                                        options(), &r));
  EXPECT_FALSE(r.fields.max_tokens_given);
  EXPECT_EQ(r.fields.sampling.temperature, SamplingParams{}.temperature);
  EXPECT_FALSE(r.fields.sampling.seed.has_value());
  EXPECT_TRUE(r.fields.stop.stop_strings.empty());
}

TEST(JsonCodec, AbsentFieldsTakeTheServersDefaults) {
  CodecOptions o = options();
  o.defaults.temperature = 0.25f;
  o.defaults.top_k = 7;
  o.defaults.min_p = 0.05f;
  o.defaults.max_tokens = 9;
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","top_k":3})", o, &r));
  EXPECT_EQ(r.fields.sampling.temperature, 0.25f);
  EXPECT_EQ(r.fields.sampling.top_k, 3) << "a given field overrides its default";
  EXPECT_EQ(r.fields.sampling.min_p, 0.05f);
  EXPECT_EQ(r.fields.stop.max_tokens, 9);
  EXPECT_FALSE(r.fields.max_tokens_given);
  EXPECT_EQ(r.fields.attention.impl, "auto");
}

TEST(JsonCodec, AcceptsIntegralFloatsForIntegers) {
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","max_tokens":5.0})", options(), &r));
  EXPECT_EQ(r.fields.stop.max_tokens, 5);
}

TEST(JsonCodec, PromptForms) {
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":[1,2,3]})", options(), &r));
  ASSERT_EQ(r.prompts.size(), 1u);
  ASSERT_TRUE(r.prompts[0].is_tokens);
  EXPECT_EQ(r.prompts[0].token_ids, (std::vector<int32_t>{1, 2, 3}));

  ASSERT_FALSE(parse_completion_request(R"({"prompt":["only one"]})", options(), &r));
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "only one");

  ASSERT_FALSE(parse_completion_request(R"({"prompt":[[1,2],[3]]})", options(), &r));
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[1].token_ids[0], 3);
}

TEST(JsonCodec, StopAsArrayAndAttentionAsObject) {
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(
      R"({"prompt":"x","stop":["a","bc"],"attention":{"impl":"streaming","sink_window_size":4}})", options(), &r));
  ASSERT_EQ(r.fields.stop.stop_strings.size(), 2u);
  EXPECT_EQ(r.fields.stop.stop_strings[1], "bc");
  const json attention = json::parse(r.fields.attention.params);
  EXPECT_EQ(attention["impl"], "streaming");
  EXPECT_EQ(attention["sink_window_size"], 4);
}

TEST(JsonCodec, TheEnginesAttentionErrorNamesTheField) {
  CompletionRequest r;
  auto error = parse_completion_request(R"({"prompt":"x","attention":"bogus"})", options(), &r);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->param, "attention");
  EXPECT_EQ(error->code, "invalid_value");
  EXPECT_EQ(error->message, "attention: unknown implementation 'bogus'");
  // Every other field is checked first: the codec's own message wins.
  error = parse_completion_request(R"({"prompt":"x","attention":"bogus","n":0})", options(), &r);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->param, "n");
}

TEST(JsonCodec, ZeroMaxTokensOnlyScoresAnEchoedPrompt) {
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":[1,2],"max_tokens":0,"echo":true,"logprobs":0})", options(), &r));
  EXPECT_EQ(r.fields.stop.max_tokens, 0);
  auto error = parse_completion_request(R"({"prompt":[1,2],"max_tokens":0})", options(), &r);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->param, "max_tokens");
  EXPECT_EQ(error->message,
            "max_tokens must be an integer between 1 and 4096 (the server's max_new_tokens), got 0; 0 only scores the "
            "prompt and needs echo: true with logprobs");
}

TEST(JsonCodec, NegativeSeedWraps) {
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","seed":-1})", options(), &r));
  EXPECT_EQ(r.fields.sampling.seed, ~0ull);
}

TEST(JsonCodec, TopKMinusOneMeansOff) {
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","top_k":-1})", options(), &r));
  EXPECT_EQ(r.fields.sampling.top_k, 0);
}

TEST(JsonCodec, LimitsComeFromTheCaller) {
  CodecLimits limits;
  limits.max_n = 2;
  CompletionRequest r;
  auto error = parse_completion_request(R"({"prompt":"x","n":3})", options(limits), &r);
  ASSERT_TRUE(error);
  EXPECT_NE(error->message.find("between 1 and 2, got 3"), std::string::npos) << error->message;
}

TEST(JsonCodec, IncludeUsageOnlyWhileStreaming) {
  CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","stream_options":{"include_usage":true}})", options(), &r));
  EXPECT_FALSE(r.fields.include_usage);
}

TEST(JsonCodec, ParsesChatMessagesAndContentParts) {
  ChatRequest r;
  ASSERT_FALSE(parse_chat_request(R"({"model":"m","messages":[
      {"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hel"},{"type":"text","text":"lo"}],"name":"bob"},
      {"role":"assistant","content":null}],
      "logprobs":true,"top_logprobs":2,"max_completion_tokens":9})",
                                  options(), &r));
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "hello");
  EXPECT_EQ(r.messages[1].name, "bob");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.logprobs, 2) << "logprobs: true with top_logprobs 2";
  EXPECT_EQ(r.fields.stop.max_tokens, 9);
  EXPECT_TRUE(r.fields.max_tokens_given);
}

TEST(JsonCodec, Utf8Validator) {
  std::size_t bad = 99;
  EXPECT_TRUE(is_valid_utf8("plain ascii", &bad));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", &bad));
  EXPECT_FALSE(is_valid_utf8("ab\xFF", &bad));
  EXPECT_EQ(bad, 2u);
  EXPECT_FALSE(is_valid_utf8("\xE2\x82", &bad));  // truncated
  EXPECT_EQ(bad, 0u);
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80", &bad));  // > U+10FFFF
}

// The engine's field table words the ranges the codec, the config and Engine::submit report.
TEST(JsonCodec, FieldTableWording) {
  using namespace request_fields;
  EXPECT_EQ(kTemperature.expectation(), "a number between 0 and 2");
  EXPECT_EQ(kTopP.expectation(), "a number > 0 and <= 1");
  EXPECT_EQ(kTopK.expectation(), "an integer >= -1");
  EXPECT_EQ(kRepetitionPenalty.expectation(), "a number > 0");
  EXPECT_EQ(kPresencePenalty.expectation(), "a number between -2 and 2");
  EXPECT_EQ(kMaxTokens.with_bounds(1, 4096).expectation(), "an integer between 1 and 4096");
  EXPECT_FALSE(kMinP.contains(1.5));
  EXPECT_FALSE(kTopK.contains(2.5));
  EXPECT_FALSE(kRepetitionPenalty.contains(std::numeric_limits<double>::infinity()));
  EXPECT_TRUE(kTopK.contains(-1));
}

TEST(JsonCodec, WritesACompletionInOpenAiShape) {
  Completion c;
  c.header = {"cmpl-1", 123, "demo"};
  CompletionChoice& choice = c.choices.emplace_back();
  choice.text = "hi";
  choice.index = 0;
  choice.finish_reason = "length";
  c.usage.emplace();
  c.usage->prompt_tokens = 3;
  c.usage->completion_tokens = 2;
  const std::string text = to_json(c);
  const json j = json::parse(text);
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 123);
  EXPECT_EQ(j["choices"][0]["text"], "hi");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
  EXPECT_EQ(text,
            R"({"id":"cmpl-1","object":"text_completion","created":123,"model":"demo","choices":[{"text":"hi","index":0,)"
            R"("logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,)"
            R"("prompt_tokens_details":{"cached_tokens":0}}})")
      << "keys in OpenAI's order";
}

TEST(JsonCodec, ChunkUsageIsNullOnlyWhenAsked) {
  ChatCompletion chunk;
  chunk.chunk = true;
  chunk.header.id = "c";
  ChatChoice& choice = chunk.choices.emplace_back();
  choice.content = "x";
  json plain = json::parse(to_json(chunk));
  EXPECT_EQ(plain["object"], "chat.completion.chunk");
  EXPECT_FALSE(plain.contains("usage"));
  EXPECT_TRUE(plain["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(plain["choices"][0]["delta"].contains("role"));
  json with_usage = json::parse(to_json(chunk, {.null_usage_when_absent = true}));
  ASSERT_TRUE(with_usage.contains("usage"));
  EXPECT_TRUE(with_usage["usage"].is_null());
}

TEST(JsonCodec, ChatBodyCarriesTheMessage) {
  ChatCompletion body;
  ChatChoice& choice = body.choices.emplace_back();
  choice.role = "assistant";
  choice.content = "hi";
  choice.finish_reason = "stop";
  body.usage = Usage{};
  const json j = json::parse(to_json(body));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"], json({{"role", "assistant"}, {"content", "hi"}}));
  EXPECT_FALSE(j["choices"][0].contains("delta"));
}

TEST(JsonCodec, CompletionLogprobsUseParallelArraysWithNulls) {
  Completion c;
  std::vector<CompletionTokenLogprob>& lp = c.choices.emplace_back().logprobs.emplace();
  lp.push_back({"a", std::nullopt, {}, 0});  // null (echoed prompt token)
  lp.push_back({"b", -0.5f, {{"b", -0.5f}}, 1});
  const json j = json::parse(to_json(c))["choices"][0]["logprobs"];
  EXPECT_EQ(j["tokens"], json({"a", "b"}));
  EXPECT_TRUE(j["token_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(j["token_logprobs"][1].get<float>(), -0.5f);
  EXPECT_TRUE(j["top_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(j["top_logprobs"][1]["b"].get<float>(), -0.5f);
  EXPECT_EQ(j["text_offset"], json({0, 1}));
}

TEST(JsonCodec, InvalidUtf8InOutputIsReplacedNotThrown) {
  Completion c;
  c.choices.emplace_back().text = "bad \xFF byte";
  EXPECT_NO_THROW({
    const json j = json::parse(to_json(c));
    EXPECT_EQ(j["choices"][0]["text"], "bad \xEF\xBF\xBD byte");
  });
}

TEST(JsonCodec, ErrorBody) {
  ErrorBody e{"m", "invalid_request_error", "", "c"};
  json j = json::parse(to_json(e));
  EXPECT_EQ(j["error"]["message"], "m");
  EXPECT_TRUE(j["error"]["param"].is_null());
  e.param = "n";
  j = json::parse(to_json(e));
  EXPECT_EQ(j["error"]["param"], "n");
}

TEST(JsonCodec, AdapterDescriptionsAndLists) {
  AdapterInfo info;
  info.name = "a1";
  info.type = "mixed";
  info.layers = 2;
  info.parameters_json = R"({"z":1,"a":2})";
  info.bytes = 10;
  info.sha256 = "ff";
  info.created = 5;
  info.description = "d";
  EXPECT_EQ(to_json(info),
            R"({"name":"a1","object":"adapter","type":"mixed","layers":2,"parameters":{"z":1,"a":2},"bytes":10,)"
            R"("sha256":"ff","created":5,"description":"d","resident":false})");
  EXPECT_EQ(to_json(AdapterList{{info, info}}), "{\"adapters\":[" + to_json(info) + "," + to_json(info) + "]}");
  EXPECT_EQ(to_json(AdapterList{}), R"({"adapters":[]})");
  EXPECT_EQ(to_json(AdapterDeleted{"a1"}), R"({"name":"a1","object":"adapter","deleted":true})");
}

TEST(JsonCodec, ModelListAndHealth) {
  ModelList list;
  list.data.push_back({"base", 1, "base", std::nullopt, 128});
  list.data.push_back({"a1", 2, "base", "base", 0});
  EXPECT_EQ(to_json(list),
            R"({"object":"list","data":[{"id":"base","object":"model","created":1,"owned_by":"hotswap","root":"base",)"
            R"("parent":null,"max_model_len":128},{"id":"a1","object":"model","created":2,"owned_by":"hotswap",)"
            R"("root":"base","parent":"base"}]})");
  EXPECT_EQ(to_json(HealthStatus{"ok"}), R"({"status":"ok"})");
}

}  // namespace
}  // namespace hotswap::server
