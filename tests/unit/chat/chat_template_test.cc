// ChatTemplate's contract beyond jinja2 parity: error reporting, the globals that
// cannot be compared against a fixed reference (strftime_now), the resource limits
// that keep hostile templates bounded, and concurrent use of one compiled template.
#include "chat/chat_template.h"

#include <gtest/gtest.h>

#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace hotswap {
namespace {

ChatTemplate compile_ok(const std::string& source) {
  Result<ChatTemplate> t = ChatTemplate::compile(source);
  EXPECT_TRUE(t.is_ok()) << t.status().message();
  return std::move(t).value();
}

std::string render_ok(const std::string& source, const nlohmann::json& context = nlohmann::json::object()) {
  const Result<std::string> out = compile_ok(source).render(context);
  EXPECT_TRUE(out.is_ok()) << out.status().message();
  return out.is_ok() ? out.value() : "";
}

Status render_error(const std::string& source, const nlohmann::json& context = nlohmann::json::object(),
                    const RenderLimits& limits = {}) {
  const Result<std::string> out = compile_ok(source).render(context, limits);
  EXPECT_FALSE(out.is_ok());
  return out.status();
}

TEST(ChatTemplate, SyntaxErrorsReportLineAndColumn) {
  const Result<ChatTemplate> t = ChatTemplate::compile("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}");
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("line 3, column 10"), std::string::npos) << t.status().message();
}

TEST(ChatTemplate, UnclosedBlockNamesWhatWasExpected) {
  const Result<ChatTemplate> t = ChatTemplate::compile("{% for m in messages %}{{ m }}");
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("'endfor'"), std::string::npos) << t.status().message();
}

TEST(ChatTemplate, RaiseExceptionReturnsTheMessageVerbatim) {
  const Status s = render_error("{{ raise_exception('Roles must alternate: ' ~ n) }}", {{"n", 3}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "Roles must alternate: 3");
}

TEST(ChatTemplate, RuntimeErrorsCarryTheLine) {
  const Status s = render_error("ok\n{{ messages[0].role }}", {{"messages", nlohmann::json::array()}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("line 2"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("has no element 0"), std::string::npos) << s.message();
}

TEST(ChatTemplate, StrftimeNowFormatsTheLocalDate) {
  auto today = [] {
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buf[64];
    std::strftime(buf, sizeof(buf), "%d %b %Y", &local);
    return std::string(buf);
  };
  const std::string before = today();
  const std::string rendered = render_ok("{{ strftime_now('%d %b %Y') }}");
  const std::string after = today();
  EXPECT_TRUE(rendered == before || rendered == after) << rendered;
}

TEST(ChatTemplate, ContextDictsIterateInSortedKeyOrder) {
  // nlohmann::json sorts object keys; the reference script feeds Python the same order.
  EXPECT_EQ(render_ok("{{ tool | tojson }}|{% for k in tool %}{{ k }}{% endfor %}",
                      {{"tool", {{"name", "f"}, {"arguments", {{"z", 1}, {"a", 2}}}}}}),
            "{\"arguments\": {\"a\": 2, \"z\": 1}, \"name\": \"f\"}|argumentsname");
}

TEST(ChatTemplate, RejectsBadInputs) {
  EXPECT_FALSE(ChatTemplate::compile("{{ '\xff' }}").is_ok());  // not UTF-8
  const ChatTemplate t = compile_ok("{{ x }}");
  EXPECT_EQ(t.render(nlohmann::json::array()).status().code(), StatusCode::kInvalidArgument);
  nlohmann::json deep = 1;
  for (int i = 0; i < 300; ++i) deep = nlohmann::json::array({deep});
  EXPECT_FALSE(t.render({{"x", deep}}).is_ok());
}

TEST(ChatTemplate, OutputSizeIsBounded) {
  RenderLimits limits;
  limits.max_output_bytes = 1 << 20;
  const Status s = render_error("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", nlohmann::json::object(), limits);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
  EXPECT_EQ(render_error("{{ 'x' * 10000000000 }}", nlohmann::json::object(), limits).code(), StatusCode::kResourceExhausted);
}

TEST(ChatTemplate, EvaluationStepsAreBounded) {
  RenderLimits limits;
  limits.max_steps = 1'000'000;
  const Status s =
      render_error("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                   nlohmann::json::object(), limits);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
}

TEST(ChatTemplate, MacroRecursionIsBounded) {
  const Status s = render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
}

TEST(ChatTemplate, DeepTemplateNestingIsASyntaxError) {
  const std::string source = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  const Result<ChatTemplate> t = ChatTemplate::compile(source);
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("too deep"), std::string::npos) << t.status().message();
}

TEST(ChatTemplate, NamespacesCannotFormCycles) {
  const Status s = render_error("{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns }}");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  const Status nested = render_error("{% set a = namespace() %}{% set b = namespace(inner=[a]) %}");
  EXPECT_EQ(nested.code(), StatusCode::kInvalidArgument);
}

TEST(ChatTemplate, ValueNestingIsBounded) {
  const Status s = render_error(
      "{% set ns = namespace(v=[]) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v }}");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.message();
}

TEST(ChatTemplate, OneCompiledTemplateRendersConcurrently) {
  const ChatTemplate t = compile_ok(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
      "<{{ m.role }}>{{ m.content | trim }}{% endfor %}#{{ ns.n }}");
  std::vector<std::thread> threads;
  std::vector<std::string> outputs(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      nlohmann::json messages = nlohmann::json::array();
      for (int k = 0; k <= i; ++k) messages.push_back({{"role", "user"}, {"content", " m" + std::to_string(k) + " "}});
      for (int rep = 0; rep < 200; ++rep) {
        const Result<std::string> out = t.render({{"messages", messages}});
        if (out.is_ok()) outputs[i] = out.value();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 8; ++i) {
    std::string want;
    for (int k = 0; k <= i; ++k) want.append("<user>m").append(std::to_string(k));
    want.append("#").append(std::to_string(i + 1));
    EXPECT_EQ(outputs[i], want);
  }
}

}  // namespace
}  // namespace hotswap
