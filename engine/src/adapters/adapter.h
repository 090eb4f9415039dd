// One immutable adapter version: its type, the name it was registered under, the SHA-256
// of the bytes it was loaded from (its version: caches are keyed by it, specs/attention.md)
// and its parameters. Shared as shared_ptr<const Adapter> between the registry and the
// sequences pinned to it; never mutated after construction, so any thread may read it.
#pragma once

#include <memory>
#include <string>

#include "adapters/mixed_adapter.h"

namespace hotswap {

struct NsaAdapter;            // adapters/nsa_adapter.h (issue 5); only held here, never read
struct HashAttentionAdapter;  // adapters/hashattention_adapter.h (issue 13)
struct LshAdapter;            // adapters/lsh_adapter.h (issue 13)

enum class AdapterType { kMixed, kNsa, kHashAttention, kLsh };

const char* adapter_type_name(AdapterType type);  // "mixed" | "nsa" | "hashattention" | "lsh"

class Adapter {
 public:
  // A mixed adapter. `sha256` is the hex digest of the source bytes; `source_bytes` their size.
  static std::shared_ptr<const Adapter> make_mixed(std::string name, std::string sha256, size_t source_bytes,
                                                   std::shared_ptr<const MixedAdapter> params,
                                                   std::string base_model_name = {});

  // An nsa adapter. Its parameters live in the nsa module, so that module also supplies the
  // description and parameters JSON this class reports.
  static std::shared_ptr<const Adapter> make_nsa(std::string name, std::string sha256, size_t source_bytes,
                                                 std::shared_ptr<const NsaAdapter> params, int num_layers,
                                                 std::string description, std::string parameters_json);

  // A hashattention adapter (specs/maskers.md); description and parameters from its module.
  static std::shared_ptr<const Adapter> make_hashattention(std::string name, std::string sha256, size_t source_bytes,
                                                           std::shared_ptr<const HashAttentionAdapter> params);
  // An lsh adapter: MagicPig projections given explicitly (specs/maskers.md "Determinism").
  static std::shared_ptr<const Adapter> make_lsh(std::string name, std::string sha256, size_t source_bytes,
                                                 std::shared_ptr<const LshAdapter> params);

  AdapterType type() const { return type_; }
  const std::string& name() const { return name_; }
  const std::string& sha256() const { return sha256_; }
  // The identity caches are keyed by: the digest of the source bytes, so the same document
  // uploaded under two names shares cache entries and a replaced document never does.
  const std::string& version() const { return sha256_; }
  size_t source_bytes() const { return source_bytes_; }
  int num_layers() const { return num_layers_; }

  // Non-null iff type() == kMixed.
  const std::shared_ptr<const MixedAdapter>& mixed() const { return mixed_; }
  // Non-null iff type() == kNsa.
  const std::shared_ptr<const NsaAdapter>& nsa() const { return nsa_; }
  // Non-null iff type() == kHashAttention.
  const std::shared_ptr<const HashAttentionAdapter>& hashattention() const { return hashattention_; }
  // Non-null iff type() == kLsh.
  const std::shared_ptr<const LshAdapter>& lsh() const { return lsh_; }

  // The same adapter under another name (registration assigns names after parsing).
  std::shared_ptr<const Adapter> with_name(std::string name) const;

  // One line for humans and GET /v1/adapters: type, layers, gate layout, windows, and a
  // note when the document's model_name differs from the base model's.
  std::string description() const;
  // The parameters as a JSON object text, e.g.
  // {"sink_window_size":128,"recent_window_size":1024,"block_size":128,"gates_per":"kv_head","model_name":"..."}
  std::string parameters_json() const;

 private:
  Adapter() = default;

  AdapterType type_ = AdapterType::kMixed;
  std::string name_;
  std::string sha256_;
  size_t source_bytes_ = 0;
  int num_layers_ = 0;
  std::string base_model_name_;
  std::shared_ptr<const MixedAdapter> mixed_;
  std::shared_ptr<const NsaAdapter> nsa_;
  std::shared_ptr<const HashAttentionAdapter> hashattention_;
  std::shared_ptr<const LshAdapter> lsh_;
  std::string nsa_description_;      // nsa: supplied by make_nsa
  std::string nsa_parameters_json_;
};

}  // namespace hotswap
