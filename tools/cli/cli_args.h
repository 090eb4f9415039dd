// A small command-line parser for the subcommands: `--name value` and `--flag` options,
// every option declared with its help text so `--help` and errors list them.
#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace hotswap::cli {

// A usage error: main() prints it with the command's help and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CliArgs {
 public:
  CliArgs(std::string command, std::string summary) : command_(std::move(command)), summary_(std::move(summary)) {}

  CliArgs& option(const std::string& name, const std::string& help, std::optional<std::string> fallback = std::nullopt);
  CliArgs& flag(const std::string& name, const std::string& help);

  // Parses argv[first..argc); returns false if --help was given (help already printed).
  bool parse(int argc, char** argv, int first);

  bool has(const std::string& name) const;
  std::string get(const std::string& name) const;  // throws UsageError if absent
  std::string get_or(const std::string& name, const std::string& fallback) const;
  int get_int(const std::string& name, int fallback) const;
  double get_double(const std::string& name, double fallback) const;
  bool is_set(const std::string& flag) const;
  std::string help() const;

 private:
  struct Spec {
    std::string help;
    bool is_flag = false;
    std::optional<std::string> fallback;
  };
  std::string command_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::string> values_;
};

// "1,2,3" -> {1,2,3}; throws UsageError naming the option on anything else.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option);

}  // namespace hotswap::cli
