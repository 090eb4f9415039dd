// Python operator semantics on template Values, as jinja2 evaluates expressions with
// the host Python: + - * / // % ** with int/float promotion and Python rounding,
// str/list concatenation and repetition, Markup escaping on +, printf-style `str % x`,
// chained comparisons and `in`.
//
// Integers are 64-bit here where Python's are unbounded: overflow is a render error.
#pragma once

#include "chat/template_ast.h"
#include "chat/template_value.h"

namespace hotswap::jinja {

class Interpreter;

Value binary_op(Interpreter& interp, BinaryOp op, const Value& a, const Value& b);
Value negate(const Value& v);
Value unary_plus(const Value& v);
bool compare_op(CompareOp op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);  // Python `item in container`
// `format % args` (printf-style); args is a tuple, a dict (for %(key)s) or one value.
std::string percent_format(Interpreter& interp, const std::string& format, const Value& args);

}  // namespace hotswap::jinja
