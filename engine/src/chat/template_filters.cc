// jinja2's builtin filters and tests (jinja2/filters.py, jinja2/tests.py, 3.1) with
// autoescape off, plus transformers' `tojson` override. Each follows the Python
// source closely, including its quirks ("42.5"|int == 42, default() only replacing
// Undefined unless boolean=true, join/replace returning plain str).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "chat/py_text.h"
#include "chat/template_args.h"
#include "chat/template_builtins.h"
#include "chat/template_error.h"
#include "chat/template_interpreter.h"
#include "chat/template_json.h"
#include "chat/template_operators.h"

namespace hotswap::jinja {
namespace {

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

// soft_str(): str() that keeps Markup as Markup.
Value soft_str(const Value& v) { return v.is_string() ? v : Value::string(to_str(v)); }

Value lower_if_str(const Value& v) { return v.is_string() ? Value::string(py_lower(v.str())) : v; }

// jinja2.filters.make_attrgetter: "a.b.0" walks getitem() part by part.
Value get_attribute_path(Interpreter& interp, Value item, const Value& attribute, const Value* default_value) {
  std::vector<Value> parts;
  if (attribute.is_string()) {
    size_t start = 0;
    const std::string& path = attribute.str();
    while (true) {
      const size_t dot = path.find('.', start);
      std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (digits && part.size() < 19) {
        parts.push_back(Value::integer(std::stoll(part)));
      } else {
        parts.push_back(Value::string(std::move(part)));
      }
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  } else {
    parts.push_back(attribute);
  }
  for (const Value& part : parts) {
    item = interp.get_item(item, part);
    if (default_value && item.is_undefined()) item = *default_value;
  }
  return item;
}

std::vector<Value> to_items(Interpreter& interp, const Value& v) {
  std::vector<Value> items = iterate(v);
  interp.charge(items.size());
  return items;
}

// Sort keys compared with Python's <, raising for mixed types.
void sort_values(std::vector<Value>& values, std::vector<Value>& keys, bool reverse) {
  std::vector<size_t> order(values.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return reverse ? py_compare(keys[b], keys[a]) == -1 : py_compare(keys[a], keys[b]) == -1;
  });
  std::vector<Value> sorted;
  sorted.reserve(values.size());
  for (const size_t i : order) sorted.push_back(values[i]);
  values = std::move(sorted);
}

// sorted(..., reverse=x) requires an int-like x.
bool arg_reverse(const BoundArgs& args, size_t index) {
  if (!args.has(index)) return false;
  const Value& r = args.get(index);
  if (!(r.is_int() || r.is_bool()))
    fail("'" + type_name(r) + "' object cannot be interpreted as an integer");
  return r.int_value() != 0;
}

std::optional<double> parse_py_float(std::string_view text) {
  std::string s = py_strip(text, std::nullopt, true, true);
  std::string cleaned;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {  // Python allows single underscores between digits
      if (i == 0 || i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return std::nullopt;
      continue;
    }
    cleaned.push_back(s[i]);
  }
  if (cleaned.empty()) return std::nullopt;
  std::string lower = py_lower(cleaned);
  const std::string_view body = lower[0] == '+' || lower[0] == '-' ? std::string_view(lower).substr(1) : lower;
  const bool negative = lower[0] == '-';
  if (body == "inf" || body == "infinity") return negative ? -INFINITY : INFINITY;
  if (body == "nan") return NAN;
  for (const char c : body)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(cleaned.c_str(), &end);
  if (end != cleaned.c_str() + cleaned.size()) return std::nullopt;
  return d;
}

// Python int(text, base) for base 0 or 2..36.
std::optional<int64_t> parse_py_int(std::string_view text, int64_t base) {
  std::string s = py_strip(text, std::nullopt, true, true);
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  auto has_prefix = [&](char p) {
    return i + 1 < s.size() && s[i] == '0' && (s[i + 1] | 0x20) == p;
  };
  if ((base == 16 || base == 0) && has_prefix('x')) {
    base = 16;
    i += 2;
  } else if ((base == 8 || base == 0) && has_prefix('o')) {
    base = 8;
    i += 2;
  } else if ((base == 2 || base == 0) && has_prefix('b')) {
    base = 2;
    i += 2;
  } else if (base == 0) {
    base = 10;
    if (i + 1 < s.size() && s[i] == '0') {  // base 0 rejects leading zeros like "012"
      for (size_t k = i; k < s.size(); ++k)
        if (s[k] != '0' && s[k] != '_') return std::nullopt;
    }
  }
  const bool prefixed = base != 10 && i >= 2 && (s[i - 1] | 0x20) >= 'a';
  if (base < 2 || base > 36 || i >= s.size()) return std::nullopt;
  uint64_t value = 0;
  const size_t first = i;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      // Single underscores between digits (or right after a base prefix).
      if ((i == first && !prefixed) || i + 1 >= s.size() || s[i + 1] == '_') return std::nullopt;
      continue;
    }
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
      d = (c | 0x20) - 'a' + 10;
    } else {
      return std::nullopt;
    }
    if (d >= base) return std::nullopt;
    const uint64_t limit = static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0);
    if (value > (limit - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base))
      fail("integer overflow: this interpreter's integers are 64-bit (Python's are unbounded)");
    value = value * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  return negative ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
}

