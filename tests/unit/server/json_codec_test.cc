#include "api/json_codec.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace hotswap::server {
namespace {

using json = nlohmann::json;

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
  v1::CompletionRequest request;
  std::optional<RequestError> error = parse_completion_request(c.body, CodecLimits{}, &request);
  ASSERT_TRUE(error.has_value()) << c.name << " was accepted";
  EXPECT_EQ(error->param, c.param) << error->message;
  EXPECT_NE(error->message.find(c.fragment), std::string::npos) << "message: " << error->message << "\nwanted: " << c.fragment;
  EXPECT_FALSE(error->code.empty());
  EXPECT_EQ(request.prompts_size(), 0) << "a rejected request leaves the message empty";
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
  v1::ChatCompletionRequest request;
  std::optional<RequestError> error = parse_chat_request(c.body, CodecLimits{}, &request);
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
  v1::CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(body, CodecLimits{}, &r).has_value());
  EXPECT_EQ(r.model(), "demo");
  ASSERT_EQ(r.prompts_size(), 1);
  EXPECT_EQ(r.prompts(0).text(), "Hello");
  const v1::SamplingFields& s = r.sampling();
  EXPECT_EQ(s.max_tokens(), 7);
  EXPECT_TRUE(s.has_temperature());
  EXPECT_EQ(s.temperature(), 0.0f);
  EXPECT_FLOAT_EQ(s.top_p(), 0.5f);
  EXPECT_EQ(s.n(), 2);
  ASSERT_EQ(s.stop_size(), 1);
  EXPECT_EQ(s.stop(0), "\n");
  EXPECT_EQ(s.seed(), 42u);
  EXPECT_TRUE(s.stream());
  EXPECT_TRUE(s.stream_options().include_usage());
  EXPECT_EQ(r.logprobs(), 3);
  EXPECT_TRUE(r.echo());
  EXPECT_EQ(s.top_k(), 5);
  EXPECT_FLOAT_EQ(s.min_p(), 0.1f);
  EXPECT_FLOAT_EQ(s.repetition_penalty(), 1.2f);
  EXPECT_TRUE(s.ignore_eos());
  EXPECT_EQ(s.attention(), "streaming");
  EXPECT_EQ(s.adapter(), "a1");
}

TEST(JsonCodec, NullFieldsMeanNotGiven) {
  v1::CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","max_tokens":null,"temperature":null,"stop":null,"seed":null})",
                                        CodecLimits{}, &r));
  EXPECT_FALSE(r.sampling().has_max_tokens());
  EXPECT_FALSE(r.sampling().has_temperature());
  EXPECT_FALSE(r.sampling().has_seed());
  EXPECT_EQ(r.sampling().stop_size(), 0);
}

TEST(JsonCodec, AcceptsIntegralFloatsForIntegers) {
  v1::CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","max_tokens":5.0})", CodecLimits{}, &r));
  EXPECT_EQ(r.sampling().max_tokens(), 5);
}

TEST(JsonCodec, PromptForms) {
  v1::CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":[1,2,3]})", CodecLimits{}, &r));
  ASSERT_EQ(r.prompts_size(), 1);
  ASSERT_TRUE(r.prompts(0).has_token_ids());
  EXPECT_EQ(r.prompts(0).token_ids().ids_size(), 3);
  EXPECT_EQ(r.prompts(0).token_ids().ids(2), 3);

  ASSERT_FALSE(parse_completion_request(R"({"prompt":["only one"]})", CodecLimits{}, &r));
  ASSERT_EQ(r.prompts_size(), 1);
  EXPECT_EQ(r.prompts(0).text(), "only one");

  ASSERT_FALSE(parse_completion_request(R"({"prompt":[[1,2],[3]]})", CodecLimits{}, &r));
  ASSERT_EQ(r.prompts_size(), 2);
  EXPECT_EQ(r.prompts(1).token_ids().ids(0), 3);
}

TEST(JsonCodec, StopAsArrayAndAttentionAsObject) {
  v1::CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(
      R"({"prompt":"x","stop":["a","bc"],"attention":{"impl":"streaming","sink_window_size":4}})", CodecLimits{}, &r));
  ASSERT_EQ(r.sampling().stop_size(), 2);
  EXPECT_EQ(r.sampling().stop(1), "bc");
  const json attention = json::parse(r.sampling().attention());
  EXPECT_EQ(attention["impl"], "streaming");
  EXPECT_EQ(attention["sink_window_size"], 4);
}

TEST(JsonCodec, NegativeSeedWraps) {
  v1::CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","seed":-1})", CodecLimits{}, &r));
  EXPECT_EQ(r.sampling().seed(), ~0ull);
}

TEST(JsonCodec, TopKMinusOneMeansOff) {
  v1::CompletionRequest r;
  ASSERT_FALSE(parse_completion_request(R"({"prompt":"x","top_k":-1})", CodecLimits{}, &r));
  EXPECT_EQ(r.sampling().top_k(), 0);
}

