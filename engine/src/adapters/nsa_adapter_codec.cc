#include "adapters/nsa_adapter_codec.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/adapter_json.h"
#include "adapters/adapter_tensors.h"
#include "core/check.h"
#include "core/dtype.h"

namespace hotswap {
namespace {

using Json = adapter_json::Json;

constexpr std::string_view kHfPrefix = "model.layers.";
constexpr std::string_view kHfInfix = ".self_attn.nsa.";
constexpr std::string_view kSparsePrefix = "sparse_adapters.";
constexpr std::string_view kDictKey = "adapter_weight_dict";
constexpr std::string_view kConfigMetadataKey = "adapter_config";

using adapter_json::quote;

std::string describe_value(const Json& v) { return adapter_json::describe_value(v, "a list"); }

std::string shape_text(const std::vector<int64_t>& shape) { return shape_string(shape); }

// What a tensor name denotes.
enum class Slot : uint8_t { kPosEmb, kMlpW1, kMlpB1, kMlpW2, kMlpB2, kMemKv, kGateW, kGateB };

struct TensorName {
  int layer = 0;
  int side = -1;  // 0 k_compress, 1 v_compress, -1 neither
  int head = -1;  // KV head of a compression MLP tensor
  Slot slot = Slot::kPosEmb;
};

// "<prefix with layer i>" -> (i, rest). Either spelling of the prefix.
std::optional<std::pair<int, std::string_view>> split_prefix(std::string_view key) {
  if (key.starts_with(kHfPrefix)) {
    key.remove_prefix(kHfPrefix.size());
    const size_t dot = key.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const std::optional<int> layer = parse_canonical_index(key.substr(0, dot));
    key.remove_prefix(dot);
    if (!layer || !key.starts_with(kHfInfix)) return std::nullopt;
    key.remove_prefix(kHfInfix.size());
    return std::make_pair(*layer, key);
  }
  if (key.starts_with(kSparsePrefix)) {
    key.remove_prefix(kSparsePrefix.size());
    const size_t dot = key.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const std::optional<int> layer = parse_canonical_index(key.substr(0, dot));
    if (!layer) return std::nullopt;
    key.remove_prefix(dot + 1);
    return std::make_pair(*layer, key);
  }
  return std::nullopt;
}

std::optional<TensorName> parse_tensor_name(std::string_view key) {
  const auto split = split_prefix(key);
  if (!split) return std::nullopt;
  TensorName n;
  n.layer = split->first;
  std::string_view rest = split->second;
  if (rest == "compress_mem_kv") {
    n.slot = Slot::kMemKv;
    return n;
  }
  if (rest == "strategy_combiner.0.weight" || rest == "strategy_combiner.0.bias") {
    n.slot = rest.ends_with("weight") ? Slot::kGateW : Slot::kGateB;
    return n;
  }
  if (rest.starts_with("k_compress.")) {
    n.side = 0;
  } else if (rest.starts_with("v_compress.")) {
    n.side = 1;
  } else {
    return std::nullopt;
  }
  rest.remove_prefix(std::string_view("k_compress.").size());
  if (rest == "pos_emb") {
    n.slot = Slot::kPosEmb;
    return n;
  }
  constexpr std::string_view kMlps = "compress_mlps.";
  if (!rest.starts_with(kMlps)) return std::nullopt;
  rest.remove_prefix(kMlps.size());
  const size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::optional<int> head = parse_canonical_index(rest.substr(0, dot));
  if (!head) return std::nullopt;
  n.head = *head;
  rest.remove_prefix(dot + 1);
  if (rest == "0.weight") n.slot = Slot::kMlpW1;
  else if (rest == "0.bias") n.slot = Slot::kMlpB1;
  else if (rest == "2.weight") n.slot = Slot::kMlpW2;
  else if (rest == "2.bias") n.slot = Slot::kMlpB2;
  else return std::nullopt;
  return n;
}

std::string suffix_of(const TensorName& n) {
  const std::string side = n.side == 0 ? "k_compress." : "v_compress.";
  switch (n.slot) {
    case Slot::kPosEmb: return side + "pos_emb";
    case Slot::kMlpW1: return side + "compress_mlps." + std::to_string(n.head) + ".0.weight";
    case Slot::kMlpB1: return side + "compress_mlps." + std::to_string(n.head) + ".0.bias";
    case Slot::kMlpW2: return side + "compress_mlps." + std::to_string(n.head) + ".2.weight";
    case Slot::kMlpB2: return side + "compress_mlps." + std::to_string(n.head) + ".2.bias";
    case Slot::kMemKv: return "compress_mem_kv";
    case Slot::kGateW: return "strategy_combiner.0.weight";
    case Slot::kGateB: return "strategy_combiner.0.bias";
  }
  return {};
}

std::string canonical_name(const TensorName& n) {
  return std::string(kHfPrefix) + std::to_string(n.layer) + std::string(kHfInfix) + suffix_of(n);
}

// "key 'K' (layer i)" when the key names a layer, for messages.
std::string where(std::string_view key) {
  const auto split = split_prefix(key);
  return "key " + quote(key) + (split ? " (layer " + std::to_string(split->first) + ")" : std::string());
}

const char* kNameList =
    "k_compress.pos_emb, v_compress.pos_emb, {k,v}_compress.compress_mlps.{h}.{0,2}.{weight,bias}, "
    "compress_mem_kv, strategy_combiner.0.weight, strategy_combiner.0.bias";

// The shared tree builder (duplicate keys and depth refused), which also streams the flat
// `data` list of each tensor under adapter_weight_dict straight into float32 (rounded to the
// nearest float32 from the number's text), so a large adapter costs 4 bytes per number and
// NaN / Infinity / overflowing numbers are reported with the tensor's key and element index.
class DocBuilder : public adapter_json::TreeBuilder {
 public:
  DocBuilder() : TreeBuilder(kMaxNsaJsonDepth) {}
  std::map<std::string, std::vector<float>> data;  // tensor key -> its `data` list