// Python round(x, ndigits) for floats: correctly rounded (half-even on the exact
// binary value), which printf's %.*f also is.
double py_round(double x, int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  if (ndigits > 308) return x;
  if (ndigits < -308) return 0.0 * x;
  if (ndigits >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(ndigits), x);
    return std::strtod(buf, nullptr);
  }
  const double p = std::pow(10.0, static_cast<double>(-ndigits));
  return std::nearbyint(x / p) * p;
}

std::vector<std::string> py_splitlines(const std::string& s) {
  std::vector<std::string> lines;
  const CodePoints cps = decode_utf8(s);
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
    lines.push_back(encode_utf8(cps, start, i));
    i += (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ? 2 : 1;
    start = i;
  }
  if (start < cps.size()) lines.push_back(encode_utf8(cps, start, cps.size()));
  return lines;
}

// jinja2's map/select/reject/selectattr/rejectattr/items/unique are generator
// functions: their body, argument checks included, runs only when the result is
// consumed. Evaluated eagerly here, a runtime error is kept and raised by the first
// consumer, after the items produced before it.
template <typename Body>
Value generator_filter(Body&& body) {
  std::vector<Value> out;
  try {
    body(out);
  } catch (const TemplateError& e) {
    if (e.kind() != TemplateError::Kind::kRuntime) throw;
    return Value::failing_generator(std::move(out), e.what());
  }
  return Value::lazy(std::move(out), Value::LazyKind::kGenerator);
}

// ------------------------------------------------------------------ filters

Value f_abs(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("abs", a, {}, {});
  if (v.is_float()) return Value::number(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) {
    if (v.int_value() == INT64_MIN) fail("integer overflow");
    return Value::integer(std::llabs(v.int_value()));
  }
  fail("bad operand type for abs(): '" + type_name(v) + "'");
}

Value f_attr(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("attr", a, {"name"}, {.required = 1});
  const std::string& name = arg_str(args.get(0), "attribute name");
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_object()) {
    if (const Value* found = v.object().attributes.find(name)) return *found;
  } else if (v.is_string() || v.is_list() || v.is_dict()) {
    Value m = method_attribute(v, name);
    if (!m.is_undefined() || m.is_unsafe_undefined()) return m;
  }
  return Value::undefined(std::string("'") + type_name(v) + " object' has no attribute '" + name + "'");
}

Value f_capitalize(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("capitalize", a, {}, {});
  const Value s = soft_str(v);
  return Value::string(py_capitalize(s.str()), s.is_markup());
}

Value f_center(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("center", a, {"width"}, {});
  const int64_t width = arg_int(args.get_or(0, Value::integer(80)), "width");
  const Value s = soft_str(v);
  const auto len = static_cast<int64_t>(utf8_length(s.str()));
  if (width <= len) return s;
  interp.check_size(static_cast<uint64_t>(width));
  const int64_t marg = width - len;
  const int64_t left = marg / 2 + (marg & width & 1);  // CPython's centering rule
  return Value::string(std::string(static_cast<size_t>(left), ' ') + s.str() +
                           std::string(static_cast<size_t>(marg - left), ' '),
                       s.is_markup());
}

Value f_length(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("length", a, {}, {});
  return Value::integer(py_len(v));
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("default", a, {"default_value", "boolean"}, {});
  const bool boolean = truthy(args.get_or(1, Value::boolean(false)));
  if (v.is_undefined() || (boolean && !truthy(v))) return args.get_or(0, Value::string(""));
  return v;
}

