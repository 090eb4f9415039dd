// A read-only memory mapping of a whole file. Model weights stay in the page cache and are
// shared by every request; nothing is copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hotswap {

class MappedFile {
 public:
  // Throws LoadError naming the path if the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file; throws LoadError if it cannot.
std::string read_file(const std::string& path);

}  // namespace hotswap