  bool null() override { return in_data() ? bad_element("null") : add(Json(nullptr)); }
  bool boolean(bool v) override { return in_data() ? bad_element(v ? "boolean true" : "boolean false") : add(Json(v)); }
  bool number_integer(number_integer_t v) override {
    return in_data() ? push(static_cast<float>(v), std::to_string(v)) : add(Json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    return in_data() ? push(static_cast<float>(v), std::to_string(v)) : add(Json(v));
  }
  bool number_float(number_float_t v, const string_t& text) override {
    if (!in_data()) return add(Json(v));
    // From the text, so the value is rounded once, to the nearest float32.
    float f = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), f);
    if (ec != std::errc() || end != text.data() + text.size()) f = static_cast<float>(v);
    return push(f, text);
  }
  bool string(string_t& v) override {
    return in_data() ? bad_element("string " + Json(v.substr(0, 40)).dump()) : add(Json(v));
  }
  bool binary(binary_t&) override { return in_data() ? bad_element("binary") : add(Json()); }

  bool start_object(std::size_t) override { return in_data() ? bad_element("an object") : open(Json::object()); }
  bool start_array(std::size_t) override {
    if (in_data()) return bad_element("a list (data must be flat)");
    if (opens_data_list()) {
      data_key_ = frames_[1].key;
      data_ = &data[data_key_];
      if (!open(Json::array())) return false;
      data_depth_ = frames_.size();
      return true;
    }
    return open(Json::array());
  }

  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& ex) override {
    if (!error.empty()) return false;
    if (in_data()) {
      // The lexer's token text may still hold the previous element ("0.5,N"): keep what follows it.
      std::string token = last_token.substr(last_token.find_last_of(",[ \t\r\n") + 1).substr(0, 40);
      if (token.starts_with("N")) token = "NaN";
      if (token.starts_with("I") || token.starts_with("-I")) token = token[0] == '-' ? "-Infinity" : "Infinity";
      error = where(data_key_) + ": data element " + std::to_string(data_->size()) +
              " must be a finite number, got " + token;
      return false;
    }
    error = "adapter document is not valid JSON (byte " + std::to_string(position) + "): " + ex.what();
    return false;
  }

 private:
  std::string describe_key(const std::string& k) const override { return where(k); }

