// The attention implementation a request asks for (specs/attention.md, specs/api.md,
// specs/maskers.md): a registered implementation's name, or "auto", and the request's
// attention object, whose fields the implementation itself reads and checks.
#pragma once

#include <string>

namespace hotswap {

struct AttentionChoice {
  std::string impl = "auto";  // "auto" | "eager" | "streaming" | "mixed" | "nsa" | "masked"
  std::string params;         // the attention object as JSON text; empty when given by name
};

// Parses a name ("eager", or "\"eager\"") or a JSON object {"impl": ..., <fields>}: the name
// must be registered and the object's fields must satisfy the implementation. On failure
// returns false and sets *error to a message that names the field and the valid values.
bool parse_attention_choice(const std::string& text, AttentionChoice* out, std::string* error);

}  // namespace hotswap
