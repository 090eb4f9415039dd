#include "adapters/hashattention_adapter_codec.h"

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter_json.h"
#include "adapters/adapter_tensors.h"
#include "core/check.h"

namespace hotswap {
namespace {

constexpr std::string_view kPrefix = "layers.";
const std::string kPrefixText(kPrefix);
constexpr const char* kSides[2] = {"query", "key"};

struct TensorName {
  int layer = 0;
  int side = 0;  // 0 query, 1 key
  int index = 0;
  bool bias = false;
};

// "layers.{L}.{query|key}.{i}.{weight|bias}", canonical indices only.
std::optional<TensorName> parse_tensor_name(std::string_view key) {
  const auto split = split_layer_prefix(key, kPrefix);
  if (!split) return std::nullopt;
  TensorName n;
  n.layer = split->first;
  std::string_view rest = split->second;
  if (rest.starts_with("query.")) {
    n.side = 0;
    rest.remove_prefix(6);
  } else if (rest.starts_with("key.")) {
    n.side = 1;
    rest.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::optional<int> index = parse_canonical_index(rest.substr(0, dot));
  if (!index) return std::nullopt;
  n.index = *index;
  rest.remove_prefix(dot + 1);
  if (rest == "weight") n.bias = false;
  else if (rest == "bias") n.bias = true;
  else return std::nullopt;
  return n;
}

std::string name_of(int layer, int side, int index, const char* what) {
  return std::string(kPrefix) + std::to_string(layer) + "." + kSides[side] + "." + std::to_string(index) + "." + what;
}

std::optional<HashActivation> parse_activation(std::string_view s) {
  for (HashActivation a : {HashActivation::kRelu, HashActivation::kSilu, HashActivation::kGelu, HashActivation::kTanh})
    if (s == hash_activation_name(a)) return a;
  return std::nullopt;
}

Status read_activation(const std::map<std::string, std::string>& metadata, HashActivation* out) {
  const auto it = metadata.find("activation");
  const std::string expected = "expected one of \"relu\", \"silu\", \"gelu\", \"tanh\"";
  if (it == metadata.end()) return Status::invalid_argument("__metadata__ key 'activation': missing; " + expected);
  const std::optional<HashActivation> a = parse_activation(it->second);
  if (!a) {
    return Status::invalid_argument("__metadata__ key 'activation': " + expected + ", got " +
                                    adapter_json::quote(it->second));
  }
  *out = *a;
  return Status::ok();
}

// One MLP layer's tensors as the document gives them.
struct Slot {
  const TensorView* weight = nullptr;
  const TensorView* bias = nullptr;
};
using Mlp = std::map<int, Slot>;  // MLP layer index -> its tensors

// The signature width every MLP must end in, and the tensor that set it (for messages).
struct Bits {
  int bits = 0;
  std::string source;
};

std::string dims(const std::vector<int64_t>& shape) { return shape_string(shape); }

// Validates and converts one side of one layer: the chain of shapes from head_dim to bits.
Status build_mlp(const ModelShape& m, int layer, int side, const Mlp& mlp, Bits* bits, std::vector<HashLinear>* out) {
  const char* sname = kSides[side];
  if (mlp.empty()) {
    return Status::invalid_argument(
        "layer " + std::to_string(layer) + ": no " + sname + " MLP; expected tensors '" + kPrefixText +
        std::to_string(layer) + "." + sname + ".{i}.weight' [num_attention_heads, d_in, d_out] and '" + kPrefixText +
        std::to_string(layer) + "." + sname + ".{i}.bias' [num_attention_heads, d_out], i = 0..n-1, in every layer 0.." +
        std::to_string(m.num_layers - 1) + " (num_hidden_layers " + std::to_string(m.num_layers) + ")");
  }
  const int64_t H = m.num_heads;
  int64_t d_in = m.head_dim;
  std::string d_in_why = "d_in of the first MLP layer = head_dim " + std::to_string(m.head_dim);
  int expected_index = 0;
  for (const auto& [index, slot] : mlp) {
    if (index != expected_index) {  // a gap: the first missing index, whichever tensor is absent
      return Status::invalid_argument(tensor_where(name_of(layer, side, expected_index, "weight"), layer) +
                                      ": missing; expected the " + sname + " MLP layers to be numbered 0..n-1 without "
                                      "a gap (found '" + name_of(layer, side, index, slot.weight ? "weight" : "bias") +
                                      "')");
    }
    if (index >= kMaxHashMlpDepth) {
      return Status::invalid_argument(tensor_where(name_of(layer, side, index, "weight"), layer) + ": more than " +
                                      std::to_string(kMaxHashMlpDepth) + " " + sname + " MLP layers; expected at most " +
                                      std::to_string(kMaxHashMlpDepth));
    }
    ++expected_index;
    const std::string wname = name_of(layer, side, index, "weight"), bname = name_of(layer, side, index, "bias");
    const std::string wat = tensor_where(wname, layer), bat = tensor_where(bname, layer);
    if (!slot.weight) {
      return Status::invalid_argument(wat + ": missing; expected a weight of shape [" + std::to_string(H) + ", " +
                                      std::to_string(d_in) + ", d_out] ([num_attention_heads, d_in, d_out]) beside '" +
                                      bname + "'");
    }
    const std::vector<int64_t>& ws = slot.weight->shape;
    if (ws.size() != 3) {
      return Status::invalid_argument(wat + ": expected shape [" + std::to_string(H) + ", " + std::to_string(d_in) +
                                      ", d_out] ([num_attention_heads, d_in, d_out], 3 dimensions), got " + dims(ws));
    }
    if (ws[0] != H) {
      return Status::invalid_argument(wat + ": expected shape [" + std::to_string(H) + ", " + std::to_string(d_in) +
                                      ", d_out] (dimension 0 = num_attention_heads " + std::to_string(H) + "), got " +
                                      dims(ws));
    }
    if (ws[1] != d_in) {
      return Status::invalid_argument(wat + ": expected shape [" + std::to_string(H) + ", " + std::to_string(d_in) +
                                      ", d_out] (" + d_in_why + "), got " + dims(ws));
    }
    const int64_t d_out = ws[2];
    if (d_out < 1 || d_out > kMaxHashMlpWidth) {
      return Status::invalid_argument(wat + ": d_out (dimension 2) out of range; expected 1.." +
                                      std::to_string(kMaxHashMlpWidth) + ", got " + dims(ws));
    }
    if (!slot.bias) {
      return Status::invalid_argument(bat + ": missing; expected shape [" + std::to_string(H) + ", " +
                                      std::to_string(d_out) + "] ([num_attention_heads, d_out]) beside '" + wname + "'");
    }
    const std::vector<int64_t> bias_shape = {H, d_out};
    if (slot.bias->shape != bias_shape) {
      return Status::invalid_argument(bat + ": expected shape " + dims(bias_shape) +
                                      " ([num_attention_heads, d_out] of '" + wname + "'), got " +
                                      dims(slot.bias->shape));
    }
    HashLinear lin;
    lin.d_in = static_cast<int>(d_in);
    lin.d_out = static_cast<int>(d_out);
    if (Status s = tensor_to_finite_f32(wat, slot.weight->dtype, slot.weight->data,
                                        static_cast<size_t>(slot.weight->numel()), &lin.weight);
        !s) {
      return s;
    }
    if (Status s = tensor_to_finite_f32(bat, slot.bias->dtype, slot.bias->data,
                                        static_cast<size_t>(slot.bias->numel()), &lin.bias);
        !s) {
      return s;
    }
    out->push_back(std::move(lin));
    d_in = d_out;
    d_in_why = "d_in = d_out " + std::to_string(d_out) + " of '" + wname + "'";
  }
  // The last layer's d_out is the signature width.
  const std::string last = name_of(layer, side, static_cast<int>(mlp.size()) - 1, "weight");
  if (d_in > kMaxHashBits) {
    return Status::invalid_argument(tensor_where(last, layer) + ": the last " + sname +
                                    " MLP layer's d_out is the signature bits; expected 1.." +
                                    std::to_string(kMaxHashBits) + ", got " + std::to_string(d_in));
  }
  if (bits->bits == 0) {
    *bits = {static_cast<int>(d_in), last};
  } else if (d_in != bits->bits) {
    return Status::invalid_argument(tensor_where(last, layer) + ": signature bits (the last d_out) " +
                                    std::to_string(d_in) + " differ from " + std::to_string(bits->bits) + " of '" +
                                    bits->source +
                                    "'; expected the query and key MLPs of every layer to end in the same bits");
  }
  return Status::ok();
}

}  // namespace

Result<std::shared_ptr<const HashAttentionAdapter>> parse_hashattention_adapter(std::string_view safetensors_bytes,
                                                                                const ModelShape& shape) {
  HS_CHECK(shape.num_layers > 0 && shape.num_heads > 0 && shape.head_dim > 0)
      << "invalid model shape L=" << shape.num_layers << " H=" << shape.num_heads << " d=" << shape.head_dim;
  Result<SafetensorsHeader> parsed = read_adapter_safetensors(safetensors_bytes, "hashattention adapter (safetensors)");
  if (!parsed) return parsed.status();
  const SafetensorsHeader& header = parsed.value();
  if (Status s = check_metadata_type(header.metadata, "hashattention"); !s) return s;
  auto a = std::make_shared<HashAttentionAdapter>();
  if (Status s = read_activation(header.metadata, &a->activation); !s) return s;

  std::vector<std::array<Mlp, 2>> mlps(static_cast<size_t>(shape.num_layers));
  for (const auto& [key, view] : header.tensors) {
    const std::optional<TensorName> n = parse_tensor_name(key);
    if (!n) {
      return Status::invalid_argument(tensor_where(key) +
                                      ": not a tensor of a hashattention adapter; expected 'layers.{L}.query.{i}.weight', "
                                      "'layers.{L}.query.{i}.bias' or the same under 'key'");
    }
    const std::string at = tensor_where(key, n->layer);
    if (n->layer >= shape.num_layers) {
      return Status::invalid_argument(at + ": layer out of range; expected a layer in 0.." +
                                      std::to_string(shape.num_layers - 1) + " (num_hidden_layers " +
                                      std::to_string(shape.num_layers) + "), got " + std::to_string(n->layer));
    }
    if (Status s = check_float_dtype(at, view.dtype); !s) return s;
    Slot& slot = mlps[static_cast<size_t>(n->layer)][static_cast<size_t>(n->side)][n->index];
    (n->bias ? slot.bias : slot.weight) = &view;
  }

  a->num_layers = shape.num_layers;
  a->num_heads = shape.num_heads;
  a->head_dim = shape.head_dim;
  a->layers.resize(static_cast<size_t>(shape.num_layers));
  Bits bits;
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    HashAttentionAdapter::Layer& out = a->layers[static_cast<size_t>(layer)];
    for (int side = 0; side < 2; ++side) {
      if (Status s = build_mlp(shape, layer, side, mlps[static_cast<size_t>(layer)][static_cast<size_t>(side)], &bits,
                               side == 0 ? &out.query : &out.key);
          !s) {
        return s;
      }
    }
  }
  a->bits = bits.bits;
  return std::shared_ptr<const HashAttentionAdapter>(std::move(a));
}

}  // namespace hotswap
