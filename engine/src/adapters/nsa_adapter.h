// The parameters of an `nsa` adapter (specs/adapters.md `nsa`, specs/attention.md `nsa`):
// the configuration l, s, l', n, w, the compression methods, the memory-token count and the
// compress_rope mode, and per layer the compression position embeddings, the optional
// per-KV-head compression MLPs, the memory tokens and the branch gate. Every tensor is
// float32 here, whatever the document stored (F32/F16/BF16 or JSON numbers).
//
// Built by parse_nsa_adapter() (adapters/nsa_adapter_codec.h); immutable afterwards and
// shared as shared_ptr<const NsaAdapter> by every sequence that uses it, from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hotswap {

enum class NsaCompression : uint8_t { kMaxPool, kMlp };
enum class NsaCompressRope : uint8_t {
  kPre,   // compress the un-rotated k_proj output (bias included); compressed queries are un-rotated
  kPost,  // compress the rotated keys; compressed queries are rotated
};

const char* nsa_compression_name(NsaCompression c);   // "max_pool" | "mlp"
const char* nsa_compress_rope_name(NsaCompressRope r);  // "pre" | "post"

struct NsaConfig {
  int compress_block_size = 16;   // l: tokens per compressed block
  int compress_stride = 8;        // s: distance between compressed block starts, 1 <= s <= l
  int selection_block_size = 16;  // l': tokens per selectable block, a multiple of s
  int num_selected_blocks = 4;    // n: blocks of the selected branch, forced ones included
  int sliding_window_size = 64;   // w: the sliding branch sees keys (t - w, t]
  NsaCompression k_compress = NsaCompression::kMaxPool;
  NsaCompression v_compress = NsaCompression::kMlp;
  // Hidden width of each compression MLP: the document's value, l * d when absent; 0 when
  // neither side is mlp (the key is then ignored).
  int mlp_hidden_size = 0;
  int num_mem_tokens = 1;         // M >= 0
  NsaCompressRope compress_rope = NsaCompressRope::kPre;

  bool operator==(const NsaConfig&) const = default;

  // Compressed blocks that exist once positions [0, length) are cached:
  // floor((length - l) / s) + 1, and 0 before block 0 completes (length < l).
  int64_t num_compressed_blocks(int64_t length) const {
    return length < compress_block_size ? 0 : (length - compress_block_size) / compress_stride + 1;
  }
  // Selection blocks a query at position t chooses among: floor(t / l') + 1.
  int64_t num_selection_blocks(int64_t t) const { return t / selection_block_size + 1; }
  bool uses_mlp() const { return k_compress == NsaCompression::kMlp || v_compress == NsaCompression::kMlp; }
};

// One side (keys or values) of one layer's compression. Shapes use the adapter's Hkv, l, d
// and hidden = config.mlp_hidden_size.
struct NsaCompressor {
  NsaCompression method = NsaCompression::kMaxPool;
  std::vector<float> pos_emb;  // [Hkv, l, d]: P, added to position i of a block
  // mlp only (empty for max_pool): W1 · x + b1 -> relu -> W2 · h + b2, per KV head.
  std::vector<float> w1;  // [Hkv, hidden, l*d]; x is the row-major [l, d] block
  std::vector<float> b1;  // [Hkv, hidden]; zeros where the document has no bias
  std::vector<float> w2;  // [Hkv, d, hidden]
  std::vector<float> b2;  // [Hkv, d]; zeros where the document has no bias
};

struct NsaLayerWeights {
  NsaCompressor k;  // compresses keys (un-rotated for `pre`, rotated for `post`)
  NsaCompressor v;  // compresses values (never rotated)
  std::vector<float> mem_kv;  // [2, Hkv, M, d]: [0] memory keys, [1] memory values; no position
  std::vector<float> gate_w;  // [3H, D]: row 3*qh + c, c = 0 compressed, 1 selected, 2 sliding
  std::vector<float> gate_b;  // [3H]
};

struct NsaAdapter {
  NsaConfig config;
  // The base model shape the adapter was validated against.
  int num_layers = 0;    // L
  int num_heads = 0;     // H
  int num_kv_heads = 0;  // Hkv
  int head_dim = 0;      // d
  int hidden_size = 0;   // D
  std::vector<NsaLayerWeights> layers;  // [L]
  std::string model_name;  // the document's model_name, if any (informational)
  std::string encoding;    // "json" | "safetensors": where it came from (informational)

  const float* mem_keys(int layer, int kv_head) const {
    return layers[static_cast<size_t>(layer)].mem_kv.data() +
           static_cast<size_t>(kv_head) * config.num_mem_tokens * head_dim;
  }
  const float* mem_values(int layer, int kv_head) const {
    return mem_keys(layer, kv_head) + static_cast<size_t>(num_kv_heads) * config.num_mem_tokens * head_dim;
  }
  // Float32 parameters held, for accounting (the resident size is 4x this).
  size_t num_parameters() const;
};

// The configuration as the identity part of a cache namespace, e.g.
// "l=16,s=8,sel=16,n=4,w=64,k=max_pool,v=mlp,hidden=384,mem=1,rope=pre". Equal strings mean
// equal attention semantics for equal tensors.
std::string nsa_config_key(const NsaConfig& c);

// One line for humans and GET /v1/adapters: layers, l/s/l'/n/w, methods, memory tokens,
// compress_rope, the source encoding and model_name.
std::string nsa_adapter_description(const NsaAdapter& a);

// The configuration as a JSON object text with the spec's key names, e.g.
// {"compress_block_size":16,"compress_stride":8,...,"compress_rope":"pre"}.
std::string nsa_parameters_json(const NsaAdapter& a);

}  // namespace hotswap
