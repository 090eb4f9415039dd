// An `nsa` adapter document -> NsaAdapter, validated against the base model exactly as
// specs/adapters.md (`nsa`) says, in either encoding:
//   JSON         {"adapter_type":"nsa", <config keys>, "adapter_weight_dict":
//                 {"<tensor name>": {"shape":[...], "data":[...]}, ...}}
//   safetensors  the tensors (F32, F16 or BF16) with the configuration as a JSON string under
//                the header's __metadata__ key "adapter_config" (adapter_type may be absent).
// Tensor names take either prefix, `model.layers.{i}.self_attn.nsa.` or `sparse_adapters.{i}.`,
// mixed freely; the same tensor under both rejects the document. Every tensor is converted to
// float32 (JSON numbers are rounded to the nearest float32) and must be finite.
//
// Any rule broken rejects the whole document with an InvalidArgument whose message names the
// key, the layer where there is one, and the expected and actual shape or value, e.g.
//   key 'sparse_adapters.1.k_compress.pos_emb' (layer 1): expected shape [2, 16, 24]
//   ([num_key_value_heads, compress_block_size, head_dim]), got [2, 8, 24]
//
// Memory: at most about 4 bytes per JSON data element or per safetensors element beyond the
// input itself; declared sizes are checked against the data before anything is allocated.
// Pure functions of their inputs; thread-safe. Never throw on any input. The safetensors
// encoding reuses parse_safetensors() (core/safetensors_file.h).
#pragma once

#include <memory>
#include <string_view>

#include "adapters/model_shape.h"
#include "adapters/nsa_adapter.h"
#include "engine/status.h"

namespace hotswap {

// Limits that keep index arithmetic in range (checked with the other config rules).
inline constexpr int kMaxNsaBlockTokens = 1 << 16;     // l, s, l'
inline constexpr int kMaxNsaSelectedBlocks = 1 << 20;  // n
inline constexpr int kMaxNsaWindowTokens = 1 << 30;    // w
inline constexpr int kMaxNsaMlpHidden = 1 << 24;       // mlp_hidden_size
inline constexpr int kMaxNsaMemTokens = 1 << 16;       // num_mem_tokens
inline constexpr int kMaxNsaJsonDepth = 64;

// True when `bytes` starts like a safetensors image (an 8-byte little-endian header length
// that fits, followed by '{'). A JSON document never does: its first 8 bytes are text.
bool looks_like_safetensors(std::string_view bytes);

// Either encoding, told apart by looks_like_safetensors(). `shape` must be a valid model
// shape (num_heads a multiple of num_kv_heads).
Result<std::shared_ptr<const NsaAdapter>> parse_nsa_adapter(std::string_view bytes, const ModelShape& shape);

Result<std::shared_ptr<const NsaAdapter>> parse_nsa_adapter_json(std::string_view json, const ModelShape& shape);
Result<std::shared_ptr<const NsaAdapter>> parse_nsa_adapter_safetensors(std::string_view bytes,
                                                                        const ModelShape& shape);

}  // namespace hotswap
