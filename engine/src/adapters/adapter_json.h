// What the mixed and NSA adapter codecs share to read untrusted JSON documents: a SAX tree
// builder that is stricter than nlohmann's own DOM parser, and helpers that keep messages
// about untrusted keys and values bounded.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hotswap::adapter_json {

using Json = nlohmann::ordered_json;

// 'key' in quotes, cut to 120 characters (keys come from untrusted input).
std::string quote(std::string_view s);

// A value for a message: `string "abc"`, `boolean true`, `null`, `an object`, the number;
// arrays are called `array_word` ("an array", or "a list" in the NSA spec's terms).
std::string describe_value(const Json& v, const char* array_word = "an array");

// Builds an ordered DOM like nlohmann's SAX DOM parser, but (a) rejects a key repeated
// within one object instead of keeping the last, and (b) bounds nesting depth. Subclasses
// intercept events (e.g. to stream a number list elsewhere) and name keys in messages.
class TreeBuilder : public nlohmann::json_sax<Json> {
 public:
  Json root;
  std::string error;  // set when a callback stops the parse

  explicit TreeBuilder(int max_depth) : max_depth_(max_depth) {}

  bool null() override { return add(Json(nullptr)); }
  bool boolean(bool v) override { return add(Json(v)); }
  bool number_integer(number_integer_t v) override { return add(Json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return add(Json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return add(Json(v)); }
  bool string(string_t& v) override { return add(Json(v)); }
  bool binary(binary_t&) override { return add(Json()); }
  bool start_object(std::size_t) override { return open(Json::object()); }
  bool start_array(std::size_t) override { return open(Json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override;

 protected:
  struct Frame {
    Json* value = nullptr;
    bool is_array = false;
    std::string key;             // the key awaiting its value (objects)
    std::set<std::string> keys;  // keys seen so far (objects)
  };

  // How a key is named in messages ("key 'K' (layer 3)").
  virtual std::string describe_key(const std::string& k) const { return "key " + quote(k); }

  bool add(Json v);
  bool open(Json container);
  virtual bool close();

  std::vector<Frame> frames_;

 private:
  Json* place(Json v);
  int max_depth_;
};

}  // namespace hotswap::adapter_json
