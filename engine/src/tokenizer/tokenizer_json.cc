#include "tokenizer/tokenizer_json.h"

#include "core/load_error.h"
#include "tokenizer/json_field.h"

namespace hotswap::tok {
namespace {

// A SAX handler that builds the DOM itself and diverts the two tables.
class TokenizerJsonHandler final : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit TokenizerJsonHandler(TokenizerJson& out) : out_(out) {}

  const std::string& error() const { return error_; }

  bool null() override { return value(nullptr); }
  bool boolean(bool v) override { return value(v); }
  bool number_integer(number_integer_t v) override { return value(v); }
  bool number_unsigned(number_unsigned_t v) override { return value(v); }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool binary(binary_t&) override { return fail("unexpected binary value"); }

  bool string(string_t& s) override {
    switch (mode_) {
      case Mode::kMerges:
        out_.tables.merges.push_back({std::move(s), std::string(), false});
        return true;
      case Mode::kMergePair:
        if (pair_size_ == 0) {
          pair_.left = std::move(s);
        } else if (pair_size_ == 1) {
          pair_.right = std::move(s);
        } else {
          return fail(merge_path() + ": expected [\"<left>\", \"<right>\"], found more than two strings");
        }
        ++pair_size_;
        return true;
      default:
        return value(std::move(s));
    }
  }

  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }

  bool start_object(std::size_t) override {
    if (mode_ == Mode::kDom && at_model_member("vocab")) {
      mode_ = Mode::kVocab;
      out_.tables.has_vocab = true;
      out_.tables.vocab.clear();
      return true;
    }
    if (mode_ != Mode::kDom) return fail(table_path() + ": unexpected object");
    return open(nlohmann::json::object());
  }

  bool end_object() override {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kDom;
      return true;
    }
    stack_.pop_back();
    return true;
  }

  bool start_array(std::size_t) override {
    if (mode_ == Mode::kDom && at_model_member("merges")) {
      mode_ = Mode::kMerges;
      out_.tables.has_merges = true;
      out_.tables.merges.clear();
      return true;
    }
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kMergePair;
      pair_ = {std::string(), std::string(), true};
      pair_size_ = 0;
      return true;
    }
    if (mode_ != Mode::kDom) return fail(table_path() + ": unexpected array");
    return open(nlohmann::json::array());
  }

  bool end_array() override {
    if (mode_ == Mode::kMergePair) {
      if (pair_size_ != 2) return fail(merge_path() + ": expected [\"<left>\", \"<right>\"]");
      out_.tables.merges.push_back(std::move(pair_));
      mode_ = Mode::kMerges;
      return true;
    }
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kDom;
      return true;
    }
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error_ = std::string("invalid JSON: ") + e.what();
    return false;
  }

 private:
  enum class Mode { kDom, kVocab, kMerges, kMergePair };

  template <typename T>
  bool value(T&& v) {
    if (mode_ == Mode::kVocab) {
      if constexpr (std::is_same_v<std::decay_t<T>, number_integer_t> ||
                    std::is_same_v<std::decay_t<T>, number_unsigned_t>) {
        if (static_cast<int64_t>(v) < 0 || static_cast<uint64_t>(v) > static_cast<uint64_t>(kMaxTokenId)) {
          return fail("model.vocab[\"" + key_ + "\"]: token id " + std::to_string(v) + " is out of range");
        }
        out_.tables.vocab.emplace_back(std::move(key_), static_cast<int64_t>(v));
        return true;
      } else {
        return fail("model.vocab[\"" + key_ + "\"]: expected an integer id");
      }
    }
    if (mode_ != Mode::kDom) return fail(table_path() + ": expected a string");
    place(nlohmann::json(std::forward<T>(v)));
    return true;
  }

  // Puts `v` where the parser is (root, object member or array element); returns its slot.
  nlohmann::json* place(nlohmann::json v) {
    if (stack_.empty()) {
      out_.document = std::move(v);
      return &out_.document;
    }
    nlohmann::json* parent = stack_.back();
    if (parent->is_object()) {
      nlohmann::json& slot = (*parent)[key_];
      slot = std::move(v);
      return &slot;
    }
    parent->push_back(std::move(v));
    return &parent->back();
  }

  bool open(nlohmann::json container) {
    const bool model_level = stack_.size() == 1 && key_ == "model";
    nlohmann::json* slot = place(std::move(container));
    stack_.push_back(slot);
    model_ = model_level ? slot : (stack_.size() == 1 ? nullptr : model_);
    return true;
  }

  bool at_model_member(std::string_view name) const {
    return model_ != nullptr && stack_.size() == 2 && stack_.back() == model_ && key_ == name;
  }

  std::string merge_path() const { return "model.merges[" + std::to_string(out_.tables.merges.size()) + "]"; }
  std::string table_path() const { return mode_ == Mode::kVocab ? "model.vocab[\"" + key_ + "\"]" : merge_path(); }

  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  TokenizerJson& out_;
  std::vector<nlohmann::json*> stack_;
  nlohmann::json* model_ = nullptr;  // the root's "model" object once opened
  std::string key_;
  Mode mode_ = Mode::kDom;
  BpeTables::Merge pair_;
  int pair_size_ = 0;
  std::string error_;
};

}  // namespace

TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& source) {
  TokenizerJson out;
  TokenizerJsonHandler handler(out);
  if (!nlohmann::json::sax_parse(text, &handler) || !handler.error().empty()) {
    throw LoadError(source, handler.error().empty() ? "invalid JSON" : handler.error());
  }
  return out;
}

}  // namespace hotswap::tok
