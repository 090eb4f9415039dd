#include "chat/template_interpreter.h"

#include "chat/py_text.h"
#include "chat/template_builtins.h"
#include "chat/template_error.h"
#include "chat/template_operators.h"

namespace hotswap::jinja {
namespace {

// jinja2's Undefined messages name the object's type this way: 'dict object'.
std::string object_description(const Value& v) {
  if (v.is_none()) return "'None'";
  if (v.is_object()) {
    return v.object().type == ObjectData::Type::kNamespace ? "'jinja2.utils.Namespace object'"
                                                           : "'jinja2.runtime.LoopContext object'";
  }
  return std::string("'") + type_name(v) + " object'";
}

Value missing_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(object_description(obj) + " has no attribute '" + name + "'");
}

// jinja2's Undefined._undefined_message for obj[key].
Value missing_item(const Value& obj, const Value& key) {
  if (key.is_string()) return missing_attribute(obj, key.str());
  const std::string description = object_description(obj);  // quoted: 'list object'
  return Value::undefined(description.substr(1, description.size() - 2) + " has no element " + to_repr(key));
}

// A call-stack guard for macro invocations.
class DepthGuard {
 public:
  DepthGuard(int& depth, int limit) : depth_(depth) {
    if (++depth_ > limit) {
      --depth_;
      throw TemplateError(TemplateError::Kind::kLimit,
                          "macro calls nest deeper than " + std::to_string(limit) + " levels");
    }
  }
  ~DepthGuard() { --depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;

 private:
  int& depth_;
};

}  // namespace

// ------------------------------------------------------------------ scopes

const Value* Interpreter::Scope::find(const std::string& name) const {
  for (const auto& [k, v] : vars)
    if (k == name) return &v;
  return nullptr;
}

void Interpreter::Scope::set(const std::string& name, Value value) {
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(name, std::move(value));
}

Value Interpreter::lookup(const std::string& name, const Scope& scope) const {
  for (const Scope* s = &scope; s; s = s->parent.get())
    if (const Value* v = s->find(name)) return *v;
  if (context_)
    if (const Value* v = context_->find(name)) return *v;
  Value global = global_function(name);
  if (!global.is_undefined()) return global;
  return Value::undefined("'" + name + "' is undefined");
}

// ------------------------------------------------------------------ accounting

void Interpreter::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps)
    throw TemplateError(TemplateError::Kind::kLimit,
                        "template exceeded its evaluation budget of " + std::to_string(limits_.max_steps) + " steps");
}

void Interpreter::check_size(uint64_t bytes) const {
  if (bytes > limits_.max_string_bytes)
    throw TemplateError(TemplateError::Kind::kLimit,
                        "template output exceeds " + std::to_string(limits_.max_string_bytes) + " bytes");
}

Value Interpreter::make_string(std::string s, bool markup) const {
  check_size(s.size());
  return Value::string(std::move(s), markup);
}

void Interpreter::emit(const std::string& text) {
  check_size(static_cast<uint64_t>(out_->size()) + text.size());
  out_->append(text);
}

// ------------------------------------------------------------------ entry

std::string Interpreter::render(const Program& program, const Value& context) {
  context_ = context.is_dict() ? &context.dict() : nullptr;
  std::string output;
  out_ = &output;
  auto root = std::make_shared<Scope>();
  exec_body(program.body, root);
  out_ = nullptr;
  return output;
}

Value Interpreter::evaluate_constant(const Expr& expr) {
  constant_mode_ = true;
  context_ = nullptr;
  const Scope empty;
  try {
    Value v = eval(expr, empty);
    constant_mode_ = false;
    return v;
  } catch (...) {
    constant_mode_ = false;
    throw;
  }
}

// ------------------------------------------------------------------ statements

