// Methods of str, list/tuple and dict values that templates call directly
// (message.content.strip(), content.split('</think>'), d.items(), d.get('k')).
// The ImmutableSandboxedEnvironment exposes every method that does not mutate;
// mutating ones (list.append, dict.update, ...) come back as an "unsafe" Undefined
// that fails when called, as jinja2's SecurityError does.
#include <algorithm>
#include <unordered_map>

#include "chat/py_text.h"
#include "chat/template_args.h"
#include "chat/template_builtins.h"
#include "chat/template_error.h"
#include "chat/template_interpreter.h"

namespace hotswap::jinja {
namespace {

using MethodFn = Value (*)(Interpreter&, const Value& self, CallArgs&);

Value str_result(const Value& self, std::string s, bool keeps_markup) {
  return Value::string(std::move(s), keeps_markup && self.is_markup());
}

// Python's optional (start, end) arguments of find/count/startswith, clamped like
// a slice; returns the code point range [lo, hi).
std::pair<size_t, size_t> sub_range(const BoundArgs& args, size_t first_index, size_t length) {
  auto bound = [&](size_t idx, int64_t fallback) {
    if (!args.has(idx) || args.get(idx).is_none()) return fallback;
    int64_t v = arg_int(args.get(idx), "slice index");
    if (v < 0) v = std::max<int64_t>(v + static_cast<int64_t>(length), 0);
    return std::min<int64_t>(v, static_cast<int64_t>(length));
  };
  const int64_t lo = bound(first_index, 0);
  const int64_t hi = bound(first_index + 1, static_cast<int64_t>(length));
  return {static_cast<size_t>(lo), static_cast<size_t>(std::max(lo, hi))};
}

bool cps_match_at(const CodePoints& hay, size_t pos, const CodePoints& needle) {
  if (pos + needle.size() > hay.size()) return false;
  return std::equal(needle.begin(), needle.end(), hay.begin() + static_cast<std::ptrdiff_t>(pos));
}

// ------------------------------------------------------------------ str

Value s_case(const Value& self, CallArgs& a, const char* name, std::string (*fn)(std::string_view)) {
  BoundArgs args(name, a, {}, {});
  return str_result(self, fn(self.str()), true);
}
Value s_upper(Interpreter&, const Value& self, CallArgs& a) { return s_case(self, a, "upper", py_upper); }
Value s_lower(Interpreter&, const Value& self, CallArgs& a) { return s_case(self, a, "lower", py_lower); }
Value s_title(Interpreter&, const Value& self, CallArgs& a) { return s_case(self, a, "title", py_title); }
Value s_capitalize(Interpreter&, const Value& self, CallArgs& a) {
  return s_case(self, a, "capitalize", py_capitalize);
}
Value s_swapcase(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("swapcase", a, {}, {});
  std::string out;
  for (const char32_t cp : decode_utf8(self.str()))
    append_utf8(out, is_upper_cp(cp) ? lower_cp(cp) : is_lower_cp(cp) ? upper_cp(cp) : cp);
  return str_result(self, std::move(out), true);
}

Value strip_impl(const Value& self, CallArgs& a, const char* name, bool left, bool right) {
  BoundArgs args(name, a, {"chars"}, {});
  std::optional<std::string> chars;
  if (args.has(0) && !args.get(0).is_none()) chars = arg_str(args.get(0), std::string(name) + " arg");
  return str_result(self, py_strip(self.str(), chars, left, right), true);
}
Value s_strip(Interpreter&, const Value& self, CallArgs& a) { return strip_impl(self, a, "strip", true, true); }
Value s_lstrip(Interpreter&, const Value& self, CallArgs& a) { return strip_impl(self, a, "lstrip", true, false); }
Value s_rstrip(Interpreter&, const Value& self, CallArgs& a) { return strip_impl(self, a, "rstrip", false, true); }

Value split_impl(Interpreter& interp, const Value& self, CallArgs& a, bool from_right) {
  BoundArgs args(from_right ? "rsplit" : "split", a, {"sep", "maxsplit"}, {});
  int64_t maxsplit = arg_int(args.get_or(1, Value::integer(-1)), "maxsplit");
  if (maxsplit < 0) maxsplit = INT64_MAX;
  const CodePoints cps = decode_utf8(self.str());
  std::vector<std::string> parts;
  if (!args.has(0) || args.get(0).is_none()) {
    // Runs of whitespace separate; leading/trailing whitespace yields no empty parts.
    if (!from_right) {
      size_t i = 0;
      while (true) {
        while (i < cps.size() && py_isspace(cps[i])) ++i;
        if (i >= cps.size()) break;
        if (static_cast<int64_t>(parts.size()) == maxsplit) {  // the rest keeps its trailing whitespace
          parts.push_back(encode_utf8(cps, i, cps.size()));
          break;
        }
        size_t j = i;
        while (j < cps.size() && !py_isspace(cps[j])) ++j;
        parts.push_back(encode_utf8(cps, i, j));
        i = j;
      }
    } else {
      size_t i = cps.size();
      while (true) {
        while (i > 0 && py_isspace(cps[i - 1])) --i;
        if (i == 0) break;
        if (static_cast<int64_t>(parts.size()) == maxsplit) {  // the rest keeps its leading whitespace
          parts.push_back(encode_utf8(cps, 0, i));
          break;
        }
        size_t j = i;
        while (j > 0 && !py_isspace(cps[j - 1])) --j;
        parts.push_back(encode_utf8(cps, j, i));
        i = j;
      }
      std::reverse(parts.begin(), parts.end());
    }
  } else {
    const CodePoints sep = decode_utf8(arg_str(args.get(0), "separator"));
    if (sep.empty()) fail("empty separator");
    if (!from_right) {
      size_t start = 0;
      size_t i = 0;
      int64_t splits = 0;
      while (i + sep.size() <= cps.size() && splits < maxsplit) {
        if (cps_match_at(cps, i, sep)) {
          parts.push_back(encode_utf8(cps, start, i));
          i += sep.size();
          start = i;
          ++splits;
        } else {
          ++i;
        }
      }
      parts.push_back(encode_utf8(cps, start, cps.size()));
    } else {
      size_t end = cps.size();
      size_t i = cps.size();
      int64_t splits = 0;
      while (i >= sep.size() && splits < maxsplit) {
        if (cps_match_at(cps, i - sep.size(), sep)) {
          parts.push_back(encode_utf8(cps, i, end));
          i -= sep.size();
          end = i;
          ++splits;
        } else {
          --i;
        }
      }
      parts.push_back(encode_utf8(cps, 0, end));
      std::reverse(parts.begin(), parts.end());
    }
  }
  interp.charge(parts.size());
  std::vector<Value> out;
  out.reserve(parts.size());
  for (std::string& p : parts) out.push_back(str_result(self, std::move(p), true));
  return Value::list(std::move(out));
}
Value s_split(Interpreter& i, const Value& self, CallArgs& a) { return split_impl(i, self, a, false); }
Value s_rsplit(Interpreter& i, const Value& self, CallArgs& a) { return split_impl(i, self, a, true); }

Value s_splitlines(Interpreter& interp, const Value& self, CallArgs& a) {
  BoundArgs args("splitlines", a, {"keepends"}, {});
  const bool keepends = truthy(args.get_or(0, Value::boolean(false)));
  const CodePoints cps = decode_utf8(self.str());
  std::vector<Value> out;
  size_t start = 0;
  size_t i = 0;
  while (i < cps.size()) {
    const char32_t c = cps[i];
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                     c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      ++i;
      continue;
    }
    const size_t eol = (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ? i + 2 : i + 1;
    out.push_back(Value::string(encode_utf8(cps, start, keepends ? eol : i)));
    i = eol;
    start = eol;
  }
  if (start < cps.size()) out.push_back(Value::string(encode_utf8(cps, start, cps.size())));
  interp.charge(out.size());
  return Value::list(std::move(out));
}

Value affix_impl(const Value& self, CallArgs& a, const char* name, bool at_start) {
  BoundArgs args(name, a, {"prefix", "start", "end"}, {.required = 1});
  const CodePoints cps = decode_utf8(self.str());
  const auto [lo, hi] = sub_range(args, 1, cps.size());
  std::vector<std::string> candidates;
  const Value& arg = args.get(0);
  if (arg.is_string()) {
    candidates.push_back(arg.str());
  } else if (arg.is_tuple()) {
    for (const Value& v : arg.list().items) candidates.push_back(arg_str(v, std::string(name) + " tuple item"));
  } else {
    fail(std::string(name) + " first arg must be str or a tuple of str, not " + type_name(arg));
  }
  for (const std::string& c : candidates) {
    const CodePoints needle = decode_utf8(c);
    if (needle.size() > hi - lo) continue;
    const size_t pos = at_start ? lo : hi - needle.size();
    if (cps_match_at(cps, pos, needle)) return Value::boolean(true);
  }
  return Value::boolean(false);
}
Value s_startswith(Interpreter&, const Value& self, CallArgs& a) { return affix_impl(self, a, "startswith", true); }
Value s_endswith(Interpreter&, const Value& self, CallArgs& a) { return affix_impl(self, a, "endswith", false); }

int64_t find_impl(const Value& self, CallArgs& a, const char* name, bool from_right) {
  BoundArgs args(name, a, {"sub", "start", "end"}, {.required = 1});
  const CodePoints cps = decode_utf8(self.str());
  const CodePoints needle = decode_utf8(arg_str(args.get(0), "must be str"));
  const auto [lo, hi] = sub_range(args, 1, cps.size());
  if (needle.size() > hi - lo) return -1;
  if (!from_right) {
    for (size_t i = lo; i + needle.size() <= hi; ++i)
      if (cps_match_at(cps, i, needle)) return static_cast<int64_t>(i);
  } else {
    for (size_t i = hi - needle.size() + 1; i-- > lo;)
      if (cps_match_at(cps, i, needle)) return static_cast<int64_t>(i);
  }
  return -1;
}
Value s_find(Interpreter&, const Value& self, CallArgs& a) { return Value::integer(find_impl(self, a, "find", false)); }
Value s_rfind(Interpreter&, const Value& self, CallArgs& a) { return Value::integer(find_impl(self, a, "rfind", true)); }
Value s_index(Interpreter&, const Value& self, CallArgs& a) {
  const int64_t i = find_impl(self, a, "index", false);
  if (i < 0) fail("substring not found");
  return Value::integer(i);
}
Value s_rindex(Interpreter&, const Value& self, CallArgs& a) {
  const int64_t i = find_impl(self, a, "rindex", true);
  if (i < 0) fail("substring not found");
  return Value::integer(i);
}

Value s_count(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("count", a, {"sub", "start", "end"}, {.required = 1});
  const CodePoints cps = decode_utf8(self.str());
  const CodePoints needle = decode_utf8(arg_str(args.get(0), "must be str"));
  const auto [lo, hi] = sub_range(args, 1, cps.size());
  if (needle.empty()) return Value::integer(static_cast<int64_t>(hi - lo) + 1);
  int64_t n = 0;
  for (size_t i = lo; i + needle.size() <= hi;) {
    if (cps_match_at(cps, i, needle)) {
      ++n;
      i += needle.size();
    } else {
      ++i;
    }
  }
  return Value::integer(n);
}

Value s_replace(Interpreter& interp, const Value& self, CallArgs& a) {
  BoundArgs args("replace", a, {"old", "new", "count"}, {.required = 2});
  const std::string& old_s = arg_str(args.get(0), "replace() argument 1");
  const std::string& new_s = arg_str(args.get(1), "replace() argument 2");
  int64_t count = arg_int(args.get_or(2, Value::integer(-1)), "count");
  if (count < 0) count = INT64_MAX;
  const std::string& s = self.str();
  std::string out;
  if (old_s.empty()) {
    // Python inserts `new` before every code point and at the end.
    const CodePoints cps = decode_utf8(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (done < count) {
        out += new_s;
        ++done;
      }
      if (i < cps.size()) append_utf8(out, cps[i]);
      interp.check_size(out.size());
    }
  } else {
    size_t pos = 0;
    int64_t done = 0;
    while (done < count) {
      const size_t hit = s.find(old_s, pos);  // UTF-8 substring search matches code point search
      if (hit == std::string::npos) break;
      out.append(s, pos, hit - pos);
      out += new_s;
      pos = hit + old_s.size();
      ++done;
      interp.check_size(out.size());
    }
    out.append(s, pos, std::string::npos);
  }
  return interp.make_string(std::move(out), self.is_markup());
}

Value s_join(Interpreter& interp, const Value& self, CallArgs& a) {
  BoundArgs args("join", a, {"iterable"}, {.required = 1});
  std::string out;
  size_t index = 0;
  for (const Value& item : iterate(args.get(0))) {
    if (!item.is_string())
      fail("sequence item " + std::to_string(index) + ": expected str instance, " + type_name(item) + " found");
    if (index++) out += self.str();
    out += item.str();
    interp.check_size(out.size());
  }
  return Value::string(std::move(out));
}

Value s_partition_impl(const Value& self, CallArgs& a, bool from_right) {
  BoundArgs args(from_right ? "rpartition" : "partition", a, {"sep"}, {.required = 1});
  const std::string& sep = arg_str(args.get(0), "separator");
  if (sep.empty()) fail("empty separator");
  const std::string& s = self.str();
  const size_t hit = from_right ? s.rfind(sep) : s.find(sep);
  if (hit == std::string::npos) {
    return from_right ? Value::list({Value::string(""), Value::string(""), Value::string(s)}, true)
                      : Value::list({Value::string(s), Value::string(""), Value::string("")}, true);
  }
  return Value::list({Value::string(s.substr(0, hit)), Value::string(sep), Value::string(s.substr(hit + sep.size()))},
                     true);
}
Value s_partition(Interpreter&, const Value& self, CallArgs& a) { return s_partition_impl(self, a, false); }
Value s_rpartition(Interpreter&, const Value& self, CallArgs& a) { return s_partition_impl(self, a, true); }

Value s_removeprefix(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("removeprefix", a, {"prefix"}, {.required = 1});
  const std::string& p = arg_str(args.get(0), "removeprefix() argument");
  const std::string& s = self.str();
  return Value::string(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
}

Value s_removesuffix(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("removesuffix", a, {"suffix"}, {.required = 1});
  const std::string& p = arg_str(args.get(0), "removesuffix() argument");
  const std::string& s = self.str();
  const bool ends = !p.empty() && s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
  return Value::string(ends ? s.substr(0, s.size() - p.size()) : s);
}

Value justify(Interpreter& interp, const Value& self, CallArgs& a, const char* name, int mode) {
  BoundArgs args(name, a, {"width", "fillchar"}, {.required = 1});
  const int64_t width = arg_int(args.get(0), "width");
  const std::string fill = args.has(1) ? arg_str(args.get(1), "fillchar") : " ";
  if (utf8_length(fill) != 1) fail("The fill character must be exactly one character long");
  const auto len = static_cast<int64_t>(utf8_length(self.str()));
  if (width <= len) return self;
  interp.check_size(static_cast<uint64_t>(width) * fill.size());
  const int64_t marg = width - len;
  int64_t left = 0;
  if (mode == 0) left = marg / 2 + (marg & width & 1);  // center
  if (mode == 2) left = marg;                           // rjust
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += self.str();
  for (int64_t i = 0; i < marg - left; ++i) out += fill;
  return str_result(self, std::move(out), true);
}
Value s_center(Interpreter& i, const Value& self, CallArgs& a) { return justify(i, self, a, "center", 0); }
Value s_ljust(Interpreter& i, const Value& self, CallArgs& a) { return justify(i, self, a, "ljust", 1); }
Value s_rjust(Interpreter& i, const Value& self, CallArgs& a) { return justify(i, self, a, "rjust", 2); }

Value s_zfill(Interpreter& interp, const Value& self, CallArgs& a) {
  BoundArgs args("zfill", a, {"width"}, {.required = 1});
  const int64_t width = arg_int(args.get(0), "width");
  const std::string& s = self.str();
  const auto len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return self;
  interp.check_size(static_cast<uint64_t>(width));
  const std::string zeros(static_cast<size_t>(width - len), '0');
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) return str_result(self, s.substr(0, 1) + zeros + s.substr(1), true);
  return str_result(self, zeros + s, true);
}

Value predicate(const Value& self, CallArgs& a, const char* name, bool (*pred)(char32_t)) {
  BoundArgs args(name, a, {}, {});
  const CodePoints cps = decode_utf8(self.str());
  if (cps.empty()) return Value::boolean(false);
  for (const char32_t cp : cps)
    if (!pred(cp)) return Value::boolean(false);
  return Value::boolean(true);
}
Value s_isdigit(Interpreter&, const Value& self, CallArgs& a) { return predicate(self, a, "isdigit", is_digit_cp); }
Value s_isalpha(Interpreter&, const Value& self, CallArgs& a) { return predicate(self, a, "isalpha", is_alpha_cp); }
Value s_isalnum(Interpreter&, const Value& self, CallArgs& a) {
  return predicate(self, a, "isalnum", [](char32_t cp) { return is_alpha_cp(cp) || is_digit_cp(cp); });
}
Value s_isspace(Interpreter&, const Value& self, CallArgs& a) { return predicate(self, a, "isspace", py_isspace); }
Value s_isupper(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("isupper", a, {}, {});
  bool cased = false;
  for (const char32_t cp : decode_utf8(self.str())) {
    if (is_lower_cp(cp)) return Value::boolean(false);
    cased |= is_upper_cp(cp);
  }
  return Value::boolean(cased);
}
Value s_islower(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("islower", a, {}, {});
  bool cased = false;
  for (const char32_t cp : decode_utf8(self.str())) {
    if (is_upper_cp(cp)) return Value::boolean(false);
    cased |= is_lower_cp(cp);
  }
  return Value::boolean(cased);
}

// ------------------------------------------------------------------ list / tuple

Value l_index(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("index", a, {"value"}, {.required = 1});
  const auto& items = self.list().items;
  for (size_t i = 0; i < items.size(); ++i)
    if (py_equal(items[i], args.get(0))) return Value::integer(static_cast<int64_t>(i));
  fail(to_repr(args.get(0)) + " is not in list");
}

Value l_count(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("count", a, {"value"}, {.required = 1});
  int64_t n = 0;
  for (const Value& v : self.list().items) n += py_equal(v, args.get(0));
  return Value::integer(n);
}

Value l_copy(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("copy", a, {}, {});
  return Value::list(self.list().items, self.is_tuple());
}

// ------------------------------------------------------------------ dict

Value d_get(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("get", a, {"key", "default"}, {.required = 1});
  if (const Value* v = self.dict().find(args.get(0))) return *v;
  return args.get_or(1, Value::none());
}

Value d_items(Interpreter& interp, const Value& self, CallArgs& a) {
  BoundArgs args("items", a, {}, {});
  std::vector<Value> out;
  for (const auto& [k, v] : self.dict().entries()) out.push_back(Value::list({k, v}, true));
  interp.charge(out.size());
  return Value::lazy(std::move(out), Value::LazyKind::kDictItems);
}

Value d_keys(Interpreter& interp, const Value& self, CallArgs& a) {
  BoundArgs args("keys", a, {}, {});
  std::vector<Value> out;
  for (const auto& entry : self.dict().entries()) out.push_back(entry.first);
  interp.charge(out.size());
  return Value::lazy(std::move(out), Value::LazyKind::kDictKeys);
}

Value d_values(Interpreter& interp, const Value& self, CallArgs& a) {
  BoundArgs args("values", a, {}, {});
  std::vector<Value> out;
  for (const auto& entry : self.dict().entries()) out.push_back(entry.second);
  interp.charge(out.size());
  return Value::lazy(std::move(out), Value::LazyKind::kDictValues);
}

Value d_copy(Interpreter&, const Value& self, CallArgs& a) {
  BoundArgs args("copy", a, {}, {});
  return Value::dict(self.dict());
}

// ------------------------------------------------------------------ tables

const std::unordered_map<std::string, MethodFn>& str_methods() {
  static const std::unordered_map<std::string, MethodFn> table = {
      {"capitalize", s_capitalize}, {"casefold", s_lower},      {"center", s_center},     {"count", s_count},
      {"endswith", s_endswith},     {"find", s_find},           {"index", s_index},       {"isalnum", s_isalnum},
      {"isalpha", s_isalpha},       {"isdecimal", s_isdigit},   {"isdigit", s_isdigit},   {"islower", s_islower},
      {"isnumeric", s_isdigit},     {"isspace", s_isspace},     {"isupper", s_isupper},   {"join", s_join},
      {"ljust", s_ljust},           {"lower", s_lower},         {"lstrip", s_lstrip},     {"partition", s_partition},
      {"removeprefix", s_removeprefix}, {"removesuffix", s_removesuffix}, {"replace", s_replace},
      {"rfind", s_rfind},           {"rindex", s_rindex},       {"rjust", s_rjust},       {"rpartition", s_rpartition},
      {"rsplit", s_rsplit},         {"rstrip", s_rstrip},       {"split", s_split},       {"splitlines", s_splitlines},
      {"startswith", s_startswith}, {"strip", s_strip},         {"swapcase", s_swapcase}, {"title", s_title},
      {"upper", s_upper},           {"zfill", s_zfill},
  };
  return table;
}

// Real Python str methods this engine does not implement: calling one is an error
// rather than silently behaving like a missing attribute.
bool is_unimplemented_str_method(const std::string& name) {
  static const char* const kNames[] = {"encode", "expandtabs", "format", "format_map", "isascii", "isidentifier",
                                       "isprintable", "istitle", "maketrans", "translate"};
  for (const char* n : kNames)
    if (name == n) return true;
  return false;
}

const std::unordered_map<std::string, MethodFn>& list_methods() {
  static const std::unordered_map<std::string, MethodFn> table = {
      {"index", l_index}, {"count", l_count}, {"copy", l_copy}};
  return table;
}

const std::unordered_map<std::string, MethodFn>& dict_methods() {
  static const std::unordered_map<std::string, MethodFn> table = {
      {"get", d_get}, {"items", d_items}, {"keys", d_keys}, {"values", d_values}, {"copy", d_copy}};
  return table;
}

Value bind(const Value& self, const std::string& name, MethodFn fn) {
  return Value::callable(
      {Callable::Type::kMethod, name, [self, fn](Interpreter& interp, CallArgs& args) { return fn(interp, self, args); }});
}

Value unsafe(const Value& self, const std::string& name) {
  return Value::unsafe("access to attribute '" + name + "' of '" + type_name(self) + "' object is unsafe.");
}

}  // namespace

Value method_attribute(const Value& self, const std::string& name) {
  if (self.is_string()) {
    const auto it = str_methods().find(name);
    if (it != str_methods().end()) return bind(self, name, it->second);
    if (is_unimplemented_str_method(name)) {
      return Value::callable({Callable::Type::kMethod, name, [name](Interpreter&, CallArgs&) -> Value {
                                fail("str." + name + "() is not supported by this template engine");
                              }});
    }
    return Value::undefined("'str object' has no attribute '" + name + "'");
  }
  if (self.is_list()) {
    const auto it = list_methods().find(name);
    if (it != list_methods().end() && !(self.is_tuple() && name == "copy")) return bind(self, name, it->second);
    static const char* const kMutating[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
    if (!self.is_tuple())
      for (const char* m : kMutating)
        if (name == m) return unsafe(self, name);
    return Value::undefined(std::string("'") + type_name(self) + " object' has no attribute '" + name + "'");
  }
  if (self.is_dict()) {
    const auto it = dict_methods().find(name);
    if (it != dict_methods().end()) return bind(self, name, it->second);
    static const char* const kMutating[] = {"clear", "pop", "popitem", "setdefault", "update"};
    for (const char* m : kMutating)
      if (name == m) return unsafe(self, name);
    if (name == "fromkeys") {
      return Value::callable({Callable::Type::kMethod, name, [](Interpreter&, CallArgs&) -> Value {
                                fail("dict.fromkeys() is not supported by this template engine");
                              }});
    }
    return Value::undefined("'dict object' has no attribute '" + name + "'");
  }
  return Value::undefined(std::string("'") + type_name(self) + " object' has no attribute '" + name + "'");
}

}  // namespace hotswap::jinja
