// The builtin vocabulary of transformers' template environment, split by kind:
//   template_filters.cc  jinja2 filters (plus transformers' tojson) and tests
//   template_methods.cc  methods of str / dict / list values ('x'.strip(), d.items())
//   template_globals.cc  global functions: raise_exception, strftime_now, namespace,
//                        range (sandbox-capped), dict, joiner
// Unknown names are runtime errors when evaluated, mirroring jinja2 3.x.
#pragma once

#include <string>

#include "chat/template_value.h"

namespace hotswap::jinja {

class Interpreter;

Value call_filter(Interpreter& interp, const std::string& name, const Value& operand, CallArgs& args);
bool call_test(Interpreter& interp, const std::string& name, const Value& operand, CallArgs& args);
bool is_filter_name(const std::string& name);  // implemented here
bool is_test_name(const std::string& name);
// Any filter jinja2 3.1 defines, including the few this engine reports as unsupported
// at render time; templates naming anything else are rejected at compile time.
bool is_jinja2_filter_name(const std::string& name);

// The attribute `name` of a str/list/tuple/dict value when it is a method: a bound
// callable, or an "unsafe" Undefined for methods the immutable sandbox blocks
// (list.append, dict.update, ...). Returns a plain Undefined when there is no such method.
Value method_attribute(const Value& self, const std::string& name);

// A global function by name; Undefined when there is none.
Value global_function(const std::string& name);

// HTML-escapes like markupsafe.escape (& < > " ').
std::string html_escape(const std::string& s);

}  // namespace hotswap::jinja
