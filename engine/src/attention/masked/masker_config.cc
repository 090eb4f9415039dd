#include "attention/masked/masker_config.h"

#include <array>
#include <boost/math/distributions/normal.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace hotswap::masked {
namespace {

using nlohmann::json;

constexpr std::string_view kPrefix = "attention 'masked': ";
constexpr const char* kValidTypes =
    "sink, local, causal, oracle_top_k, oracle_top_p, random_sampling, adaptive_sampling, hashattention_top_k, "
    "magic_pig, quest_top_k";

struct TypeInfo {
  const char* name;
  MaskerType type;
  std::array<const char*, 5> params;  // nullptr-terminated when shorter
};

constexpr std::array<TypeInfo, 10> kTypes = {{
    {"sink", MaskerType::kSink, {"sink_size"}},
    {"local", MaskerType::kLocal, {"window_size"}},
    {"causal", MaskerType::kCausal, {}},
    {"oracle_top_k", MaskerType::kOracleTopK, {"heavy_size"}},
    {"oracle_top_p", MaskerType::kOracleTopP, {"top_p"}},
    {"random_sampling", MaskerType::kRandomSampling, {"sampling_rate"}},
    {"adaptive_sampling",
     MaskerType::kAdaptiveSampling,
     {"base_rate_sampling", "epsilon", "delta", "init_offset", "local_offset"}},
    {"hashattention_top_k", MaskerType::kHashAttentionTopK, {"heavy_size"}},
    {"magic_pig", MaskerType::kMagicPig, {"lsh_l", "lsh_k", "center", "seed"}},
    {"quest_top_k", MaskerType::kQuestTopK, {"heavy_size", "page_size", "label_bits"}},
}};

const TypeInfo& info(MaskerType t) {
  for (const TypeInfo& i : kTypes)
    if (i.type == t) return i;
  return kTypes[2];
}

// "integer 3", "float 0.5", "string \"x\"", "boolean true", "null", "array", "object".
std::string describe(const json& v) {
  std::string text;
  switch (v.type()) {
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      text = "integer " + v.dump();
      break;
    case json::value_t::number_float:
      text = "float " + v.dump();
      break;
    case json::value_t::string:
      text = "string " + v.dump();
      break;
    case json::value_t::boolean:
      text = "boolean " + v.dump();
      break;
    case json::value_t::null:
      return "null";
    case json::value_t::array:
      return "array";
    case json::value_t::object:
      return "object";
    default:
      return "an unsupported value";
  }
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

std::string format_double(double d) {
  return json(d).dump();
}  // shortest round-trip, 1.0 keeps ".0"

std::string format_size(const Size& s) {
  return s.is_fraction ? format_double(s.fraction) : std::to_string(s.tokens);
}

Status invalid(std::string_view where, const std::string& what) {
  return Status::invalid_argument(std::string(kPrefix) + std::string(where) + what);
}

// Reads one masker's parameters; `where` is "maskers[i] (type): ".
class ParamReader {
 public:
  ParamReader(const json& m, std::string where) : m_(m), where_(std::move(where)) {}

  Status fail(const std::string& what) const { return invalid(where_, what); }

  // The parameter's JSON value, or a Status when it is missing or not a number (booleans are
  // not numbers here, whatever Python's bool-is-int says).
  Status number(const char* name, const json** out) const {
    auto it = m_.find(name);
    if (it == m_.end()) return fail(std::string(name) + " is required");
    if (!it->is_number()) return fail(std::string(name) + " must be a number, got " + describe(*it));
    if (it->is_number_float() && !std::isfinite(it->get<double>()))
      return fail(std::string(name) + " must be finite, got " + describe(*it));
    *out = &*it;
    return Status::ok();
  }

  Status size(const char* name, Size* out) const {
    const json* v = nullptr;
    if (Status s = number(name, &v); !s) return s;
    *out = Size{};
    if (v->is_number_float()) {
      out->is_fraction = true;
      out->fraction = v->get<double>();
    } else if (v->is_number_unsigned() &&
               v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return fail(std::string(name) + " must be at most " +
                  std::to_string(std::numeric_limits<int64_t>::max()) + ", got " + v->dump());
    } else {
      out->tokens = v->get<int64_t>();
    }
    return Status::ok();
  }

  // A float-valued parameter. `float_literal_only` rejects integer literals (oracle_top_p's
  // top_p, which the reference asserts is a Python float).
  Status real(const char* name, bool float_literal_only, double* out, const char* range_text) const {
    const json* v = nullptr;
    if (Status s = number(name, &v); !s) return s;
    if (float_literal_only && !v->is_number_float())
      return fail(std::string(name) + " must be a float literal in " + range_text +
                  " (e.g. 0.9 or 1.0), got " + describe(*v));
    *out = v->get<double>();
    return Status::ok();
  }

  // > 0 for a sink, window or heavy size.
  Status positive_size(const char* name, Size* out) const {
    if (Status s = size(name, out); !s) return s;
    const bool ok = out->is_fraction ? out->fraction > 0 : out->tokens > 0;
    if (!ok) return fail(std::string(name) + " must be > 0, got " + format_size(*out));
    return Status::ok();
  }

  // A float in [0, hi] (hi_open: [0, hi)) or an integer >= 0 (adaptive sampling's sizes).
  Status adaptive_size(const char* name, bool hi_open, Size* out) const {
    if (Status s = size(name, out); !s) return s;
    if (out->is_fraction) {
      const bool ok = out->fraction >= 0.0 && (hi_open ? out->fraction < 1.0 : out->fraction <= 1.0);
      if (!ok)
        return fail(std::string(name) + " must be in " + (hi_open ? "[0, 1)" : "[0, 1]") +
                    " when a fraction, got " + format_size(*out));
    } else if (out->tokens < 0) {
      return fail(std::string(name) + " must be >= 0 when an integer, got " + format_size(*out));
    }
    return Status::ok();
  }

  // An integer literal in [lo, hi]; `fallback` when absent (required when null).
  Status integer(const char* name, int64_t lo, int64_t hi, const int64_t* fallback, int64_t* out) const {
    auto it = m_.find(name);
    if (it == m_.end()) {
      if (fallback == nullptr) return fail(std::string(name) + " is required");
      *out = *fallback;
      return Status::ok();
    }
    if (!it->is_number_integer() && !it->is_number_unsigned())
      return fail(std::string(name) + " must be an integer, got " + describe(*it));
    // Non-negative literals parse as unsigned: compare those as unsigned (no wrap past int64).
    const bool in_range = it->is_number_unsigned()
                              ? it->get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                                    static_cast<int64_t>(it->get<uint64_t>()) >= lo
                              : it->get<int64_t>() >= lo && it->get<int64_t>() <= hi;
    if (!in_range)
      return fail(std::string(name) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                  it->dump());
    *out = it->get<int64_t>();
    return Status::ok();
  }

  Status boolean(const char* name, bool fallback, bool* out) const {
    auto it = m_.find(name);
    *out = fallback;
    if (it == m_.end()) return Status::ok();
    if (!it->is_boolean()) return fail(std::string(name) + " must be a boolean, got " + describe(*it));
    *out = it->get<bool>();
    return Status::ok();
  }

  Status open_unit(const char* name, double* out) const {
    if (Status s = real(name, false, out, "(0, 1)"); !s) return s;
    if (!(*out > 0.0 && *out < 1.0))
      return fail(std::string(name) + " must be in (0, 1), got " + format_double(*out));
    return Status::ok();
  }

 private:
  const json& m_;
  std::string where_;
};

Result<MaskerSpec> parse_masker(const json& m, size_t index) {
  const std::string at = "maskers[" + std::to_string(index) + "]";
  if (!m.is_object()) return invalid(at, " must be an object, got " + describe(m));
  auto type_it = m.find("type");
  if (type_it == m.end()) return invalid(at, ": missing 'type'; valid: " + std::string(kValidTypes));
  if (!type_it->is_string()) return invalid(at, ": type must be a string, got " + describe(*type_it));
  const std::string type_name = type_it->get<std::string>();

  const TypeInfo* ti = nullptr;
  for (const TypeInfo& i : kTypes)
    if (type_name == i.name) ti = &i;
  if (ti == nullptr) {
    std::string shown = type_name.size() > 64 ? type_name.substr(0, 61) + "..." : type_name;
    return invalid(at, ": unknown type '" + shown + "'; valid: " + kValidTypes);
  }

  const std::string where = at + " (" + type_name + "): ";
  ParamReader r(m, where);
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (it.key() == "type") continue;
    bool known = false;
    std::string valid;
    for (const char* p : ti->params) {
      if (p == nullptr) break;
      known = known || it.key() == p;
      valid += valid.empty() ? p : std::string(", ") + p;
    }
    if (!known) {
      std::string shown = it.key().size() > 64 ? it.key().substr(0, 61) + "..." : it.key();
      return r.fail("unknown parameter '" + shown + "'; " +
                    (valid.empty() ? std::string("it takes no parameters") : "valid: " + valid));
    }
  }

  MaskerSpec spec;
  spec.type = ti->type;
  switch (spec.type) {
    case MaskerType::kSink:
      if (Status s = r.positive_size("sink_size", &spec.size); !s) return s;
      break;
    case MaskerType::kLocal:
      if (Status s = r.positive_size("window_size", &spec.size); !s) return s;
      break;
    case MaskerType::kCausal:
      break;
    case MaskerType::kOracleTopK:
      if (Status s = r.positive_size("heavy_size", &spec.size); !s) return s;
      break;
    case MaskerType::kOracleTopP:
      // Decision: top_p must be a float literal, as the reference asserts
      // (isinstance(top_p, float)); 0 and 1 are rejected with a hint to write 0.0 / 1.0.
      if (Status s = r.real("top_p", true, &spec.top_p, "[0, 1]"); !s) return s;
      if (!(spec.top_p >= 0.0 && spec.top_p <= 1.0))
        return r.fail("top_p must be in [0, 1], got " + format_double(spec.top_p));
      break;
    case MaskerType::kRandomSampling:
      // Decision: the reference only range-checks sampling_rate, so the one integer in range
      // (1) is accepted and is the same masker as 1.0 (the key prints it as 1.0).
      if (Status s = r.real("sampling_rate", false, &spec.sampling_rate, "(0, 1]"); !s) return s;
      if (!(spec.sampling_rate > 0.0 && spec.sampling_rate <= 1.0))
        return r.fail("sampling_rate must be in (0, 1], got " + format_double(spec.sampling_rate));
      break;
    case MaskerType::kAdaptiveSampling:
      if (Status s = r.adaptive_size("base_rate_sampling", true, &spec.base_rate_sampling); !s) return s;
      if (Status s = r.open_unit("epsilon", &spec.epsilon); !s) return s;
      if (Status s = r.open_unit("delta", &spec.delta); !s) return s;
      if (Status s = r.adaptive_size("init_offset", false, &spec.init_offset); !s) return s;
      if (Status s = r.adaptive_size("local_offset", false, &spec.local_offset); !s) return s;
      spec.z = boost::math::quantile(boost::math::normal(), 1.0 - spec.delta);
      break;
    case MaskerType::kHashAttentionTopK:
      if (Status s = r.positive_size("heavy_size", &spec.size); !s) return s;
      break;
    case MaskerType::kMagicPig: {
      int64_t v = 0;
      if (Status s = r.integer("lsh_l", 1, kMaxLshTables, nullptr, &v); !s) return s;
      spec.lsh_l = static_cast<int>(v);
      if (Status s = r.integer("lsh_k", 1, kMaxLshBits, nullptr, &v); !s) return s;
      spec.lsh_k = static_cast<int>(v);
      if (Status s = r.boolean("center", true, &spec.center); !s) return s;
      // The reference seeds torch's generator with seed + layer_idx: any int64 that stays one.
      const int64_t fallback = 42;
      if (Status s = r.integer("seed", 0, std::numeric_limits<int64_t>::max() - (1 << 16), &fallback, &spec.seed); !s)
        return s;
      break;
    }
    case MaskerType::kQuestTopK: {
      if (Status s = r.positive_size("heavy_size", &spec.size); !s) return s;
      int64_t v = 0;
      if (Status s = r.integer("page_size", 1, kMaxQuestPageSize, nullptr, &v); !s) return s;
      spec.page_size = static_cast<int>(v);
      const int64_t fallback = 16;
      if (Status s = r.integer("label_bits", 1, 16, &fallback, &v); !s) return s;
      spec.label_bits = static_cast<int>(v);
      break;
    }
  }
  return spec;
}

}  // namespace