Value f_dictsort(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("dictsort", a, {"case_sensitive", "by", "reverse"}, {});
  const bool case_sensitive = truthy(args.get_or(0, Value::boolean(false)));
  const Value by = args.get_or(1, Value::string("key"));
  const bool reverse = arg_reverse(args, 2);
  size_t pos;
  if (by.is_string() && by.str() == "key") {
    pos = 0;
  } else if (by.is_string() && by.str() == "value") {
    pos = 1;
  } else {
    fail("You can only sort by either \"key\" or \"value\"");
  }
  if (!v.is_dict()) fail(std::string("'") + type_name(v) + "' object has no attribute 'items'");
  std::vector<Value> items;
  std::vector<Value> keys;
  for (const auto& [k, val] : v.dict().entries()) {
    items.push_back(Value::list({k, val}, true));
    const Value& key = pos == 0 ? k : val;
    keys.push_back(case_sensitive ? key : lower_if_str(key));
  }
  interp.charge(items.size());
  sort_values(items, keys, reverse);
  return Value::list(std::move(items));
}

Value f_escape(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("escape", a, {}, {});
  if (v.is_markup()) return v;
  return interp.make_string(html_escape(to_str(v)), true);
}

Value f_forceescape(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("forceescape", a, {}, {});
  return interp.make_string(html_escape(to_str(v)), true);
}

Value f_first(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("first", a, {}, {});
  if (v.is_iterator()) {  // next(iter(seq)) advances the iterator by one
    if (std::optional<Value> item = next_item(v)) return *item;
    return Value::undefined("No first item, sequence was empty.");
  }
  if (v.is_list()) {
    if (v.list().items.empty()) return Value::undefined("No first item, sequence was empty.");
    return v.list().items.front();
  }
  std::vector<Value> items = to_items(interp, v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("last", a, {}, {});
  if (v.is_iterator()) fail(std::string("'") + type_name(v) + "' object is not reversible");
  if (v.is_list()) {
    if (v.list().items.empty()) return Value::undefined("No last item, sequence was empty.");
    return v.list().items.back();
  }
  std::vector<Value> items = to_items(interp, v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_float(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("float", a, {"default"}, {});
  const Value fallback = args.get_or(0, Value::number(0.0));
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_number()) return Value::number(v.float_value());
  if (v.is_string())
    if (const auto d = parse_py_float(v.str())) return Value::number(*d);
  return fallback;
}

Value f_format(Interpreter& interp, const Value& v, CallArgs& a) {
  if (!a.positional.empty() && !a.keyword.empty()) fail("can't handle positional and keyword arguments at the same time");
  Value format_args;
  if (!a.keyword.empty()) {
    DictData d;
    for (auto& [k, val] : a.keyword) d.set(Value::string(k), val);
    format_args = Value::dict(std::move(d));
  } else {
    format_args = Value::list(a.positional, true);
  }
  const Value s = soft_str(v);
  return interp.make_string(percent_format(interp, s.str(), format_args), s.is_markup());
}

Value f_indent(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("indent", a, {"width", "first", "blank"}, {});
  const Value width = args.get_or(0, Value::integer(4));
  const bool first = truthy(args.get_or(1, Value::boolean(false)));
  const bool blank = truthy(args.get_or(2, Value::boolean(false)));
  std::string indention;
  if (width.is_string()) {
    indention = width.str();
  } else {
    const int64_t n = arg_int(width, "width");
    interp.check_size(static_cast<uint64_t>(std::max<int64_t>(n, 0)));
    indention = std::string(static_cast<size_t>(std::max<int64_t>(n, 0)), ' ');
  }
  // do_indent works on the value itself (no str() conversion): only strings have lines.
  if (!v.is_string()) fail(std::string("'") + type_name(v) + "' object has no attribute 'splitlines'");
  const Value& s = v;
  std::vector<std::string> lines = py_splitlines(s.str() + "\n");
  interp.charge(lines.size());
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + indention;
      rv += lines[i];
      interp.check_size(rv.size());
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t i = 1; i < lines.size(); ++i) {
        if (i > 1) rv += "\n";
        if (!lines[i].empty()) rv += indention;
        rv += lines[i];
        interp.check_size(rv.size());
      }
    }
  }
  if (first) rv = indention + rv;
  return interp.make_string(std::move(rv), s.is_markup());
}

