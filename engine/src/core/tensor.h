// A non-owning view of a stored tensor: element type, shape and a pointer into memory
// someone else owns (usually a memory-mapped safetensors file). Row-major, contiguous.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace hotswap {

struct TensorView {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;

  bool empty() const { return data == nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  int64_t cols() const { return shape.size() < 2 ? 1 : numel() / shape[0]; }
  // Element i converted to float32 (slow path; kernels read the raw pointer).
  float at(int64_t i) const;
  // The whole tensor converted to float32.
  std::vector<float> to_f32() const;
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace hotswap
