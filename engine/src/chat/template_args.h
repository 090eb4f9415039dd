// Python-style argument binding for builtin filters, tests, methods and globals:
// positional arguments fill parameters in order, keywords by name, and anything
// unmatched is an error unless the callee takes *args / **kwargs.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/template_error.h"
#include "chat/template_value.h"

namespace hotswap::jinja {

class BoundArgs {
 public:
  struct Options {
    size_t required = 0;         // leading parameters that must be given
    bool takes_varargs = false;  // extra positionals go to varargs()
    bool takes_kwargs = false;   // unknown keywords go to kwargs()
  };

  BoundArgs(std::string_view callee, CallArgs& args, std::vector<std::string_view> params, Options options)
      : values_(params.size()), given_(params.size(), false) {
    size_t i = 0;
    for (; i < args.positional.size(); ++i) {
      if (i >= params.size()) {
        if (!options.takes_varargs) {
          fail(std::string(callee) + "() takes at most " + std::to_string(params.size()) + " argument(s) (" +
               std::to_string(args.positional.size()) + " given)");
        }
        varargs_.push_back(std::move(args.positional[i]));
        continue;
      }
      values_[i] = std::move(args.positional[i]);
      given_[i] = true;
    }
    for (auto& [key, value] : args.keyword) {
      size_t p = 0;
      while (p < params.size() && params[p] != key) ++p;
      if (p == params.size()) {
        if (!options.takes_kwargs) fail(std::string(callee) + "() got an unexpected keyword argument '" + key + "'");
        kwargs_.emplace_back(key, std::move(value));
        continue;
      }
      if (given_[p]) fail(std::string(callee) + "() got multiple values for argument '" + key + "'");
      values_[p] = std::move(value);
      given_[p] = true;
    }
    for (size_t r = 0; r < options.required && r < params.size(); ++r) {
      if (!given_[r]) fail(std::string(callee) + "() missing required argument '" + std::string(params[r]) + "'");
    }
  }

  bool has(size_t i) const { return given_[i]; }
  const Value& get(size_t i) const { return values_[i]; }
  Value get_or(size_t i, Value fallback) const { return given_[i] ? values_[i] : std::move(fallback); }
  std::vector<Value>& varargs() { return varargs_; }
  std::vector<std::pair<std::string, Value>>& kwargs() { return kwargs_; }

 private:
  std::vector<Value> values_;
  std::vector<bool> given_;
  std::vector<Value> varargs_;
  std::vector<std::pair<std::string, Value>> kwargs_;
};

// Argument conversions with Python's TypeError wording.
inline int64_t arg_int(const Value& v, std::string_view what) {
  if (v.is_int() || v.is_bool()) return v.int_value();
  fail("'" + type_name(v) + "' object cannot be interpreted as an integer (" + std::string(what) + ")");
}

inline const std::string& arg_str(const Value& v, std::string_view what) {
  if (v.is_string()) return v.str();
  fail(std::string(what) + " must be str, not " + type_name(v));
}

}  // namespace hotswap::jinja
