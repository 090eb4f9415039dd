#include "chat/template_value.h"

#include <cmath>
#include <compare>

#include "chat/py_text.h"
#include "chat/template_error.h"

namespace hotswap::jinja {
namespace {

const std::string kEmpty;

void check_depth(int depth) {
  if (depth > kMaxValueDepth)
    throw TemplateError(TemplateError::Kind::kLimit,
                        "value nesting exceeds " + std::to_string(kMaxValueDepth) + " levels");
}

// Exact comparison of an int with a float, as CPython's float_richcompare does.
std::partial_ordering compare_int_float(int64_t i, double d) {
  if (std::isnan(d)) return std::partial_ordering::unordered;
  if (d >= 9223372036854775808.0) return std::partial_ordering::less;
  if (d < -9223372036854775808.0) return std::partial_ordering::greater;
  const double whole = std::trunc(d);
  const auto w = static_cast<int64_t>(whole);
  if (i != w) return i < w ? std::partial_ordering::less : std::partial_ordering::greater;
  const double frac = d - whole;
  if (frac > 0) return std::partial_ordering::less;
  if (frac < 0) return std::partial_ordering::greater;
  return std::partial_ordering::equivalent;
}

std::partial_ordering compare_numbers(const Value& a, const Value& b) {
  if (a.is_float() && b.is_float()) return a.as_float() <=> b.as_float();
  if (a.is_float()) return 0 <=> compare_int_float(b.int_value(), a.as_float());
  if (b.is_float()) return compare_int_float(a.int_value(), b.as_float());
  return a.int_value() <=> b.int_value();
}

std::string sequence_repr(const ListData& l) {
  std::string out = l.is_tuple ? "(" : "[";
  for (size_t i = 0; i < l.items.size(); ++i) {
    if (i) out += ", ";
    out += to_repr(l.items[i]);
  }
  if (l.is_tuple && l.items.size() == 1) out += ",";
  out += l.is_tuple ? ")" : "]";
  return out;
}

std::string dict_repr(const DictData& d) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : d.entries()) {
    if (!first) out += ", ";
    first = false;
    out += to_repr(k);
    out += ": ";
    out += to_repr(v);
  }
  out += "}";
  return out;
}

std::string object_repr(const ObjectData& o) {
  if (o.type == ObjectData::Type::kNamespace) return "<Namespace " + dict_repr(o.attributes) + ">";
  const Value* index = o.attributes.find(std::string("index"));
  const Value* length = o.attributes.find(std::string("length"));
  return "<LoopContext " + (index ? to_str(*index) : "?") + "/" + (length ? to_str(*length) : "?") + ">";
}

std::string lazy_repr(const Value& v) {
  ListData shown = v.list();
  shown.is_tuple = false;
  switch (v.list().lazy) {
    case Value::LazyKind::kGenerator:
      return "<generator object>";  // CPython adds the function name and an address
    case Value::LazyKind::kReverseIterator:
      return "<list_reverseiterator object>";
    case Value::LazyKind::kDictKeys:
      return "dict_keys(" + sequence_repr(shown) + ")";
    case Value::LazyKind::kDictValues:
      return "dict_values(" + sequence_repr(shown) + ")";
    case Value::LazyKind::kDictItems:
      return "dict_items(" + sequence_repr(shown) + ")";
  }
  return "";
}

std::string callable_repr(const Callable& c) {
  switch (c.type) {
    case Callable::Type::kMacro:
      return "<Macro " + py_repr_string(c.name) + ">";
    case Callable::Type::kMethod:
      return "<built-in method " + c.name + ">";
    case Callable::Type::kFunction:
      break;
  }
  return "<function " + c.name + ">";
}

Value from_json_at(const nlohmann::json& j, int depth) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      // Python ints are unbounded; past int64 the closest this interpreter has is a float.
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      if (!is_valid_utf8(s)) throw TemplateError(TemplateError::Kind::kRuntime, "context string is not valid UTF-8");
      return Value::string(s);
    }
    case nlohmann::json::value_t::array: {
      check_depth(depth + 1);
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_at(e, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      check_depth(depth + 1);
      DictData d;
      for (const auto& [k, v] : j.items()) {
        if (!is_valid_utf8(k)) throw TemplateError(TemplateError::Kind::kRuntime, "context key is not valid UTF-8");
        d.set(Value::string(k), from_json_at(v, depth + 1));
      }
      return Value::dict(std::move(d));
    }
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded:
      break;
  }
  throw TemplateError(TemplateError::Kind::kRuntime, "context holds a JSON value with no Python equivalent");
}

}  // namespace

const Value* DictData::find(const std::string& key) const {
  const auto it = string_index_.find(key);
  return it == string_index_.end() ? nullptr : &entries_[it->second].second;
}

