// The parameters of an `lsh` adapter (specs/maskers.md Part 1 "Determinism"): MagicPig's
// random projections given explicitly, one float32 matrix [d + 1, L*K] per layer (shared by
// every head), so that a request can use the reference's own matrices instead of ones drawn
// from its seed. A request's lsh_l * lsh_k must equal `columns`.
//
// Built by parse_lsh_adapter() (adapters/lsh_adapter_codec.h); immutable afterwards.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace hotswap {

struct LshAdapter {
  int num_layers = 0;  // the base model's L
  int rows = 0;        // d + 1 (head_dim + 1)
  int columns = 0;     // L * K
  std::vector<std::vector<float>> projection;  // per layer, [rows, columns] row-major

  size_t num_parameters() const { return static_cast<size_t>(num_layers) * rows * columns; }
};

// "4 layers, projection [17, 64] per layer (lsh_l * lsh_k = 64)", for GET /v1/adapters.
std::string lsh_adapter_description(const LshAdapter& a);
// {"layers":4,"rows":17,"columns":64}
std::string lsh_parameters_json(const LshAdapter& a);

}  // namespace hotswap
