// Load-time failures (model directory, tokenizer, adapter files): an exception that names
// the file and what in it was wrong. Only loaders throw it; main() and the adapter
// registry turn it into an exit code or a Status.
#pragma once

#include <stdexcept>
#include <string>

namespace hotswap {

class LoadError : public std::runtime_error {
 public:
  LoadError(const std::string& path, const std::string& what)
      : std::runtime_error(path.empty() ? what : path + ": " + what) {}
};

}  // namespace hotswap