  bool in_data() const { return data_ != nullptr; }
  // [root object]."adapter_weight_dict" -> [dict object].<tensor key> -> [tensor object]."data" -> list
  bool opens_data_list() const {
    return frames_.size() == 3 && !frames_[0].is_array && frames_[0].key == kDictKey && !frames_[1].is_array &&
           !frames_[2].is_array && frames_[2].key == "data";
  }
  bool push(float f, std::string_view text) {
    if (!std::isfinite(f)) {
      error = where(data_key_) + ": data element " + std::to_string(data_->size()) + " is " +
              std::string(text.substr(0, 40)) + ", which is not a finite float32; expected finite numbers";
      return false;
    }
    data_->push_back(f);
    return true;
  }
  bool bad_element(const std::string& what) {
    error = where(data_key_) + ": data element " + std::to_string(data_->size()) + " must be a number, got " + what;
    return false;
  }
  bool close() override {
    if (frames_.size() == data_depth_) data_ = nullptr;
    return TreeBuilder::close();
  }

  std::vector<float>* data_ = nullptr;  // the data list being streamed
  size_t data_depth_ = 0;               // frames_.size() inside it
  std::string data_key_;
};

Status parse_json(std::string_view text, DocBuilder* dom, const std::string& what) {
  bool parsed = false;
  try {
    parsed = Json::sax_parse(text.begin(), text.end(), dom);
  } catch (const std::exception& e) {  // nlohmann reports most errors via parse_error; be safe.
    return Status::invalid_argument(what + " is not valid JSON: " + e.what());
  }
  if (!parsed) return Status::invalid_argument(dom->error.empty() ? what + " is not valid JSON" : dom->error);
  if (!dom->root.is_object()) {
    return Status::invalid_argument(what + " must be a JSON object, got " + describe_value(dom->root));
  }
  return Status::ok();
}

// Reads the configuration keys of specs/adapters.md from `doc`. `key_prefix` says where the
// keys live in messages ("key" or "adapter_config key").
class ConfigReader {
 public:
  ConfigReader(const Json& doc, std::string key_prefix) : doc_(doc), prefix_(std::move(key_prefix)) {}

  // A JSON integer in [min_value, max_value], or `fallback` when absent.
  Status read_int(const char* key, int min_value, int max_value, int fallback, int* out) const {
    *out = fallback;
    const auto it = doc_.find(key);
    if (it == doc_.end()) return Status::ok();
    const Json& v = *it;
    const std::string expected = "expected a JSON integer in [" + std::to_string(min_value) + ", " +
                                 std::to_string(max_value) + "]";
    if (!v.is_number_integer()) return bad(key, expected + ", got " + describe_value(v));
    const bool in_range = v.is_number_unsigned()
                              ? v.get<uint64_t>() >= static_cast<uint64_t>(std::max(min_value, 0)) &&
                                    v.get<uint64_t>() <= static_cast<uint64_t>(max_value)
                              : v.get<int64_t>() >= min_value && v.get<int64_t>() <= max_value;
    if (!in_range) return bad(key, expected + ", got " + v.dump());
    *out = static_cast<int>(v.get<int64_t>());
    return Status::ok();
  }

  Status read_compression(const char* key, NsaCompression fallback, NsaCompression* out) const {
    *out = fallback;
    const auto it = doc_.find(key);
    if (it == doc_.end()) return Status::ok();
    if (it->is_string() && *it == "max_pool") *out = NsaCompression::kMaxPool;
    else if (it->is_string() && *it == "mlp") *out = NsaCompression::kMlp;
    else return bad(key, "expected \"max_pool\" or \"mlp\", got " + describe_value(*it));
    return Status::ok();
  }

  Status read_rope(NsaCompressRope* out) const {
    *out = NsaCompressRope::kPre;
    const auto it = doc_.find("compress_rope");
    if (it == doc_.end()) return Status::ok();
    if (it->is_string() && *it == "pre") *out = NsaCompressRope::kPre;
    else if (it->is_string() && *it == "post") *out = NsaCompressRope::kPost;
    else return bad("compress_rope", "expected \"pre\" or \"post\", got " + describe_value(*it));
    return Status::ok();
  }

  Status bad(const char* key, const std::string& what) const {
    return Status::invalid_argument(prefix_ + " '" + key + "': " + what);
  }

 private:
  const Json& doc_;
  std::string prefix_;
};

