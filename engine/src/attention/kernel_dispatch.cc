#include "attention/kernel_dispatch.h"

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hotswap::attention_detail {

int kernel_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

int max_splits_per_item(int64_t num_items, int threads) {
  if (num_items >= 2 * static_cast<int64_t>(threads)) return 1;
  const int64_t n = std::max<int64_t>(1, num_items);
  return static_cast<int>((2 * static_cast<int64_t>(threads) + n - 1) / n);
}

}  // namespace hotswap::attention_detail
