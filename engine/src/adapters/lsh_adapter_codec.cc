#include "adapters/lsh_adapter_codec.h"

#include <optional>
#include <string>
#include <vector>

#include "adapters/adapter_tensors.h"
#include "core/check.h"

namespace hotswap {
namespace {

constexpr std::string_view kPrefix = "layers.";

std::string projection_name(int layer) { return "layers." + std::to_string(layer) + ".projection"; }

}  // namespace

Result<std::shared_ptr<const LshAdapter>> parse_lsh_adapter(std::string_view safetensors_bytes, const ModelShape& shape) {
  HS_CHECK(shape.num_layers > 0 && shape.head_dim > 0)
      << "invalid model shape L=" << shape.num_layers << " d=" << shape.head_dim;
  Result<SafetensorsHeader> parsed = read_adapter_safetensors(safetensors_bytes, "lsh adapter (safetensors)");
  if (!parsed) return parsed.status();
  const SafetensorsHeader& header = parsed.value();
  if (Status s = check_metadata_type(header.metadata, "lsh"); !s) return s;

  const std::string layers_text =
      "0.." + std::to_string(shape.num_layers - 1) + " (num_hidden_layers " + std::to_string(shape.num_layers) + ")";
  std::vector<const TensorView*> views(static_cast<size_t>(shape.num_layers), nullptr);
  for (const auto& [key, view] : header.tensors) {
    const auto split = split_layer_prefix(key, kPrefix);
    if (!split || split->second != "projection") {
      return Status::invalid_argument(tensor_where(key) +
                                      ": not a tensor of an lsh adapter; expected 'layers.{L}.projection' for L in " +
                                      layers_text);
    }
    const int layer = split->first;
    const std::string at = tensor_where(key, layer);
    if (layer >= shape.num_layers) {
      return Status::invalid_argument(at + ": layer out of range; expected a layer in " + layers_text + ", got " +
                                      std::to_string(layer));
    }
    if (Status s = check_float_dtype(at, view.dtype); !s) return s;
    views[static_cast<size_t>(layer)] = &view;
  }

  const int64_t rows = static_cast<int64_t>(shape.head_dim) + 1;
  auto a = std::make_shared<LshAdapter>();
  a->num_layers = shape.num_layers;
  a->rows = static_cast<int>(rows);
  a->projection.resize(static_cast<size_t>(shape.num_layers));
  for (int layer = 0; layer < shape.num_layers; ++layer) {
    const std::string name = projection_name(layer);
    const std::string at = tensor_where(name, layer);
    const TensorView* v = views[static_cast<size_t>(layer)];
    if (!v) {
      return Status::invalid_argument(at + ": missing; expected a projection of shape [" + std::to_string(rows) +
                                      ", C] ([head_dim + 1, lsh_l * lsh_k]) for every layer " + layers_text);
    }
    if (v->shape.size() != 2 || v->shape[0] != rows) {
      return Status::invalid_argument(at + ": expected shape [" + std::to_string(rows) +
                                      ", C] ([head_dim + 1, lsh_l * lsh_k] with head_dim " +
                                      std::to_string(shape.head_dim) + "), got " + shape_string(v->shape));
    }
    const int64_t columns = v->shape[1];
    if (layer == 0 && (columns < 1 || columns > kMaxLshColumns)) {
      return Status::invalid_argument(at + ": columns (lsh_l * lsh_k) out of range; expected 1.." +
                                      std::to_string(kMaxLshColumns) + ", got " + shape_string(v->shape));
    }
    if (layer > 0 && columns != a->columns) {
      return Status::invalid_argument(at + ": expected shape [" + std::to_string(rows) + ", " +
                                      std::to_string(a->columns) + "] (the same lsh_l * lsh_k columns as '" +
                                      projection_name(0) + "'), got " + shape_string(v->shape));
    }
    a->columns = static_cast<int>(columns);
    if (Status s = tensor_to_finite_f32(at, v->dtype, v->data, static_cast<size_t>(v->numel()),
                                        &a->projection[static_cast<size_t>(layer)]);
        !s) {
      return s;
    }
  }
  return std::shared_ptr<const LshAdapter>(std::move(a));
}

}  // namespace hotswap
