// What the engine says about an uploaded adapter (GET /v1/adapters, specs/api.md).
#pragma once

#include <cstdint>
#include <string>

namespace hotswap {

enum class AdapterEncoding { kJson, kSafetensors };

struct AdapterInfo {
  std::string name;
  std::string type;             // "mixed" | "nsa" | "hashattention" | "lsh"
  int layers = 0;
  std::string parameters_json;  // the adapter's configuration as a JSON object text
  int64_t bytes = 0;            // size of the uploaded document
  std::string sha256;           // hex digest of the uploaded bytes (the version)
  int64_t created = 0;          // unix seconds of this version's upload
  std::string description;      // one line for humans (incl. a model_name mismatch note)
  bool resident = false;        // parameters in memory now (else reloaded on next use)
};

struct AdapterPutResult {
  AdapterInfo info;
  bool created = false;         // false: an existing adapter was replaced
};

struct AdapterStats {
  int64_t resident = 0;         // adapters whose parameters are in memory
  int64_t resident_bytes = 0;
  int64_t registered = 0;
  int64_t loads_total = 0;      // parses: uploads, start-up and reloads after eviction
  int64_t evictions_total = 0;
  double last_upload_ms = 0;    // parse + validate + persist + swap of the last upload
};

}  // namespace hotswap
