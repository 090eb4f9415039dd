#include "adapters/mixed_adapter_codec.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/adapter_json.h"
#include "adapters/sha256.h"
#include "core/check.h"

namespace hotswap {
namespace {

using Json = adapter_json::Json;

constexpr std::string_view kLayerPrefix = "model.layers.";
constexpr std::string_view kLayerSuffix = ".self_attn.adapter";
constexpr std::string_view kWeightSuffix = ".weight";
constexpr std::string_view kDictKey = "adapter_weight_dict";

// "model.layers.{i}.self_attn.adapter[.weight]" -> i. Only canonical decimal indexes (no
// sign, no leading zeros), so two spellings of one layer cannot both pass as different keys.
std::optional<int> parse_layer_key(std::string_view key) {
  if (!key.starts_with(kLayerPrefix)) return std::nullopt;
  key.remove_prefix(kLayerPrefix.size());
  if (key.ends_with(kWeightSuffix)) key.remove_suffix(kWeightSuffix.size());
  if (!key.ends_with(kLayerSuffix)) return std::nullopt;
  key.remove_suffix(kLayerSuffix.size());
  // Digits only: from_chars accepts a sign, and "-2" must not index layer -2.
  if (key.empty() || key.size() > 9 || (key.size() > 1 && key[0] == '0')) return std::nullopt;
  for (char c : key)
    if (c < '0' || c > '9') return std::nullopt;
  int layer = 0;
  const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), layer);
  if (ec != std::errc() || end != key.data() + key.size()) return std::nullopt;
  return layer;
}

using adapter_json::quote;

std::string describe_value(const Json& v) { return adapter_json::describe_value(v, "an array"); }

const char* type_word(const Json& v) {
  switch (v.type()) {
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    default: return "number";
  }
}

// The shared tree builder (duplicate keys and depth refused), which also knows where in the
// document a lexer error happened, so that `NaN`, `Infinity` (Python's json.dump writes them)
// and overflowing numbers inside a gate list are reported with the key and layer like any
// other bad gate value.
class DomBuilder : public adapter_json::TreeBuilder {
 public:
  explicit DomBuilder(std::string_view input) : TreeBuilder(kMaxAdapterJsonDepth), input_(input) {}

  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    if (!error.empty()) return false;
    // Inside a gate list: frames are [top] (, [adapter_weight_dict]), [list].
    if (frames_.size() >= 2 && frames_.back().is_array) {
      const Frame& list = frames_.back();
      const Frame& owner = frames_[frames_.size() - 2];
      const std::optional<int> layer = owner.is_array ? std::nullopt : parse_layer_key(owner.key);
      const std::string token = literal_at(position);
      const bool not_finite = token == "NaN" || token == "Infinity" || token == "-Infinity" || ex.id == 406;
      if (layer && not_finite) {
        error = "key " + quote(owner.key) + " (layer " + std::to_string(*layer) + "): element " +
                std::to_string(list.value->size()) + " must be a finite number in [0, 1], got " + token;
        return false;
      }
    }
    error = "adapter document is not valid JSON (byte " + std::to_string(position) + "): " + ex.what();
    return false;
  }

 private:
  std::string describe_key(const std::string& k) const override {
    const std::optional<int> layer = parse_layer_key(k);
    return "key " + quote(k) + (layer ? " (layer " + std::to_string(*layer) + ")" : std::string());
  }

  // The bare literal or number around the byte where the lexer stopped (it reports the
  // position just past the character it could not accept).
  std::string literal_at(size_t position) const {
    auto part_of_literal = [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.';
    };
    size_t end = std::min(position, input_.size());
    size_t begin = end;
    while (begin > 0 && part_of_literal(input_[begin - 1])) --begin;
    while (end < input_.size() && part_of_literal(input_[end])) ++end;
    return std::string(input_.substr(begin, std::min<size_t>(end - begin, 40)));
  }

  std::string_view input_;
};

