#include "adapters/adapter_json.h"

namespace hotswap::adapter_json {

std::string quote(std::string_view s) {
  constexpr size_t kMax = 120;
  std::string out = "'";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

std::string describe_value(const Json& v, const char* array_word) {
  switch (v.type()) {
    case Json::value_t::string: return "string " + Json(v.get_ref<const std::string&>().substr(0, 60)).dump();
    case Json::value_t::boolean: return std::string("boolean ") + (v.get<bool>() ? "true" : "false");
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return array_word;
    default: return v.dump();
  }
}

bool TreeBuilder::key(string_t& k) {
  Frame& f = frames_.back();
  if (!f.keys.insert(k).second) {
    error = describe_key(k) + ": appears twice in one object; expected each key exactly once";
    return false;
  }
  f.key = k;
  return true;
}

Json* TreeBuilder::place(Json v) {
  if (frames_.empty()) {
    root = std::move(v);
    return &root;
  }
  Frame& f = frames_.back();
  if (f.is_array) {
    f.value->push_back(std::move(v));
    return &f.value->back();
  }
  Json& slot = (*f.value)[f.key];
  slot = std::move(v);
  return &slot;
}

bool TreeBuilder::add(Json v) {
  place(std::move(v));
  return true;
}

bool TreeBuilder::open(Json container) {
  if (frames_.size() >= static_cast<size_t>(max_depth_)) {
    error = "adapter document nests deeper than " + std::to_string(max_depth_) + " levels";
    return false;
  }
  const bool is_array = container.is_array();
  Json* where = place(std::move(container));
  frames_.push_back(Frame{where, is_array, {}, {}});
  return true;
}

bool TreeBuilder::close() {
  frames_.pop_back();
  return true;
}

}  // namespace hotswap::adapter_json
