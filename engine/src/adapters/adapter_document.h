// Adapter documents as uploaded or stored: one entry point that tells the type apart and runs
// its codec (mixed and nsa JSON, nsa / hashattention / lsh safetensors), and the memory an
// adapter's parameters take. Used by the registry for put() and every (re)load, and by the
// CLI for --adapter files.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "adapters/adapter.h"
#include "adapters/model_shape.h"
#include "engine/adapter_info.h"
#include "engine/status.h"

namespace hotswap {

// Parses and validates one adapter document against `shape` (the first step of put() and
// of every (re)load): the adapter type comes from the encoding and the JSON `adapter_type`
// (absent or "mixed" -> mixed, "nsa" -> nsa, anything else is an InvalidArgument naming
// the value); safetensors by its __metadata__ "type" ("hashattention", "lsh"; absent or
// "nsa" -> nsa). Pure function; thread-safe.
Result<std::shared_ptr<const Adapter>> parse_adapter_document(std::string_view body, AdapterEncoding encoding,
                                                              const ModelShape& shape, const std::string& name);

// Bytes an adapter's parameters occupy in memory, for the resident budget.
size_t adapter_resident_bytes(const Adapter& adapter);

}  // namespace hotswap
