// Global functions of transformers' template environment: its own raise_exception
// and strftime_now, and jinja2's default globals range (capped at the sandbox's
// MAX_RANGE), dict, namespace and joiner. lipsum and cycler are not provided.
#include <time.h>

#include <cmath>
#include <ctime>

#include "chat/template_args.h"
#include "chat/template_builtins.h"
#include "chat/template_error.h"
#include "chat/template_interpreter.h"

namespace hotswap::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Value g_raise_exception(Interpreter&, CallArgs& a) {
  BoundArgs args("raise_exception", a, {"message"}, {.required = 1});
  throw TemplateError(TemplateError::Kind::kRaised, to_str(args.get(0)));
}

Value g_strftime_now(Interpreter& interp, CallArgs& a) {
  BoundArgs args("strftime_now", a, {"format"}, {.required = 1});
  const std::string& format = arg_str(args.get(0), "strftime() argument 1");
  if (format.empty()) return Value::string("");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  // strftime reports 0 both for "buffer too small" and for an empty result; grow a
  // few times, then accept the empty result.
  for (size_t size = 256; size <= (1u << 20); size *= 4) {
    std::string buf(size, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &local);
    if (n > 0) {
      buf.resize(n);
      return interp.make_string(std::move(buf));
    }
  }
  return Value::string("");
}

Value g_range(Interpreter& interp, CallArgs& a) {
  if (!a.keyword.empty()) fail("range() takes no keyword arguments");
  int64_t start = 0;
  int64_t stop = 0;
  int64_t step = 1;
  const auto& p = a.positional;
  if (p.size() == 1) {
    stop = arg_int(p[0], "range");
  } else if (p.size() == 2 || p.size() == 3) {
    start = arg_int(p[0], "range");
    stop = arg_int(p[1], "range");
    if (p.size() == 3) step = arg_int(p[2], "range");
  } else {
    fail("range expected at most 3 arguments, got " + std::to_string(p.size()));
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  // Length computed in floating point to avoid overflow on extreme bounds.
  const long double span = static_cast<long double>(stop) - static_cast<long double>(start);
  const long double len = span / static_cast<long double>(step);
  const int64_t count = len <= 0 ? 0 : static_cast<int64_t>(std::ceil(static_cast<double>(len)));
  if (count > kMaxRange)
    fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (" + std::to_string(kMaxRange) + ").");
  interp.charge(static_cast<uint64_t>(count));
  std::vector<Value> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) out.push_back(Value::integer(start + i * step));
  return Value::list(std::move(out));
}

// dict(*args, **kwargs) semantics: an optional mapping or iterable of pairs, then keywords.
DictData dict_from_args(CallArgs& a, const char* name) {
  if (a.positional.size() > 1) fail(std::string(name) + " expected at most 1 argument, got " +
                                    std::to_string(a.positional.size()));
  DictData d;
  if (!a.positional.empty()) {
    const Value& src = a.positional[0];
    if (src.is_undefined()) fail_undefined(src);  // dict() looks up .keys on it
    if (src.is_dict()) {
      d = src.dict();
    } else {
      for (const Value& pair : iterate(src)) {
        const std::vector<Value> kv = iterate(pair);
        if (kv.size() != 2) fail("dictionary update sequence element has length " + std::to_string(kv.size()) +
                                 "; 2 is required");
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : a.keyword) d.set(Value::string(k), v);
  return d;
}

Value g_dict(Interpreter&, CallArgs& a) { return Value::dict(dict_from_args(a, "dict")); }

Value g_namespace(Interpreter&, CallArgs& a) {
  auto ns = std::make_shared<ObjectData>();
  ns->type = ObjectData::Type::kNamespace;
  ns->attributes = dict_from_args(a, "namespace");
  // Keeps values acyclic: a namespace may not hold a namespace or loop object.
  if (ns->attributes.contains_object()) fail("a namespace attribute cannot hold a namespace or loop object");
  return Value::object(std::move(ns));
}

Value g_joiner(Interpreter&, CallArgs& a) {
  BoundArgs args("joiner", a, {"sep"}, {});
  const std::string sep = to_str(args.get_or(0, Value::string(", ")));
  auto used = std::make_shared<bool>(false);
  return Value::callable({Callable::Type::kFunction, "joiner", [sep, used](Interpreter&, CallArgs& call) -> Value {
                            BoundArgs none("joiner", call, {}, {});
                            if (!*used) {
                              *used = true;
                              return Value::string("");
                            }
                            return Value::string(sep);
                          }});
}

}  // namespace

Value global_function(const std::string& name) {
  using Fn = Value (*)(Interpreter&, CallArgs&);
  static const std::pair<const char*, Fn> kGlobals[] = {
      {"raise_exception", g_raise_exception}, {"strftime_now", g_strftime_now}, {"range", g_range},
      {"dict", g_dict},                       {"namespace", g_namespace},       {"joiner", g_joiner},
  };
  for (const auto& [n, fn] : kGlobals) {
    if (name == n) return Value::callable({Callable::Type::kFunction, name, fn});
  }
  return Value::undefined("'" + name + "' is undefined");
}

}  // namespace hotswap::jinja
