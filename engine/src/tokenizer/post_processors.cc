#include "tokenizer/post_processors.h"

#include <string>
#include <unordered_map>

namespace hotswap::tok {
namespace {

constexpr int kMaxDepth = 32;

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void add_special_tokens(std::vector<int32_t>& ids) const override {
    for (const auto& step : steps_) step->add_special_tokens(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// ByteLevel only trims offsets; ids pass through.
class IdentityPostProcessor final : public PostProcessor {
 public:
  void add_special_tokens(std::vector<int32_t>&) const override {}
};

// The single-sequence template flattened to: ids before $A, then ids after it.
class TemplatePostProcessor final : public PostProcessor {
 public:
  TemplatePostProcessor(std::vector<int32_t> before, std::vector<int32_t> after, bool has_sequence)
      : before_(std::move(before)), after_(std::move(after)), has_sequence_(has_sequence) {}
  void add_special_tokens(std::vector<int32_t>& ids) const override {
    if (!has_sequence_) ids.clear();
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }

 private:
  std::vector<int32_t> before_;
  std::vector<int32_t> after_;
  bool has_sequence_;
};

int32_t token_id(const JsonField& pair) {
  // Roberta/Bert store ["<s>", 0].
  if (pair.array_size() != 2) pair.fail("expected [\"<token>\", <id>]");
  const int64_t id = pair.at(1).as_int();
  if (id < 0 || id > kMaxTokenId) pair.at(1).fail("token id out of range");
  return static_cast<int32_t>(id);
}

std::unique_ptr<PostProcessor> make_template(const JsonField& config) {
  std::unordered_map<std::string, std::vector<int32_t>> special_ids;
  if (const auto specials = config.find("special_tokens")) {
    if (!specials->is_object()) specials->fail("expected an object, found " + json_kind(specials->json()));
    for (const auto& [name, value] : specials->json().items()) {
      const JsonField entry(value, specials->where() + "[\"" + name + "\"]", specials->source());
      const JsonField ids = entry.at("ids");
      std::vector<int32_t>& out = special_ids[name];
      for (size_t i = 0; i < ids.array_size(); ++i) {
        const int64_t id = ids.at(i).as_int();
        if (id < 0 || id > kMaxTokenId) ids.at(i).fail("token id out of range");
        out.push_back(static_cast<int32_t>(id));
      }
    }
  }
  const JsonField single = config.at("single");
  std::vector<int32_t> before;
  std::vector<int32_t> after;
  bool has_sequence = false;
  for (size_t i = 0; i < single.array_size(); ++i) {
    const JsonField piece = single.at(i);
    std::string special_name;
    bool is_sequence = false;
    if (piece.is_string()) {
      // The short form: "$A", "$A:0", "<s>", "<s>:1".
      std::string text = piece.as_string();
      if (const size_t colon = text.rfind(':'); colon != std::string::npos && colon > 0) text.resize(colon);
      if (!text.empty() && text[0] == '$') {
        is_sequence = true;
        if (text != "$" && text != "$A" && text != "$0") piece.fail("the single template may only use $A");
      } else {
        special_name = text;
      }
    } else if (const auto seq = piece.find("Sequence")) {
      const std::string id = seq->at("id").as_string();
      if (id != "A") seq->at("id").fail("the single template may only use sequence A, found '" + id + "'");
      is_sequence = true;
    } else if (const auto special = piece.find("SpecialToken")) {
      special_name = special->at("id").as_string();
    } else {
      piece.fail("expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
    if (is_sequence) {
      if (has_sequence) piece.fail("sequence A appears twice in the single template");
      has_sequence = true;
      continue;
    }
    const auto it = special_ids.find(special_name);
    if (it == special_ids.end()) piece.fail("special token '" + special_name + "' is not in special_tokens");
    std::vector<int32_t>& target = has_sequence ? after : before;
    target.insert(target.end(), it->second.begin(), it->second.end());
  }
  return std::make_unique<TemplatePostProcessor>(std::move(before), std::move(after), has_sequence);
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const JsonField& config, int depth) {
  if (depth > kMaxDepth) config.fail("post-processors nested deeper than " + std::to_string(kMaxDepth));
  const std::string type = config.at("type").as_string();
  if (type == "TemplateProcessing") return make_template(config);
  if (type == "ByteLevel") return std::make_unique<IdentityPostProcessor>();
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    return std::make_unique<TemplatePostProcessor>(std::vector<int32_t>{token_id(config.at("cls"))},
                                                   std::vector<int32_t>{token_id(config.at("sep"))}, true);
  }
  if (type == "Sequence") {
    const JsonField list = config.at("processors");
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.array_size(); ++i) steps.push_back(make_post_processor(list.at(i), depth + 1));
    return std::make_unique<SequencePostProcessor>(std::move(steps));
  }
  config.at("type").fail("unsupported post-processor type '" + type +
                         "' (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)");
}

}  // namespace hotswap::tok
