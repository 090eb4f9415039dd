#include "cli/cli_args.h"

#include <charconv>
#include <cstdio>

namespace hotswap::cli {

CliArgs& CliArgs::option(const std::string& name, const std::string& help, std::optional<std::string> fallback) {
  order_.push_back(name);
  specs_[name] = {help, false, std::move(fallback)};
  return *this;
}

CliArgs& CliArgs::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {help, true, std::nullopt};
  return *this;
}

bool CliArgs::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (arg.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + arg + "'");
    std::string name = arg.substr(2), value;
    bool has_inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline_value = true;
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) throw UsageError("unknown option '--" + name + "'");
    if (it->second.is_flag) {
      if (has_inline_value) throw UsageError("option '--" + name + "' takes no value");
      values_[name] = "1";
      continue;
    }
    if (!has_inline_value) {
      if (i + 1 >= argc) throw UsageError("option '--" + name + "' needs a value");
      value = argv[++i];
    }
    values_[name] = value;
  }
  return true;
}

bool CliArgs::has(const std::string& name) const {
  if (values_.count(name)) return true;
  auto it = specs_.find(name);
  return it != specs_.end() && it->second.fallback.has_value();
}

std::string CliArgs::get(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (auto it = specs_.find(name); it != specs_.end() && it->second.fallback) return *it->second.fallback;
  throw UsageError("missing required option '--" + name + "'");
}

std::string CliArgs::get_or(const std::string& name, const std::string& fallback) const {
  return has(name) ? get(name) : fallback;
}

int CliArgs::get_int(const std::string& name, int fallback) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  int out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size())
    throw UsageError("option '--" + name + "' must be an integer, got '" + v + "'");
  return out;
}

double CliArgs::get_double(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const std::string v = get(name);
  try {
    size_t used = 0;
    const double out = std::stod(v, &used);
    if (used == v.size()) return out;
  } catch (const std::exception&) {
  }
  throw UsageError("option '--" + name + "' must be a number, got '" + v + "'");
}

bool CliArgs::is_set(const std::string& flag) const { return values_.count(flag) != 0; }

std::string CliArgs::help() const {
  std::string out = "usage: hotswap " + command_ + " [options]\n" + summary_ + "\n\noptions:\n";
  for (const auto& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  --" + name + (s.is_flag ? "" : " VALUE");
    if (left.size() < 28) left.append(28 - left.size(), ' ');
    out += left + " " + s.help;
    if (s.fallback) out += " (default: " + *s.fallback + ")";
    out += "\n";
  }
  return out;
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
