// Tree-walking evaluator for a parsed template, with the semantics of jinja2's
// ImmutableSandboxedEnvironment (autoescape off) as transformers configures it:
// Python operators and truthiness, default Undefined, jinja2 scoping (a `for`
// iteration, macro call, `with`, set/filter block body each get their own scope;
// `if` does not), sandboxed attribute access and loop controls.
//
// One Interpreter renders one template once; it is not thread-safe and not reusable.
// Builtins (filters, tests, methods, globals) call back into it for attribute access,
// calls, and the resource accounting that keeps a render bounded.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/template_ast.h"
#include "chat/template_value.h"

namespace hotswap::jinja {

struct InterpreterLimits {
  size_t max_string_bytes;  // rendered output and every intermediate string
  int max_call_depth;       // nested macro/caller invocations
  uint64_t max_steps;       // evaluation budget: nodes, loop iterations, produced elements
};

class Interpreter {
 public:
  explicit Interpreter(const InterpreterLimits& limits) : limits_(limits) {}

  // Renders `program` with `context` (a dict) as the template's variables.
  std::string render(const Program& program, const Value& context);

  // Evaluates a variable-free expression as jinja2's Node.as_const() does at compile
  // time (used by the constant folder, template_optimizer.h). Throws on failure.
  Value evaluate_constant(const Expr& expr);

  // ---- services for builtins
  Value get_attr(const Value& obj, const std::string& name);  // obj.name
  Value get_item(const Value& obj, const Value& key);         // obj[key]
  Value call(const Value& callee, CallArgs& args);
  Value apply_filter(const std::string& name, const Value& operand, CallArgs& args, int line);
  bool apply_test(const std::string& name, const Value& operand, CallArgs& args);
  void charge(uint64_t steps);             // throws TemplateError(kLimit) past max_steps
  void check_size(uint64_t bytes) const;   // throws TemplateError(kLimit) past max_string_bytes
  Value make_string(std::string s, bool markup = false) const;  // check_size + Value::string

 private:
  struct Scope {
    std::shared_ptr<Scope> parent;
    std::vector<std::pair<std::string, Value>> vars;
    const Value* find(const std::string& name) const;
    void set(const std::string& name, Value value);
  };
  using ScopePtr = std::shared_ptr<Scope>;
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec_body(const Body& body, const ScopePtr& scope);
  Flow exec(const Stmt& stmt, const ScopePtr& scope);
  Flow exec_for(const ForStmt& node, const ScopePtr& scope);
  void exec_macro(const MacroStmt& node, const ScopePtr& scope);
  void exec_call_block(const CallBlockStmt& node, const ScopePtr& scope);
  std::string capture(const Body& body, const ScopePtr& scope);
  void emit(const std::string& text);

  Value eval(const Expr& expr, const Scope& scope);
  Value eval_call(const CallExpr& node, const Scope& scope, const Value* caller);
  CallArgs eval_args(const CallArgsExpr& args, const Scope& scope);
  Value eval_filter(const FilterExpr& node, const Scope& scope, const Value* block_body);
  Value eval_slice(const Value& obj, const SliceExpr& slice, const Scope& scope);
  Value lookup(const std::string& name, const Scope& scope) const;
  void assign(const Target& target, const Value& value, Scope& scope);
  Value make_macro(const std::shared_ptr<const MacroDef>& def, const ScopePtr& scope);
  Value invoke_macro(const MacroDef& def, const std::weak_ptr<Scope>& defining_scope, CallArgs& args);

  InterpreterLimits limits_;
  const DictData* context_ = nullptr;
  std::string* out_ = nullptr;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  bool constant_mode_ = false;
};

}  // namespace hotswap::jinja
