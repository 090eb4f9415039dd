#include "core/check.h"
#include "kernels/embedding.h"

namespace hotswap::kernels {

void embedding_lookup_reference(const TensorView& table, int32_t id, float* out) {
  HS_CHECK(table.shape.size() == 2) << "embedding table must be 2-D, got " << shape_string(table.shape);
  HS_CHECK(id >= 0 && id < table.shape[0]) << "token id " << id << " outside vocab " << table.shape[0];
  const int64_t dim = table.shape[1];
  for (int64_t c = 0; c < dim; ++c) out[c] = table.at(id * dim + c);
}

}  // namespace hotswap::kernels