TEST(JsonCodec, LimitsComeFromTheCaller) {
  CodecLimits limits;
  limits.max_n = 2;
  v1::CompletionRequest r;
  auto error = parse_completion_request(R"({"prompt":"x","n":3})", limits, &r);
  ASSERT_TRUE(error);
  EXPECT_NE(error->message.find("between 1 and 2, got 3"), std::string::npos) << error->message;
}

TEST(JsonCodec, ParsesChatMessagesAndContentParts) {
  v1::ChatCompletionRequest r;
  ASSERT_FALSE(parse_chat_request(R"({"model":"m","messages":[
      {"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hel"},{"type":"text","text":"lo"}],"name":"bob"},
      {"role":"assistant","content":null}],
      "logprobs":true,"top_logprobs":2,"max_completion_tokens":9})",
                                  CodecLimits{}, &r));
  ASSERT_EQ(r.messages_size(), 3);
  EXPECT_EQ(r.messages(0).role(), "system");
  EXPECT_EQ(r.messages(1).content(), "hello");
  EXPECT_EQ(r.messages(1).name(), "bob");
  EXPECT_EQ(r.messages(2).content(), "");
  EXPECT_TRUE(r.logprobs());
  EXPECT_EQ(r.top_logprobs(), 2);
  EXPECT_EQ(r.sampling().max_tokens(), 9);
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

TEST(JsonCodec, WritesACompletionInOpenAiShape) {
  v1::Completion c;
  c.set_id("cmpl-1");
  c.set_object("text_completion");
  c.set_created(123);
  c.set_model("demo");
  v1::CompletionChoice* choice = c.add_choices();
  choice->set_text("hi");
  choice->set_index(0);
  choice->set_finish_reason("length");
  c.mutable_usage()->set_prompt_tokens(3);
  c.mutable_usage()->set_completion_tokens(2);
  c.mutable_usage()->set_total_tokens(5);
  const json j = json::parse(to_json(c));
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 123);
  EXPECT_EQ(j["choices"][0]["text"], "hi");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
}

TEST(JsonCodec, ChunkUsageIsNullOnlyWhenAsked) {
  v1::ChatCompletionChunk chunk;
  chunk.set_id("c");
  v1::ChatChunkChoice* choice = chunk.add_choices();
  choice->mutable_delta()->set_content("x");
  json plain = json::parse(to_json(chunk));
  EXPECT_FALSE(plain.contains("usage"));
  EXPECT_TRUE(plain["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(plain["choices"][0]["delta"].contains("role"));
  json with_usage = json::parse(to_json(chunk, {.null_usage_when_absent = true}));
  ASSERT_TRUE(with_usage.contains("usage"));
  EXPECT_TRUE(with_usage["usage"].is_null());
}

TEST(JsonCodec, CompletionLogprobsUseParallelArraysWithNulls) {
  v1::Completion c;
  v1::CompletionLogprobs* lp = c.add_choices()->mutable_logprobs();
  lp->add_tokens("a");
  lp->add_token_logprobs();  // null (echoed prompt token)
  lp->add_top_logprobs()->set_is_null(true);
  lp->add_text_offset(0);
  lp->add_tokens("b");
  lp->add_token_logprobs()->set_value(-0.5f);
  (*lp->add_top_logprobs()->mutable_logprobs())["b"] = -0.5f;
  lp->add_text_offset(1);
  const json j = json::parse(to_json(c))["choices"][0]["logprobs"];
  EXPECT_EQ(j["tokens"], json({"a", "b"}));
  EXPECT_TRUE(j["token_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(j["token_logprobs"][1].get<float>(), -0.5f);
  EXPECT_TRUE(j["top_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(j["top_logprobs"][1]["b"].get<float>(), -0.5f);
  EXPECT_EQ(j["text_offset"], json({0, 1}));
}

TEST(JsonCodec, InvalidUtf8InOutputIsReplacedNotThrown) {
  v1::Completion c;
  c.add_choices()->set_text("bad \xFF byte");
  EXPECT_NO_THROW({
    const json j = json::parse(to_json(c));
    EXPECT_EQ(j["choices"][0]["text"], "bad \xEF\xBF\xBD byte");
  });
}

TEST(JsonCodec, ErrorBody) {
  v1::ErrorBody e;
  e.mutable_error()->set_message("m");
  e.mutable_error()->set_type("invalid_request_error");
  e.mutable_error()->set_code("c");
  json j = json::parse(to_json(e));
  EXPECT_EQ(j["error"]["message"], "m");
  EXPECT_TRUE(j["error"]["param"].is_null());
  e.mutable_error()->set_param("n");
  j = json::parse(to_json(e));
  EXPECT_EQ(j["error"]["param"], "n");
}

}  // namespace
}  // namespace hotswap::server
