#include "chat/template_lexer.h"

#include <algorithm>
#include <cstdio>
#include <tuple>

#include "chat/py_text.h"
#include "chat/template_error.h"

namespace hotswap::jinja {
namespace {

bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_ascii_digit(c); }
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// jinja2 splits the source on \r\n, \r and \n, rejoins with \n, and (without
// keep_trailing_newline) drops one trailing newline.
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string python_rstrip(std::string_view text) { return py_strip(text, std::nullopt, false, true); }

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') newlines_.push_back(i);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t tag = find_tag_start(pos_);
      if (tag == std::string::npos) {
        emit_data(src_.substr(pos_), pos_);
        pos_ = src_.size();
        break;
      }
      const char kind = src_[tag + 1];
      const char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      size_t raw_end = 0;
      const bool is_raw = kind == '%' && match_raw_begin(tag, raw_end);
      emit_data(strip_before_tag(src_.substr(pos_, tag - pos_), sign, kind == '{'), pos_);
      const size_t after_start = tag + 2 + (sign ? 1 : 0);
      if (is_raw) {
        lex_raw(raw_end);
      } else if (kind == '#') {
        lex_comment(tag, after_start);
      } else {
        lex_tag(kind == '%', tag, after_start);
      }
    }
    push(Token::Type::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void syntax_error(const std::string& message, size_t at) const {
    const auto [line, column] = position(at);
    throw TemplateError(TemplateError::Kind::kSyntax, message, line, column);
  }

  std::pair<int, int> position(size_t at) const {
    const auto it = std::lower_bound(newlines_.begin(), newlines_.end(), at);
    const int line = static_cast<int>(it - newlines_.begin()) + 1;
    const size_t line_start = it == newlines_.begin() ? 0 : *(it - 1) + 1;
    return {line, static_cast<int>(at - line_start) + 1};
  }

  void push(Token::Type type, std::string text, size_t at) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    std::tie(t.line, t.column) = position(at);
    tokens_.push_back(std::move(t));
  }

  void emit_data(std::string text, size_t at) {
    if (!text.empty()) push(Token::Type::kData, std::move(text), at);
  }

  bool starts_with(size_t at, std::string_view s) const {
    return at <= src_.size() && src_.compare(at, s.size(), s) == 0 && at + s.size() <= src_.size();
  }

  size_t skip_spaces(size_t at) const {
    while (size_t n = py_space_at(src_, at)) at += n;
    return at;
  }

  size_t find_tag_start(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // OptionalLStrip in jinja2's tokeniter: `-` strips all trailing whitespace; otherwise,
  // for block and comment tags, lstrip_blocks removes spaces/tabs between the last
  // line start and the tag.
  std::string strip_before_tag(std::string text, char sign, bool is_variable) const {
    if (sign == '-') return python_rstrip(text);
    if (sign == '+' || is_variable) return text;
    const size_t newline = text.rfind('\n');
    const size_t l_pos = newline == std::string::npos ? 0 : newline + 1;
    if (l_pos > 0 || line_starting_) {
      if (text.find_first_not_of(" \t", l_pos) == std::string::npos) text.resize(l_pos);
    }
    return text;
  }

  // `{%[-+]?\s*raw\s*(-%}\s*|%})` at `tag`; on success end = first index after it.
  bool match_raw_begin(size_t tag, size_t& end) const {
    size_t i = tag + 2;
    if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) ++i;
    i = skip_spaces(i);
    if (!starts_with(i, "raw")) return false;
    i = skip_spaces(i + 3);
    if (starts_with(i, "-%}")) {
      end = skip_spaces(i + 3);
      return true;
    }
    if (starts_with(i, "%}")) {
      end = i + 2;
      return true;
    }
    return false;
  }

  // Consumes a block/comment end suffix at `at` ("+%}", "-%}\s*" or "%}\n?") and
  // returns the position after it; sets line_starting_ as jinja2 does.
  size_t consume_block_end(size_t at, char close) {
    const std::string plus = std::string("+") + close + "}";
    const std::string minus = std::string("-") + close + "}";
    const std::string plain = std::string(1, close) + "}";
    size_t end;
    if (starts_with(at, plus)) {
      end = at + 3;
    } else if (starts_with(at, minus)) {
      end = skip_spaces(at + 3);
    } else {
      end = at + 2;
      if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
    }
    line_starting_ = end > 0 && src_[end - 1] == '\n';
    return end;
  }

  void lex_comment(size_t tag, size_t from) {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (starts_with(i, "+#}") || starts_with(i, "-#}") || starts_with(i, "#}")) {
        pos_ = consume_block_end(i, '#');
        return;
      }
    }
    syntax_error("Missing end of comment tag", tag);
  }

  void lex_raw(size_t from) {
    line_starting_ = from > 0 && src_[from - 1] == '\n';
    for (size_t i = src_.find("{%", from); i != std::string::npos; i = src_.find("{%", i + 1)) {
      size_t j = i + 2;
      const char sign = j < src_.size() && (src_[j] == '-' || src_[j] == '+') ? src_[j] : 0;
      if (sign) ++j;
      j = skip_spaces(j);
      if (!starts_with(j, "endraw")) continue;
      j = skip_spaces(j + 6);
      if (!(starts_with(j, "+%}") || starts_with(j, "-%}") || starts_with(j, "%}"))) continue;
      emit_data(strip_before_tag(src_.substr(from, i - from), sign, false), from);
      pos_ = consume_block_end(j, '%');
      return;
    }
    syntax_error("Missing end of raw directive", from);
  }

  void lex_tag(bool is_block, size_t tag, size_t from) {
    push(is_block ? Token::Type::kBlockBegin : Token::Type::kVariableBegin, "", tag);
    std::vector<char> balance;
    size_t i = from;
    while (true) {
      if (i >= src_.size()) {
        syntax_error(is_block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'",
                     i);
      }
      if (balance.empty()) {
        if (is_block && (starts_with(i, "+%}") || starts_with(i, "-%}") || starts_with(i, "%}"))) {
          push(Token::Type::kBlockEnd, "", i);
          pos_ = consume_block_end(i, '%');
          return;
        }
        if (!is_block && (starts_with(i, "-}}") || starts_with(i, "}}"))) {
          push(Token::Type::kVariableEnd, "", i);
          if (src_[i] == '-') {
            pos_ = skip_spaces(i + 3);
          } else {
            pos_ = i + 2;
          }
          line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
          return;
        }
      }
      if (const size_t n = py_space_at(src_, i)) {
        i += n;
        continue;
      }
      i = lex_operand_or_operator(i, balance);
    }
  }

  size_t lex_operand_or_operator(size_t i, std::vector<char>& balance) {
    const char c = src_[i];
    if (is_ascii_digit(c)) {
      if (const size_t end = match_float(i)) return end;
      return lex_integer(i);
    }
    if (is_name_start(c)) {
      size_t j = i + 1;
      while (j < src_.size() && is_name_char(src_[j])) ++j;
      push(Token::Type::kName, src_.substr(i, j - i), i);
      return j;
    }
    if (c == '\'' || c == '"') {
      if (const size_t end = lex_string(i)) return end;
    }
    static const char* const kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                             "]",  "(",  ")",  "{",  "}",  "<",  ">", "=", ".", ":", "|", ",", ";"};
    for (const char* op : kOperators) {
      if (!starts_with(i, op)) continue;
      const std::string text(op);
      if (text == "(" || text == "[" || text == "{") {
        balance.push_back(text == "(" ? ')' : text == "[" ? ']' : '}');
      } else if (text == ")" || text == "]" || text == "}") {
        if (balance.empty()) syntax_error("unexpected '" + text + "'", i);
        if (balance.back() != text[0])
          syntax_error("unexpected '" + text + "', expected '" + std::string(1, balance.back()) + "'", i);
        balance.pop_back();
      }
      push(Token::Type::kOperator, text, i);
      return i + text.size();
    }
    std::string ch;
    append_utf8(ch, decode_utf8(std::string_view(src_).substr(i, std::min<size_t>(4, src_.size() - i)))[0]);
    syntax_error("unexpected char " + py_repr_string(ch), i);
  }

  // (\d+_)*\d+ : digits with single underscores between groups. Returns the end or 0.
  size_t match_digits(size_t i) const {
    if (i >= src_.size() || !is_ascii_digit(src_[i])) return 0;
    size_t j = i;
    while (true) {
      while (j < src_.size() && is_ascii_digit(src_[j])) ++j;
      if (j + 1 < src_.size() && src_[j] == '_' && is_ascii_digit(src_[j + 1])) {
        ++j;
        continue;
      }
      return j;
    }
  }

  // jinja2 float_re; returns the end index or 0 when no float starts at i.
  size_t match_float(size_t i) {
    if (i > 0 && src_[i - 1] == '.') return 0;
    size_t j = match_digits(i);
    if (!j) return 0;
    size_t end = 0;
    size_t after_fraction = j;
    if (j < src_.size() && src_[j] == '.') {
      if (const size_t f = match_digits(j + 1)) after_fraction = f;
    }
    size_t k = after_fraction;
    if (k < src_.size() && (src_[k] == 'e' || src_[k] == 'E')) {
      size_t m = k + 1;
      if (m < src_.size() && (src_[m] == '+' || src_[m] == '-')) ++m;
      if (const size_t e = match_digits(m)) end = e;
    }
    if (!end && after_fraction != j) end = after_fraction;
    if (!end) return 0;
    std::string text;
    for (size_t p = i; p < end; ++p)
      if (src_[p] != '_') text.push_back(src_[p]);
    Token t;
    t.type = Token::Type::kFloat;
    t.text = src_.substr(i, end - i);
    t.float_value = std::strtod(text.c_str(), nullptr);
    std::tie(t.line, t.column) = position(i);
    tokens_.push_back(std::move(t));
    return end;
  }

  size_t lex_integer(size_t i) {
    int base = 10;
    size_t j = i;
    if (src_[i] == '0' && i + 1 < src_.size()) {
      const char p = static_cast<char>(src_[i + 1] | 0x20);
      if (p == 'b' || p == 'o' || p == 'x') {
        const int b = p == 'b' ? 2 : p == 'o' ? 8 : 16;
        size_t k = i + 2;
        size_t last_good = 0;
        while (k < src_.size()) {
          size_t d = k;
          if (src_[d] == '_') ++d;
          if (d < src_.size() && hex_digit(src_[d]) >= 0 && hex_digit(src_[d]) < b) {
            k = d + 1;
            last_good = k;
          } else {
            break;
          }
        }
        if (last_good) {
          base = b;
          j = last_good;
        }
      }
    }
    if (base == 10) {
      if (src_[i] == '0') {  // 0(_?0)*
        j = i + 1;
        while (true) {
          size_t d = j;
          if (d < src_.size() && src_[d] == '_') ++d;
          if (d < src_.size() && src_[d] == '0') {
            j = d + 1;
          } else {
            break;
          }
        }
      } else {  // [1-9](_?\d)*
        j = i + 1;
        while (true) {
          size_t d = j;
          if (d < src_.size() && src_[d] == '_') ++d;
          if (d < src_.size() && is_ascii_digit(src_[d])) {
            j = d + 1;
          } else {
            break;
          }
        }
      }
    }
    const size_t digits_from = base == 10 ? i : i + 2;
    uint64_t value = 0;
    for (size_t p = digits_from; p < j; ++p) {
      if (src_[p] == '_') continue;
      const uint64_t d = static_cast<uint64_t>(hex_digit(src_[p]));
      if (value > (static_cast<uint64_t>(INT64_MAX) - d) / static_cast<uint64_t>(base))
        syntax_error("integer literal out of the supported 64-bit range", i);
      value = value * static_cast<uint64_t>(base) + d;
    }
    Token t;
    t.type = Token::Type::kInteger;
    t.text = src_.substr(i, j - i);
    t.int_value = static_cast<int64_t>(value);
    std::tie(t.line, t.column) = position(i);
    tokens_.push_back(std::move(t));
    return j;
  }

  // A quoted string; escapes decoded like Python's "unicode-escape" codec after
  // jinja2's ascii/backslashreplace round trip. Returns the end index or 0.
  size_t lex_string(size_t i) {
    const char quote = src_[i];
    size_t j = i + 1;
    while (j < src_.size() && src_[j] != quote) j += src_[j] == '\\' ? 2 : 1;
    if (j >= src_.size()) return 0;
    std::string value;
    size_t k = i + 1;
    while (k < j) {
      if (src_[k] != '\\') {
        value.push_back(src_[k++]);
        continue;
      }
      const size_t esc = k;
      const char e = src_[k + 1];
      k += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int width = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int d = 0; d < width; ++d) {
            const int h = k + d < j ? hex_digit(src_[k + d]) : -1;
            if (h < 0) syntax_error("truncated \\" + std::string(1, e) + " escape in string literal", esc);
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          k += static_cast<size_t>(width);
          if (cp > 0x10FFFF) syntax_error("illegal Unicode character in string literal", esc);
          if (cp >= 0xD800 && cp <= 0xDFFF) syntax_error("surrogate code point in string literal", esc);
          append_utf8(value, cp);
          break;
        }
        case 'N':
          syntax_error("\\N{...} escapes are not supported", esc);
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int d = 0; d < 2 && k < j && src_[k] >= '0' && src_[k] <= '7'; ++d) cp = cp * 8 + (src_[k++] - '0');
            append_utf8(value, cp);
          } else if (static_cast<unsigned char>(e) >= 0x80) {
            // jinja2 first encodes the literal with ascii/backslashreplace, so a backslash
            // before a non-ASCII character ends up escaping the backslash of "\xe9".
            k = esc + 1;
            size_t cp_end = k;
            const char32_t cp = decode_utf8(std::string_view(src_).substr(k, std::min<size_t>(4, j - k)))[0];
            std::string enc;
            append_utf8(enc, cp);
            cp_end += enc.size();
            char buf[16];
            if (cp <= 0xFF) {
              std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
            } else if (cp <= 0xFFFF) {
              std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
            } else {
              std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
            }
            value += buf;
            k = cp_end;
          } else {
            value.push_back('\\');
            value.push_back(e);
          }
      }
    }
    Token t;
    t.type = Token::Type::kString;
    t.text = std::move(value);
    std::tie(t.line, t.column) = position(i);
    tokens_.push_back(std::move(t));
    return j + 1;
  }

  std::string src_;
  std::vector<size_t> newlines_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  bool line_starting_ = true;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(normalize_newlines(source)).run(); }

std::string describe(const Token& token) {
  switch (token.type) {
    case Token::Type::kData:
      return "template data";
    case Token::Type::kVariableBegin:
      return "begin of print statement";
    case Token::Type::kVariableEnd:
      return "end of print statement";
    case Token::Type::kBlockBegin:
      return "begin of statement block";
    case Token::Type::kBlockEnd:
      return "end of statement block";
    case Token::Type::kEof:
      return "end of template";
    case Token::Type::kString:
      return "string";
    case Token::Type::kInteger:
    case Token::Type::kFloat:
    case Token::Type::kName:
    case Token::Type::kOperator:
      break;
  }
  return token.text;
}

}  // namespace hotswap::jinja
