// The one exception type of the template interpreter. It never leaves engine/src/chat:
// ChatTemplate::compile/render catch it and return a Status. Exceptions are used
// inside because errors surface deep in recursive parsing/evaluation, and unwinding
// through every level by hand would double the size of the interpreter.
#pragma once

#include <stdexcept>
#include <string>

namespace hotswap::jinja {

class TemplateError : public std::runtime_error {
 public:
  enum class Kind {
    kSyntax,   // compile time: the template text is not valid
    kRuntime,  // render time: what jinja2 raises as TypeError, UndefinedError, ...
    kRaised,   // the template called raise_exception(message)
    kLimit,    // render time: a RenderLimits bound was hit
    kNotConstant,  // constant folding only: the expression needs the render context
  };

  TemplateError(Kind kind, const std::string& message, int line = 0, int column = 0)
      : std::runtime_error(message), kind_(kind), line_(line), column_(column) {}

  Kind kind() const { return kind_; }
  int line() const { return line_; }      // 1-based; 0 = unknown
  int column() const { return column_; }  // 1-based; 0 = unknown
  void set_line_if_unknown(int line) {
    if (line_ == 0) line_ = line;
  }

 private:
  Kind kind_;
  int line_;
  int column_;
};

[[noreturn]] inline void fail(const std::string& message) {
  throw TemplateError(TemplateError::Kind::kRuntime, message);
}

}  // namespace hotswap::jinja