Status read_config(const Json& doc, const std::string& key_prefix, const ModelShape& shape, NsaConfig* c,
                   std::string* model_name) {
  const ConfigReader r(doc, key_prefix);
  if (Status s = r.read_int("compress_block_size", 1, kMaxNsaBlockTokens, 16, &c->compress_block_size); !s) return s;
  if (Status s = r.read_int("compress_stride", 1, kMaxNsaBlockTokens, 8, &c->compress_stride); !s) return s;
  if (Status s = r.read_int("selection_block_size", 1, kMaxNsaBlockTokens, 16, &c->selection_block_size); !s) return s;
  if (Status s = r.read_int("num_selected_blocks", 1, kMaxNsaSelectedBlocks, 4, &c->num_selected_blocks); !s) return s;
  if (Status s = r.read_int("sliding_window_size", 1, kMaxNsaWindowTokens, 64, &c->sliding_window_size); !s) return s;
  if (Status s = r.read_int("num_mem_tokens", 0, kMaxNsaMemTokens, 1, &c->num_mem_tokens); !s) return s;
  if (Status s = r.read_compression("k_compress", NsaCompression::kMaxPool, &c->k_compress); !s) return s;
  if (Status s = r.read_compression("v_compress", NsaCompression::kMlp, &c->v_compress); !s) return s;
  if (Status s = r.read_rope(&c->compress_rope); !s) return s;
  if (c->compress_stride > c->compress_block_size) {
    return r.bad("compress_stride", "must be <= compress_block_size (" + std::to_string(c->compress_block_size) +
                                        "), got " + std::to_string(c->compress_stride));
  }
  if (c->selection_block_size % c->compress_stride != 0) {
    return r.bad("selection_block_size", "must be a multiple of compress_stride (" +
                                             std::to_string(c->compress_stride) + "), got " +
                                             std::to_string(c->selection_block_size));
  }
  c->mlp_hidden_size = 0;
  if (c->uses_mlp()) {  // otherwise the key is ignored, whatever it holds
    const int64_t fallback = static_cast<int64_t>(c->compress_block_size) * shape.head_dim;
    if (fallback > kMaxNsaMlpHidden && !doc.contains("mlp_hidden_size")) {
      return r.bad("mlp_hidden_size", "absent, and its default compress_block_size * head_dim = " +
                                          std::to_string(fallback) + " exceeds " + std::to_string(kMaxNsaMlpHidden));
    }
    if (Status s = r.read_int("mlp_hidden_size", 1, kMaxNsaMlpHidden, static_cast<int>(std::min<int64_t>(fallback, kMaxNsaMlpHidden)),
                              &c->mlp_hidden_size);
        !s) {
      return s;
    }
  }
  if (const auto it = doc.find("model_name"); it != doc.end() && it->is_string()) *model_name = it->get<std::string>();
  return Status::ok();
}

Status check_adapter_type(const Json& doc, const std::string& key_prefix, bool required) {
  const auto it = doc.find("adapter_type");
  if (it == doc.end()) {
    if (!required) return Status::ok();
    return Status::invalid_argument(key_prefix +
                                    " 'adapter_type': missing; expected \"nsa\" (a JSON adapter without it is a mixed "
                                    "adapter)");
  }
  if (it->is_string() && *it == "nsa") return Status::ok();
  if (it->is_string() && *it == "mixed") {
    return Status::invalid_argument(key_prefix + " 'adapter_type': expected \"nsa\", got \"mixed\" (a mixed adapter, "
                                                 "not handled by the nsa-adapter parser)");
  }
  return Status::invalid_argument(key_prefix + " 'adapter_type': unknown adapter type " + describe_value(*it) +
                                  "; expected \"nsa\"");
}

// One tensor as the document gives it, before validation.
struct RawTensor {
  std::string_view key;
  std::vector<int64_t> shape;
  const std::vector<float>* values = nullptr;  // JSON: already float32
  DType dtype = DType::kF32;                   // safetensors: raw little-endian elements
  const char* bytes = nullptr;
  size_t count = 0;  // elements present

  float at(size_t i) const { return values ? (*values)[i] : float_element(dtype, bytes, i); }
};

// Validates tensors one by one against the configuration and the model, then assembles the
// adapter once every required tensor has arrived.
class Assembler {
 public:
  Assembler(const ModelShape& shape, const NsaConfig& config) : m_(shape), c_(config) {}

