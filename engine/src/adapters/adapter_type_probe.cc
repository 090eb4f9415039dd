#include "adapters/adapter_type_probe.h"

#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

#include <nlohmann/json.hpp>

namespace hotswap {
namespace {

// Each open container remembers how many keys of the path led to it (-1: off the path);
// a key that continues the path arms `pending_`, the next value event consumes it.
class PathProbe : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit PathProbe(std::initializer_list<std::string_view> path) : path_(path) {}
  ProbedString result;

  bool null() override { return scalar("null"); }
  bool boolean(bool v) override { return scalar(v ? "boolean true" : "boolean false"); }
  bool number_integer(number_integer_t v) override { return scalar("number " + std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return scalar("number " + std::to_string(v)); }
  bool number_float(number_float_t, const string_t& s) override { return scalar("number " + s.substr(0, 40)); }
  bool binary(binary_t&) override { return scalar("binary"); }
  bool string(string_t& v) override {
    if (!at_target()) return consumed();
    result.found = ProbedString::Found::kString;
    result.value = v;
    return false;
  }
  bool start_object(std::size_t) override { return open(true, "an object"); }
  bool start_array(std::size_t) override { return open(false, "an array"); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    const int level = levels_.empty() ? -1 : levels_.back();
    pending_ = level >= 0 && static_cast<size_t>(level) < path_.size() && k == path_[static_cast<size_t>(level)]
                   ? level + 1
                   : -1;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool at_target() const { return pending_ >= 0 && static_cast<size_t>(pending_) == path_.size(); }
  bool consumed() {
    pending_ = -1;
    return true;
  }
  bool scalar(std::string what) {
    if (!at_target()) return consumed();
    result.found = ProbedString::Found::kNotString;
    result.value = std::move(what);
    return false;
  }
  bool open(bool is_object, const char* what) {
    if (at_target()) return scalar(what);
    // The root object starts the path; an object under a matching key continues it.
    const int level = !is_object ? -1 : levels_.empty() ? 0 : pending_;
    levels_.push_back(level);
    pending_ = -1;
    return true;
  }
  bool close() {
    if (!levels_.empty()) levels_.pop_back();
    pending_ = -1;
    return true;
  }

  std::vector<std::string_view> path_;
  std::vector<int> levels_;
  int pending_ = -1;
};

}  // namespace

ProbedString probe_json_string(std::string_view json, std::initializer_list<std::string_view> path) {
  PathProbe probe(path);
  try {
    nlohmann::json::sax_parse(json.begin(), json.end(), &probe);
  } catch (const std::exception&) {  // errors arrive via parse_error; this is belt and braces
  }
  return probe.result;
}

ProbedString probe_safetensors_metadata_type(std::string_view bytes) {
  if (bytes.size() < 10) return {};
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);  // little-endian on every supported host
  if (header_len > bytes.size() - 8) return {};
  return probe_json_string(bytes.substr(8, static_cast<size_t>(header_len)), {"__metadata__", "type"});
}

}  // namespace hotswap
