#include "chat/template_parser.h"

#include <initializer_list>

#include "chat/template_builtins.h"
#include "chat/template_error.h"
#include "chat/template_lexer.h"
#include "chat/template_optimizer.h"

namespace hotswap::jinja {
namespace {

// Python's default recursion limit would stop jinja2 somewhere past a few hundred
// nested expressions; this bound keeps our native stack equally safe.
constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  std::unique_ptr<Program> run() {
    auto program = std::make_unique<Program>();
    program->body = subparse({});
    if (current().type != Token::Type::kEof) fail_here("unexpected " + quoted(current()));
    return program;
  }

 private:
  // RAII nesting counter for the recursive productions.
  class Nest {
   public:
    explicit Nest(Parser& p) : p_(p) {
      if (++p_.nesting_ > kMaxNesting) p_.fail_here("template nesting is too deep");
    }
    ~Nest() { --p_.nesting_; }
    Nest(const Nest&) = delete;
    Nest& operator=(const Nest&) = delete;

   private:
    Parser& p_;
  };

  const Token& current() const { return tokens_[pos_]; }
  const Token& look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  const Token& advance() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }

  static std::string quoted(const Token& t) { return "'" + describe(t) + "'"; }

  [[noreturn]] void fail_at(const Token& t, const std::string& message) const {
    throw TemplateError(TemplateError::Kind::kSyntax, message, t.line, t.column);
  }
  [[noreturn]] void fail_here(const std::string& message) const { fail_at(current(), message); }

  bool skip_op(std::string_view op) {
    if (!current().is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!current().is_name(name)) return false;
    advance();
    return true;
  }
  const Token& expect_op(std::string_view op) {
    if (!current().is_op(op)) fail_here("expected '" + std::string(op) + "', got " + quoted(current()));
    return advance();
  }
  const Token& expect_name() {
    if (current().type != Token::Type::kName) fail_here("expected name, got " + quoted(current()));
    return advance();
  }
  void expect_name(std::string_view name) {
    if (!current().is_name(name)) fail_here("expected '" + std::string(name) + "', got " + quoted(current()));
    advance();
  }
  void expect(Token::Type type, const char* what) {
    if (current().type != type) fail_here(std::string("expected ") + what + ", got " + quoted(current()));
    advance();
  }

  bool at_any_name(const std::vector<std::string_view>& names) const {
    for (const auto& n : names)
      if (current().is_name(n)) return true;
    return false;
  }

  // ------------------------------------------------------------ statements

  // Parses until a block tag whose name is one of end_names; leaves that name current.
  Body subparse(const std::vector<std::string_view>& end_names) {
    Body body;
    while (current().type != Token::Type::kEof) {
      const Token& t = current();
      if (t.type == Token::Type::kData) {
        body.push_back(std::make_unique<TextStmt>(t.line, t.text));
        advance();
      } else if (t.type == Token::Type::kVariableBegin) {
        advance();
        ExprPtr e = parse_tuple(TupleMode::kExpression, {}, false);
        expect(Token::Type::kVariableEnd, "end of print statement");
        body.push_back(std::make_unique<OutputStmt>(t.line, std::move(e)));
      } else if (t.type == Token::Type::kBlockBegin) {
        advance();
        if (!end_names.empty() && at_any_name(end_names)) return body;
        body.push_back(parse_statement());
        expect(Token::Type::kBlockEnd, "end of statement block");
      } else {
        fail_here("unexpected " + quoted(t));
      }
    }
    return body;
  }

  // `{% tag ... %}body{% end... %}`: expects the block end, then parses the body.
  Body parse_statements(const std::vector<std::string_view>& end_names, bool drop_needle) {
    skip_op(":");
    expect(Token::Type::kBlockEnd, "end of statement block");
    Body body = subparse(end_names);
    if (current().type == Token::Type::kEof) {
      std::string expected;
      for (const auto& n : end_names) expected += (expected.empty() ? "'" : " or '") + std::string(n) + "'";
      fail_here("unexpected end of template, expected " + expected);
    }
    if (drop_needle) advance();
    return body;
  }