Value f_int(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("int", a, {"default", "base"}, {});
  const Value fallback = args.get_or(0, Value::integer(0));
  const Value base = args.get_or(1, Value::integer(10));
  // jinja2: int(value, base), on TypeError/ValueError int(float(value)), on any
  // failure of that (including OverflowError) the default.
  if (v.is_string()) {
    if (base.is_int() || base.is_bool())
      if (const auto i = parse_py_int(v.str(), base.int_value())) return Value::integer(*i);
    if (const auto d = parse_py_float(v.str())) {  // "42.23"|int == 42
      if (!std::isfinite(*d)) return fallback;
      if (std::fabs(*d) >= 9.2e18) fail("integer overflow: this interpreter's integers are 64-bit");
      return Value::integer(static_cast<int64_t>(*d));
    }
    return fallback;
  }
  if (v.is_int() || v.is_bool()) return Value::integer(v.int_value());
  if (v.is_float()) {
    if (std::isnan(v.as_float())) return fallback;
    if (std::isinf(v.as_float())) fail("cannot convert float infinity to integer");
    if (std::fabs(v.as_float()) >= 9.2e18) fail("integer overflow: this interpreter's integers are 64-bit");
    return Value::integer(static_cast<int64_t>(v.as_float()));
  }
  if (v.is_undefined()) fail_undefined(v);
  return fallback;
}

Value f_items(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("items", a, {}, {});
  return generator_filter([&](std::vector<Value>& out) {
    if (v.is_undefined()) return;
    if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
    for (const auto& [k, val] : v.dict().entries()) out.push_back(Value::list({k, val}, true));
    interp.charge(out.size());
  });
}

Value f_join(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("join", a, {"d", "attribute"}, {});
  const std::string sep = to_str(args.get_or(0, Value::string("")));
  std::vector<Value> items = to_items(interp, v);
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += to_str(args.has(1) && !args.get(1).is_none() ? get_attribute_path(interp, items[i], args.get(1), nullptr)
                                                         : items[i]);
    interp.check_size(out.size());
  }
  return Value::string(std::move(out));
}

Value f_list(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("list", a, {}, {});
  return Value::list(to_items(interp, v));
}

Value f_lower(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("lower", a, {}, {});
  const Value s = soft_str(v);
  return Value::string(py_lower(s.str()), s.is_markup());
}

Value f_upper(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("upper", a, {}, {});
  const Value s = soft_str(v);
  return Value::string(py_upper(s.str()), s.is_markup());
}

Value f_map(Interpreter& interp, const Value& v, CallArgs& a) {
  return generator_filter([&](std::vector<Value>& out) {
    if (!truthy(v)) return;
    std::optional<Value> attribute;
    std::optional<Value> default_value;
    if (a.positional.empty()) {
      for (const auto& [k, val] : a.keyword) {
        if (k == "attribute") {
          attribute = val;
        } else if (k == "default") {
          default_value = val;
        }
      }
      if (!attribute) fail("map requires a filter argument");
      for (const auto& [k, val] : a.keyword)
        if (k != "attribute" && k != "default") fail("Unexpected keyword argument '" + k + "'");
    }
    for (const Value& item : to_items(interp, v)) {
      if (attribute) {
        out.push_back(get_attribute_path(interp, item, *attribute, default_value ? &*default_value : nullptr));
        continue;
      }
      CallArgs rest;
      rest.positional.assign(a.positional.begin() + 1, a.positional.end());
      rest.keyword = a.keyword;
      out.push_back(interp.apply_filter(arg_str(a.positional[0], "filter name"), item, rest, 0));
    }
  });
}

Value min_max(Interpreter& interp, const Value& v, CallArgs& a, bool want_max, const char* name) {
  BoundArgs args(name, a, {"case_sensitive", "attribute"}, {});
  const bool case_sensitive = truthy(args.get_or(0, Value::boolean(false)));
  std::vector<Value> items = to_items(interp, v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& item) {
    Value k = args.has(1) && !args.get(1).is_none() ? get_attribute_path(interp, item, args.get(1), nullptr) : item;
    return case_sensitive ? k : lower_if_str(k);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    const int c = py_compare(k, best_key);
    if (want_max ? c == 1 : c == -1) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

Value f_max(Interpreter& interp, const Value& v, CallArgs& a) { return min_max(interp, v, a, true, "max"); }
Value f_min(Interpreter& interp, const Value& v, CallArgs& a) { return min_max(interp, v, a, false, "min"); }

// select/reject/selectattr/rejectattr share jinja2's select_or_reject.
Value select_or_reject(Interpreter& interp, const Value& v, CallArgs& a, bool select, bool by_attr) {
  return generator_filter([&](std::vector<Value>& out) {
    if (!truthy(v)) return;
    std::vector<Value> rest = a.positional;
    Value attribute;
    if (by_attr) {
      if (rest.empty()) fail("Missing parameter for attribute name");
      attribute = rest.front();
      rest.erase(rest.begin());
    }
    std::optional<std::string> test;
    if (!rest.empty()) {
      test = arg_str(rest.front(), "test name");
      rest.erase(rest.begin());
    }
    for (const Value& item : to_items(interp, v)) {
      const Value subject = by_attr ? get_attribute_path(interp, item, attribute, nullptr) : item;
      bool passed;
      if (test) {
        CallArgs test_args;
        test_args.positional = rest;
        test_args.keyword = a.keyword;
        passed = interp.apply_test(*test, subject, test_args);
      } else {
        passed = truthy(subject);
      }
      if (passed == select) out.push_back(item);
    }
  });
}

Value f_select(Interpreter& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, true, false); }
Value f_reject(Interpreter& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, false, false); }
Value f_selectattr(Interpreter& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, true, true); }
Value f_rejectattr(Interpreter& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, false, true); }

