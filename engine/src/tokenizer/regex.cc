#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/uchar.h>
#include <unicode/uscript.h>

#include <cstdio>

#include <memory>
#include <stdexcept>
#include <utility>

#include "core/check.h"
#include "tokenizer/unicode_props.h"
#include "core/utf8.h"

namespace hotswap::tok {
namespace {

// Unicode White_Space, which is what Oniguruma's \s matches. PCRE2's UCP \s differs: it
// also takes U+180E (through \h).
constexpr std::string_view kSpaceClassBody =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
// The complement of White_Space as explicit ranges, so \S also works inside a class.
constexpr std::string_view kNonSpaceClassBody =
    R"(\x{0}-\x{8}\x{E}-\x{1F}\x{21}-\x{84}\x{86}-\x{9F}\x{A1}-\x{167F}\x{1681}-\x{1FFF})"
    R"(\x{200B}-\x{2027}\x{202A}-\x{202E}\x{2030}-\x{205E}\x{2060}-\x{2FFF}\x{3001}-\x{10FFFF})";
constexpr std::string_view kHexClassBody = "0-9a-fA-F";
constexpr std::string_view kNonHexClassBody = R"(\x{0}-\x{2F}\x{3A}-\x{40}\x{47}-\x{60}\x{67}-\x{10FFFF})";

std::string translate_property(std::string_view name, bool negated, bool in_class);
const std::string& word_class_body();

// Rewrites the escapes whose meaning differs between Oniguruma and PCRE2; everything else
// is copied as written.
std::string translate_pattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  size_t class_start = 0;  // index in `pattern` just past '[' or '[^'
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size() && (pattern[i + 1] == 'p' || pattern[i + 1] == 'P') &&
        i + 2 < pattern.size() && pattern[i + 2] == '{') {
      const size_t close = pattern.find('}', i + 3);
      if (close != std::string_view::npos) {
        out += translate_property(pattern.substr(i + 3, close - i - 3), pattern[i + 1] == 'P', in_class);
        i = close;
        continue;
      }
    }
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      if (e == 'd' || e == 'D') {
        // Unicode decimal digits in both engines; only the Unicode versions differ.
        out += translate_property("Nd", e == 'D', in_class);
        ++i;
        continue;
      }
      std::string_view body;
      bool negated = false;
      switch (e) {
        case 's': body = kSpaceClassBody; break;
        case 'S': body = kNonSpaceClassBody; break;
        case 'w': body = word_class_body(); break;
        case 'W': body = word_class_body(); negated = true; break;
        case 'h': body = kHexClassBody; break;
        case 'H': body = in_class ? kNonHexClassBody : kHexClassBody; negated = !in_class; break;
        default: break;
      }
      if (body.empty() || (in_class && negated)) {
        // A negated multi-property class cannot be spliced into another class; PCRE2's own
        // \W is the closest available meaning there.
        out += c;
        out += e;
      } else if (in_class) {
        out += body;
      } else {
        out += negated ? "[^" : "[";
        out += body;
        out += ']';
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      class_start = i + 1;
      if (class_start < pattern.size() && pattern[class_start] == '^') ++class_start;
    } else if (in_class && c == ']' && i != class_start) {
      in_class = false;
    }
    out += c;
  }
  return out;
}

// Oniguruma's Unicode tables are those of Unicode 16; PCRE2 10.42's are Unicode 14. Letters,
// marks, digits and punctuation assigned since are added to \p{...} classes explicitly:
// Unicode 15.0 from ICU's data, 15.1 and 16.0 (newer than ICU 72) from unicode_props.

// Code points ICU knows as assigned in Unicode 15.0 (after PCRE2's Unicode 14).
const std::vector<char32_t>& unicode15_code_points() {
  static const std::vector<char32_t> points = [] {
    std::vector<char32_t> out;
    for (UChar32 c = 0; c <= 0x10FFFF; ++c) {
      UVersionInfo age;
      u_charAge(c, age);
      if (age[0] == 15 && age[1] == 0) out.push_back(static_cast<char32_t>(c));
    }
    return out;
  }();
  return points;
}

void append_range(std::string& out, char32_t first, char32_t last) {
  char buffer[40];
  if (first == last) {
    std::snprintf(buffer, sizeof(buffer), "\\x{%X}", static_cast<unsigned>(first));
  } else {
    std::snprintf(buffer, sizeof(buffer), "\\x{%X}-\\x{%X}", static_cast<unsigned>(first),
                  static_cast<unsigned>(last));
  }
  out += buffer;
}