Interpreter::Flow Interpreter::exec_body(const Body& body, const ScopePtr& scope) {
  for (const StmtPtr& stmt : body) {
    const Flow flow = exec(*stmt, scope);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

std::string Interpreter::capture(const Body& body, const ScopePtr& scope) {
  std::string buffer;
  std::string* saved = out_;
  out_ = &buffer;
  try {
    exec_body(body, scope);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return buffer;
}

Interpreter::Flow Interpreter::exec(const Stmt& stmt, const ScopePtr& scope) {
  charge(1);
  try {
    switch (stmt.kind) {
      case Stmt::Kind::kText:
        emit(static_cast<const TextStmt&>(stmt).text);
        return Flow::kNormal;
      case Stmt::Kind::kOutput:
        emit(to_str(eval(*static_cast<const OutputStmt&>(stmt).expr, *scope)));
        return Flow::kNormal;
      case Stmt::Kind::kIf: {
        const auto& node = static_cast<const IfStmt&>(stmt);
        for (const auto& [test, body] : node.branches)
          if (truthy(eval(*test, *scope))) return exec_body(body, scope);
        return exec_body(node.otherwise, scope);
      }
      case Stmt::Kind::kFor:
        return exec_for(static_cast<const ForStmt&>(stmt), scope);
      case Stmt::Kind::kSet: {
        const auto& node = static_cast<const SetStmt&>(stmt);
        assign(node.target, eval(*node.value, *scope), *scope);
        return Flow::kNormal;
      }
      case Stmt::Kind::kSetBlock: {
        const auto& node = static_cast<const SetBlockStmt&>(stmt);
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        Value body = make_string(capture(node.body, inner));
        if (node.filter) body = eval_filter(static_cast<const FilterExpr&>(*node.filter), *scope, &body);
        assign(node.target, body, *scope);
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        exec_macro(static_cast<const MacroStmt&>(stmt), scope);
        return Flow::kNormal;
      case Stmt::Kind::kCallBlock:
        exec_call_block(static_cast<const CallBlockStmt&>(stmt), scope);
        return Flow::kNormal;
      case Stmt::Kind::kFilterBlock: {
        const auto& node = static_cast<const FilterBlockStmt&>(stmt);
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        const Value body = make_string(capture(node.body, inner));
        emit(to_str(eval_filter(static_cast<const FilterExpr&>(*node.filter), *scope, &body)));
        return Flow::kNormal;
      }
      case Stmt::Kind::kWith: {
        const auto& node = static_cast<const WithStmt&>(stmt);
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        std::vector<Value> values;
        for (const auto& [target, expr] : node.assignments) values.push_back(eval(*expr, *scope));
        for (size_t i = 0; i < values.size(); ++i) assign(node.assignments[i].first, values[i], *inner);
        exec_body(node.body, inner);
        return Flow::kNormal;
      }
      case Stmt::Kind::kScope: {
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        exec_body(static_cast<const ScopeStmt&>(stmt).body, inner);
        return Flow::kNormal;
      }
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
    }
  } catch (TemplateError& e) {
    e.set_line_if_unknown(stmt.line);
    throw;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_for(const ForStmt& node, const ScopePtr& scope) {
  const Value iterable = eval(*node.iterable, *scope);
  std::vector<Value> items = iterate(iterable);
  charge(items.size());
  if (node.filter) {
    // The filter sees the loop target but not this loop's `loop` (jinja2 evaluates
    // it before the LoopContext exists), so an outer `loop` stays visible.
    std::vector<Value> kept;
    for (Value& item : items) {
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      assign(node.target, item, *probe);
      if (truthy(eval(*node.filter, *probe))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    exec_body(node.otherwise, inner);
    return Flow::kNormal;
  }
  const auto length = static_cast<int64_t>(items.size());
  // State shared by every iteration's loop.changed().
  auto last_changed = std::make_shared<std::optional<std::vector<Value>>>();
  for (int64_t i = 0; i < length; ++i) {
    charge(1);
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    assign(node.target, items[static_cast<size_t>(i)], *inner);

    auto loop = std::make_shared<ObjectData>();
    loop->type = ObjectData::Type::kLoop;
    DictData& a = loop->attributes;
    a.set(Value::string("index"), Value::integer(i + 1));
    a.set(Value::string("index0"), Value::integer(i));
    a.set(Value::string("revindex"), Value::integer(length - i));
    a.set(Value::string("revindex0"), Value::integer(length - i - 1));
    a.set(Value::string("first"), Value::boolean(i == 0));
    a.set(Value::string("last"), Value::boolean(i == length - 1));
    a.set(Value::string("length"), Value::integer(length));
    a.set(Value::string("depth"), Value::integer(1));
    a.set(Value::string("depth0"), Value::integer(0));
    if (i > 0) a.set(Value::string("previtem"), items[static_cast<size_t>(i - 1)]);
    if (i + 1 < length) a.set(Value::string("nextitem"), items[static_cast<size_t>(i + 1)]);
    a.set(Value::string("cycle"),
          Value::callable({Callable::Type::kMethod, "cycle", [i](Interpreter&, CallArgs& args) -> Value {
                             if (args.positional.empty()) fail("no items for cycling given");
                             return args.positional[static_cast<size_t>(i) % args.positional.size()];
                           }}));
    a.set(Value::string("changed"),
          Value::callable({Callable::Type::kMethod, "changed", [last_changed](Interpreter&, CallArgs& args) -> Value {
                             const std::vector<Value>& now = args.positional;
                             bool same = last_changed->has_value() && (*last_changed)->size() == now.size();
                             for (size_t k = 0; same && k < now.size(); ++k) same = py_equal((**last_changed)[k], now[k]);
                             if (same) return Value::boolean(false);
                             *last_changed = now;
                             return Value::boolean(true);
                           }}));
    inner->set("loop", Value::object(std::move(loop)));

    if (exec_body(node.body, inner) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

void Interpreter::exec_macro(const MacroStmt& node, const ScopePtr& scope) {
  scope->set(node.macro->name, make_macro(node.macro, scope));
}

Value Interpreter::make_macro(const std::shared_ptr<const MacroDef>& def, const ScopePtr& scope) {
  // A weak reference: the macro usually lives in the very scope it captures.
  std::weak_ptr<Scope> defining = scope;
  const MacroDef* raw = def.get();
  return Value::callable({Callable::Type::kMacro, def->name, [raw, defining](Interpreter& interp, CallArgs& args) {
                            return interp.invoke_macro(*raw, defining, args);
                          }});
}

void Interpreter::exec_call_block(const CallBlockStmt& node, const ScopePtr& scope) {
  const Value caller = make_macro(node.caller, scope);
  emit(to_str(eval_call(static_cast<const CallExpr&>(*node.call), *scope, &caller)));
}

Value Interpreter::invoke_macro(const MacroDef& def, const std::weak_ptr<Scope>& defining_scope, CallArgs& args) {
  DepthGuard guard(call_depth_, limits_.max_call_depth);
  ScopePtr parent = defining_scope.lock();
  if (!parent) fail("macro '" + def.name + "' outlived the scope that defined it");
  auto scope = std::make_shared<Scope>();
  scope->parent = parent;

  const size_t num_params = def.params.size();
  std::vector<bool> bound(num_params, false);
  std::vector<Value> varargs;
  DictData kwargs;
  Value caller = Value::undefined("'caller' is undefined");
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < num_params) {
      scope->set(def.params[i], args.positional[i]);
      bound[i] = true;
    } else if (def.uses_varargs) {
      varargs.push_back(args.positional[i]);
    } else {
      fail("macro '" + def.name + "' takes not more than " + std::to_string(num_params) + " argument(s)");
    }
  }
  for (auto& [key, value] : args.keyword) {
    size_t p = 0;
    while (p < num_params && def.params[p] != key) ++p;
    if (p < num_params) {
      if (bound[p]) fail("macro '" + def.name + "' got multiple values for argument '" + key + "'");
      scope->set(key, value);
      bound[p] = true;
    } else if (key == "caller" && def.uses_caller) {
      caller = value;
    } else if (def.uses_kwargs) {
      kwargs.set(Value::string(key), value);
    } else {
      fail("macro '" + def.name + "' takes no keyword argument '" + key + "'");
    }
  }
  const size_t first_default = num_params - def.defaults.size();
  for (size_t p = 0; p < num_params; ++p) {
    if (bound[p]) continue;
    if (p >= first_default) {
      scope->set(def.params[p], eval(*def.defaults[p - first_default], *scope));
    } else {
      scope->set(def.params[p], Value::undefined("parameter '" + def.params[p] + "' was not provided"));
    }
  }
  if (def.uses_varargs) scope->set("varargs", Value::list(std::move(varargs), true));
  if (def.uses_kwargs) scope->set("kwargs", Value::dict(std::move(kwargs)));
  if (def.uses_caller) scope->set("caller", caller);
  return make_string(capture(def.body, scope));
}

void Interpreter::assign(const Target& target, const Value& value, Scope& scope) {
  switch (target.kind) {
    case Target::Kind::kName:
      scope.set(target.name, value);
      return;
    case Target::Kind::kTuple: {
      const std::vector<Value> items = iterate(value);
      if (items.size() < target.items.size()) {
        fail("not enough values to unpack (expected " + std::to_string(target.items.size()) + ", got " +
             std::to_string(items.size()) + ")");
      }
      if (items.size() > target.items.size())
        fail("too many values to unpack (expected " + std::to_string(target.items.size()) + ")");
      for (size_t i = 0; i < items.size(); ++i) assign(target.items[i], items[i], scope);
      return;
    }
    case Target::Kind::kNamespaceAttr: {
      const Value ns = lookup(target.name, scope);
      if (!ns.is_namespace()) fail("cannot assign attribute on non-namespace object");
      // Keeps values acyclic: a namespace may not hold a namespace or loop object.
      if (value.contains_object()) fail("a namespace attribute cannot hold a namespace or loop object");
      ns.object().attributes.set(Value::string(target.attr), value);
      return;
    }
  }
}

// ------------------------------------------------------------------ expressions

CallArgs Interpreter::eval_args(const CallArgsExpr& args, const Scope& scope) {
  CallArgs out;
  for (const ExprPtr& e : args.positional) out.positional.push_back(eval(*e, scope));
  if (args.star_args) {
    for (Value& v : iterate(eval(*args.star_args, scope))) out.positional.push_back(std::move(v));
  }
  for (const auto& [name, e] : args.keyword) out.keyword.emplace_back(name, eval(*e, scope));
  if (args.star_kwargs) {
    const Value kw = eval(*args.star_kwargs, scope);
    if (!kw.is_dict()) fail("argument after ** must be a mapping, not " + type_name(kw));
    for (const auto& [k, v] : kw.dict().entries()) {
      if (!k.is_string()) fail("keywords must be strings");
      out.keyword.emplace_back(k.str(), v);
    }
  }
  return out;
}

Value Interpreter::eval_call(const CallExpr& node, const Scope& scope, const Value* caller) {
  const Value callee = eval(*node.callee, scope);
  CallArgs args = eval_args(node.args, scope);
  if (caller) args.keyword.emplace_back("caller", *caller);
  return call(callee, args);
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_callable()) return callee.callable().fn(*this, args);
  if (callee.is_undefined()) fail_undefined(callee);
  fail(std::string("'") + type_name(callee) + "' object is not callable");
}

Value Interpreter::eval_filter(const FilterExpr& node, const Scope& scope, const Value* block_body) {
  Value operand;
  if (!node.operand) {
    operand = *block_body;
  } else if (block_body && node.operand->kind == Expr::Kind::kFilter) {
    operand = eval_filter(static_cast<const FilterExpr&>(*node.operand), scope, block_body);
  } else {
    operand = eval(*node.operand, scope);
  }
  CallArgs args = eval_args(node.args, scope);
  return apply_filter(node.name, operand, args, node.line);
}

Value Interpreter::apply_filter(const std::string& name, const Value& operand, CallArgs& args, int line) {
  try {
    return call_filter(*this, name, operand, args);
  } catch (TemplateError& e) {
    e.set_line_if_unknown(line);
    throw;
  }
}

bool Interpreter::apply_test(const std::string& name, const Value& operand, CallArgs& args) {
  return call_test(*this, name, operand, args);
}

// jinja2 compiles obj[a:b:c] to a plain Python subscript, bypassing the sandbox's
// getitem: unlike obj[key], a bad slice is an error rather than an Undefined. Only
// during constant folding (Node.as_const() uses getitem) does a TypeError become
// Undefined; a zero step (ValueError) and slicing Undefined fail either way.
Value Interpreter::eval_slice(const Value& obj, const SliceExpr& slice, const Scope& scope) {
  const std::string undefined_hint = object_description(obj) + " has no element slice";
  std::optional<int64_t> parts[3];
  const Expr* exprs[3] = {slice.start.get(), slice.stop.get(), slice.step.get()};
  bool bad_bound = false;
  for (int k = 0; k < 3; ++k) {
    if (!exprs[k]) continue;
    const Value v = eval(*exprs[k], scope);
    if (v.is_none()) continue;
    if (!(v.is_int() || v.is_bool())) {
      if (!constant_mode_) fail("slice indices must be integers or None or have an __index__ method");
      bad_bound = true;
      continue;
    }
    parts[k] = v.int_value();
  }
  if (obj.is_undefined()) fail_undefined(obj);
  if (bad_bound) return Value::undefined(undefined_hint);
  if (parts[2] && *parts[2] == 0) fail("slice step cannot be zero");
  if (obj.is_string()) {
    const CodePoints cps = decode_utf8(obj.str());
    std::string out;
    for (const int64_t p : slice_positions(static_cast<int64_t>(cps.size()), parts[0], parts[1], parts[2]))
      append_utf8(out, cps[static_cast<size_t>(p)]);
    return Value::string(std::move(out), obj.is_markup());
  }
  if (obj.is_list()) {
    const auto& items = obj.list().items;
    std::vector<Value> out;
    for (const int64_t p : slice_positions(static_cast<int64_t>(items.size()), parts[0], parts[1], parts[2]))
      out.push_back(items[static_cast<size_t>(p)]);
    charge(out.size());
    return Value::list(std::move(out), obj.is_tuple());
  }
  if (constant_mode_) return Value::undefined(undefined_hint);
  if (obj.is_dict()) fail("unhashable type: 'slice'");
  fail(std::string("'") + type_name(obj) + "' object is not subscriptable");
}

Value Interpreter::get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      // Python finds dunders such as __class__ on the Undefined object itself; the
      // sandbox then answers with an unsafe Undefined instead of failing.
      if (name.size() > 4 && name.compare(0, 2, "__") == 0 && name.compare(name.size() - 2, 2, "__") == 0)
        return Value::unsafe("access to attribute '" + name + "' of 'Undefined' object is unsafe.");
      fail_undefined(obj);
    case Value::Kind::kDict: {
      Value method = method_attribute(obj, name);  // getattr() wins over the item
      if (!method.is_undefined() || method.is_unsafe_undefined()) return method;
      if (const Value* v = obj.dict().find(name)) return *v;
      return missing_attribute(obj, name);
    }
    case Value::Kind::kString:
    case Value::Kind::kList: {
      Value method = method_attribute(obj, name);
      if (!method.is_undefined() || method.is_unsafe_undefined()) return method;
      return missing_attribute(obj, name);
    }
    case Value::Kind::kObject:
      if (const Value* v = obj.object().attributes.find(name)) return *v;
      return missing_attribute(obj, name);
    default:
      return missing_attribute(obj, name);
  }
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Value::Kind::kUndefined:
      fail_undefined(obj);
    case Value::Kind::kDict:
      if (const Value* v = obj.dict().find(key)) return *v;
      break;
    case Value::Kind::kList:
    case Value::Kind::kString:
      if (key.is_int() || key.is_bool()) {
        int64_t i = key.int_value();
        if (obj.is_list()) {
          const auto n = static_cast<int64_t>(obj.list().items.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return obj.list().items[static_cast<size_t>(i)];
        } else {
          const CodePoints cps = decode_utf8(obj.str());
          const auto n = static_cast<int64_t>(cps.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) {
            std::string ch;
            append_utf8(ch, cps[static_cast<size_t>(i)]);
            return Value::string(std::move(ch), obj.is_markup());
          }
        }
        return missing_item(obj, key);
      }
      break;
    default:
      break;
  }
  // jinja2's getitem falls back to getattr() for string keys.
  if (key.is_string()) {
    if (obj.is_object()) {
      if (const Value* v = obj.object().attributes.find(key.str())) return *v;
    } else if (obj.is_dict() || obj.is_list() || obj.is_string()) {
      Value method = method_attribute(obj, key.str());
      if (!method.is_undefined() || method.is_unsafe_undefined()) return method;
    }
  }
  return missing_item(obj, key);
}

Value Interpreter::eval(const Expr& expr, const Scope& scope) {
  charge(1);
  if (constant_mode_) {
    // Node.as_const() cannot see variables, call functions or run filters that
    // need the render context.
    const TemplateError impossible(TemplateError::Kind::kNotConstant, "not a constant");
    if (expr.kind == Expr::Kind::kName || expr.kind == Expr::Kind::kCall) throw impossible;
    if (expr.kind == Expr::Kind::kFilter) {
      const std::string& f = static_cast<const FilterExpr&>(expr).name;
      if (f == "map" || f == "select" || f == "reject" || f == "selectattr" || f == "rejectattr") throw impossible;
    }
  }
  switch (expr.kind) {
    case Expr::Kind::kLiteral:
      return static_cast<const LiteralExpr&>(expr).value;
    case Expr::Kind::kName:
      return lookup(static_cast<const NameExpr&>(expr).name, scope);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      for (const ExprPtr& e : static_cast<const SequenceExpr&>(expr).items) items.push_back(eval(*e, scope));
      return Value::list(std::move(items), expr.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      DictData d;
      for (const auto& [k, v] : static_cast<const DictExpr&>(expr).items) {
        Value key = eval(*k, scope);
        if ((key.is_list() && !key.is_tuple()) || key.is_dict() || key.is_object())
          fail("unhashable type: '" + type_name(key) + "'");
        d.set(std::move(key), eval(*v, scope));
      }
      return Value::dict(std::move(d));
    }
    case Expr::Kind::kGetAttr: {
      const auto& node = static_cast<const GetAttrExpr&>(expr);
      return get_attr(eval(*node.object, scope), node.name);
    }
    case Expr::Kind::kGetItem: {
      const auto& node = static_cast<const GetItemExpr&>(expr);
      const Value obj = eval(*node.object, scope);
      if (node.index->kind == Expr::Kind::kSlice)
        return eval_slice(obj, static_cast<const SliceExpr&>(*node.index), scope);
      return get_item(obj, eval(*node.index, scope));
    }
    case Expr::Kind::kSlice:
      fail("slice outside of a subscript");
    case Expr::Kind::kCall:
      return eval_call(static_cast<const CallExpr&>(expr), scope, nullptr);
    case Expr::Kind::kFilter:
      return eval_filter(static_cast<const FilterExpr&>(expr), scope, nullptr);
    case Expr::Kind::kTest: {
      const auto& node = static_cast<const TestExpr&>(expr);
      const Value operand = eval(*node.operand, scope);
      CallArgs args = eval_args(node.args, scope);
      return Value::boolean(apply_test(node.name, operand, args));
    }
    case Expr::Kind::kNot:
      return Value::boolean(!truthy(eval(*static_cast<const UnaryExpr&>(expr).operand, scope)));
    case Expr::Kind::kNeg:
      return negate(eval(*static_cast<const UnaryExpr&>(expr).operand, scope));
    case Expr::Kind::kPos:
      return unary_plus(eval(*static_cast<const UnaryExpr&>(expr).operand, scope));
    case Expr::Kind::kBinary: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      const Value a = eval(*node.left, scope);
      const Value b = eval(*node.right, scope);
      return binary_op(*this, node.op, a, b);
    }
    case Expr::Kind::kAnd: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      Value a = eval(*node.left, scope);
      return truthy(a) ? eval(*node.right, scope) : a;
    }
    case Expr::Kind::kOr: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      Value a = eval(*node.left, scope);
      return truthy(a) ? a : eval(*node.right, scope);
    }
    case Expr::Kind::kConcat: {
      std::string out;
      for (const ExprPtr& e : static_cast<const ConcatExpr&>(expr).parts) {
        out += to_str(eval(*e, scope));
        check_size(out.size());
      }
      return Value::string(std::move(out));
    }
    case Expr::Kind::kCompare: {
      const auto& node = static_cast<const CompareExpr&>(expr);
      Value left = eval(*node.first, scope);
      for (const auto& [op, e] : node.rest) {
        Value right = eval(*e, scope);
        if (!compare_op(op, left, right)) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case Expr::Kind::kCondExpr: {
      const auto& node = static_cast<const CondExpr&>(expr);
      if (truthy(eval(*node.test, scope))) return eval(*node.then, scope);
      if (node.otherwise) return eval(*node.otherwise, scope);
      return Value::undefined("the inline if-expression on line " + std::to_string(expr.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return Value();
}

}  // namespace hotswap::jinja
