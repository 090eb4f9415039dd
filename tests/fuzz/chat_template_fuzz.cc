// libFuzzer target: ChatTemplate::compile and render must never crash, hang, leak or
// overflow the stack on any bytes. The input is the template source; if it contains a
// NUL byte, what follows it is tried as the JSON render context (else a fixed
// conversation is used). Tight RenderLimits keep every run short, and every failure
// must come back as a Status with a message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"

namespace {

const nlohmann::json& default_context() {
  static const nlohmann::json context = nlohmann::json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": " Hi \n<think>x</think> \"q\" 'é' "},
      {"role": "assistant", "content": "ok", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
      {"role": "tool", "content": "{\"r\": true}"}
    ],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
  })");
  return context;
}

void check(const hotswap::Status& status) {
  if (status.message().empty()) std::abort();  // every rejection must say why
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view source = input.substr(0, nul);

  const auto compiled = hotswap::ChatTemplate::compile(source);
  if (!compiled.is_ok()) {
    check(compiled.status());
    return 0;
  }

  nlohmann::json context = default_context();
  if (nul != std::string_view::npos) {
    nlohmann::json parsed = nlohmann::json::parse(input.substr(nul + 1), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) context = std::move(parsed);
  }

  hotswap::RenderLimits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_steps = 200'000;
  limits.max_call_depth = 32;
  const auto rendered = compiled.value().render(context, limits);
  if (!rendered.is_ok()) check(rendered.status());
  return 0;
}
