// Value: the dynamically typed datum of the template interpreter, modelled on the
// Python objects jinja2 passes around (None, bool, int, float, str, list, tuple,
// dict, jinja2's Undefined, Namespace, LoopContext, Macro, bound methods).
//
// Values are cheap to copy: strings, lists, dicts and callables are immutable and
// shared. The only mutable kind is an Object (a namespace() or a loop context);
// copies share it, which is what `{% set ns.x = ... %}` relies on.
//
// Invariants that keep rendering bounded: containers nest at most kMaxValueDepth
// levels, and a namespace never (transitively) holds an object, so values are
// acyclic and every recursive walk over them terminates.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace hotswap::jinja {

inline constexpr int kMaxValueDepth = 256;

class Value;
class Interpreter;

struct ListData;
class DictData;
struct ObjectData;
struct Callable;

class Value {
 public:
  // kLazy: what Python gives back as an iterator or a dict view rather than a list:
  // generators from map/select/..., reversed(list), dict.keys()/values()/items().
  enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kObject, kCallable, kLazy };

  Value() : kind_(Kind::kUndefined) {}  // an Undefined with no name

  static Value undefined(std::string hint);  // hint: the error when the value is misused
  static Value unsafe(std::string hint);     // sandbox-blocked attribute (prints as "")
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s, bool markup = false);
  static Value list(std::vector<Value> items, bool is_tuple = false);
  enum class LazyKind { kGenerator, kReverseIterator, kDictKeys, kDictValues, kDictItems };
  static Value lazy(std::vector<Value> items, LazyKind kind);
  // A generator that yields `items` and then raises `error` (a jinja2 generator
  // filter whose body fails only once it is consumed).
  static Value failing_generator(std::vector<Value> items, std::string error);
  static Value dict(DictData data);
  static Value object(std::shared_ptr<ObjectData> data);
  static Value callable(Callable c);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const;
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_namespace() const;
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_lazy() const { return kind_ == Kind::kLazy; }
  bool is_iterator() const;  // a single-use generator or reverse iterator (always truthy, no len())

  bool as_bool() const { return flag_; }
  int64_t as_int() const { return std::get<int64_t>(payload_); }  // kInt; kBool via int_value()
  double as_float() const { return std::get<double>(payload_); }
  int64_t int_value() const { return kind_ == Kind::kBool ? (flag_ ? 1 : 0) : as_int(); }  // kBool or kInt
  double float_value() const { return kind_ == Kind::kFloat ? as_float() : static_cast<double>(int_value()); }
  const std::string& str() const { return *std::get<std::shared_ptr<const std::string>>(payload_); }
  bool is_markup() const { return kind_ == Kind::kString && flag_; }
  const ListData& list() const { return *std::get<std::shared_ptr<const ListData>>(payload_); }  // kList, kLazy
  const DictData& dict() const { return *std::get<std::shared_ptr<const DictData>>(payload_); }
  ObjectData& object() const { return *std::get<std::shared_ptr<ObjectData>>(payload_); }
  const Callable& callable() const { return *std::get<std::shared_ptr<const Callable>>(payload_); }
  const void* identity() const;  // the shared payload, for jinja's `sameas`

  const std::string& undefined_hint() const;
  bool is_unsafe_undefined() const { return kind_ == Kind::kUndefined && flag_; }

  int depth() const;             // nesting of containers; scalars are 0
  bool contains_object() const;  // is or holds a namespace/loop object

 private:
  Kind kind_;
  bool flag_ = false;  // bool value, Markup flag, or "unsafe" for Undefined
  std::variant<std::monostate, int64_t, double, std::shared_ptr<const std::string>, std::shared_ptr<const ListData>,
               std::shared_ptr<const DictData>, std::shared_ptr<ObjectData>, std::shared_ptr<const Callable>>
      payload_;
};

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
  int depth = 1;
  bool contains_object = false;
  Value::LazyKind lazy = Value::LazyKind::kGenerator;  // meaningful for kLazy only
  // How many items a single-use iterator has already handed out. Mutable because
  // consuming an iterator is not a change of value identity; one render owns it.
  mutable size_t consumed = 0;
  std::string deferred_error;  // raised after the items, when a generator is drained
};

// A Python dict: insertion-ordered, keys compared with Python ==.
class DictData {
 public:
  const Value* find(const Value& key) const;
  const Value* find(const std::string& key) const;
  void set(Value key, Value value);
  size_t size() const { return entries_.size(); }
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }
  int depth() const { return depth_; }
  bool contains_object() const { return contains_object_; }

 private:
  std::vector<std::pair<Value, Value>> entries_;
  std::unordered_map<std::string, size_t> string_index_;
  int depth_ = 1;
  bool contains_object_ = false;
};

struct ObjectData {
  enum class Type { kNamespace, kLoop };
  Type type;
  DictData attributes;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Callable {
  enum class Type { kFunction, kMacro, kMethod };
  Type type;
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> fn;
};

inline bool Value::is_tuple() const { return kind_ == Kind::kList && list().is_tuple; }
inline bool Value::is_iterator() const {
  return kind_ == Kind::kLazy &&
         (list().lazy == LazyKind::kGenerator || list().lazy == LazyKind::kReverseIterator);
}
inline bool Value::is_namespace() const {
  return is_object() && object().type == ObjectData::Type::kNamespace;
}

// Python truthiness; Undefined is falsy.
bool truthy(const Value& v);
// Python str(): what `{{ v }}` prints.
std::string to_str(const Value& v);
// Python repr(): how values print inside lists and dicts.
std::string to_repr(const Value& v);
// Python ==.
bool py_equal(const Value& a, const Value& b);
// Python <, as -1/0/1; throws TemplateError for unorderable types.
int py_compare(const Value& a, const Value& b);
// The Python type name used in error messages ('str', 'dict', 'NoneType', ...).
std::string type_name(const Value& v);
// Python len() for str/list/tuple/dict/Undefined; throws for other kinds.
int64_t py_len(const Value& v);
// Python iter(): the elements a `for` loop visits (dict -> keys, str -> chars).
// Exhausts a single-use iterator.
std::vector<Value> iterate(const Value& v);
// next(iter(v)) for a single-use iterator: its next item, or nullopt when exhausted;
// raises a failing generator's error when its items run out.
std::optional<Value> next_item(const Value& iterator);

// Raises the error jinja2's Undefined raises when misused (attribute access,
// arithmetic, calls): its hint, e.g. "'x' is undefined".
[[noreturn]] void fail_undefined(const Value& v);

// Converts a render context. nlohmann::json objects iterate in sorted key order,
// and that is the order dicts have here. Throws TemplateError if the document
// nests deeper than kMaxValueDepth or holds invalid UTF-8.
Value from_json(const nlohmann::json& j);

}  // namespace hotswap::jinja