  Status add(const RawTensor& t) {
    const std::optional<TensorName> name = parse_tensor_name(t.key);
    if (!name) {
      return Status::invalid_argument(where(t.key) +
                                      ": not a tensor of an nsa adapter; expected 'model.layers.{i}.self_attn.nsa.<name>' "
                                      "or 'sparse_adapters.{i}.<name>' with <name> one of " +
                                      kNameList);
    }
    const std::string at = where(t.key);
    if (name->layer >= m_.num_layers) {
      return Status::invalid_argument(at + ": layer out of range; expected a layer in 0.." +
                                      std::to_string(m_.num_layers - 1) + " (num_hidden_layers " +
                                      std::to_string(m_.num_layers) + "), got " + std::to_string(name->layer));
    }
    if (name->head >= 0) {
      const NsaCompression method = name->side == 0 ? c_.k_compress : c_.v_compress;
      const char* side = name->side == 0 ? "k_compress" : "v_compress";
      if (method != NsaCompression::kMlp) {
        return Status::invalid_argument(at + ": a compression MLP tensor, but " + side + " is \"" +
                                        nsa_compression_name(method) + "\"; expected no MLP tensors for a " +
                                        nsa_compression_name(method) + " side");
      }
      if (name->head >= m_.num_kv_heads) {
        return Status::invalid_argument(at + ": MLP head out of range; expected a head in 0.." +
                                        std::to_string(m_.num_kv_heads - 1) + " (num_key_value_heads " +
                                        std::to_string(m_.num_kv_heads) + "), got " + std::to_string(name->head));
      }
    }
    const std::string canonical = canonical_name(*name);
    if (const auto it = tensors_.find(canonical); it != tensors_.end()) {
      return Status::invalid_argument(at + ": the same tensor as key " + quote(it->second.key) +
                                      " (the two prefixes name one tensor); expected each tensor exactly once");
    }
    const auto [expected, dims] = expected_shape(*name);
    if (t.shape != expected) {
      return Status::invalid_argument(at + ": expected shape " + shape_text(expected) + " (" + dims + "), got " +
                                      shape_text(t.shape));
    }
    size_t numel = 1;
    for (int64_t e : expected) numel *= static_cast<size_t>(e);
    if (t.count != numel) {
      return Status::invalid_argument(at + ": 'data' has " + std::to_string(t.count) + " numbers; expected " +
                                      std::to_string(numel) + " (the product of shape " + shape_text(expected) + ")");
    }
    Stored s;
    s.key = std::string(t.key);
    s.name = *name;
    s.values.resize(numel);
    for (size_t i = 0; i < numel; ++i) {
      const float f = t.at(i);
      if (!std::isfinite(f)) return non_finite_element(at, i, f);
      s.values[i] = f;
    }
    tensors_.emplace(canonical, std::move(s));
    return Status::ok();
  }

  Result<std::shared_ptr<const NsaAdapter>> finish(std::string model_name, std::string encoding) {
    auto a = std::make_shared<NsaAdapter>();
    a->config = c_;
    a->num_layers = m_.num_layers;
    a->num_heads = m_.num_heads;
    a->num_kv_heads = m_.num_kv_heads;
    a->head_dim = m_.head_dim;
    a->hidden_size = m_.hidden_size;
    a->model_name = std::move(model_name);
    a->encoding = std::move(encoding);
    a->layers.resize(static_cast<size_t>(m_.num_layers));
    for (int layer = 0; layer < m_.num_layers; ++layer) {
      NsaLayerWeights& w = a->layers[static_cast<size_t>(layer)];
      for (int side = 0; side < 2; ++side) {
        NsaCompressor& comp = side == 0 ? w.k : w.v;
        comp.method = side == 0 ? c_.k_compress : c_.v_compress;
        if (Status s = take({layer, side, -1, Slot::kPosEmb}, &comp.pos_emb); !s) return s;
        if (comp.method != NsaCompression::kMlp) continue;
        for (int h = 0; h < m_.num_kv_heads; ++h) {
          if (Status s = take({layer, side, h, Slot::kMlpW1}, &comp.w1); !s) return s;
          if (Status s = take({layer, side, h, Slot::kMlpW2}, &comp.w2); !s) return s;
          take_optional({layer, side, h, Slot::kMlpB1}, static_cast<size_t>(c_.mlp_hidden_size), &comp.b1);
          take_optional({layer, side, h, Slot::kMlpB2}, static_cast<size_t>(m_.head_dim), &comp.b2);
        }
      }
      if (Status s = take({layer, -1, -1, Slot::kMemKv}, &w.mem_kv); !s) return s;
      if (Status s = take({layer, -1, -1, Slot::kGateW}, &w.gate_w); !s) return s;
      if (Status s = take({layer, -1, -1, Slot::kGateB}, &w.gate_b); !s) return s;
    }
    return std::shared_ptr<const NsaAdapter>(std::move(a));
  }

