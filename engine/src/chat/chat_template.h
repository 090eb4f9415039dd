// ChatTemplate: renders a model's own `chat_template` (the Jinja2 string in its
// tokenizer_config.json) byte-for-byte as Hugging Face transformers does, i.e. as
// jinja2's ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
// extensions=[loopcontrols]) with transformers' globals raise_exception(message)
// and strftime_now(format) and its `tojson` filter (json.dumps, ensure_ascii=False).
//
// Differences from jinja2 on CPython, all outside what chat templates do, and all
// covered by tests/unit/chat/expected.json where an output is involved:
//   * integers are 64-bit: overflow is a render error (Python's are unbounded);
//   * reprs that CPython prints with a memory address (generators, functions,
//     bound methods) print without it, e.g. "<generator object>";
//   * str.upper()/lower() use simple Unicode case mappings (plus 'ß');
//   * identifiers in the template must be ASCII; set operations on dict views,
//     str.format() and a few rarely used filters (groupby, wordwrap, ...) are
//     reported as unsupported; template inheritance/includes are rejected.
// compile() also folds constant expressions as jinja2's optimizer does, within a
// small fixed evaluation budget.
//
// Thread safety: a compiled ChatTemplate is immutable; render() may be called from
// any number of threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/status.h"

namespace hotswap {

namespace jinja {
struct Program;
}

// Bounds one render so that a hostile or broken template cannot exhaust the server.
struct RenderLimits {
  size_t max_output_bytes = 8u << 20;  // the prompt and every intermediate string
  int max_call_depth = 64;             // nested macro calls
  uint64_t max_steps = 20'000'000;     // evaluation steps (nodes, iterations, produced items)
};

class ChatTemplate {
 public:
  // Parses `source`. Syntax errors -> InvalidArgument "chat template syntax error at
  // line L, column C: ...". The source must be valid UTF-8.
  static Result<ChatTemplate> compile(std::string_view source);

  // Renders with `context` as the template variables, typically
  // {"messages": [...], "add_generation_prompt": bool, "bos_token": "...",
  //  "eos_token": "...", "tools": null, ...}. nlohmann::json objects iterate in sorted
  // key order, so dicts (and `tojson` output) have that order.
  //   raise_exception(msg) in the template -> InvalidArgument whose message is msg.
  //   other template errors (undefined attribute of undefined, type errors, ...)
  //     -> InvalidArgument "chat template error at line L: ...".
  //   a RenderLimits bound hit -> ResourceExhausted.
  Result<std::string> render(const nlohmann::json& context) const;
  Result<std::string> render(const nlohmann::json& context, const RenderLimits& limits) const;

 private:
  explicit ChatTemplate(std::shared_ptr<const jinja::Program> program) : program_(std::move(program)) {}

  std::shared_ptr<const jinja::Program> program_;
};

}  // namespace hotswap
