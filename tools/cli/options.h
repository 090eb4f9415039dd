// What the offline subcommands share about their command line. The parser is CLI11, one
// CLI::App for the binary (app/main.cc); each subcommand registers its options (commands.h).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace CLI {
class Option;
}

namespace hotswap::cli {

// A usage error found after parsing (a bad value, a missing choice): main() prints it and
// exits 2, as it does for CLI11's own parse errors.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Makes an integer option read its value as a plain decimal integer ("-12", "007"; not "+1",
// "0x10" or " 1"): CLI11 alone would read "010" as octal. Returns `option`.
CLI::Option* decimal(CLI::Option* option);

// "1,2,3" -> {1,2,3}; throws UsageError naming the option on anything else.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace hotswap::cli
