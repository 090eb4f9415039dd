// PCRE2-backed regular expressions with the semantics `tokenizers` gets from Oniguruma
// (Ruby syntax, UTF-8) for the patterns found in tokenizer.json files. Immutable after
// construction; find_all may be called from any number of threads at once.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;

namespace hotswap::tok {

class Regex {
 public:
  struct Match {
    size_t start;  // byte offsets into the searched text
    size_t end;
  };

  // Compiles an Oniguruma-syntax pattern. The escapes whose meaning differs between the two
  // engines (\s \S: Unicode White_Space; \h \H: hex digits; \w \W: Unicode word characters)
  // are rewritten to explicit classes first; ^ and $ are line anchors as in Ruby syntax.
  // Throws std::invalid_argument with PCRE2's message if the pattern does not compile.
  explicit Regex(std::string_view onig_pattern);
  // A regex matching `text` literally (what tokenizers builds for a {"String": ...} pattern).
  static Regex literal(std::string_view text);

  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex();

  // Non-overlapping matches left to right, as Oniguruma's find_iter yields them: after an
  // empty match, an empty match at the same position is skipped. `text` must be valid UTF-8.
  // A search PCRE2 gives up on (match or heap limit) ends the list early.
  std::vector<Match> find_all(std::string_view text) const;

 private:
  Regex(std::string pcre2_pattern, std::string original);

  std::string pattern_;  // as written in the tokenizer file, for messages
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
};

}  // namespace hotswap::tok
