#include "attention/eager/eager_backend.h"

#include <nlohmann/json.hpp>

#include "attention/paged/paged_backend.h"
#include "attention/sequence_attention.h"

namespace hotswap {
namespace {

class EagerBackend final : public PagedBackend {
 public:
  const char* name() const override { return "eager"; }
  bool chosen_by_auto_for(std::optional<AdapterType> type) const override { return !type.has_value(); }

  Result<SequenceAttention> resolve(const nlohmann::json& params, std::shared_ptr<const Adapter> adapter,
                                    const ModelShape& shape) const override {
    (void)shape;
    WindowParams p;
    if (Status s = read_ungated_params(params, &p); !s) return s;
    if (p.has_window()) {
      return Status::invalid_argument(
          "attention 'eager': sink_window_size, recent_window_size and block_size apply only to 'streaming' and "
          "'mixed'");
    }
    // An adapter, if any, is pinned but does not change eager KV: the namespace is shared.
    return sequence_attention(std::make_shared<PagedPattern>(), std::move(adapter), "eager");
  }
};

}  // namespace

const AttentionBackend& eager_backend() {
  static const EagerBackend backend;
  return backend;
}

}  // namespace hotswap
