#include "chat/template_operators.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "chat/py_text.h"
#include "chat/template_builtins.h"
#include "chat/template_error.h"
#include "chat/template_interpreter.h"

namespace hotswap::jinja {
namespace {

const char* op_symbol(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd:
      return "+";
    case BinaryOp::kSub:
      return "-";
    case BinaryOp::kMul:
      return "*";
    case BinaryOp::kDiv:
      return "/";
    case BinaryOp::kFloorDiv:
      return "//";
    case BinaryOp::kMod:
      return "%";
    case BinaryOp::kPow:
      return "** or pow()";
  }
  return "?";
}

[[noreturn]] void unsupported(BinaryOp op, const Value& a, const Value& b) {
  fail(std::string("unsupported operand type(s) for ") + op_symbol(op) + ": '" + type_name(a) + "' and '" +
       type_name(b) + "'");
}

[[noreturn]] void overflow() {
  fail("integer overflow: this interpreter's integers are 64-bit (Python's are unbounded)");
}

Value repeat(Interpreter& interp, const Value& seq, int64_t times) {
  if (times <= 0) return seq.is_string() ? Value::string("", seq.is_markup()) : Value::list({}, seq.is_tuple());
  if (seq.is_string()) {
    interp.check_size(static_cast<uint64_t>(seq.str().size()) * static_cast<uint64_t>(times));
    std::string out;
    out.reserve(seq.str().size() * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += seq.str();
    return Value::string(std::move(out), seq.is_markup());
  }
  const auto& items = seq.list().items;
  interp.charge(static_cast<uint64_t>(items.size()) * static_cast<uint64_t>(times));
  std::vector<Value> out;
  out.reserve(items.size() * static_cast<size_t>(times));
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::list(std::move(out), seq.is_tuple());
}

double float_floor_div(double a, double b, double* mod_out) {
  // CPython float_divmod.
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) {
      mod += b;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, b);
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, a / b);
  }
  if (mod_out) *mod_out = mod;
  return floordiv;
}

Value arithmetic(BinaryOp op, const Value& a, const Value& b) {
  if (a.is_float() || b.is_float()) {
    const double x = a.float_value();
    const double y = b.float_value();
    switch (op) {
      case BinaryOp::kAdd:
        return Value::number(x + y);
      case BinaryOp::kSub:
        return Value::number(x - y);
      case BinaryOp::kMul:
        return Value::number(x * y);
      case BinaryOp::kDiv:
        if (y == 0) fail("float division by zero");
        return Value::number(x / y);
      case BinaryOp::kFloorDiv:
        if (y == 0) fail("float floor division by zero");
        return Value::number(float_floor_div(x, y, nullptr));
      case BinaryOp::kMod: {
        if (y == 0) fail("float modulo");
        double mod;
        float_floor_div(x, y, &mod);
        return Value::number(mod);
      }
      case BinaryOp::kPow: {
        if (x == 0 && y < 0) fail("0.0 cannot be raised to a negative power");
        if (x < 0 && y != std::floor(y)) fail("a negative number to a fractional power is complex");
        const double r = std::pow(x, y);
        if (std::isinf(r) && !std::isinf(x) && !std::isinf(y)) fail("(34, 'Numerical result out of range')");
        return Value::number(r);
      }
    }
  }
  const int64_t x = a.int_value();
  const int64_t y = b.int_value();
  int64_t r = 0;
  switch (op) {
    case BinaryOp::kAdd:
      if (__builtin_add_overflow(x, y, &r)) overflow();
      return Value::integer(r);
    case BinaryOp::kSub:
      if (__builtin_sub_overflow(x, y, &r)) overflow();
      return Value::integer(r);
    case BinaryOp::kMul:
      if (__builtin_mul_overflow(x, y, &r)) overflow();
      return Value::integer(r);
    case BinaryOp::kDiv:
      if (y == 0) fail("division by zero");
      return Value::number(static_cast<double>(x) / static_cast<double>(y));
    case BinaryOp::kFloorDiv: {
      if (y == 0) fail("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) overflow();
      int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return Value::integer(q);
    }
    case BinaryOp::kMod: {
      if (y == 0) fail("integer division or modulo by zero");
      if (y == -1) return Value::integer(0);
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value::integer(m);
    }
    case BinaryOp::kPow: {
      if (y < 0) {
        if (x == 0) fail("0.0 cannot be raised to a negative power");
        return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
      }
      int64_t result = 1;
      int64_t base = x;
      int64_t e = y;
      while (e > 0) {
        if (e & 1)
          if (__builtin_mul_overflow(result, base, &result)) overflow();
        e >>= 1;
        if (e > 0 && __builtin_mul_overflow(base, base, &base)) overflow();
      }
      return Value::integer(result);
    }
  }
  return Value();
}

std::string pad(std::string body, size_t width, bool left_align, char fill = ' ') {
  const size_t len = utf8_length(body);
  if (len >= width) return body;
  const std::string padding(width - len, fill);
  return left_align ? body + padding : padding + body;
}

int64_t star_argument(const Value& v) {
  if (!(v.is_int() || v.is_bool())) fail("* wants int");
  const int64_t n = v.int_value();
  if (n > 1'000'000 || n < -1'000'000) fail("width too big");
  return n;
}

}  // namespace

