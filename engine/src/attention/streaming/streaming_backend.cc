#include "attention/streaming/streaming_backend.h"

#include <nlohmann/json.hpp>

#include "attention/paged/paged_backend.h"
#include "attention/sequence_attention.h"

namespace hotswap {
namespace {

class StreamingBackend final : public PagedBackend {
 public:
  const char* name() const override { return "streaming"; }

  Result<SequenceAttention> resolve(const nlohmann::json& params, std::shared_ptr<const Adapter> adapter,
                                    const ModelShape& shape) const override {
    (void)shape;
    WindowParams p;
    if (Status s = read_ungated_params(params, &p); !s) return s;
    // Streaming takes no parameters from an adapter: the spec ties the adapter's windows to
    // `mixed` only, so an explicit `streaming` means the defaults or the request's.
    auto pattern = std::make_shared<PagedPattern>();
    pattern->kind = PagedKind::kStreaming;
    if (Status s = set_window(StreamingWindow{}, p, pattern.get()); !s) return s;
    const std::string ns = "streaming:" + window_key(pattern->window);
    const StreamingRule rule = pattern->rule;
    return sequence_attention(std::move(pattern), std::move(adapter), ns, rule);
  }
};

}  // namespace

const AttentionBackend& streaming_backend() {
  static const StreamingBackend backend;
  return backend;
}

}  // namespace hotswap