Value f_replace(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("replace", a, {"old", "new", "count"}, {.required = 2});
  CallArgs method_args;
  method_args.positional = {Value::string(to_str(args.get(0))), Value::string(to_str(args.get(1)))};
  if (args.has(2) && !args.get(2).is_none()) method_args.positional.push_back(args.get(2));
  Value method = method_attribute(Value::string(to_str(v)), "replace");
  return interp.call(method, method_args);
}

Value f_reverse(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("reverse", a, {}, {});
  if (v.is_string()) {
    CodePoints cps = decode_utf8(v.str());
    std::reverse(cps.begin(), cps.end());
    return Value::string(encode_utf8(cps), v.is_markup());
  }
  // reversed(value) when Python can (an iterator), else list(value) reversed.
  const bool reversible = v.is_list() || v.is_dict() || v.is_undefined() || (v.is_lazy() && !v.is_iterator());
  std::vector<Value> items = to_items(interp, v);
  std::reverse(items.begin(), items.end());
  if (reversible) return Value::lazy(std::move(items), Value::LazyKind::kReverseIterator);
  return Value::list(std::move(items));
}

Value f_round(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("round", a, {"precision", "method"}, {});
  const int64_t precision = arg_int(args.get_or(0, Value::integer(0)), "precision");
  const Value method = args.get_or(1, Value::string("common"));
  const std::string m = method.is_string() ? method.str() : "";
  if (m != "common" && m != "ceil" && m != "floor") fail("method must be common, ceil or floor");
  if (!v.is_number()) fail("type " + type_name(v) + " doesn't define __round__ method");
  if (m == "common") {
    if (v.is_float()) return Value::number(py_round(v.as_float(), precision));
    if (precision >= 0) return Value::integer(v.int_value());
    // round(int, -n): to a multiple of 10**n, ties to even.
    if (precision < -18) return Value::integer(0);
    int64_t p = 1;
    for (int64_t i = 0; i < -precision; ++i) p *= 10;
    const int64_t x = v.int_value();
    int64_t q = x / p;
    int64_t r = x % p;
    if (r < 0) {
      r += p;
      --q;
    }
    if (2 * r > p || (2 * r == p && (q & 1))) ++q;
    int64_t result;
    if (__builtin_mul_overflow(q, p, &result)) fail("integer overflow");
    return Value::integer(result);
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.float_value() * scale;
  return Value::number((m == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("safe", a, {}, {});
  return Value::string(to_str(v), true);
}

Value f_sort(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("sort", a, {"reverse", "case_sensitive", "attribute"}, {});
  const bool reverse = arg_reverse(args, 0);
  const bool case_sensitive = truthy(args.get_or(1, Value::boolean(false)));
  std::vector<Value> items = to_items(interp, v);
  std::vector<Value> keys;
  for (const Value& item : items) {
    Value k = args.has(2) && !args.get(2).is_none() ? get_attribute_path(interp, item, args.get(2), nullptr) : item;
    keys.push_back(case_sensitive ? k : lower_if_str(k));
  }
  sort_values(items, keys, reverse);
  return Value::list(std::move(items));
}

Value f_string(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("string", a, {}, {});
  return soft_str(v);
}

Value f_sum(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("sum", a, {"attribute", "start"}, {});
  Value total = args.get_or(1, Value::integer(0));
  for (const Value& item : to_items(interp, v)) {
    const Value x = args.has(0) && !args.get(0).is_none() ? get_attribute_path(interp, item, args.get(0), nullptr) : item;
    total = binary_op(interp, BinaryOp::kAdd, total, x);
  }
  return total;
}

Value f_title(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("title", a, {}, {});
  // jinja2 do_title: capitalize each piece after a run of [-\s({\[<].
  const Value s = soft_str(v);
  const CodePoints cps = decode_utf8(s.str());
  std::string out;
  bool word_start = true;
  for (const char32_t cp : cps) {
    const bool separator = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || py_isspace(cp);
    if (separator) {
      append_utf8(out, cp);
      word_start = true;
    } else {
      if (word_start) {  // item[0].upper(): full upper-casing, so 'ß' -> "SS"
        std::string first;
        append_utf8(first, cp);
        out += py_upper(first);
      } else {
        append_utf8(out, lower_cp(cp));
      }
      word_start = false;
    }
  }
  return Value::string(std::move(out), s.is_markup());
}

Value f_tojson(Interpreter& interp, const Value& v, CallArgs& a) {
  // transformers: json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
  BoundArgs args("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"}, {});
  JsonDumpOptions options;
  options.ensure_ascii = truthy(args.get_or(0, Value::boolean(false)));
  const Value indent = args.get_or(1, Value::none());
  if (indent.is_string()) {
    options.indent = indent.str();
  } else if (indent.is_int() || indent.is_bool()) {
    const int64_t n = std::clamp<int64_t>(indent.int_value(), 0, 1 << 20);
    options.indent = std::string(static_cast<size_t>(n), ' ');
  } else if (!indent.is_none()) {
    fail("can't multiply sequence by non-int of type '" + type_name(indent) + "'");
  }
  const Value separators = args.get_or(2, Value::none());
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.list().items.size() != 2 || !separators.list().items[0].is_string() ||
        !separators.list().items[1].is_string())
      fail("separators must be a pair of strings");
    options.item_separator = separators.list().items[0].str();
    options.key_separator = separators.list().items[1].str();
  }
  options.sort_keys = truthy(args.get_or(3, Value::boolean(false)));
  interp.charge(1);
  return interp.make_string(py_json_dumps(v, options));
}

