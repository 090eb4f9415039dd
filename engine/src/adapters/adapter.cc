#include "adapters/adapter.h"

#include <nlohmann/json.hpp>

#include "adapters/hashattention_adapter.h"
#include "adapters/lsh_adapter.h"
#include <sstream>

namespace hotswap {

const char* adapter_type_name(AdapterType type) {
  switch (type) {
    case AdapterType::kMixed: return "mixed";
    case AdapterType::kNsa: return "nsa";
    case AdapterType::kHashAttention: return "hashattention";
    case AdapterType::kLsh: return "lsh";
  }
  return "unknown";
}

std::shared_ptr<const Adapter> Adapter::make_mixed(std::string name, std::string sha256, size_t source_bytes,
                                                   std::shared_ptr<const MixedAdapter> params,
                                                   std::string base_model_name) {
  // make_shared cannot reach the private constructor.
  std::shared_ptr<Adapter> a(new Adapter());
  a->type_ = AdapterType::kMixed;
  a->name_ = std::move(name);
  a->sha256_ = std::move(sha256);
  a->source_bytes_ = source_bytes;
  a->base_model_name_ = std::move(base_model_name);
  a->num_layers_ = params ? params->num_layers : 0;
  a->mixed_ = std::move(params);
  return a;
}

std::shared_ptr<const Adapter> Adapter::make_nsa(std::string name, std::string sha256, size_t source_bytes,
                                                 std::shared_ptr<const NsaAdapter> params, int num_layers,
                                                 std::string description, std::string parameters_json) {
  std::shared_ptr<Adapter> a(new Adapter());
  a->type_ = AdapterType::kNsa;
  a->name_ = std::move(name);
  a->sha256_ = std::move(sha256);
  a->source_bytes_ = source_bytes;
  a->num_layers_ = num_layers;
  a->nsa_ = std::move(params);
  a->nsa_description_ = std::move(description);
  a->nsa_parameters_json_ = std::move(parameters_json);
  return a;
}

std::shared_ptr<const Adapter> Adapter::make_hashattention(std::string name, std::string sha256, size_t source_bytes,
                                                           std::shared_ptr<const HashAttentionAdapter> params) {
  std::shared_ptr<Adapter> a(new Adapter());
  a->type_ = AdapterType::kHashAttention;
  a->name_ = std::move(name);
  a->sha256_ = std::move(sha256);
  a->source_bytes_ = source_bytes;
  a->num_layers_ = params ? params->num_layers : 0;
  a->hashattention_ = std::move(params);
  return a;
}

std::shared_ptr<const Adapter> Adapter::make_lsh(std::string name, std::string sha256, size_t source_bytes,
                                                 std::shared_ptr<const LshAdapter> params) {
  std::shared_ptr<Adapter> a(new Adapter());
  a->type_ = AdapterType::kLsh;
  a->name_ = std::move(name);
  a->sha256_ = std::move(sha256);
  a->source_bytes_ = source_bytes;
  a->num_layers_ = params ? params->num_layers : 0;
  a->lsh_ = std::move(params);
  return a;
}

std::shared_ptr<const Adapter> Adapter::with_name(std::string name) const {
  std::shared_ptr<Adapter> a(new Adapter(*this));
  a->name_ = std::move(name);
  return a;
}

std::string Adapter::description() const {
  if (type_ == AdapterType::kNsa) return nsa_description_;
  std::ostringstream s;
  s << adapter_type_name(type_) << " adapter";
  if (!name_.empty()) s << " '" << name_ << "'";
  if (hashattention_) s << ": " << hashattention_adapter_description(*hashattention_);
  if (lsh_) s << ": " << lsh_adapter_description(*lsh_);
  if (mixed_) {
    const MixedAdapter& m = *mixed_;
    s << ": " << m.num_layers << " layers, gates per "
      << (m.num_per_query_head_layers == m.num_layers ? "query head"
          : m.num_per_query_head_layers == 0         ? "KV head"
                                                     : "KV or query head")
      << ", sink_window_size " << m.window.sink_window_size << ", recent_window_size "
      << m.window.recent_window_size << ", block_size " << m.window.block_size;
    if (!m.model_name.empty()) {
      s << ", trained for '" << m.model_name << "'";
      if (!base_model_name_.empty() && base_model_name_ != m.model_name) {
        s << " (differs from the base model '" << base_model_name_ << "')";
      }
    }
  }
  return s.str();
}

std::string Adapter::parameters_json() const {
  if (type_ == AdapterType::kNsa) return nsa_parameters_json_;
  if (hashattention_) return hashattention_parameters_json(*hashattention_);
  if (lsh_) return lsh_parameters_json(*lsh_);
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (mixed_) {
    const MixedAdapter& m = *mixed_;
    j["sink_window_size"] = m.window.sink_window_size;
    j["recent_window_size"] = m.window.recent_window_size;
    j["block_size"] = m.window.block_size;
    j["gates_per"] = m.num_per_query_head_layers == 0               ? "kv_head"
                     : m.num_per_query_head_layers == m.num_layers ? "query_head"
                                                                   : "kv_or_query_head";
    if (!m.model_name.empty()) j["model_name"] = m.model_name;
  }
  return j.dump();
}

}  // namespace hotswap
