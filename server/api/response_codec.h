// Response structs (api/schema.h) -> JSON text, written field by field so that OpenAI's
// shapes come out exactly: key order, nulls, parallel arrays. Invalid UTF-8 in any string
// (a model can emit it) becomes U+FFFD instead of failing the response. Thread-safe.
#pragma once

#include <string>

#include "api/schema.h"

namespace hotswap::server {

// Streaming with stream_options.include_usage: a chunk without usage says "usage": null.
struct ChunkJsonOptions {
  bool null_usage_when_absent = false;
};

std::string to_json(const Completion& completion, const ChunkJsonOptions& options = {});
std::string to_json(const ChatCompletion& completion, const ChunkJsonOptions& options = {});
std::string to_json(const ModelList& models);
std::string to_json(const HealthStatus& health);
std::string to_json(const ErrorBody& error);
std::string to_json(const AdapterInfo& adapter);  // an adapter's description
std::string to_json(const AdapterList& list);
std::string to_json(const AdapterDeleted& deleted);

}  // namespace hotswap::server