 private:
  struct Stored {
    std::string key;
    TensorName name;
    std::vector<float> values;
  };

  std::pair<std::vector<int64_t>, std::string> expected_shape(const TensorName& n) const {
    const int64_t hkv = m_.num_kv_heads, d = m_.head_dim, l = c_.compress_block_size, hidden = c_.mlp_hidden_size;
    switch (n.slot) {
      case Slot::kPosEmb: return {{hkv, l, d}, "[num_key_value_heads, compress_block_size, head_dim]"};
      case Slot::kMlpW1: return {{hidden, l * d}, "[mlp_hidden_size, compress_block_size * head_dim]"};
      case Slot::kMlpB1: return {{hidden}, "[mlp_hidden_size]"};
      case Slot::kMlpW2: return {{d, hidden}, "[head_dim, mlp_hidden_size]"};
      case Slot::kMlpB2: return {{d}, "[head_dim]"};
      case Slot::kMemKv: return {{2, hkv, c_.num_mem_tokens, d}, "[2, num_key_value_heads, num_mem_tokens, head_dim]"};
      case Slot::kGateW: return {{3 * static_cast<int64_t>(m_.num_heads), m_.hidden_size}, "[3 * num_attention_heads, hidden_size]"};
      case Slot::kGateB: return {{3 * static_cast<int64_t>(m_.num_heads)}, "[3 * num_attention_heads]"};
    }
    return {};
  }

  // Appends the tensor's values to *out (MLP tensors are appended head by head).
  Status take(const TensorName& n, std::vector<float>* out) {
    const auto it = tensors_.find(canonical_name(n));
    if (it == tensors_.end()) {
      const auto [expected, dims] = expected_shape(n);
      return Status::invalid_argument("key '" + canonical_name(n) + "' (layer " + std::to_string(n.layer) +
                                      "): missing; expected a tensor of shape " + shape_text(expected) + " (" + dims +
                                      ") under 'model.layers." + std::to_string(n.layer) +
                                      ".self_attn.nsa.' or 'sparse_adapters." + std::to_string(n.layer) + ".'");
    }
    std::vector<float>& v = it->second.values;
    if (out->empty()) {
      *out = std::move(v);
    } else {
      out->insert(out->end(), v.begin(), v.end());
    }
    tensors_.erase(it);
    return Status::ok();
  }
  void take_optional(const TensorName& n, size_t size, std::vector<float>* out) {
    if (tensors_.contains(canonical_name(n))) {
      (void)take(n, out);
    } else {
      out->insert(out->end(), size, 0.0f);  // a missing bias is 0
    }
  }

  ModelShape m_;
  NsaConfig c_;
  std::map<std::string, Stored> tensors_;  // canonical name -> tensor
};

void check_model_shape(const ModelShape& shape) {
  HS_CHECK(shape.num_layers > 0 && shape.num_kv_heads > 0 && shape.num_heads % shape.num_kv_heads == 0 &&
           shape.head_dim > 0 && shape.hidden_size > 0)
      << "invalid model shape L=" << shape.num_layers << " H=" << shape.num_heads << " Hkv=" << shape.num_kv_heads
      << " d=" << shape.head_dim << " D=" << shape.hidden_size;
}

}  // namespace

bool looks_like_safetensors(std::string_view bytes) {
  if (bytes.size() < 10) return false;
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);  // little-endian on every supported host
  return header_len >= 2 && header_len <= bytes.size() - 8 && bytes[8] == '{';
}

Result<std::shared_ptr<const NsaAdapter>> parse_nsa_adapter(std::string_view bytes, const ModelShape& shape) {
  return looks_like_safetensors(bytes) ? parse_nsa_adapter_safetensors(bytes, shape)
                                       : parse_nsa_adapter_json(bytes, shape);
}