int64_t Size::resolve(int64_t sk) const {
  if (!is_fraction) return tokens;
  const double v = fraction * static_cast<double>(sk);
  if (!(v < 9.2e18)) return v > 0 ? std::numeric_limits<int64_t>::max() : 0;  // NaN cannot pass validation
  return static_cast<int64_t>(v);  // truncation toward zero, as Python's int()
}

const char* masker_type_name(MaskerType type) {
  return info(type).name;
}

bool is_sampling_masker(MaskerType type) {
  return type == MaskerType::kRandomSampling || type == MaskerType::kAdaptiveSampling || type == MaskerType::kMagicPig;
}

bool uses_request_seed(MaskerType type) {
  return type == MaskerType::kRandomSampling || type == MaskerType::kAdaptiveSampling;
}

bool keeps_key_summaries(MaskerType type) {
  return type == MaskerType::kHashAttentionTopK || type == MaskerType::kMagicPig || type == MaskerType::kQuestTopK;
}

const MaskerSpec* MaskedConfig::find(MaskerType type) const {
  for (const MaskerSpec& m : maskers)
    if (m.type == type) return &m;
  return nullptr;
}

std::string MaskedConfig::key() const {
  std::string k = R"({"impl":"masked","maskers":[)";
  for (size_t i = 0; i < maskers.size(); ++i) {
    const MaskerSpec& m = maskers[i];
    if (i > 0) k += ',';
    k += R"({"type":")";
    k += masker_type_name(m.type);
    k += '"';
    auto param = [&k](const char* name, const std::string& value) {
      k += ",\"";
      k += name;
      k += "\":";
      k += value;
    };
    switch (m.type) {
      case MaskerType::kSink:
        param("sink_size", format_size(m.size));
        break;
      case MaskerType::kLocal:
        param("window_size", format_size(m.size));
        break;
      case MaskerType::kCausal:
        break;
      case MaskerType::kOracleTopK:
        param("heavy_size", format_size(m.size));
        break;
      case MaskerType::kOracleTopP:
        param("top_p", format_double(m.top_p));
        break;
      case MaskerType::kRandomSampling:
        param("sampling_rate", format_double(m.sampling_rate));
        break;
      case MaskerType::kAdaptiveSampling:
        param("base_rate_sampling", format_size(m.base_rate_sampling));
        param("epsilon", format_double(m.epsilon));
        param("delta", format_double(m.delta));
        param("init_offset", format_size(m.init_offset));
        param("local_offset", format_size(m.local_offset));
        break;
      case MaskerType::kHashAttentionTopK:
        param("heavy_size", format_size(m.size));
        break;
      case MaskerType::kMagicPig:
        param("lsh_l", std::to_string(m.lsh_l));
        param("lsh_k", std::to_string(m.lsh_k));
        param("center", m.center ? "true" : "false");
        param("seed", std::to_string(m.seed));
        break;
      case MaskerType::kQuestTopK:
        param("heavy_size", format_size(m.size));
        param("page_size", std::to_string(m.page_size));
        param("label_bits", std::to_string(m.label_bits));
        break;
    }
    k += '}';
  }
  k += R"(],"sparse_prefill":)";
  k += sparse_prefill ? "true" : "false";
  k += R"(,"report_error":)";
  k += report_error ? "true" : "false";
  k += '}';
  return k;
}

