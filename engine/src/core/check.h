// Invariant checks: a failed HS_CHECK is a bug in Hotswap, never bad input. It logs the
// condition with context and aborts in every build type.
#pragma once

#include <sstream>
#include <string>

namespace hotswap::detail {

[[noreturn]] void check_failed(const char* file, int line, const char* condition, const std::string& message);

class CheckMessage {
 public:
  CheckMessage(const char* file, int line, const char* condition)
      : file_(file), line_(line), condition_(condition) {}
  [[noreturn]] ~CheckMessage() { check_failed(file_, line_, condition_, stream_.str()); }
  template <typename T>
  CheckMessage& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  const char* file_;
  int line_;
  const char* condition_;
  std::ostringstream stream_;
};

}  // namespace hotswap::detail

#define HS_CHECK(condition) \
  if (condition) {          \
  } else                    \
    ::hotswap::detail::CheckMessage(__FILE__, __LINE__, #condition)