// Class members (no brackets) for the code points assigned after Unicode 14 that match
// `accepts`; `table_mask` selects the entries of ranges_added_after_unicode15().
template <typename Accepts>
std::string newer_members(Accepts&& accepts, uint32_t table_mask) {
  std::string out;
  const std::vector<char32_t>& points = unicode15_code_points();
  for (size_t i = 0; i < points.size();) {
    if (!accepts(points[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j + 1 < points.size() && points[j + 1] == points[j] + 1 && accepts(points[j + 1])) ++j;
    append_range(out, points[i], points[j]);
    i = j + 1;
  }
  for (const AssignedRange& r : ranges_added_after_unicode15()) {
    if ((r.categories & table_mask) == r.categories) append_range(out, r.first, r.last);
  }
  return out;
}

// \p{name} / \P{name}: for a general category, PCRE2's class plus the newer code points;
// a script name means Script in Oniguruma but Script_Extensions in PCRE2, so it becomes
// \p{sc:name} (plus Unicode 15.0's additions).
std::string translate_property(std::string_view name, bool negated, bool in_class) {
  const std::string plain = std::string(negated ? "\\P{" : "\\p{") + std::string(name) + "}";
  const bool caret = !name.empty() && name[0] == '^';
  const std::string bare(caret ? name.substr(1) : name);
  const bool negative = negated != caret;
  std::string core;
  std::string extra;
  const int32_t gc_mask = u_getPropertyValueEnum(UCHAR_GENERAL_CATEGORY_MASK, bare.c_str());
  const int32_t script = u_getPropertyValueEnum(UCHAR_SCRIPT, bare.c_str());
  if (gc_mask != UCHAR_INVALID_CODE) {
    const auto mask = static_cast<uint32_t>(gc_mask);
    const char* short_name =
        u_getPropertyValueName(UCHAR_GENERAL_CATEGORY_MASK, gc_mask, U_SHORT_PROPERTY_NAME);
    core = "\\p{" + std::string(short_name != nullptr ? short_name : bare.c_str()) + "}";
    extra = newer_members([mask](char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & mask) != 0; }, mask);
  } else if (script != UCHAR_INVALID_CODE) {
    core = "\\p{sc:" + bare + "}";
    extra = newer_members(
        [script](char32_t c) {
          UErrorCode status = U_ZERO_ERROR;
          return uscript_getScript(static_cast<UChar32>(c), &status) == script && U_SUCCESS(status);
        },
        0);
  } else {
    return plain;  // a binary property or something PCRE2 reads the same way
  }
  if (!negative) return in_class ? core + extra : "[" + core + extra + "]";
  // A negated class cannot be spliced into another class; the plain form is the closest.
  if (in_class) return plain;
  return "[^" + core + extra + "]";
}

// Oniguruma's \w: Alphabetic, marks, decimal digits and connector punctuation, plus the
// Latin-1 superscripts and fractions its single-byte table counts (PCRE2 10.42's UCP \w
// takes letters, numbers and underscore), plus what Unicode 15 and 16 added.
const std::string& word_class_body() {
  static const std::string body = [] {
    const uint32_t table_mask = U_GC_L_MASK | U_GC_M_MASK | U_GC_ND_MASK;
    return R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{B2}\x{B3}\x{B9}\x{BC}-\x{BE})" +
           newer_members(
               [](char32_t c) {
                 const auto cp = static_cast<UChar32>(c);
                 return u_hasBinaryProperty(cp, UCHAR_ALPHABETIC) ||
                        (U_GET_GC_MASK(cp) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
               },
               table_mask);
  }();
  return body;
}

std::string escape_literal(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) {
    const auto b = static_cast<unsigned char>(c);
    const bool plain = b >= 0x80 || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
                       b == '_' || b == ' ';
    if (plain) {
      out += c;
    } else if (b < 0x20 || b == 0x7F) {
      static const char kHex[] = "0123456789ABCDEF";
      out += "\\x{";
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
      out += '}';
    } else {
      out += '\\';
      out += c;
    }
  }
  return out;
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

}  // namespace

Regex::Regex(std::string_view onig_pattern) : Regex(translate_pattern(onig_pattern), std::string(onig_pattern)) {}

Regex Regex::literal(std::string_view text) { return Regex(escape_literal(text), std::string(text)); }

Regex::Regex(std::string pcre2_pattern, std::string original) : pattern_(std::move(original)) {
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  HS_CHECK(context != nullptr) << "pcre2_compile_context_create failed";
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern.data()), pcre2_pattern.size(),
                        PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NO_UTF_CHECK, &error_code, &error_offset,
                        context);
  pcre2_compile_context_free(context);
  if (code_ == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    throw std::invalid_argument("regex /" + pattern_ + "/ does not compile: " +
                                reinterpret_cast<const char*>(message) + " (at offset " +
                                std::to_string(error_offset) + " of the PCRE2 form /" + pcre2_pattern + "/)");
  }
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::Regex(Regex&& other) noexcept
    : pattern_(std::move(other.pattern_)), code_(std::exchange(other.code_, nullptr)), jit_(other.jit_) {}

Regex& Regex::operator=(Regex&& other) noexcept {
  if (this != &other) {
    if (code_ != nullptr) pcre2_code_free(code_);
    pattern_ = std::move(other.pattern_);
    code_ = std::exchange(other.code_, nullptr);
    jit_ = other.jit_;
  }
  return *this;
}

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(code_);
}

std::vector<Regex::Match> Regex::find_all(std::string_view text) const {
  std::vector<Match> matches;
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(pcre2_match_data_create_from_pattern(code_, nullptr));
  HS_CHECK(data != nullptr) << "pcre2_match_data_create_from_pattern failed";
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t search_from = 0;
  bool have_last_end = false;
  size_t last_end = 0;
  while (search_from <= text.size()) {
    uint32_t options = PCRE2_NO_UTF_CHECK;
    int rc = pcre2_match(code_, subject, text.size(), search_from, options, data.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && jit_) {
      // The interpreter keeps its backtracking frames on the heap, so it copes with
      // inputs that exhaust the JIT's fixed stack.
      options |= PCRE2_NO_JIT;
      rc = pcre2_match(code_, subject, text.size(), search_from, options, data.get(), nullptr);
    }
    if (rc < 0) break;  // no match, or PCRE2 gave up: the rest of the text stays unmatched
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t start = ovector[0];
    const size_t end = ovector[1];
    if (start == end && have_last_end && last_end == end) {
      // Oniguruma's iterator refuses an empty match where the previous match ended and
      // retries one character further on.
      if (search_from >= text.size()) break;
      search_from += utf8_sequence_length(static_cast<uint8_t>(text[search_from]));
      continue;
    }
    matches.push_back({start, end});
    have_last_end = true;
    last_end = end;
    search_from = end;
  }
  return matches;
}

}  // namespace hotswap::tok