Result<MaskedConfig> parse_masked_config(const json& attention) {
  if (!attention.is_object())
    return invalid("", "the attention value must be an object, got " + describe(attention));
  for (auto it = attention.begin(); it != attention.end(); ++it) {
    const std::string& f = it.key();
    if (f != "impl" && f != "maskers" && f != "sparse_prefill" && f != "report_error") {
      std::string shown = f.size() > 64 ? f.substr(0, 61) + "..." : f;
      return invalid("", "unknown field '" + shown + "'; valid: impl, maskers, sparse_prefill, report_error");
    }
  }
  if (auto it = attention.find("impl"); it != attention.end() && !(it->is_string() && *it == "masked"))
    return invalid("", "impl must be \"masked\", got " + describe(*it));

  MaskedConfig config;
  for (const char* flag : {"sparse_prefill", "report_error"}) {
    auto it = attention.find(flag);
    if (it == attention.end()) continue;
    if (!it->is_boolean()) return invalid("", std::string(flag) + " must be a boolean, got " + describe(*it));
    (std::string_view(flag) == "sparse_prefill" ? config.sparse_prefill : config.report_error) =
        it->get<bool>();
  }

  auto list = attention.find("maskers");
  if (list == attention.end()) return invalid("", "maskers is required (a non-empty list of maskers)");
  if (!list->is_array()) return invalid("", "maskers must be a list, got " + describe(*list));
  if (list->empty()) return invalid("", "maskers must not be empty");

  int sampling_index = -1;
  for (size_t i = 0; i < list->size(); ++i) {
    Result<MaskerSpec> spec = parse_masker((*list)[i], i);
    if (!spec) return spec.status();
    if (is_sampling_masker(spec->type)) {
      if (sampling_index >= 0)
        return invalid("maskers[" + std::to_string(i) + "] (" + masker_type_name(spec->type) + "): ",
                       "at most one sampling masker per list; maskers[" + std::to_string(sampling_index) +
                           "] (" + masker_type_name(config.maskers[sampling_index].type) +
                           ") is one already");
      sampling_index = static_cast<int>(i);
    }
    config.maskers.push_back(std::move(spec.value()));
  }
  return config;
}

}  // namespace hotswap::masked