  StmtPtr parse_statement() {
    Nest nest(*this);
    const Token& t = current();
    if (t.type != Token::Type::kName) fail_here("tag name expected");
    const std::string& tag = t.text;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "call") return parse_call_block();
    if (tag == "filter") return parse_filter_block();
    if (tag == "with") return parse_with();
    if (tag == "print") {
      advance();
      return std::make_unique<OutputStmt>(t.line, parse_tuple(TupleMode::kExpression, {}, false));
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail_here("'" + tag + "' outside of a loop");
      advance();
      return std::make_unique<Stmt>(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, t.line);
    }
    if (tag == "generation") {
      advance();
      auto s = std::make_unique<ScopeStmt>(t.line);
      s->body = parse_statements({"endgeneration"}, true);
      return s;
    }
    if (tag == "extends" || tag == "include" || tag == "import" || tag == "from" || tag == "block" ||
        tag == "autoescape" || tag == "do" || tag == "trans")
      fail_here("tag '" + tag + "' is not supported in chat templates");
    fail_here("Encountered unknown tag '" + tag + "'.");
  }

  StmtPtr parse_if() {
    auto node = std::make_unique<IfStmt>(advance().line);
    while (true) {
      ExprPtr test = parse_tuple(TupleMode::kNoCondExpr, {}, false);
      Body body = parse_statements({"elif", "else", "endif"}, false);
      node->branches.emplace_back(std::move(test), std::move(body));
      const Token& t = advance();
      if (t.is_name("elif")) continue;
      if (t.is_name("else")) node->otherwise = parse_statements({"endif"}, true);
      break;
    }
    return node;
  }

  StmtPtr parse_for() {
    auto node = std::make_unique<ForStmt>(advance().line);
    node->target = parse_assign_target(true, false, {"in"});
    expect_name("in");
    node->iterable = parse_tuple(TupleMode::kNoCondExpr, {"recursive"}, false);
    if (skip_name("if")) node->filter = parse_expression(true);
    if (current().is_name("recursive")) fail_here("recursive for loops are not supported");
    ++loop_depth_;
    node->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (advance().is_name("else")) {
      // jinja2 compiles the else branch outside the loop: break/continue are invalid there.
      const int saved = loop_depth_;
      loop_depth_ = 0;
      node->otherwise = parse_statements({"endfor"}, true);
      loop_depth_ = saved;
    }
    return node;
  }

  StmtPtr parse_set() {
    const int line = advance().line;
    Target target = parse_assign_target(true, true, {});
    if (skip_op("=")) {
      auto node = std::make_unique<SetStmt>(line);
      node->target = std::move(target);
      node->value = parse_tuple(TupleMode::kExpression, {}, false);
      return node;
    }
    auto node = std::make_unique<SetBlockStmt>(line);
    node->target = std::move(target);
    node->filter = parse_filter(nullptr, false);
    node->body = parse_statements({"endset"}, true);
    return node;
  }

  void parse_signature(MacroDef& def) {
    expect_op("(");
    while (!current().is_op(")")) {
      if (!def.params.empty()) expect_op(",");
      const Token& name = expect_name();
      check_assignable(name);
      if (skip_op("=")) {
        def.defaults.push_back(parse_expression(true));
      } else if (!def.defaults.empty()) {
        fail_at(name, "non-default argument follows default argument");
      }
      def.params.push_back(name.text);
    }
    expect_op(")");
  }

  // Macro bodies record which of caller/varargs/kwargs they reference, as jinja2's
  // find_undeclared does, because that decides whether extra arguments are accepted.
  Body parse_macro_body(MacroDef& def, std::string_view end_name) {
    macro_stack_.push_back(&def);
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    Body body = parse_statements({end_name}, true);
    loop_depth_ = saved_loops;
    macro_stack_.pop_back();
    return body;
  }

  StmtPtr parse_macro() {
    auto node = std::make_unique<MacroStmt>(advance().line);
    const Token& name = expect_name();
    check_assignable(name);
    node->macro->name = name.text;
    parse_signature(*node->macro);
    node->macro->body = parse_macro_body(*node->macro, "endmacro");
    return node;
  }

  StmtPtr parse_call_block() {
    auto node = std::make_unique<CallBlockStmt>(advance().line);
    node->caller->name = "caller";
    if (current().is_op("(")) parse_signature(*node->caller);
    node->call = parse_expression(true);
    if (node->call->kind != Expr::Kind::kCall) fail_here("expected call");
    node->caller->body = parse_macro_body(*node->caller, "endcall");
    return node;
  }

  StmtPtr parse_filter_block() {
    auto node = std::make_unique<FilterBlockStmt>(advance().line);
    node->filter = parse_filter(nullptr, true);
    node->body = parse_statements({"endfilter"}, true);
    return node;
  }

  StmtPtr parse_with() {
    auto node = std::make_unique<WithStmt>(advance().line);
    while (current().type != Token::Type::kBlockEnd) {
      if (!node->assignments.empty()) expect_op(",");
      Target target = parse_assign_target(true, false, {});
      expect_op("=");
      node->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    node->body = parse_statements({"endwith"}, true);
    return node;
  }

  void check_assignable(const Token& name) const {
    static const char* const kConstants[] = {"true", "false", "none", "True", "False", "None"};
    for (const char* c : kConstants)
      if (name.text == c) fail_at(name, "can't assign to 'const'");
  }

  // jinja2 parse_assign_target: `ns.attr` (with_namespace), a name, or a tuple of names.
  Target parse_assign_target(bool with_tuple, bool with_namespace, const std::vector<std::string_view>& extra_end) {
    Target target;
    if (with_namespace && current().type == Token::Type::kName && look().is_op(".")) {
      target.kind = Target::Kind::kNamespaceAttr;
      target.name = advance().text;
      advance();
      target.attr = expect_name().text;
      return target;
    }
    if (!with_tuple) return parse_target_primary();
    std::vector<Target> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_target_primary());
      if (current().is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (items.empty()) fail_here("Expected an expression, got " + quoted(current()));
      return std::move(items[0]);
    }
    target.kind = Target::Kind::kTuple;
    target.items = std::move(items);
    return target;
  }

  Target parse_target_primary() {
    Nest nest(*this);
    Target target;
    if (current().type == Token::Type::kName) {
      check_assignable(current());
      target.name = advance().text;
      return target;
    }
    if (skip_op("(")) {
      Target inner = parse_assign_target(true, false, {});
      expect_op(")");
      return inner;
    }
    fail_here("can't assign to " + quoted(current()));
  }

  // ------------------------------------------------------------ expressions

  enum class TupleMode { kExpression, kNoCondExpr, kPrimary };

  bool is_tuple_end(const std::vector<std::string_view>& extra_end) const {
    const Token& t = current();
    if (t.type == Token::Type::kVariableEnd || t.type == Token::Type::kBlockEnd || t.is_op(")")) return true;
    return at_any_name(extra_end);
  }

  ExprPtr parse_tuple(TupleMode mode, const std::vector<std::string_view>& extra_end, bool explicit_parentheses) {
    const int line = current().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      if (mode == TupleMode::kPrimary) {
        items.push_back(parse_primary());
      } else {
        items.push_back(parse_expression(mode == TupleMode::kExpression));
      }
      if (current().is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail_here("Expected an expression, got " + quoted(current()));
    }
    auto node = std::make_unique<SequenceExpr>(Expr::Kind::kTuple, line);
    node->items = std::move(items);
    return node;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nest nest(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    const int line = current().line;
    ExprPtr expr1 = parse_or();
    while (skip_name("if")) {
      ExprPtr expr2 = parse_or();
      ExprPtr expr3;
      if (skip_name("else")) expr3 = parse_condexpr();
      expr1 = std::make_unique<CondExpr>(line, std::move(expr2), std::move(expr1), std::move(expr3));
    }
    return expr1;
  }

  ExprPtr parse_or() {
    const int line = current().line;
    ExprPtr left = parse_and();
    while (skip_name("or"))
      left = std::make_unique<BinaryExpr>(Expr::Kind::kOr, line, BinaryOp::kAdd, std::move(left), parse_and());
    return left;
  }

  ExprPtr parse_and() {
    const int line = current().line;
    ExprPtr left = parse_not();
    while (skip_name("and"))
      left = std::make_unique<BinaryExpr>(Expr::Kind::kAnd, line, BinaryOp::kAdd, std::move(left), parse_not());
    return left;
  }

  ExprPtr parse_not() {
    Nest nest(*this);
    if (current().is_name("not")) {
      const int line = advance().line;
      return std::make_unique<UnaryExpr>(Expr::Kind::kNot, line, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = current().line;
    ExprPtr expr = parse_math1();
    std::vector<std::pair<CompareOp, ExprPtr>> ops;
    while (true) {
      const Token& t = current();
      CompareOp op;
      if (t.is_op("==")) {
        op = CompareOp::kEq;
      } else if (t.is_op("!=")) {
        op = CompareOp::kNe;
      } else if (t.is_op("<")) {
        op = CompareOp::kLt;
      } else if (t.is_op("<=")) {
        op = CompareOp::kLe;
      } else if (t.is_op(">")) {
        op = CompareOp::kGt;
      } else if (t.is_op(">=")) {
        op = CompareOp::kGe;
      } else if (t.is_name("in")) {
        op = CompareOp::kIn;
      } else if (t.is_name("not") && look().is_name("in")) {
        advance();
        op = CompareOp::kNotIn;
      } else {
        break;
      }
      advance();
      ops.emplace_back(op, parse_math1());
    }
    if (ops.empty()) return expr;
    auto node = std::make_unique<CompareExpr>(line, std::move(expr));
    node->rest = std::move(ops);
    return node;
  }

  ExprPtr parse_math1() {
    const int line = current().line;
    ExprPtr left = parse_concat();
    while (current().is_op("+") || current().is_op("-")) {
      const BinaryOp op = advance().text == "+" ? BinaryOp::kAdd : BinaryOp::kSub;
      left = std::make_unique<BinaryExpr>(Expr::Kind::kBinary, line, op, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const int line = current().line;
    ExprPtr first = parse_math2();
    if (!current().is_op("~")) return first;
    auto node = std::make_unique<ConcatExpr>(line);
    node->parts.push_back(std::move(first));
    while (skip_op("~")) node->parts.push_back(parse_math2());
    return node;
  }

  ExprPtr parse_math2() {
    const int line = current().line;
    ExprPtr left = parse_pow();
    while (true) {
      BinaryOp op;
      if (current().is_op("*")) {
        op = BinaryOp::kMul;
      } else if (current().is_op("/")) {
        op = BinaryOp::kDiv;
      } else if (current().is_op("//")) {
        op = BinaryOp::kFloorDiv;
      } else if (current().is_op("%")) {
        op = BinaryOp::kMod;
      } else {
        break;
      }
      advance();
      left = std::make_unique<BinaryExpr>(Expr::Kind::kBinary, line, op, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    const int line = current().line;
    ExprPtr left = parse_unary(true);
    while (skip_op("**"))
      left = std::make_unique<BinaryExpr>(Expr::Kind::kBinary, line, BinaryOp::kPow, std::move(left),
                                          parse_unary(true));
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this);
    const int line = current().line;
    ExprPtr node;
    if (skip_op("-")) {
      node = std::make_unique<UnaryExpr>(Expr::Kind::kNeg, line, parse_unary(false));
    } else if (skip_op("+")) {
      node = std::make_unique<UnaryExpr>(Expr::Kind::kPos, line, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    Nest nest(*this);
    const Token& t = current();
    switch (t.type) {
      case Token::Type::kName: {
        advance();
        if (t.text == "true" || t.text == "True") return std::make_unique<LiteralExpr>(t.line, Value::boolean(true));
        if (t.text == "false" || t.text == "False")
          return std::make_unique<LiteralExpr>(t.line, Value::boolean(false));
        if (t.text == "none" || t.text == "None") return std::make_unique<LiteralExpr>(t.line, Value::none());
        note_name(t.text);
        return std::make_unique<NameExpr>(t.line, t.text);
      }
      case Token::Type::kString: {
        std::string text;
        while (current().type == Token::Type::kString) text += advance().text;  // 'a' 'b' concatenates
        return std::make_unique<LiteralExpr>(t.line, Value::string(std::move(text)));
      }
      case Token::Type::kInteger:
        advance();
        return std::make_unique<LiteralExpr>(t.line, Value::integer(t.int_value));
      case Token::Type::kFloat:
        advance();
        return std::make_unique<LiteralExpr>(t.line, Value::number(t.float_value));
      case Token::Type::kOperator:
        if (t.text == "(") {
          advance();
          ExprPtr e = parse_tuple(TupleMode::kExpression, {}, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default:
        break;
    }
    fail_here("unexpected " + quoted(t));
  }

  ExprPtr parse_list() {
    const int line = expect_op("[").line;
    auto node = std::make_unique<SequenceExpr>(Expr::Kind::kList, line);
    while (!current().is_op("]")) {
      if (!node->items.empty()) expect_op(",");
      if (current().is_op("]")) break;
      node->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return node;
  }

  ExprPtr parse_dict() {
    const int line = expect_op("{").line;
    auto node = std::make_unique<DictExpr>(line);
    while (!current().is_op("}")) {
      if (!node->items.empty()) expect_op(",");
      if (current().is_op("}")) break;
      ExprPtr key = parse_expression(true);
      expect_op(":");
      node->items.emplace_back(std::move(key), parse_expression(true));
    }
    expect_op("}");
    return node;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (current().is_op(".") || current().is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (current().is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (current().is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (current().is_name("is")) {
        node = parse_test(std::move(node));
      } else if (current().is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    Nest nest(*this);
    const Token& t = advance();
    if (t.is_op(".")) {
      const Token& attr = advance();
      if (attr.type == Token::Type::kName) return std::make_unique<GetAttrExpr>(t.line, std::move(node), attr.text);
      if (attr.type != Token::Type::kInteger) fail_at(attr, "expected name or number");
      return std::make_unique<GetItemExpr>(t.line, std::move(node),
                                           std::make_unique<LiteralExpr>(attr.line, Value::integer(attr.int_value)));
    }
    std::vector<ExprPtr> args;
    while (!current().is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.size() == 1) return std::make_unique<GetItemExpr>(t.line, std::move(node), std::move(args[0]));
    auto tuple = std::make_unique<SequenceExpr>(Expr::Kind::kTuple, t.line);
    tuple->items = std::move(args);
    return std::make_unique<GetItemExpr>(t.line, std::move(node), std::move(tuple));
  }

  ExprPtr parse_subscribed() {
    const int line = current().line;
    auto slice = std::make_unique<SliceExpr>(line);
    if (skip_op(":")) {
      // [:...]
    } else {
      ExprPtr first = parse_expression(true);
      if (!skip_op(":")) return first;
      slice->start = std::move(first);
    }
    if (!current().is_op(":") && !current().is_op("]") && !current().is_op(",")) slice->stop = parse_expression(true);
    if (skip_op(":")) {
      if (!current().is_op("]") && !current().is_op(",")) slice->step = parse_expression(true);
    }
    return slice;
  }

  CallArgsExpr parse_call_args() {
    const Token& open = expect_op("(");
    CallArgsExpr args;
    bool require_comma = false;
    auto ensure = [&](bool ok) {
      if (!ok) fail_at(open, "invalid syntax for function call expression");
    };
    while (!current().is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (current().is_op(")")) break;
      }
      if (skip_op("*")) {
        ensure(!args.star_args && !args.star_kwargs);
        args.star_args = parse_expression(true);
      } else if (skip_op("**")) {
        ensure(!args.star_kwargs);
        args.star_kwargs = parse_expression(true);
      } else if (current().type == Token::Type::kName && look().is_op("=")) {
        ensure(!args.star_kwargs);
        std::string key = advance().text;
        advance();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        ensure(!args.star_args && !args.star_kwargs && args.keyword.empty());
        args.positional.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
    return args;
  }

  ExprPtr parse_call(ExprPtr callee) {
    Nest nest(*this);
    auto node = std::make_unique<CallExpr>(current().line, std::move(callee));
    node->args = parse_call_args();
    return node;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name().text;
    while (skip_op(".")) name += "." + expect_name().text;
    return name;
  }

  // `| f | g(args)`; with start_inline the first filter has no leading pipe.
  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (current().is_op("|") || start_inline) {
      Nest nest(*this);
      if (!start_inline) advance();
      const int line = current().line;
      auto filter = std::make_unique<FilterExpr>(line, std::move(node), parse_dotted_name());
      if (current().is_op("(")) filter->args = parse_call_args();
      node = std::move(filter);
      start_inline = false;
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    Nest nest(*this);
    const int line = advance().line;  // 'is'
    const bool negated = skip_name("not");
    auto test = std::make_unique<TestExpr>(line, std::move(node), parse_dotted_name());
    const Token& t = current();
    if (t.is_op("(")) {
      test->args = parse_call_args();
    } else if ((t.type == Token::Type::kName || t.type == Token::Type::kString || t.type == Token::Type::kInteger ||
                t.type == Token::Type::kFloat || t.is_op("(") || t.is_op("[") || t.is_op("{")) &&
               !(t.is_name("else") || t.is_name("or") || t.is_name("and"))) {
      if (t.is_name("is")) fail_here("You cannot chain multiple tests with is");
      test->args.positional.push_back(parse_postfix(parse_primary()));
    }
    if (negated) return std::make_unique<UnaryExpr>(Expr::Kind::kNot, line, std::move(test));
    return test;
  }

  void note_name(const std::string& name) {
    if (macro_stack_.empty()) return;
    MacroDef* def = macro_stack_.back();
    if (name == "caller") def->uses_caller = true;
    if (name == "varargs") def->uses_varargs = true;
    if (name == "kwargs") def->uses_kwargs = true;
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;
  std::vector<MacroDef*> macro_stack_;
};

// jinja2 rejects unknown filter and test names when compiling, except inside an `if`
// statement or an inline if-expression (a "soft" frame) that does not open a new
// frame of its own (loop, macro, call, set/filter block): there the error waits until
// the expression is evaluated.
class NameChecker {
 public:
  void body(const Body& stmts, bool soft) {
    for (const StmtPtr& s : stmts) stmt(*s, soft);
  }

 private:
  void stmt(const Stmt& s, bool soft) {
    switch (s.kind) {
      case Stmt::Kind::kOutput:
        expr(static_cast<const OutputStmt&>(s).expr.get(), soft);
        return;
      case Stmt::Kind::kIf: {
        const auto& node = static_cast<const IfStmt&>(s);
        for (const auto& [test, branch] : node.branches) {
          expr(test.get(), true);
          body(branch, true);
        }
        body(node.otherwise, true);
        return;
      }
      case Stmt::Kind::kFor: {
        const auto& node = static_cast<const ForStmt&>(s);
        expr(node.iterable.get(), soft);
        expr(node.filter.get(), false);
        body(node.body, false);
        body(node.otherwise, false);
        return;
      }
      case Stmt::Kind::kSet:
        expr(static_cast<const SetStmt&>(s).value.get(), soft);
        return;
      case Stmt::Kind::kSetBlock: {
        const auto& node = static_cast<const SetBlockStmt&>(s);
        expr(node.filter.get(), false);
        body(node.body, false);
        return;
      }
      case Stmt::Kind::kMacro:
        macro(*static_cast<const MacroStmt&>(s).macro);
        return;
      case Stmt::Kind::kCallBlock: {
        const auto& node = static_cast<const CallBlockStmt&>(s);
        expr(node.call.get(), soft);
        macro(*node.caller);
        return;
      }
      case Stmt::Kind::kFilterBlock: {
        const auto& node = static_cast<const FilterBlockStmt&>(s);
        expr(node.filter.get(), false);
        body(node.body, false);
        return;
      }
      case Stmt::Kind::kWith: {
        const auto& node = static_cast<const WithStmt&>(s);
        for (const auto& [target, value] : node.assignments) expr(value.get(), soft);
        body(node.body, false);
        return;
      }
      case Stmt::Kind::kScope:
        body(static_cast<const ScopeStmt&>(s).body, false);
        return;
      case Stmt::Kind::kText:
      case Stmt::Kind::kBreak:
      case Stmt::Kind::kContinue:
        return;
    }
  }

  void macro(const MacroDef& def) {
    for (const ExprPtr& d : def.defaults) expr(d.get(), false);
    body(def.body, false);
  }

  void args(const CallArgsExpr& a, bool soft) {
    for (const ExprPtr& e : a.positional) expr(e.get(), soft);
    for (const auto& [name, e] : a.keyword) expr(e.get(), soft);
    expr(a.star_args.get(), soft);
    expr(a.star_kwargs.get(), soft);
  }

  void expr(const Expr* e, bool soft) {
    if (!e) return;
    switch (e->kind) {
      case Expr::Kind::kList:
      case Expr::Kind::kTuple:
        for (const ExprPtr& item : static_cast<const SequenceExpr*>(e)->items) expr(item.get(), soft);
        return;
      case Expr::Kind::kDict:
        for (const auto& [k, v] : static_cast<const DictExpr*>(e)->items) {
          expr(k.get(), soft);
          expr(v.get(), soft);
        }
        return;
      case Expr::Kind::kGetAttr:
        expr(static_cast<const GetAttrExpr*>(e)->object.get(), soft);
        return;
      case Expr::Kind::kGetItem:
        expr(static_cast<const GetItemExpr*>(e)->object.get(), soft);
        expr(static_cast<const GetItemExpr*>(e)->index.get(), soft);
        return;
      case Expr::Kind::kSlice: {
        const auto* node = static_cast<const SliceExpr*>(e);
        expr(node->start.get(), soft);
        expr(node->stop.get(), soft);
        expr(node->step.get(), soft);
        return;
      }
      case Expr::Kind::kCall:
        expr(static_cast<const CallExpr*>(e)->callee.get(), soft);
        args(static_cast<const CallExpr*>(e)->args, soft);
        return;
      case Expr::Kind::kFilter: {
        const auto* node = static_cast<const FilterExpr*>(e);
        if (!soft && !is_jinja2_filter_name(node->name))
          throw TemplateError(TemplateError::Kind::kSyntax, "No filter named '" + node->name + "'.", e->line);
        expr(node->operand.get(), soft);
        args(node->args, soft);
        return;
      }
      case Expr::Kind::kTest: {
        const auto* node = static_cast<const TestExpr*>(e);
        if (!soft && !is_test_name(node->name))
          throw TemplateError(TemplateError::Kind::kSyntax, "No test named '" + node->name + "'.", e->line);
        expr(node->operand.get(), soft);
        args(node->args, soft);
        return;
      }
      case Expr::Kind::kNot:
      case Expr::Kind::kNeg:
      case Expr::Kind::kPos:
        expr(static_cast<const UnaryExpr*>(e)->operand.get(), soft);
        return;
      case Expr::Kind::kBinary:
      case Expr::Kind::kAnd:
      case Expr::Kind::kOr:
        expr(static_cast<const BinaryExpr*>(e)->left.get(), soft);
        expr(static_cast<const BinaryExpr*>(e)->right.get(), soft);
        return;
      case Expr::Kind::kConcat:
        for (const ExprPtr& part : static_cast<const ConcatExpr*>(e)->parts) expr(part.get(), soft);
        return;
      case Expr::Kind::kCompare:
        expr(static_cast<const CompareExpr*>(e)->first.get(), soft);
        for (const auto& [op, operand] : static_cast<const CompareExpr*>(e)->rest) expr(operand.get(), soft);
        return;
      case Expr::Kind::kCondExpr: {
        const auto* node = static_cast<const CondExpr*>(e);
        expr(node->test.get(), true);
        expr(node->then.get(), true);
        expr(node->otherwise.get(), true);
        return;
      }
      case Expr::Kind::kLiteral:
      case Expr::Kind::kName:
        return;
    }
  }
};

}  // namespace

std::unique_ptr<Program> parse_template(std::string_view source) {
  std::unique_ptr<Program> program = Parser(tokenize(source)).run();
  NameChecker().body(program->body, false);
  fold_constants(*program);
  return program;
}

}  // namespace hotswap::jinja
