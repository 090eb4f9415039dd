// `--adapter FILE_OR_DIR` for the CLI: an adapter_weight.json (or .safetensors) file, or a
// directory holding one.
#pragma once

#include <string>

#include "adapters/model_shape.h"
#include "attention/sequence_attention.h"
#include "engine/adapter_info.h"
#include "engine/engine.h"

namespace hotswap::cli {

struct AdapterFile {
  std::string path;
  std::string bytes;
  AdapterEncoding encoding = AdapterEncoding::kJson;
};

// Reads the adapter; throws UsageError if there is none at that path.
AdapterFile read_adapter_file(const std::string& file_or_dir);

// Registers the adapter with the engine (as the server's PUT would) and returns its name.
std::string engine_adapter_from_file(Engine& engine, const std::string& file_or_dir);

// The attention a sequence runs with `choice` and the adapter at `file_or_dir` ("" = none).
Result<SequenceAttention> load_sequence_attention(const AttentionChoice& choice, const std::string& file_or_dir,
                                                  const ModelShape& shape);

}  // namespace hotswap::cli