Result<std::shared_ptr<const NsaAdapter>> parse_nsa_adapter_json(std::string_view json, const ModelShape& shape) {
  check_model_shape(shape);
  DocBuilder dom;
  if (Status s = parse_json(json, &dom, "adapter document"); !s) return s;
  const Json& doc = dom.root;
  if (Status s = check_adapter_type(doc, "key", /*required=*/true); !s) return s;
  NsaConfig config;
  std::string model_name;
  if (Status s = read_config(doc, "key", shape, &config, &model_name); !s) return s;

  const auto dict = doc.find(kDictKey);
  if (dict == doc.end()) {
    return Status::invalid_argument(
        "key 'adapter_weight_dict': missing; expected an object mapping tensor names to {\"shape\": [...], \"data\": "
        "[...]}");
  }
  if (!dict->is_object()) {
    return Status::invalid_argument(
        "key 'adapter_weight_dict': expected an object mapping tensor names to {\"shape\": [...], \"data\": [...]}, "
        "got " +
        describe_value(*dict));
  }
  Assembler assembler(shape, config);
  for (const auto& [key, entry] : dict->items()) {
    const std::string at = where(key);
    if (!entry.is_object()) {
      return Status::invalid_argument(at + ": expected an object {\"shape\": [...], \"data\": [...]}, got " +
                                      describe_value(entry));
    }
    RawTensor t;
    t.key = key;
    const auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) {
      return Status::invalid_argument(at + ": expected 'shape', a list of non-negative integers, got " +
                                      (sh == entry.end() ? std::string("nothing") : describe_value(*sh)));
    }
    for (const Json& dim : *sh) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > (uint64_t{1} << 40)) {
        return Status::invalid_argument(at + ": 'shape' entries must be non-negative integers below 2^40, got " +
                                        describe_value(dim));
      }
      t.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
    }
    const auto data = entry.find("data");
    const auto streamed = dom.data.find(key);
    if (data == entry.end() || !data->is_array() || streamed == dom.data.end()) {
      return Status::invalid_argument(at + ": expected 'data', a flat list of numbers, got " +
                                      (data == entry.end() ? std::string("nothing") : describe_value(*data)));
    }
    t.values = &streamed->second;
    t.count = streamed->second.size();
    if (Status s = assembler.add(t); !s) return s;
  }
  return assembler.finish(std::move(model_name), "json");
}

Result<std::shared_ptr<const NsaAdapter>> parse_nsa_adapter_safetensors(std::string_view bytes,
                                                                        const ModelShape& shape) {
  check_model_shape(shape);
  Result<SafetensorsHeader> parsed = read_adapter_safetensors(bytes, "nsa adapter (safetensors)");
  if (!parsed) return parsed.status();
  const SafetensorsHeader& header = parsed.value();
  const auto meta = header.metadata.find(std::string(kConfigMetadataKey));
  if (meta == header.metadata.end()) {
    return Status::invalid_argument(
        "__metadata__ key 'adapter_config': missing; expected the adapter configuration as a JSON object string, e.g. "
        "{\"adapter_type\": \"nsa\", \"compress_block_size\": 16, ...}");
  }
  DocBuilder dom;
  if (Status s = parse_json(meta->second, &dom, "__metadata__ key 'adapter_config'"); !s) return s;
  const Json& doc = dom.root;
  if (doc.contains(kDictKey)) {
    return Status::invalid_argument(
        "adapter_config key 'adapter_weight_dict': not allowed in a safetensors adapter; expected the tensors in the "
        "file's data");
  }
  if (Status s = check_adapter_type(doc, "adapter_config key", /*required=*/false); !s) return s;
  NsaConfig config;
  std::string model_name;
  if (Status s = read_config(doc, "adapter_config key", shape, &config, &model_name); !s) return s;

  Assembler assembler(shape, config);
  for (const auto& [name, view] : header.tensors) {
    if (Status s = check_float_dtype(where(name), view.dtype); !s) return s;
    RawTensor t;
    t.key = name;
    t.shape = view.shape;
    t.dtype = view.dtype;
    t.bytes = static_cast<const char*>(view.data);
    t.count = static_cast<size_t>(view.numel());
    if (Status s = assembler.add(t); !s) return s;
  }
  return assembler.finish(std::move(model_name), "safetensors");
}

}  // namespace hotswap
