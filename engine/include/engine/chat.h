// A chat message as the chat-template renderer receives it.
#pragma once

#include <string>

namespace hotswap {

struct ChatMessage {
  std::string role;     // "system" | "user" | "assistant" | ...
  std::string content;
};

}  // namespace hotswap
