#include "adapters/nsa_adapter.h"

#include <nlohmann/json.hpp>
#include <sstream>

namespace hotswap {

const char* nsa_compression_name(NsaCompression c) { return c == NsaCompression::kMlp ? "mlp" : "max_pool"; }

const char* nsa_compress_rope_name(NsaCompressRope r) { return r == NsaCompressRope::kPost ? "post" : "pre"; }

size_t NsaAdapter::num_parameters() const {
  size_t n = 0;
  for (const NsaLayerWeights& l : layers) {
    for (const NsaCompressor* c : {&l.k, &l.v}) n += c->pos_emb.size() + c->w1.size() + c->b1.size() + c->w2.size() + c->b2.size();
    n += l.mem_kv.size() + l.gate_w.size() + l.gate_b.size();
  }
  return n;
}

std::string nsa_config_key(const NsaConfig& c) {
  std::ostringstream s;
  s << "l=" << c.compress_block_size << ",s=" << c.compress_stride << ",sel=" << c.selection_block_size
    << ",n=" << c.num_selected_blocks << ",w=" << c.sliding_window_size << ",k=" << nsa_compression_name(c.k_compress)
    << ",v=" << nsa_compression_name(c.v_compress) << ",hidden=" << c.mlp_hidden_size << ",mem=" << c.num_mem_tokens
    << ",rope=" << nsa_compress_rope_name(c.compress_rope);
  return s.str();
}

std::string nsa_adapter_description(const NsaAdapter& a) {
  const NsaConfig& c = a.config;
  std::ostringstream s;
  s << a.num_layers << " layers, l=" << c.compress_block_size << " s=" << c.compress_stride
    << " l'=" << c.selection_block_size << " n=" << c.num_selected_blocks << " w=" << c.sliding_window_size
    << ", k_compress " << nsa_compression_name(c.k_compress) << ", v_compress " << nsa_compression_name(c.v_compress);
  if (c.uses_mlp()) s << " (mlp_hidden_size " << c.mlp_hidden_size << ")";
  s << ", " << c.num_mem_tokens << (c.num_mem_tokens == 1 ? " memory token" : " memory tokens") << ", compress_rope "
    << nsa_compress_rope_name(c.compress_rope);
  if (!a.encoding.empty()) s << ", from " << a.encoding;
  if (!a.model_name.empty()) s << ", trained for '" << a.model_name << "'";
  return s.str();
}

std::string nsa_parameters_json(const NsaAdapter& a) {
  const NsaConfig& c = a.config;
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["compress_block_size"] = c.compress_block_size;
  j["compress_stride"] = c.compress_stride;
  j["selection_block_size"] = c.selection_block_size;
  j["num_selected_blocks"] = c.num_selected_blocks;
  j["sliding_window_size"] = c.sliding_window_size;
  j["k_compress"] = nsa_compression_name(c.k_compress);
  j["v_compress"] = nsa_compression_name(c.v_compress);
  if (c.uses_mlp()) j["mlp_hidden_size"] = c.mlp_hidden_size;
  j["num_mem_tokens"] = c.num_mem_tokens;
  j["compress_rope"] = nsa_compress_rope_name(c.compress_rope);
  if (!a.model_name.empty()) j["model_name"] = a.model_name;
  return j.dump();
}

}  // namespace hotswap