const Value* DictData::find(const Value& key) const {
  if (key.is_string()) return find(key.str());
  for (const auto& [k, v] : entries_)
    if (!k.is_string() && py_equal(k, key)) return &v;
  return nullptr;
}

void DictData::set(Value key, Value value) {
  depth_ = std::max({depth_, key.depth() + 1, value.depth() + 1});
  check_depth(depth_);
  contains_object_ = contains_object_ || key.contains_object() || value.contains_object();
  if (key.is_string()) {
    const auto it = string_index_.find(key.str());
    if (it != string_index_.end()) {
      entries_[it->second].second = std::move(value);
      return;
    }
    string_index_.emplace(key.str(), entries_.size());
  } else {
    for (auto& [k, v] : entries_) {
      if (!k.is_string() && py_equal(k, key)) {
        v = std::move(value);
        return;
      }
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

Value Value::undefined(std::string hint) {
  Value v;
  v.payload_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::unsafe(std::string hint) {
  Value v = undefined(std::move(hint));
  v.flag_ = true;
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.flag_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.payload_ = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.payload_ = d;
  return v;
}

Value Value::string(std::string s, bool markup) {
  Value v;
  v.kind_ = Kind::kString;
  v.flag_ = markup;
  v.payload_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Value Value::list(std::vector<Value> items, bool is_tuple) {
  auto data = std::make_shared<ListData>();
  for (const Value& item : items) {
    data->depth = std::max(data->depth, item.depth() + 1);
    data->contains_object = data->contains_object || item.contains_object();
  }
  check_depth(data->depth);
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  Value v;
  v.kind_ = Kind::kList;
  v.payload_ = std::shared_ptr<const ListData>(std::move(data));
  return v;
}

Value Value::lazy(std::vector<Value> items, LazyKind kind) {
  Value v = list(std::move(items));
  auto data = std::make_shared<ListData>(v.list());
  data->lazy = kind;
  v.kind_ = Kind::kLazy;
  v.payload_ = std::shared_ptr<const ListData>(std::move(data));
  return v;
}

Value Value::failing_generator(std::vector<Value> items, std::string error) {
  Value v = lazy(std::move(items), LazyKind::kGenerator);
  auto data = std::make_shared<ListData>(v.list());
  data->deferred_error = std::move(error);
  v.payload_ = std::shared_ptr<const ListData>(std::move(data));
  return v;
}

Value Value::dict(DictData data) {
  Value v;
  v.kind_ = Kind::kDict;
  v.payload_ = std::make_shared<const DictData>(std::move(data));
  return v;
}

Value Value::object(std::shared_ptr<ObjectData> data) {
  Value v;
  v.kind_ = Kind::kObject;
  v.payload_ = std::move(data);
  return v;
}

Value Value::callable(Callable c) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.payload_ = std::make_shared<const Callable>(std::move(c));
  return v;
}

const void* Value::identity() const {
  switch (kind_) {
    case Kind::kString:
      return std::get<std::shared_ptr<const std::string>>(payload_).get();
    case Kind::kList:
    case Kind::kLazy:
      return std::get<std::shared_ptr<const ListData>>(payload_).get();
    case Kind::kDict:
      return std::get<std::shared_ptr<const DictData>>(payload_).get();
    case Kind::kObject:
      return std::get<std::shared_ptr<ObjectData>>(payload_).get();
    case Kind::kCallable:
      return std::get<std::shared_ptr<const Callable>>(payload_).get();
    default:
      return nullptr;
  }
}

const std::string& Value::undefined_hint() const {
  if (kind_ != Kind::kUndefined) return kEmpty;
  const auto* p = std::get_if<std::shared_ptr<const std::string>>(&payload_);
  return p ? **p : kEmpty;
}

int Value::depth() const {
  switch (kind_) {
    case Kind::kList:
    case Kind::kLazy:
      return list().depth;
    case Kind::kDict:
      return dict().depth();
    case Kind::kObject:
      return object().attributes.depth() + 1;
    default:
      return 0;
  }
}

bool Value::contains_object() const {
  switch (kind_) {
    case Kind::kList:
    case Kind::kLazy:
      return list().contains_object;
    case Kind::kDict:
      return dict().contains_object();
    case Kind::kObject:
      return true;
    default:
      return false;
  }
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_float() != 0.0;
    case Value::Kind::kString:
      return !v.str().empty();
    case Value::Kind::kList:
      return !v.list().items.empty();
    case Value::Kind::kDict:
      return v.dict().size() != 0;
    case Value::Kind::kObject:
    case Value::Kind::kCallable:
      return true;
    case Value::Kind::kLazy:  // iterators are always true; views are true when non-empty
      return v.is_iterator() || !v.list().items.empty();
  }
  return false;
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kString:
      return v.str();
    default:
      return to_repr(v);
  }
}

std::string to_repr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.as_int());
    case Value::Kind::kFloat:
      return py_float_repr(v.as_float());
    case Value::Kind::kString:
      return v.is_markup() ? "Markup(" + py_repr_string(v.str()) + ")" : py_repr_string(v.str());
    case Value::Kind::kList:
      return sequence_repr(v.list());
    case Value::Kind::kDict:
      return dict_repr(v.dict());
    case Value::Kind::kObject:
      return object_repr(v.object());
    case Value::Kind::kCallable:
      return callable_repr(v.callable());
    case Value::Kind::kLazy:
      return lazy_repr(v);
  }
  return "";
}

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == std::partial_ordering::equivalent;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.str() == b.str();
    case Value::Kind::kList: {
      const ListData& x = a.list();
      const ListData& y = b.list();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!py_equal(x.items[i], y.items[i])) return false;
      return true;
    }
    case Value::Kind::kDict: {
      const DictData& x = a.dict();
      const DictData& y = b.dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* other = y.find(k);
        if (!other || !py_equal(v, *other)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

int py_compare(const Value& a, const Value& b) {
  std::partial_ordering order = std::partial_ordering::unordered;
  bool comparable = false;
  if (a.is_number() && b.is_number()) {
    order = compare_numbers(a, b);
    comparable = true;
  } else if (a.is_string() && b.is_string()) {
    order = a.str() <=> b.str();  // UTF-8 byte order is code point order
    comparable = true;
  } else if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.list().items;
    const auto& y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (py_equal(x[i], y[i])) continue;
      return py_compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  if (!comparable)
    fail("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
  if (order == std::partial_ordering::less) return -1;
  if (order == std::partial_ordering::greater) return 1;
  if (order == std::partial_ordering::equivalent) return 0;
  return 2;  // unordered (NaN): every ordering comparison is false
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return v.is_markup() ? "Markup" : "str";
    case Value::Kind::kList:
      return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kObject:
      return v.object().type == ObjectData::Type::kNamespace ? "Namespace" : "LoopContext";
    case Value::Kind::kCallable:
      return v.callable().type == Callable::Type::kMacro ? "Macro" : "function";
    case Value::Kind::kLazy:
      switch (v.list().lazy) {
        case Value::LazyKind::kGenerator:
          return "generator";
        case Value::LazyKind::kReverseIterator:
          return "list_reverseiterator";
        case Value::LazyKind::kDictKeys:
          return "dict_keys";
        case Value::LazyKind::kDictValues:
          return "dict_values";
        case Value::LazyKind::kDictItems:
          return "dict_items";
      }
  }
  return "object";
}

int64_t py_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(utf8_length(v.str()));
    case Value::Kind::kList:
      return static_cast<int64_t>(v.list().items.size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict().size());
    case Value::Kind::kLazy:
      if (!v.is_iterator()) return static_cast<int64_t>(v.list().items.size());
      [[fallthrough]];
    default:
      fail("object of type '" + type_name(v) + "' has no len()");
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kString: {
      std::vector<Value> out;
      for (const char32_t cp : decode_utf8(v.str())) {
        std::string s;
        append_utf8(s, cp);
        out.push_back(Value::string(std::move(s)));  // iterating Markup yields plain str
      }
      return out;
    }
    case Value::Kind::kList:
      return v.list().items;
    case Value::Kind::kLazy: {
      const ListData& l = v.list();
      if (!v.is_iterator()) return l.items;
      std::vector<Value> rest(l.items.begin() + static_cast<std::ptrdiff_t>(l.consumed), l.items.end());
      l.consumed = l.items.size();
      if (!l.deferred_error.empty()) fail(l.deferred_error);
      return rest;
    }
    case Value::Kind::kDict: {
      std::vector<Value> out;
      out.reserve(v.dict().size());
      for (const auto& entry : v.dict().entries()) out.push_back(entry.first);
      return out;
    }
    default:
      fail(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

std::optional<Value> next_item(const Value& iterator) {
  const ListData& l = iterator.list();
  if (l.consumed >= l.items.size()) {
    if (!l.deferred_error.empty()) fail(l.deferred_error);
    return std::nullopt;
  }
  return l.items[l.consumed++];
}

void fail_undefined(const Value& v) {
  const std::string& hint = v.undefined_hint();
  fail(hint.empty() ? "undefined value" : hint);
}

Value from_json(const nlohmann::json& j) { return from_json_at(j, 0); }

}  // namespace hotswap::jinja
