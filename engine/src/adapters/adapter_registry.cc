#include "adapters/adapter_registry.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>

#include "adapters/mixed_adapter_codec.h"
#include "adapters/nsa_adapter_codec.h"
#include "adapters/sha256.h"
#include "core/check.h"

namespace hotswap {
namespace {

// Finds the top-level "adapter_type" without building a DOM, and stops as soon as it has
// its value (trainers write it first), so telling the types apart costs almost nothing
// even for a large nsa JSON document. Malformed JSON just ends the probe: the codec that
// then parses the document reports the error with its position.
class AdapterTypeProbe : public nlohmann::json_sax<nlohmann::json> {
 public:
  enum class Found { kNone, kString, kNotString };
  Found found = Found::kNone;
  std::string value;  // kString: the value; kNotString: what it was instead

  bool null() override { return scalar("null"); }
  bool boolean(bool v) override { return scalar(v ? "boolean true" : "boolean false"); }
  bool number_integer(number_integer_t v) override { return scalar("number " + std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return scalar("number " + std::to_string(v)); }
  bool number_float(number_float_t, const string_t& s) override { return scalar("number " + s.substr(0, 40)); }
  bool binary(binary_t&) override { return scalar("binary"); }
  bool string(string_t& v) override {
    if (!at_type_value()) return true;
    found = Found::kString;
    value = v;
    return false;
  }
  bool start_object(std::size_t) override { return open("an object"); }
  bool start_array(std::size_t) override { return open("an array"); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    next_is_type_ = depth_ == 1 && k == "adapter_type";
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool at_type_value() const { return depth_ == 1 && next_is_type_; }
  bool scalar(std::string what) {
    if (!at_type_value()) return true;
    found = Found::kNotString;
    value = std::move(what);
    return false;
  }
  bool open(const char* what) {
    if (at_type_value()) return scalar(what);
    ++depth_;
    next_is_type_ = false;
    return true;
  }
  bool close() {
    --depth_;
    next_is_type_ = false;
    return true;
  }

  int depth_ = 0;
  bool next_is_type_ = false;
};

AdapterTypeProbe probe_adapter_type(std::string_view json) {
  AdapterTypeProbe probe;
  try {
    nlohmann::json::sax_parse(json.begin(), json.end(), &probe);
  } catch (const std::exception&) {  // errors arrive via parse_error; this is belt and braces
  }
  return probe;
}

std::string quoted_prefix(std::string_view s) {
  constexpr size_t kMax = 60;
  std::string out = "'";
  for (char c : s.substr(0, kMax)) out += (static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  if (s.size() > kMax) out += "...";
  return out + "'";
}

// A validated nsa document -> Adapter. The nsa module describes its own parameters; the
// model_name note matches what mixed adapters say.
Result<std::shared_ptr<const Adapter>> nsa_to_adapter(Result<std::shared_ptr<const NsaAdapter>> parsed,
                                                      std::string_view body, const ModelShape& shape,
                                                      const std::string& name) {
  if (!parsed) return parsed.status();
  std::shared_ptr<const NsaAdapter> nsa = std::move(parsed).value();
  std::string description = "nsa adapter";
  if (!name.empty()) description += " '" + name + "'";
  description += ": " + nsa_adapter_description(*nsa);
  if (!nsa->model_name.empty() && !shape.model_name.empty() && nsa->model_name != shape.model_name) {
    description += " (differs from the base model '" + shape.model_name + "')";
  }
  const int num_layers = nsa->num_layers;
  std::string parameters = nsa_parameters_json(*nsa);
  return Adapter::make_nsa(name, sha256_hex(body), body.size(), std::move(nsa), num_layers, std::move(description),
                           std::move(parameters));
}

int64_t now_unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string not_registered(const std::string& name) { return "adapter '" + name + "' is not registered"; }

}  // namespace

Result<std::shared_ptr<const Adapter>> parse_adapter_document(std::string_view body, AdapterEncoding encoding,
                                                              const ModelShape& shape, const std::string& name) {
  if (encoding == AdapterEncoding::kSafetensors) {
    if (!body.empty() && body.front() == '{') {
      return Status::invalid_argument(
          "the body starts with '{' like a JSON document but was sent as safetensors; send adapter_weight.json "
          "documents as application/json");
    }
    return nsa_to_adapter(parse_nsa_adapter_safetensors(body, shape), body, shape, name);
  }
  if (looks_like_safetensors(body)) {
    return Status::invalid_argument(
        "the body is a safetensors file but was sent as JSON; send safetensors adapters as application/octet-stream");
  }
  const AdapterTypeProbe probe = probe_adapter_type(body);
  if (probe.found == AdapterTypeProbe::Found::kNotString) {
    return Status::invalid_argument("key 'adapter_type': expected the string 'mixed' or 'nsa', got " + probe.value);
  }
  if (probe.found == AdapterTypeProbe::Found::kString && probe.value == "nsa") {
    return nsa_to_adapter(parse_nsa_adapter_json(body, shape), body, shape, name);
  }
  if (probe.found == AdapterTypeProbe::Found::kString && probe.value != "mixed") {
    return Status::invalid_argument("key 'adapter_type': unknown adapter type " + quoted_prefix(probe.value) +
                                    "; expected 'mixed' or 'nsa'");
  }
  return parse_mixed_adapter(body, shape, name);
}

size_t adapter_resident_bytes(const Adapter& adapter) {
  size_t n = sizeof(Adapter);
  if (const auto& m = adapter.mixed()) n += sizeof(MixedAdapter) + m->gates.size() * sizeof(float);
  if (const auto& a = adapter.nsa()) n += sizeof(NsaAdapter) + a->num_parameters() * sizeof(float);
  return n;
}

AdapterRegistry::AdapterRegistry(ModelShape shape, std::string base_model_name, std::string adapter_dir,
                                 int64_t resident_budget_bytes)
    : shape_([&] {
        if (!base_model_name.empty()) shape.model_name = std::move(base_model_name);
        return std::move(shape);
      }()),
      store_(adapter_dir.empty() ? std::nullopt : std::optional<AdapterStore>(std::in_place, std::move(adapter_dir))),
      resident_budget_bytes_(resident_budget_bytes) {
  HS_CHECK(shape_.num_layers > 0 && shape_.num_kv_heads > 0 && shape_.num_heads % shape_.num_kv_heads == 0)
      << "invalid model shape L=" << shape_.num_layers << " H=" << shape_.num_heads << " Hkv=" << shape_.num_kv_heads;
}

std::mutex& AdapterRegistry::name_lock(const std::string& name) {
  return name_locks_[std::hash<std::string>{}(name) % name_locks_.size()];
}

int AdapterRegistry::load_directory() {
  if (!store_) return 0;
  const AdapterDirectoryScan scan = store_->scan();
  for (const std::string& path : scan.removed_temp_files) {
    spdlog::warn("event=adapter_temp_removed file={} reason=\"left by an upload that did not finish\"", path);
  }
  for (const std::string& why : scan.skipped) spdlog::warn("event=adapter_file_skipped reason=\"{}\"", why);
  int loaded = 0;
  for (const StoredAdapterFile& file : scan.adapters) {
    Result<std::string> bytes = store_->read(file.name, file.encoding);
    if (!bytes) {
      spdlog::warn("event=adapter_file_skipped file={} reason=\"{}\"", file.path, bytes.status().message());
      continue;
    }
    Result<std::shared_ptr<const Adapter>> parsed =
        parse_adapter_document(bytes.value(), file.encoding, shape_, file.name);
    if (!parsed) {
      spdlog::warn("event=adapter_file_skipped file={} reason=\"{}\"", file.path, parsed.status().message());
      continue;
    }
    std::lock_guard name_guard(name_lock(file.name));
    std::lock_guard guard(mu_);
    install_locked(file.name, std::move(parsed).value(), file.encoding, file.mtime_ns / 1'000'000'000);
    ++loads_total_;
    ++loaded;
  }
  spdlog::info("event=adapters_loaded dir={} loaded={} skipped={} temp_files_removed={}", store_->dir(), loaded,
               scan.skipped.size() + (scan.adapters.size() - static_cast<size_t>(loaded)),
               scan.removed_temp_files.size());
  return loaded;
}

Result<AdapterPutResult> AdapterRegistry::put(const std::string& name, std::string_view body,
                                              AdapterEncoding encoding) {
  const auto start = std::chrono::steady_clock::now();
  if (Status s = validate_adapter_name(name); !s) return s;
  // The expensive part, on the caller's thread with no lock held: uploads of different
  // names, and pins, proceed meanwhile.
  Result<std::shared_ptr<const Adapter>> parsed = parse_adapter_document(body, encoding, shape_, name);
  if (!parsed) return parsed.status();
  std::shared_ptr<const Adapter> adapter = std::move(parsed).value();

  const int64_t upload_ns = now_unix_ns();
  // Held across the file write so that the order of renames is the order of swaps.
  std::lock_guard name_guard(name_lock(name));
  if (store_) {
    if (Status s = store_->write(name, encoding, body, upload_ns); !s) {
      spdlog::error("event=adapter_persist_failed name={} error=\"{}\"", name, s.message());
      return s;
    }
  }
  std::lock_guard guard(mu_);
  const bool created = entries_.find(name) == entries_.end();
  install_locked(name, adapter, encoding, upload_ns / 1'000'000'000);
  ++loads_total_;
  last_upload_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  AdapterPutResult result{info_locked(entries_.at(name)), created};
  spdlog::info("event=adapter_put name={} type={} sha256={} bytes={} {} latency_ms={:.2f}", name,
               result.info.type, result.info.sha256, result.info.bytes, created ? "created" : "replaced",
               last_upload_ms_);
  return result;
}

Result<std::shared_ptr<const Adapter>> AdapterRegistry::pin(const std::string& name) {
  {
    std::lock_guard guard(mu_);
    const auto it = entries_.find(name);
    if (it == entries_.end()) {
      if (Status s = validate_adapter_name(name); !s) return s;
      return Status::not_found(not_registered(name));
    }
    if (it->second.adapter) {
      touch_locked(it->second);
      return it->second.adapter;
    }
  }
  return reload(name);
}

Result<std::shared_ptr<const Adapter>> AdapterRegistry::reload(const std::string& name) {
  HS_CHECK(store_.has_value()) << "adapter '" << name << "' was evicted without an adapter directory";
  std::lock_guard name_guard(name_lock(name));
  uint64_t sequence = 0;
  AdapterEncoding encoding = AdapterEncoding::kJson;
  std::string sha256;
  {
    std::lock_guard guard(mu_);
    const auto it = entries_.find(name);
    if (it == entries_.end()) return Status::not_found(not_registered(name));
    if (it->second.adapter) {  // another pin reloaded it while we waited for the name lock
      touch_locked(it->second);
      return it->second.adapter;
    }
    sequence = it->second.sequence;
    encoding = it->second.encoding;
    sha256 = it->second.info.sha256;
  }
  const std::string path = store_->path_of(name, encoding);
  const std::string failed = "adapter '" + name + "' was evicted from memory and cannot be reloaded from '" + path + "': ";
  Result<std::string> bytes = store_->read(name, encoding);
  if (!bytes) return Status::internal(failed + bytes.status().message());
  if (const std::string actual = sha256_hex(bytes.value()); actual != sha256) {
    return Status::internal(failed + "the file changed on disk (sha256 " + actual + ", registered " + sha256 + ")");
  }
  Result<std::shared_ptr<const Adapter>> parsed = parse_adapter_document(bytes.value(), encoding, shape_, name);
  if (!parsed) return Status::internal(failed + parsed.status().message());

  std::lock_guard guard(mu_);
  const auto it = entries_.find(name);
  // put and remove of this name need the name lock we hold.
  HS_CHECK(it != entries_.end() && it->second.sequence == sequence && !it->second.adapter)
      << "adapter '" << name << "' changed during its reload";
  make_resident_locked(name, it->second, std::move(parsed).value());
  ++loads_total_;
  evict_over_budget_locked();
  spdlog::info("event=adapter_reloaded name={} sha256={}", name, sha256);
  return it->second.adapter;
}

Result<AdapterInfo> AdapterRegistry::get(const std::string& name) const {
  std::lock_guard guard(mu_);
  const auto it = entries_.find(name);
  if (it != entries_.end()) return info_locked(it->second);
  if (Status s = validate_adapter_name(name); !s) return s;
  return Status::not_found(not_registered(name));
}

std::vector<AdapterInfo> AdapterRegistry::list() const {
  std::lock_guard guard(mu_);
  std::vector<AdapterInfo> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) out.push_back(info_locked(entry));
  return out;
}

Status AdapterRegistry::remove(const std::string& name) {
  if (Status s = validate_adapter_name(name); !s) return s;
  std::lock_guard name_guard(name_lock(name));
  {
    std::lock_guard guard(mu_);
    if (entries_.find(name) == entries_.end()) return Status::not_found(not_registered(name));
  }
  // File first: if it cannot be deleted the adapter stays registered and would come back
  // after a restart anyway, so report the failure instead of pretending.
  if (store_) {
    if (Status s = store_->remove(name); !s) {
      spdlog::error("event=adapter_remove_failed name={} error=\"{}\"", name, s.message());
      return s;
    }
  }
  std::lock_guard guard(mu_);
  const auto it = entries_.find(name);
  HS_CHECK(it != entries_.end()) << "adapter '" << name << "' vanished under its name lock";
  if (it->second.adapter) drop_resident_locked(it->second);
  entries_.erase(it);
  spdlog::info("event=adapter_removed name={}", name);
  return Status::ok();
}

AdapterStats AdapterRegistry::stats() const {
  std::lock_guard guard(mu_);
  AdapterStats s;
  s.resident = static_cast<int64_t>(lru_.size());
  s.resident_bytes = resident_bytes_;
  s.registered = static_cast<int64_t>(entries_.size());
  s.loads_total = loads_total_;
  s.evictions_total = evictions_total_;
  s.last_upload_ms = last_upload_ms_;
  return s;
}

void AdapterRegistry::install_locked(const std::string& name, std::shared_ptr<const Adapter> adapter,
                                     AdapterEncoding encoding, int64_t created_s) {
  Entry& entry = entries_[name];
  if (entry.adapter) drop_resident_locked(entry);
  entry.sequence = next_sequence_++;
  entry.encoding = encoding;
  entry.info = AdapterInfo{
      .name = name,
      .type = adapter_type_name(adapter->type()),
      .layers = adapter->num_layers(),
      .parameters_json = adapter->parameters_json(),
      .bytes = static_cast<int64_t>(adapter->source_bytes()),
      .sha256 = adapter->sha256(),
      .created = created_s,
      .description = adapter->description(),
      .resident = false,
  };
  make_resident_locked(name, entry, std::move(adapter));
  evict_over_budget_locked();
}

void AdapterRegistry::make_resident_locked(const std::string& name, Entry& entry,
                                           std::shared_ptr<const Adapter> adapter) {
  HS_CHECK(!entry.adapter) << "adapter '" << name << "' is already resident";
  entry.resident_bytes = adapter_resident_bytes(*adapter);
  entry.adapter = std::move(adapter);
  resident_bytes_ += static_cast<int64_t>(entry.resident_bytes);
  lru_.push_front(name);
  entry.lru = lru_.begin();
}

void AdapterRegistry::drop_resident_locked(Entry& entry) {
  HS_CHECK(entry.adapter) << "adapter '" << entry.info.name << "' is not resident";
  resident_bytes_ -= static_cast<int64_t>(entry.resident_bytes);
  lru_.erase(entry.lru);
  entry.adapter.reset();
  entry.resident_bytes = 0;
}

void AdapterRegistry::touch_locked(Entry& entry) { lru_.splice(lru_.begin(), lru_, entry.lru); }

void AdapterRegistry::evict_over_budget_locked() {
  if (!store_) return;  // nothing could be reloaded
  // From the least recently used end; the most recently used one always stays, since it
  // was just loaded to be used. A pinned adapter is skipped: dropping the registry's
  // reference would free nothing while a request holds it, and would force a second copy
  // on its next pin.
  for (auto it = lru_.end(); resident_bytes_ > resident_budget_bytes_ && it != lru_.begin();) {
    --it;
    if (it == lru_.begin()) break;
    Entry& entry = entries_.at(*it);
    if (entry.adapter.use_count() > 1) continue;
    const auto next = std::next(it);
    spdlog::debug("event=adapter_evicted name={} bytes={}", entry.info.name, entry.resident_bytes);
    drop_resident_locked(entry);
    ++evictions_total_;
    it = next;
  }
}

AdapterInfo AdapterRegistry::info_locked(const Entry& entry) const {
  AdapterInfo info = entry.info;
  info.resident = entry.adapter != nullptr;
  return info;
}

}  // namespace hotswap