Value binary_op(Interpreter& interp, BinaryOp op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  // str % x formats x itself (Undefined included); every other operator defers to
  // Undefined's reflected method, which raises.
  if (b.is_undefined() && !(op == BinaryOp::kMod && a.is_string())) fail_undefined(b);
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  switch (op) {
    case BinaryOp::kAdd:
      if (a.is_string() && b.is_string()) {
        interp.check_size(static_cast<uint64_t>(a.str().size()) + b.str().size());
        // markupsafe.Markup escapes the plain operand of a + on either side.
        if (a.is_markup() != b.is_markup()) {
          const std::string left = a.is_markup() ? a.str() : html_escape(a.str());
          const std::string right = b.is_markup() ? b.str() : html_escape(b.str());
          return interp.make_string(left + right, true);
        }
        return Value::string(a.str() + b.str(), a.is_markup());
      }
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        interp.charge(a.list().items.size() + b.list().items.size());
        std::vector<Value> items = a.list().items;
        items.insert(items.end(), b.list().items.begin(), b.list().items.end());
        return Value::list(std::move(items), a.is_tuple());
      }
      if (a.is_string() || a.is_list()) {
        fail("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
      }
      unsupported(op, a, b);
    case BinaryOp::kMul:
      if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(interp, a, b.int_value());
      if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(interp, b, a.int_value());
      if ((a.is_string() || a.is_list()) && b.is_number())
        fail("can't multiply sequence by non-int of type '" + type_name(b) + "'");
      unsupported(op, a, b);
    case BinaryOp::kMod:
      if (a.is_string()) return interp.make_string(percent_format(interp, a.str(), b), a.is_markup());
      unsupported(op, a, b);
    default:
      unsupported(op, a, b);
  }
}

Value negate(const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_float()) return Value::number(-v.as_float());
  if (v.is_int() || v.is_bool()) {
    if (v.int_value() == INT64_MIN) overflow();
    return Value::integer(-v.int_value());
  }
  fail("bad operand type for unary -: '" + type_name(v) + "'");
}

Value unary_plus(const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
  if (v.is_float()) return v;
  if (v.is_int() || v.is_bool()) return Value::integer(v.int_value());
  fail("bad operand type for unary +: '" + type_name(v) + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;  // jinja2's Undefined iterates as empty
    case Value::Kind::kString:
      if (!item.is_string())
        fail("'in <string>' requires string as left operand, not " + type_name(item));
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.list().items)
        if (py_equal(v, item)) return true;
      return false;
    case Value::Kind::kLazy:
      if (container.is_iterator()) {  // `in` consumes an iterator up to the match
        while (std::optional<Value> v = next_item(container))
          if (py_equal(*v, item)) return true;
        return false;
      }
      for (const Value& v : container.list().items)
        if (py_equal(v, item)) return true;
      return false;
    case Value::Kind::kDict:
      if (item.is_list() && !item.is_tuple()) fail("unhashable type: 'list'");
      if (item.is_dict()) fail("unhashable type: 'dict'");
      return container.dict().find(item) != nullptr;
    default:
      fail("argument of type '" + type_name(container) + "' is not iterable");
  }
}

