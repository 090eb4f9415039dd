#include "chat/template_optimizer.h"

#include <optional>

#include "chat/template_error.h"
#include "chat/template_interpreter.h"

namespace hotswap::jinja {
namespace {

// jinja2's Const.from_untrusted() accepts only values whose repr() round-trips.
bool has_safe_repr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNone:
    case Value::Kind::kBool:
    case Value::Kind::kInt:
    case Value::Kind::kFloat:
    case Value::Kind::kString:
      return true;
    case Value::Kind::kList:
      for (const Value& item : v.list().items)
        if (!has_safe_repr(item)) return false;
      return true;
    case Value::Kind::kDict:
      for (const auto& [k, val] : v.dict().entries())
        if (!has_safe_repr(k) || !has_safe_repr(val)) return false;
      return true;
    default:
      return false;
  }
}

class ConstantFolder {
 public:
  // The folder shares one evaluation budget for the whole template, so compiling
  // stays cheap however large the constant expressions; past it nothing more folds.
  ConstantFolder() : interp_({.max_string_bytes = 1u << 20, .max_call_depth = 4, .max_steps = 200'000}) {}

  void body(Body& stmts) {
    for (StmtPtr& s : stmts) stmt(s);
  }

 private:
  // Node.as_const(): evaluation fails ("Impossible") on a variable, a call or a
  // context filter it actually reaches (and/or/if-else short-circuit as in Python),
  // or on any error; the node is then left for run time.
  std::optional<Value> evaluate(const Expr& e) {
    try {
      return interp_.evaluate_constant(e);
    } catch (const TemplateError&) {
      return std::nullopt;
    }
  }

  void stmt(StmtPtr& slot) {
    Stmt& s = *slot;
    switch (s.kind) {
      case Stmt::Kind::kOutput: {
        auto& node = static_cast<OutputStmt&>(s);
        expr(node.expr);
        // CodeGenerator.visit_Output: a constant output becomes template text.
        if (node.expr->kind != Expr::Kind::kLiteral) {
          if (std::optional<Value> v = evaluate(*node.expr)) slot = std::make_unique<TextStmt>(s.line, to_str(*v));
        }
        return;
      }
      case Stmt::Kind::kIf: {
        auto& node = static_cast<IfStmt&>(s);
        for (auto& [test, branch] : node.branches) {
          expr(test);
          body(branch);
        }
        body(node.otherwise);
        return;
      }
      case Stmt::Kind::kFor: {
        auto& node = static_cast<ForStmt&>(s);
        expr(node.iterable);
        expr(node.filter);
        body(node.body);
        body(node.otherwise);
        return;
      }
      case Stmt::Kind::kSet:
        expr(static_cast<SetStmt&>(s).value);
        return;
      case Stmt::Kind::kSetBlock: {
        auto& node = static_cast<SetBlockStmt&>(s);
        filter_chain(node.filter);
        body(node.body);
        return;
      }
      case Stmt::Kind::kMacro:
        macro(*static_cast<MacroStmt&>(s).macro);
        return;
      case Stmt::Kind::kCallBlock: {
        auto& node = static_cast<CallBlockStmt&>(s);
        args(static_cast<CallExpr&>(*node.call).args);
        macro(*node.caller);
        return;
      }
      case Stmt::Kind::kFilterBlock: {
        auto& node = static_cast<FilterBlockStmt&>(s);
        filter_chain(node.filter);
        body(node.body);
        return;
      }
      case Stmt::Kind::kWith: {
        auto& node = static_cast<WithStmt&>(s);
        for (auto& [target, value] : node.assignments) expr(value);
        body(node.body);
        return;
      }
      case Stmt::Kind::kScope:
        body(static_cast<ScopeStmt&>(s).body);
        return;
      case Stmt::Kind::kText:
      case Stmt::Kind::kBreak:
      case Stmt::Kind::kContinue:
        return;
    }
  }

  void macro(MacroDef& def) {
    for (ExprPtr& d : def.defaults) expr(d);
    body(def.body);
  }

  // The filters of a set/filter block: their operand is the block body, only the
  // arguments can fold.
  void filter_chain(ExprPtr& e) {
    for (Expr* node = e.get(); node && node->kind == Expr::Kind::kFilter;) {
      auto* f = static_cast<FilterExpr*>(node);
      args(f->args);
      node = f->operand.get();
    }
  }

  void args(CallArgsExpr& a) {
    for (ExprPtr& e : a.positional) expr(e);
    for (auto& [name, e] : a.keyword) expr(e);
    expr(a.star_args);
    expr(a.star_kwargs);
  }

  // Folds the children of `slot`, then `slot` itself when constant with a safe repr.
  void expr(ExprPtr& slot) {
    if (!slot) return;
    Expr& e = *slot;
    switch (e.kind) {
      case Expr::Kind::kLiteral:
      case Expr::Kind::kName:
        return;
      case Expr::Kind::kList:
      case Expr::Kind::kTuple:
        for (ExprPtr& item : static_cast<SequenceExpr&>(e).items) expr(item);
        break;
      case Expr::Kind::kDict:
        for (auto& [k, v] : static_cast<DictExpr&>(e).items) {
          expr(k);
          expr(v);
        }
        break;
      case Expr::Kind::kGetAttr:
        expr(static_cast<GetAttrExpr&>(e).object);
        break;
      case Expr::Kind::kGetItem:
        expr(static_cast<GetItemExpr&>(e).object);
        expr(static_cast<GetItemExpr&>(e).index);
        break;
      case Expr::Kind::kSlice: {
        auto& node = static_cast<SliceExpr&>(e);
        expr(node.start);
        expr(node.stop);
        expr(node.step);
        return;  // a slice is not a value of its own
      }
      case Expr::Kind::kCall:
        expr(static_cast<CallExpr&>(e).callee);
        args(static_cast<CallExpr&>(e).args);
        return;
      case Expr::Kind::kFilter:
        expr(static_cast<FilterExpr&>(e).operand);
        args(static_cast<FilterExpr&>(e).args);
        break;
      case Expr::Kind::kTest:
        expr(static_cast<TestExpr&>(e).operand);
        args(static_cast<TestExpr&>(e).args);
        break;
      case Expr::Kind::kNot:
      case Expr::Kind::kNeg:
      case Expr::Kind::kPos:
        expr(static_cast<UnaryExpr&>(e).operand);
        break;
      case Expr::Kind::kBinary:
      case Expr::Kind::kAnd:
      case Expr::Kind::kOr:
        expr(static_cast<BinaryExpr&>(e).left);
        expr(static_cast<BinaryExpr&>(e).right);
        break;
      case Expr::Kind::kConcat:
        for (ExprPtr& part : static_cast<ConcatExpr&>(e).parts) expr(part);
        break;
      case Expr::Kind::kCompare:
        expr(static_cast<CompareExpr&>(e).first);
        for (auto& [op, operand] : static_cast<CompareExpr&>(e).rest) expr(operand);
        break;
      case Expr::Kind::kCondExpr:
        expr(static_cast<CondExpr&>(e).test);
        expr(static_cast<CondExpr&>(e).then);
        expr(static_cast<CondExpr&>(e).otherwise);
        break;
    }
    std::optional<Value> v = evaluate(e);
    if (v && has_safe_repr(*v)) slot = std::make_unique<LiteralExpr>(e.line, std::move(*v));
  }

  Interpreter interp_;
};

}  // namespace

void fold_constants(Program& program) { ConstantFolder().body(program.body); }

}  // namespace hotswap::jinja
