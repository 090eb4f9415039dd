#include "cli/json_output.h"

#include <cstdio>

namespace hotswap::cli {

void print_json(const nlohmann::json& value) {
  const std::string text = value.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

void print_logits_json(const std::vector<float>& logits, int vocab_size) {
  std::fputs("{\"logits\":[", stdout);
  const size_t rows = logits.size() / static_cast<size_t>(vocab_size);
  char buf[32];
  for (size_t r = 0; r < rows; ++r) {
    std::fputs(r ? ",[" : "[", stdout);
    for (int i = 0; i < vocab_size; ++i) {
      const int n = std::snprintf(buf, sizeof buf, i ? ",%.9g" : "%.9g", static_cast<double>(logits[r * vocab_size + i]));
      std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
    }
    std::fputc(']', stdout);
  }
  std::fputs("]}\n", stdout);
}

}  // namespace hotswap::cli
