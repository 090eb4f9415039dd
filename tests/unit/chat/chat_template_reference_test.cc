// Differential tests against Python jinja2: every case in expected.json was rendered
// by scripts/reference/render_chat_templates.py with transformers' environment, and
// the C++ interpreter must reproduce it byte for byte (or fail where jinja2 fails).
#include "chat/chat_template.h"

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hotswap {
namespace {

const std::string kChatTestDir = std::string(HOTSWAP_SOURCE_DIR) + "/tests/unit/chat";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const nlohmann::json& expected_json() {
  static const nlohmann::json j = nlohmann::json::parse(read_file(kChatTestDir + "/expected.json"));
  return j;
}

struct ReferenceCase {
  std::string name;     // test-name-safe
  std::string source;   // template text
  nlohmann::json context;
  nlohmann::json result;  // {"expected": ...} or {"error", "phase", "raised", "message"}
};

std::string sanitize(const std::string& s) {
  std::string out;
  for (const char c : s) out.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out;
}

std::vector<ReferenceCase> chat_template_cases() {
  std::vector<ReferenceCase> cases;
  for (const auto& c : expected_json().at("chat_templates")) {
    const std::string name = c.at("template").get<std::string>();
    cases.push_back({sanitize(name + "__" + c.at("case").get<std::string>()),
                     read_file(kChatTestDir + "/templates/" + name + ".jinja"), c.at("context"), c});
  }
  return cases;
}

std::vector<ReferenceCase> feature_cases() {
  std::vector<ReferenceCase> cases;
  for (const auto& c : expected_json().at("features")) {
    cases.push_back({sanitize(c.at("name").get<std::string>()), c.at("source").get<std::string>(),
                     expected_json().at("feature_context"), c});
  }
  return cases;
}

void check_case(const ReferenceCase& c) {
  const Result<ChatTemplate> compiled = ChatTemplate::compile(c.source);
  const nlohmann::json& r = c.result;
  if (r.contains("expected")) {
    ASSERT_TRUE(compiled.is_ok()) << compiled.status().message();
    const Result<std::string> out = compiled->render(c.context);
    ASSERT_TRUE(out.is_ok()) << out.status().message();
    EXPECT_EQ(out.value(), r.at("expected").get<std::string>());
    return;
  }
  const std::string jinja_error = r.at("error").get<std::string>();
  if (r.at("phase") == "compile") {
    EXPECT_FALSE(compiled.is_ok()) << "jinja2 rejects this template: " << jinja_error;
    if (!compiled.is_ok()) {
      EXPECT_EQ(compiled.status().code(), StatusCode::kInvalidArgument);
    }
    return;
  }
  if (r.at("raised").get<bool>()) {
    // raise_exception(message): the message comes back verbatim.
    ASSERT_TRUE(compiled.is_ok()) << compiled.status().message();
    const Result<std::string> out = compiled->render(c.context);
    ASSERT_FALSE(out.is_ok()) << "jinja2 raised: " << jinja_error;
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(out.status().message(), r.at("message").get<std::string>());
    return;
  }
  // jinja2 fails while rendering. Rejecting the template already at compile time is
  // acceptable (it can never render); rendering it successfully is not.
  if (!compiled.is_ok()) return;
  const Result<std::string> out = compiled->render(c.context);
  EXPECT_FALSE(out.is_ok()) << "jinja2 failed with " << jinja_error << " but we rendered: " << out.value();
}

class ChatTemplateReference : public testing::TestWithParam<ReferenceCase> {};

TEST_P(ChatTemplateReference, MatchesJinja2) { check_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(OfficialTemplates, ChatTemplateReference, testing::ValuesIn(chat_template_cases()),
                         [](const testing::TestParamInfo<ReferenceCase>& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(LanguageFeatures, ChatTemplateReference, testing::ValuesIn(feature_cases()),
                         [](const testing::TestParamInfo<ReferenceCase>& info) { return info.param.name; });

// The reference data must cover every template file and the paths the brief names.
TEST(ChatTemplateReferenceData, CoversEveryTemplateAndRaisePaths) {
  std::set<std::string> templates;
  int raised = 0;
  for (const auto& c : expected_json().at("chat_templates")) {
    templates.insert(c.at("template").get<std::string>());
    if (c.contains("raised") && c.at("raised").get<bool>()) ++raised;
  }
  EXPECT_EQ(templates, (std::set<std::string>{"llama3_instruct", "llama3_1_instruct", "qwen2_instruct",
                                              "qwen2_5_instruct", "qwen3", "phi3_mini_4k_instruct"}));
  EXPECT_GE(raised, 2);
}

// The two templates that ship with the cached tokenizers must be stored verbatim.
TEST(ChatTemplateReferenceData, CachedTokenizerTemplatesAreVerbatim) {
  for (const std::string name : {"llama3", "qwen3"}) {
    const std::string config_path = std::string(HOTSWAP_SOURCE_DIR) + "/.cache/tokenizers/" + name +
                                    "/tokenizer_config.json";
    std::ifstream probe(config_path);
    // A missing fixture is a failure, never a skip (as in tests/unit/tokenizer/real_tokenizers.h).
    if (!probe) {
      ADD_FAILURE() << config_path << " is missing: run scripts/fetch-tokenizers.sh";
      continue;
    }
    const auto config = nlohmann::json::parse(read_file(config_path));
    const std::string file = name == "llama3" ? "llama3_instruct" : "qwen3";
    EXPECT_EQ(read_file(kChatTestDir + "/templates/" + file + ".jinja"), config.at("chat_template").get<std::string>())
        << name;
  }
}

}  // namespace
}  // namespace hotswap
