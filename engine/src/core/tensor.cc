#include "core/tensor.h"

#include <cstring>

#include "core/check.h"

namespace hotswap {

// memcpy, not a typed load: tensors inside safetensors files need not be aligned.
template <typename T>
static T load(const void* base, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const char*>(base) + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

float TensorView::at(int64_t i) const {
  switch (dtype) {
    case DType::kF32: return load<float>(data, i);
    case DType::kBF16: return bf16_to_f32(load<uint16_t>(data, i));
    case DType::kF16: return f16_to_f32(load<uint16_t>(data, i));
    default: HS_CHECK(false) << "TensorView::at on non-float dtype " << dtype_name(dtype);
  }
  return 0;
}

std::vector<float> TensorView::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) out[static_cast<size_t>(i)] = at(i);
  return out;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace hotswap
