// Tokenizer for the Jinja2 template language, reproducing jinja2.lexer.Lexer with
// the options transformers uses: trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False, default delimiters, no line statements.
//
// Whitespace control is resolved here, exactly where jinja2 resolves it: `{%-`/`{{-`/
// `{#-` strip trailing whitespace of the text before the tag, `-%}`/`-}}`/`-#}` strip
// leading whitespace of the text after it, `{%+` disables lstrip_blocks, `+%}`
// disables trim_blocks. The parser therefore sees final text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hotswap::jinja {

struct Token {
  enum class Type {
    kData,           // literal template text (text)
    kVariableBegin,  // {{
    kVariableEnd,    // }}
    kBlockBegin,     // {%
    kBlockEnd,       // %}
    kName,           // identifier or keyword (text)
    kString,         // string literal, escapes decoded (text)
    kInteger,        // int_value
    kFloat,          // float_value
    kOperator,       // punctuation/operator (text), e.g. "(", "//", "=="
    kEof,
  };
  Type type;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;    // 1-based
  int column = 1;  // 1-based, in bytes

  bool is_op(std::string_view op) const { return type == Type::kOperator && text == op; }
  bool is_name(std::string_view name) const { return type == Type::kName && text == name; }
};

// Throws TemplateError(kSyntax) with line/column on malformed input.
std::vector<Token> tokenize(std::string_view source);

// Human-readable token description for syntax errors ("end of print statement", "'foo'").
std::string describe(const Token& token);

}  // namespace hotswap::jinja
