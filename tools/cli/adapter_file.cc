#include "cli/adapter_file.h"

#include <filesystem>

#include "adapters/adapter_registry.h"
#include "cli/options.h"
#include "core/mapped_file.h"

namespace hotswap::cli {
namespace fs = std::filesystem;

AdapterFile read_adapter_file(const std::string& file_or_dir) {
  AdapterFile f;
  f.path = file_or_dir;
  if (fs::is_directory(file_or_dir)) {
    f.path.clear();
    for (const char* name : {"adapter_weight.json", "adapter.safetensors", "adapter_model.safetensors"})
      if (fs::exists(fs::path(file_or_dir) / name)) {
        f.path = (fs::path(file_or_dir) / name).string();
        break;
      }
    if (f.path.empty())
      throw UsageError("--adapter: no adapter_weight.json or adapter.safetensors in directory '" + file_or_dir + "'");
  }
  if (!fs::is_regular_file(f.path)) throw UsageError("--adapter: no such file '" + f.path + "'");
  f.bytes = read_file(f.path);
  if (fs::path(f.path).extension() == ".safetensors") f.encoding = AdapterEncoding::kSafetensors;
  return f;
}

std::string engine_adapter_from_file(Engine& engine, const std::string& file_or_dir) {
  const AdapterFile f = read_adapter_file(file_or_dir);
  const std::string name = "cli-adapter";
  auto put = engine.put_adapter(name, f.bytes, f.encoding);
  if (!put) throw UsageError("--adapter " + f.path + ": " + put.status().message());
  return name;
}

Result<SequenceAttention> load_sequence_attention(const AttentionChoice& choice, const std::string& file_or_dir,
                                                  const ModelShape& shape) {
  std::shared_ptr<const Adapter> adapter;
  if (!file_or_dir.empty()) {
    const AdapterFile f = read_adapter_file(file_or_dir);
    auto parsed = parse_adapter_document(f.bytes, f.encoding, shape, "cli-adapter");
    if (!parsed) return Status::invalid_argument(f.path + ": " + parsed.status().message());
    adapter = parsed.value();
  }
  return resolve_attention(choice, std::move(adapter), shape);
}

}  // namespace hotswap::cli
