// Shared by the adapter registry tests: the base model shape, adapter documents built for
// it, and a temporary adapter directory that is deleted afterwards.
#pragma once

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/adapter_store.h"
#include "adapters/model_shape.h"

namespace hotswap::testing {

// L=4, H=8, Hkv=2, d=16, D=128.
inline ModelShape test_shape() {
  ModelShape s;
  s.num_layers = 4;
  s.num_heads = 8;
  s.num_kv_heads = 2;
  s.head_dim = 16;
  s.hidden_size = 128;
  s.model_name = "test/base-model";
  return s;
}

// A valid mixed adapter for test_shape(): one gate per KV head, values derived from `seed`
// so that different seeds give different documents and gates.
inline std::string mixed_doc(int seed, int num_layers = 4, int gates_per_layer = 2) {
  nlohmann::ordered_json dict = nlohmann::ordered_json::object();
  for (int l = 0; l < num_layers; ++l) {
    nlohmann::ordered_json gates = nlohmann::ordered_json::array();
    for (int g = 0; g < gates_per_layer; ++g) gates.push_back(std::fmod(0.137 * seed + 0.21 * l + 0.05 * g, 1.0));
    dict["model.layers." + std::to_string(l) + ".self_attn.adapter.weight"] = gates;
  }
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  doc["adapter_type"] = "mixed";
  doc["model_name"] = "test/base-model";
  doc["sink_window_size"] = 4;
  doc["recent_window_size"] = 16 + seed % 7;
  doc["block_size"] = 4;
  doc["adapter_weight_dict"] = dict;
  return doc.dump();
}

// A safetensors image: 8-byte little-endian header length, the header, the data.
inline std::string safetensors_image(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// The tensors of a valid nsa adapter for test_shape() with max_pool compression on both
// sides (no MLPs): name -> (shape, values). Values derive from `seed`.
struct TestTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
inline std::map<std::string, TestTensor> nsa_tensors(int seed) {
  const ModelShape m = test_shape();
  const int l = 4, mem = 1;
  std::map<std::string, TestTensor> out;
  auto make = [&](std::vector<int64_t> shape) {
    TestTensor t{std::move(shape), {}};
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    for (int64_t i = 0; i < n; ++i) t.data.push_back(static_cast<float>(((seed * 31 + i * 7) % 101) - 50) / 256.0f);
    return t;
  };
  for (int i = 0; i < m.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".self_attn.nsa.";
    out[p + "k_compress.pos_emb"] = make({m.num_kv_heads, l, m.head_dim});
    out[p + "v_compress.pos_emb"] = make({m.num_kv_heads, l, m.head_dim});
    out[p + "compress_mem_kv"] = make({2, m.num_kv_heads, mem, m.head_dim});
    out[p + "strategy_combiner.0.weight"] = make({3 * m.num_heads, m.hidden_size});
    out[p + "strategy_combiner.0.bias"] = make({3 * m.num_heads});
  }
  return out;
}

inline nlohmann::ordered_json nsa_config() {
  nlohmann::ordered_json c = nlohmann::ordered_json::object();
  c["adapter_type"] = "nsa";
  c["model_name"] = "test/base-model";
  c["compress_block_size"] = 4;
  c["compress_stride"] = 2;
  c["selection_block_size"] = 4;
  c["num_selected_blocks"] = 2;
  c["sliding_window_size"] = 8;
  c["k_compress"] = "max_pool";
  c["v_compress"] = "max_pool";
  c["num_mem_tokens"] = 1;
  c["compress_rope"] = "pre";
  return c;
}

inline std::string nsa_json_doc(int seed) {
  nlohmann::ordered_json doc = nsa_config();
  nlohmann::ordered_json dict = nlohmann::ordered_json::object();
  for (const auto& [name, t] : nsa_tensors(seed)) dict[name] = {{"shape", t.shape}, {"data", t.data}};
  doc["adapter_weight_dict"] = dict;
  return doc.dump();
}

// F32 safetensors; `poison` (if non-empty) is a tensor whose element 3 becomes NaN.
inline std::string nsa_safetensors_doc(int seed, const std::string& poison = "") {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"adapter_config", nsa_config().dump()}};
  std::string data;
  for (auto [name, t] : nsa_tensors(seed)) {
    if (name == poison) t.data[3] = std::nanf("");
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  return safetensors_image(header.dump(), data);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// file name -> contents, for "nothing stored changed" checks.
inline std::map<std::string, std::string> directory_contents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out[e.path().filename().string()] = e.is_regular_file() ? read_file(e.path().string()) : "<not a file>";
  }
  return out;
}

inline std::vector<std::string> temp_files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.starts_with(".") && f.ends_with(".tmp")) out.push_back(f);
  }
  return out;
}

// The temporary-file owner (AdapterStore's temp_file_owner()) of a process that has exited
// and been reaped: what a killed upload's temporary file names.
inline std::string dead_process_owner() {
  int fds[2];
  if (::pipe(fds) != 0) return "";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string owner = temp_file_owner();
    (void)!::write(fds[1], owner.data(), owner.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string owner;
  char buf[256];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) owner.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return owner;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hs_adapter_registry_XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) ? pattern : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace hotswap::testing