bool compare_op(CompareOp op, const Value& a, const Value& b) {
  switch (op) {
    case CompareOp::kEq:
      return py_equal(a, b);
    case CompareOp::kNe:
      return !py_equal(a, b);
    case CompareOp::kIn:
      return contains(b, a);
    case CompareOp::kNotIn:
      return !contains(b, a);
    default:
      break;
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const int c = py_compare(a, b);
  if (c == 2) return false;  // NaN
  switch (op) {
    case CompareOp::kLt:
      return c < 0;
    case CompareOp::kLe:
      return c <= 0;
    case CompareOp::kGt:
      return c > 0;
    case CompareOp::kGe:
      return c >= 0;
    default:
      return false;
  }
}

std::string percent_format(Interpreter& interp, const std::string& format, const Value& args) {
  std::vector<Value> positional;
  const DictData* mapping = nullptr;
  if (args.is_tuple()) {
    positional = args.list().items;
  } else {
    positional.push_back(args);
    if (args.is_dict()) mapping = &args.dict();
  }
  // Python only complains about unused arguments for tuples and values without
  // __getitem__ (lists, dicts and jinja2's Undefined count as mappings here).
  const bool check_unused = args.is_tuple() || !(args.is_list() || args.is_dict() || args.is_undefined());
  size_t next_arg = 0;
  bool used_mapping = false;
  auto take = [&]() -> const Value& {
    if (next_arg >= positional.size()) fail("not enough arguments for format string");
    return positional[next_arg++];
  };
  std::string out;
  size_t i = 0;
  while (i < format.size()) {
    const char c = format[i++];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (i >= format.size()) fail("incomplete format");
    if (format[i] == '%') {
      out.push_back('%');
      ++i;
      continue;
    }
    const Value* arg = nullptr;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos) fail("incomplete format key");
      if (args.is_undefined()) fail_undefined(args);
      if (!mapping) fail("format requires a mapping");
      const Value* v = mapping->find(format.substr(i + 1, close - i - 1));
      if (!v) fail("KeyError: " + py_repr_string(format.substr(i + 1, close - i - 1)));
      arg = v;
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() && std::string("-+ #0").find(format[i]) != std::string::npos) flags += format[i++];
    int64_t width = 0;
    if (i < format.size() && format[i] == '*') {
      width = star_argument(take());
      if (width < 0) {  // Python: a negative * width left-aligns
        flags += '-';
        width = -width;
      }
      ++i;
    } else {
      while (i < format.size() && format[i] >= '0' && format[i] <= '9') {
        width = width * 10 + (format[i++] - '0');
        if (width > 1'000'000) fail("width too big");
      }
    }
    int64_t precision = -1;
    if (i < format.size() && format[i] == '.') {
      ++i;
      precision = 0;
      if (i < format.size() && format[i] == '*') {
        precision = std::max<int64_t>(star_argument(take()), 0);
        ++i;
      } else {
        while (i < format.size() && format[i] >= '0' && format[i] <= '9') {
          precision = precision * 10 + (format[i++] - '0');
          if (precision > 1'000'000) fail("precision too big");
        }
      }
    }
    while (i < format.size() && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L')) ++i;
    if (i >= format.size()) fail("incomplete format");
    const char type = format[i++];
    const Value& v = arg ? *arg : take();
    const bool left = flags.find('-') != std::string::npos;
    interp.check_size(out.size() + static_cast<uint64_t>(width));
    switch (type) {
      case 's':
      case 'r':
      case 'a': {
        std::string text = type == 's' ? to_str(v) : to_repr(v);
        if (precision >= 0) {
          const CodePoints cps = decode_utf8(text);
          if (static_cast<size_t>(precision) < cps.size()) text = encode_utf8(cps, 0, static_cast<size_t>(precision));
        }
        out += pad(std::move(text), static_cast<size_t>(width), left);
        break;
      }
      case 'c': {
        std::string text;
        if (v.is_int()) {
          if (v.as_int() < 0 || v.as_int() > 0x10FFFF) fail("%c arg not in range(0x110000)");
          append_utf8(text, static_cast<char32_t>(v.as_int()));
        } else if (v.is_string() && utf8_length(v.str()) == 1) {
          text = v.str();
        } else {
          fail("%c requires int or char");
        }
        out += pad(std::move(text), static_cast<size_t>(width), left);
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        if (!v.is_number()) {
          fail(std::string("%") + type + " format: " +
               (type == 'x' || type == 'X' || type == 'o' ? "an integer" : "a real number") + " is required, not " +
               type_name(v));
        }
        if (v.is_float() && (type == 'x' || type == 'X' || type == 'o'))
          fail(std::string("%") + type + " format: an integer is required, not float");
        if (v.is_float() && !std::isfinite(v.as_float())) fail("cannot convert float to integer");
        const long long n = v.is_float() ? static_cast<long long>(v.as_float()) : v.int_value();
        const std::string spec = "%" + flags + (width > 0 ? std::to_string(width) : "") +
                                 (precision >= 0 ? std::string(".") + std::to_string(precision) : std::string()) + "ll" +
                                 (type == 'i' || type == 'u' ? 'd' : type);
        const int len = std::snprintf(nullptr, 0, spec.c_str(), n);
        std::string buf(static_cast<size_t>(len) + 1, '\0');
        std::snprintf(buf.data(), buf.size(), spec.c_str(), n);
        buf.resize(static_cast<size_t>(len));
        out += buf;
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!v.is_number()) fail(std::string("must be real number, not ") + type_name(v));
        const std::string spec = "%" + flags + (width > 0 ? std::to_string(width) : "") + "." +
                                 std::to_string(precision >= 0 ? precision : 6) + type;
        const int len = std::snprintf(nullptr, 0, spec.c_str(), v.float_value());
        std::string buf(static_cast<size_t>(len) + 1, '\0');
        std::snprintf(buf.data(), buf.size(), spec.c_str(), v.float_value());
        buf.resize(static_cast<size_t>(len));
        out += buf;
        break;
      }
      default:
        fail(std::string("unsupported format character '") + type + "'");
    }
  }
  if (check_unused && !used_mapping && next_arg < positional.size())
    fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace hotswap::jinja
