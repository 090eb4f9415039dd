#include "cli/options.h"

#include <CLI/CLI.hpp>
#include <charconv>

namespace hotswap::cli {

CLI::Option* decimal(CLI::Option* option) {
  // A transform runs on the text before CLI11 converts it: check it, then hand CLI11 the
  // digits without leading zeros (its strtoll reads them in base 0).
  return option->transform(CLI::Validator(
      [](std::string& text) -> std::string {
        const size_t digits = !text.empty() && text[0] == '-' ? 1 : 0;
        if (text.size() == digits || text.find_first_not_of("0123456789", digits) != std::string::npos)
          return "must be an integer, got '" + text + "'";
        const size_t first = std::min(text.find_first_not_of('0', digits), text.size() - 1);
        text = (digits && text.substr(first) != "0" ? "-" : "") + text.substr(first);
        return "";
      },
      ""));
}

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = text.find(',', pos);
    const std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    int32_t id = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || id < 0)
      throw UsageError("option '--" + option + "' takes comma-separated non-negative token ids, got '" + item + "'");
    ids.push_back(id);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ids;
}

}  // namespace hotswap::cli
