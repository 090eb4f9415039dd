#include "chat/template_json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "chat/py_text.h"
#include "chat/template_error.h"

namespace hotswap::jinja {
namespace {

class JsonWriter {
 public:
  explicit JsonWriter(const JsonDumpOptions& options)
      : options_(options),
        item_separator_(options.item_separator.value_or(options.indent ? "," : ", ")),
        key_separator_(options.key_separator.value_or(": ")) {}

  void write(const Value& v, int level) {
    switch (v.kind()) {
      case Value::Kind::kNone:
        out_ += "null";
        return;
      case Value::Kind::kBool:
        out_ += v.as_bool() ? "true" : "false";
        return;
      case Value::Kind::kInt:
        out_ += std::to_string(v.as_int());
        return;
      case Value::Kind::kFloat:
        write_float(v.as_float());
        return;
      case Value::Kind::kString:
        write_string(v.str());
        return;
      case Value::Kind::kList:
        write_list(v.list(), level);
        return;
      case Value::Kind::kDict:
        write_dict(v.dict(), level);
        return;
      default:
        fail("Object of type " + type_name(v) + " is not JSON serializable");
    }
  }

  std::string take() { return std::move(out_); }

 private:
  void write_float(double d) {
    if (std::isnan(d)) {
      out_ += "NaN";
    } else if (std::isinf(d)) {
      out_ += d > 0 ? "Infinity" : "-Infinity";
    } else {
      out_ += py_float_repr(d);
    }
  }

  void write_string(const std::string& s) {
    char buf[16];
    out_.push_back('"');
    for (const char32_t cp : decode_utf8(s)) {
      switch (cp) {
        case '"':
          out_ += "\\\"";
          continue;
        case '\\':
          out_ += "\\\\";
          continue;
        case '\n':
          out_ += "\\n";
          continue;
        case '\r':
          out_ += "\\r";
          continue;
        case '\t':
          out_ += "\\t";
          continue;
        case '\b':
          out_ += "\\b";
          continue;
        case '\f':
          out_ += "\\f";
          continue;
        default:
          break;
      }
      if (cp < 0x20 || (options_.ensure_ascii && cp > 0x7E)) {
        if (cp > 0xFFFF) {  // a surrogate pair, as Python writes astral characters
          const char32_t v = cp - 0x10000;
          std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                        static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
        } else {
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
        }
        out_ += buf;
      } else {
        append_utf8(out_, cp);
      }
    }
    out_.push_back('"');
  }

  void newline(int level) {
    out_.push_back('\n');
    for (int i = 0; i < level; ++i) out_ += *options_.indent;
  }

  void write_list(const ListData& l, int level) {
    if (l.items.empty()) {
      out_ += "[]";
      return;
    }
    out_.push_back('[');
    if (options_.indent) newline(level + 1);
    for (size_t i = 0; i < l.items.size(); ++i) {
      if (i) {
        out_ += item_separator_;
        if (options_.indent) newline(level + 1);
      }
      write(l.items[i], level + 1);
    }
    if (options_.indent) newline(level);
    out_.push_back(']');
  }

  std::string key_text(const Value& k) {
    switch (k.kind()) {
      case Value::Kind::kString:
        return k.str();
      case Value::Kind::kFloat: {
        JsonWriter w(options_);
        w.write_float(k.as_float());
        return w.take();
      }
      case Value::Kind::kBool:
        return k.as_bool() ? "true" : "false";
      case Value::Kind::kNone:
        return "null";
      case Value::Kind::kInt:
        return std::to_string(k.as_int());
      default:
        fail("keys must be str, int, float, bool or None, not " + type_name(k));
    }
  }

  void write_dict(const DictData& d, int level) {
    if (d.size() == 0) {
      out_ += "{}";
      return;
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& e : d.entries()) entries.push_back(&e);
    if (options_.sort_keys) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const auto* a, const auto* b) { return py_compare(a->first, b->first) == -1; });
    }
    out_.push_back('{');
    if (options_.indent) newline(level + 1);
    bool first = true;
    for (const auto* e : entries) {
      if (!first) {
        out_ += item_separator_;
        if (options_.indent) newline(level + 1);
      }
      first = false;
      write_string(key_text(e->first));
      out_ += key_separator_;
      write(e->second, level + 1);
    }
    if (options_.indent) newline(level);
    out_.push_back('}');
  }

  const JsonDumpOptions& options_;
  std::string item_separator_;
  std::string key_separator_;
  std::string out_;
};

}  // namespace

std::string py_json_dumps(const Value& value, const JsonDumpOptions& options) {
  JsonWriter writer(options);
  writer.write(value, 0);
  return writer.take();
}

}  // namespace hotswap::jinja