// A window parameter: a JSON integer in [min_value, kMaxWindowTokens].
Status read_window_param(const Json& doc, const char* key, int min_value, int* out) {
  const auto it = doc.find(key);
  if (it == doc.end()) return Status::ok();
  const Json& v = *it;
  const std::string expected = "expected a JSON integer in [" + std::to_string(min_value) + ", " +
                               std::to_string(kMaxWindowTokens) + "]";
  if (!v.is_number_integer()) {
    return Status::invalid_argument(std::string("key '") + key + "': " + expected + ", got " + describe_value(v));
  }
  // Non-negative JSON integers arrive as unsigned; compare without narrowing first.
  const bool in_range = v.is_number_unsigned()
                            ? v.get<uint64_t>() >= static_cast<uint64_t>(min_value) &&
                                  v.get<uint64_t>() <= static_cast<uint64_t>(kMaxWindowTokens)
                            : v.get<int64_t>() >= min_value && v.get<int64_t>() <= kMaxWindowTokens;
  if (!in_range) return Status::invalid_argument(std::string("key '") + key + "': " + expected + ", got " + v.dump());
  *out = static_cast<int>(v.get<int64_t>());
  return Status::ok();
}

std::string layer_key_name(int layer) {
  return std::string(kLayerPrefix) + std::to_string(layer) + std::string(kLayerSuffix) + std::string(kWeightSuffix);
}

// One layer's gate list -> gates[layer][0..H).
Status read_layer_gates(const std::string& key, int layer, const Json& list, const ModelShape& shape,
                        MixedAdapter* m) {
  const std::string where = "key " + quote(key) + " (layer " + std::to_string(layer) + "): ";
  const int h = shape.num_heads, hkv = shape.num_kv_heads;
  const std::string sizes = h == hkv ? "a list of " + std::to_string(h) + " gates"
                                     : "a list of " + std::to_string(hkv) + " (num_key_value_heads) or " +
                                           std::to_string(h) + " (num_attention_heads) gates";
  if (!list.is_array()) return Status::invalid_argument(where + "expected " + sizes + ", got " + describe_value(list));
  const int n = static_cast<int>(list.size());
  if (n != h && n != hkv) {
    return Status::invalid_argument(where + "expected " + sizes + ", got a list of " + std::to_string(n));
  }
  for (int i = 0; i < n; ++i) {
    const Json& e = list[i];
    if (!e.is_number()) {
      return Status::invalid_argument(where + "element " + std::to_string(i) + " must be a number in [0, 1], got " +
                                      describe_value(e));
    }
    const double x = e.get<double>();
    if (!std::isfinite(x)) {
      return Status::invalid_argument(where + "element " + std::to_string(i) +
                                      " must be a finite number in [0, 1], got " + e.dump());
    }
    if (!(x >= 0.0 && x <= 1.0)) {
      return Status::invalid_argument(where + "element " + std::to_string(i) + " must lie in [0, 1], got " +
                                      e.dump());
    }
  }
  // Hkv gates are AReaL's layout: gate j serves query heads [j*g, (j+1)*g).
  const int group = h / hkv;
  float* dst = m->gates.data() + static_cast<size_t>(layer) * h;
  for (int q = 0; q < h; ++q) dst[q] = static_cast<float>(list[n == h ? q : q / group].get<double>());
  if (n == h && h != hkv) ++m->num_per_query_head_layers;
  return Status::ok();
}

}  // namespace

