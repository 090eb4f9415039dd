// Python's json.dumps() over template Values, as transformers' `tojson` filter calls
// it: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
#pragma once

#include <optional>
#include <string>

#include "chat/template_value.h"

namespace hotswap::jinja {

struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line; else the per-level indent
  std::optional<std::string> item_separator;  // default ", " (one line) or "," (indented)
  std::optional<std::string> key_separator;   // default ": "
  bool sort_keys = false;
};

// Throws TemplateError for values JSON cannot represent (Undefined, namespaces,
// macros, dict keys that are not str/int/float/bool/None) like Python's TypeError.
std::string py_json_dumps(const Value& value, const JsonDumpOptions& options);

}  // namespace hotswap::jinja
