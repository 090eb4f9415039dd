// JSON on stdout for the CLI: one object, floats printed so float32 values round-trip.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

namespace hotswap::cli {

void print_json(const nlohmann::json& value);
// {"logits":[[...vocab] per position]} with %.9g numbers; streams, never builds a string
// of the whole matrix.
void print_logits_json(const std::vector<float>& logits, int vocab_size);

}  // namespace hotswap::cli