Result<std::shared_ptr<const Adapter>> parse_mixed_adapter(std::string_view json, const ModelShape& shape,
                                                           std::string name) {
  HS_CHECK(shape.num_layers > 0 && shape.num_kv_heads > 0 && shape.num_heads % shape.num_kv_heads == 0)
      << "invalid model shape L=" << shape.num_layers << " H=" << shape.num_heads << " Hkv=" << shape.num_kv_heads;

  DomBuilder dom(json);
  bool parsed = false;
  try {
    parsed = Json::sax_parse(json.begin(), json.end(), &dom);
  } catch (const std::exception& e) {  // nlohmann reports most errors via parse_error; be safe.
    return Status::invalid_argument(std::string("adapter document is not valid JSON: ") + e.what());
  }
  if (!parsed) {
    return Status::invalid_argument(dom.error.empty() ? std::string("adapter document is not valid JSON") : dom.error);
  }
  const Json& doc = dom.root;
  if (!doc.is_object()) {
    return Status::invalid_argument(std::string("adapter document must be a JSON object, got ") + type_word(doc));
  }

  if (const auto it = doc.find("adapter_type"); it != doc.end()) {
    if (!it->is_string()) {
      return Status::invalid_argument("key 'adapter_type': expected the string 'mixed', got " + describe_value(*it));
    }
    const std::string& type = it->get_ref<const std::string&>();
    if (type == "nsa") {
      return Status::invalid_argument("key 'adapter_type': expected 'mixed', got 'nsa' (an nsa adapter, not handled by the mixed-adapter parser)");
    }
    if (type != "mixed") {
      return Status::invalid_argument("key 'adapter_type': unknown adapter type " + quote(type) +
                                      "; expected 'mixed' or 'nsa'");
    }
  }

  auto m = std::make_shared<MixedAdapter>();
  m->num_layers = shape.num_layers;
  m->num_heads = shape.num_heads;
  m->num_kv_heads = shape.num_kv_heads;
  m->gates.assign(static_cast<size_t>(shape.num_layers) * shape.num_heads, 0.0f);
  if (const auto it = doc.find("model_name"); it != doc.end()) {
    if (!it->is_string()) return Status::invalid_argument("key 'model_name': expected a string, got " + describe_value(*it));
    m->model_name = it->get<std::string>();
  }
  if (Status s = read_window_param(doc, "sink_window_size", 0, &m->window.sink_window_size); !s) return s;
  if (Status s = read_window_param(doc, "recent_window_size", 1, &m->window.recent_window_size); !s) return s;
  if (Status s = read_window_param(doc, "block_size", 1, &m->window.block_size); !s) return s;

  // Where the layer gates live: under adapter_weight_dict (where every key must be a layer
  // key), or at top level (where other keys are configuration or ignored).
  const Json* dict = &doc;
  const bool nested = doc.contains(kDictKey);
  if (nested) {
    dict = &doc[std::string(kDictKey)];
    if (!dict->is_object()) {
      return Status::invalid_argument("key 'adapter_weight_dict': expected an object mapping '" + layer_key_name(0) +
                                      "' to gate lists, got " + describe_value(*dict));
    }
    for (const auto& [key, value] : doc.items()) {
      if (key.starts_with(kLayerPrefix)) {
        return Status::invalid_argument("key " + quote(key) +
                                        ": layer gates given at top level and under 'adapter_weight_dict'; "
                                        "expected them in one place");
      }
    }
  }

  const std::string expected_keys = "expected '" + std::string(kLayerPrefix) + "{i}" + std::string(kLayerSuffix) +
                                    std::string(kWeightSuffix) + "' (the '.weight' suffix is optional) for a layer i in 0.." +
                                    std::to_string(shape.num_layers - 1);
  std::vector<std::string> seen(static_cast<size_t>(shape.num_layers));
  int num_seen = 0;
  for (const auto& [key, value] : dict->items()) {
    const std::optional<int> layer = parse_layer_key(key);
    if (!layer) {
      if (!nested && !key.starts_with(kLayerPrefix)) continue;  // top-level configuration or extra
      return Status::invalid_argument("key " + quote(key) + (nested ? " in 'adapter_weight_dict'" : "") +
                                      ": not a layer gate key; " + expected_keys);
    }
    if (*layer >= shape.num_layers) {
      return Status::invalid_argument("key " + quote(key) + " (layer " + std::to_string(*layer) +
                                      "): layer out of range; expected a layer in 0.." +
                                      std::to_string(shape.num_layers - 1) + " (num_hidden_layers " +
                                      std::to_string(shape.num_layers) + "), got " + std::to_string(*layer));
    }
    std::string& first = seen[static_cast<size_t>(*layer)];
    if (!first.empty()) {
      return Status::invalid_argument("key " + quote(key) + " (layer " + std::to_string(*layer) +
                                      "): duplicate of key " + quote(first) + "; expected each layer exactly once");
    }
    first = key;
    ++num_seen;
    if (Status s = read_layer_gates(key, *layer, value, shape, m.get()); !s) return s;
  }
  if (num_seen != shape.num_layers) {
    for (int l = 0; l < shape.num_layers; ++l) {
      if (!seen[static_cast<size_t>(l)].empty()) continue;
      return Status::invalid_argument("key '" + layer_key_name(l) + "' (layer " + std::to_string(l) +
                                      "): missing; expected gates for every layer 0.." +
                                      std::to_string(shape.num_layers - 1) + " (num_hidden_layers " +
                                      std::to_string(shape.num_layers) + "), got " + std::to_string(num_seen) +
                                      (num_seen == 1 ? " layer" : " layers"));
    }
  }

  return Adapter::make_mixed(std::move(name), sha256_hex(json), json.size(), std::move(m), shape.model_name);
}

}  // namespace hotswap