Value f_trim(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("trim", a, {"chars"}, {});
  const Value s = soft_str(v);
  std::optional<std::string> chars;
  if (args.has(0) && !args.get(0).is_none()) chars = arg_str(args.get(0), "strip arg");
  return Value::string(py_strip(s.str(), chars, true, true), s.is_markup());
}

Value f_truncate(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("truncate", a, {"length", "killwords", "end", "leeway"}, {});
  const int64_t length = arg_int(args.get_or(0, Value::integer(255)), "length");
  const bool killwords = truthy(args.get_or(1, Value::boolean(false)));
  const std::string end = to_str(args.get_or(2, Value::string("...")));
  const int64_t leeway = arg_int(args.get_or(3, Value::integer(5)), "leeway");
  const auto end_len = static_cast<int64_t>(utf8_length(end));
  if (length < end_len) fail("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
  if (leeway < 0) fail("expected leeway >= 0, got " + std::to_string(leeway));
  // do_truncate works on the value itself: len() first, then str-only slicing.
  if (!v.is_string()) {
    if (py_len(v) <= length + leeway) return v;
    fail(std::string("'") + type_name(v) + "' object has no attribute 'rsplit'");
  }
  const std::string& s = v.str();
  const CodePoints cps = decode_utf8(s);
  if (static_cast<int64_t>(cps.size()) <= length + leeway) return v;
  std::string head = encode_utf8(cps, 0, static_cast<size_t>(length - end_len));
  if (killwords) return Value::string(head + end);
  const size_t space = head.rfind(' ');
  if (space != std::string::npos) head.resize(space);
  return Value::string(head + end);
}

Value f_unique(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("unique", a, {"case_sensitive", "attribute"}, {});
  return generator_filter([&](std::vector<Value>& out) {
    const bool case_sensitive = truthy(args.get_or(0, Value::boolean(false)));
    std::vector<Value> seen;
    for (const Value& item : to_items(interp, v)) {
      Value key =
          args.has(1) && !args.get(1).is_none() ? get_attribute_path(interp, item, args.get(1), nullptr) : item;
      if (!case_sensitive) key = lower_if_str(key);
      if ((key.is_list() && !key.is_tuple()) || key.is_dict()) fail("unhashable type: '" + type_name(key) + "'");
      bool duplicate = false;
      for (const Value& s : seen) {
        if (py_equal(s, key)) {
          duplicate = true;
          break;
        }
      }
      interp.charge(seen.size());
      if (duplicate) continue;
      seen.push_back(std::move(key));
      out.push_back(item);
    }
  });
}

Value f_wordcount(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("wordcount", a, {}, {});
  int64_t count = 0;
  bool in_word = false;
  for (const char32_t cp : decode_utf8(to_str(v))) {
    const bool word = cp == '_' || is_digit_cp(cp) || is_alpha_cp(cp);
    if (word && !in_word) ++count;
    in_word = word;
  }
  return Value::integer(count);
}

const std::unordered_map<std::string, FilterFn>& filter_table() {
  static const std::unordered_map<std::string, FilterFn> table = {
      {"abs", f_abs},           {"attr", f_attr},         {"capitalize", f_capitalize},
      {"center", f_center},     {"count", f_length},      {"d", f_default},
      {"default", f_default},   {"dictsort", f_dictsort}, {"e", f_escape},
      {"escape", f_escape},     {"first", f_first},       {"float", f_float},
      {"forceescape", f_forceescape}, {"format", f_format}, {"indent", f_indent},
      {"int", f_int},           {"items", f_items},       {"join", f_join},
      {"last", f_last},         {"length", f_length},     {"list", f_list},
      {"lower", f_lower},       {"map", f_map},           {"max", f_max},
      {"min", f_min},           {"reject", f_reject},     {"rejectattr", f_rejectattr},
      {"replace", f_replace},   {"reverse", f_reverse},   {"round", f_round},
      {"safe", f_safe},         {"select", f_select},     {"selectattr", f_selectattr},
      {"sort", f_sort},         {"string", f_string},     {"sum", f_sum},
      {"title", f_title},       {"tojson", f_tojson},     {"trim", f_trim},
      {"truncate", f_truncate}, {"unique", f_unique},     {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return table;
}

// jinja2 filters that exist upstream but are not provided here.
bool is_unsupported_filter(const std::string& name) {
  static const char* const kNames[] = {"batch", "filesizeformat", "groupby", "pprint", "random", "slice", "striptags",
                                       "urlencode", "urlize", "wordwrap", "xmlattr"};
  for (const char* n : kNames)
    if (name == n) return true;
  return false;
}

// ------------------------------------------------------------------ tests

bool compare_test(CompareOp op, const Value& v, CallArgs& a, const char* name) {
  BoundArgs args(name, a, {"other"}, {.required = 1});
  return compare_op(op, v, args.get(0));
}

bool t_boolean(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("boolean", a, {}, {});
  return v.is_bool();
}
bool t_callable(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("callable", a, {}, {});
  // jinja2's Undefined and LoopContext define __call__.
  return v.is_callable() || v.is_undefined() || (v.is_object() && v.object().type == ObjectData::Type::kLoop);
}
bool t_defined(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("defined", a, {}, {});
  return !v.is_undefined();
}
bool t_undefined(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("undefined", a, {}, {});
  return v.is_undefined();
}
bool t_divisibleby(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs args("divisibleby", a, {"num"}, {.required = 1});
  return py_equal(binary_op(interp, BinaryOp::kMod, v, args.get(0)), Value::integer(0));
}
bool t_eq(Interpreter&, const Value& v, CallArgs& a) { return compare_test(CompareOp::kEq, v, a, "eq"); }
bool t_ne(Interpreter&, const Value& v, CallArgs& a) { return compare_test(CompareOp::kNe, v, a, "ne"); }
bool t_lt(Interpreter&, const Value& v, CallArgs& a) { return compare_test(CompareOp::kLt, v, a, "lt"); }
bool t_le(Interpreter&, const Value& v, CallArgs& a) { return compare_test(CompareOp::kLe, v, a, "le"); }
bool t_gt(Interpreter&, const Value& v, CallArgs& a) { return compare_test(CompareOp::kGt, v, a, "gt"); }
bool t_ge(Interpreter&, const Value& v, CallArgs& a) { return compare_test(CompareOp::kGe, v, a, "ge"); }
bool t_in(Interpreter&, const Value& v, CallArgs& a) { return compare_test(CompareOp::kIn, v, a, "in"); }
bool t_escaped(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("escaped", a, {}, {});
  return v.is_markup();
}
bool t_even(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs("even", a, {}, {});
  return py_equal(binary_op(interp, BinaryOp::kMod, v, Value::integer(2)), Value::integer(0));
}
bool t_odd(Interpreter& interp, const Value& v, CallArgs& a) {
  BoundArgs("odd", a, {}, {});
  return py_equal(binary_op(interp, BinaryOp::kMod, v, Value::integer(2)), Value::integer(1));
}
bool t_false(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("false", a, {}, {});
  return v.is_bool() && !v.as_bool();
}
bool t_true(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("true", a, {}, {});
  return v.is_bool() && v.as_bool();
}
bool t_filter(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("filter", a, {}, {});
  return v.is_string() && is_filter_name(v.str());
}
bool t_test(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("test", a, {}, {});
  return v.is_string() && is_test_name(v.str());
}
bool t_float(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("float", a, {}, {});
  return v.is_float();
}
bool t_integer(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("integer", a, {}, {});
  return v.is_int();
}
bool t_number(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("number", a, {}, {});
  return v.is_number();
}
bool t_iterable(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("iterable", a, {}, {});
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined() || v.is_lazy() ||
         (v.is_object() && v.object().type == ObjectData::Type::kLoop);
}
bool t_sequence(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("sequence", a, {}, {});
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
}
bool t_mapping(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("mapping", a, {}, {});
  return v.is_dict();
}
bool t_none(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("none", a, {}, {});
  return v.is_none();
}
bool t_string(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("string", a, {}, {});
  return v.is_string();
}
bool t_lower(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("lower", a, {}, {});
  bool cased = false;
  for (const char32_t cp : decode_utf8(to_str(v))) {
    if (is_upper_cp(cp)) return false;
    cased |= is_lower_cp(cp);
  }
  return cased;
}
bool t_upper(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs("upper", a, {}, {});
  bool cased = false;
  for (const char32_t cp : decode_utf8(to_str(v))) {
    if (is_lower_cp(cp)) return false;
    cased |= is_upper_cp(cp);
  }
  return cased;
}
bool t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  BoundArgs args("sameas", a, {"other"}, {.required = 1});
  const Value& other = args.get(0);
  if (v.kind() != other.kind()) return false;
  switch (v.kind()) {
    case Value::Kind::kNone:
    case Value::Kind::kUndefined:
      return v.identity() == other.identity() || v.is_none();
    case Value::Kind::kBool:
      return v.as_bool() == other.as_bool();
    case Value::Kind::kInt:  // CPython caches the small ints, so they are identical
      return v.as_int() == other.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Value::Kind::kFloat:
      return false;
    default:
      return v.identity() == other.identity();
  }
}

const std::unordered_map<std::string, TestFn>& test_table() {
  static const std::unordered_map<std::string, TestFn> table = {
      {"boolean", t_boolean},   {"callable", t_callable}, {"defined", t_defined}, {"undefined", t_undefined},
      {"divisibleby", t_divisibleby}, {"eq", t_eq},        {"equalto", t_eq},       {"==", t_eq},
      {"ne", t_ne},             {"!=", t_ne},             {"lt", t_lt},           {"lessthan", t_lt},
      {"<", t_lt},              {"le", t_le},             {"<=", t_le},           {"gt", t_gt},
      {"greaterthan", t_gt},    {">", t_gt},              {"ge", t_ge},           {">=", t_ge},
      {"in", t_in},             {"escaped", t_escaped},   {"even", t_even},       {"odd", t_odd},
      {"false", t_false},       {"true", t_true},         {"filter", t_filter},   {"test", t_test},
      {"float", t_float},       {"integer", t_integer},   {"number", t_number},   {"iterable", t_iterable},
      {"sequence", t_sequence}, {"mapping", t_mapping},   {"none", t_none},       {"string", t_string},
      {"lower", t_lower},       {"upper", t_upper},       {"sameas", t_sameas},
  };
  return table;
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

bool is_filter_name(const std::string& name) { return filter_table().count(name) != 0; }
bool is_test_name(const std::string& name) { return test_table().count(name) != 0; }
bool is_jinja2_filter_name(const std::string& name) { return is_filter_name(name) || is_unsupported_filter(name); }

Value call_filter(Interpreter& interp, const std::string& name, const Value& operand, CallArgs& args) {
  const auto it = filter_table().find(name);
  if (it == filter_table().end()) {
    if (is_unsupported_filter(name)) fail("filter '" + name + "' is not supported by this template engine");
    fail("No filter named '" + name + "'.");
  }
  interp.charge(1);
  return it->second(interp, operand, args);
}

bool call_test(Interpreter& interp, const std::string& name, const Value& operand, CallArgs& args) {
  const auto it = test_table().find(name);
  if (it == test_table().end()) fail("No test named '" + name + "'.");
  interp.charge(1);
  return it->second(interp, operand, args);
}

}  // namespace hotswap::jinja
