#include "chat/chat_template.h"

#include "chat/py_text.h"
#include "chat/template_ast.h"
#include "chat/template_error.h"
#include "chat/template_interpreter.h"
#include "chat/template_parser.h"

namespace hotswap {

Result<ChatTemplate> ChatTemplate::compile(std::string_view source) {
  if (!is_valid_utf8(source)) return Status::invalid_argument("chat template is not valid UTF-8");
  try {
    return ChatTemplate(jinja::parse_template(source));
  } catch (const jinja::TemplateError& e) {
    std::string where = "line " + std::to_string(e.line());
    if (e.column() > 0) where += ", column " + std::to_string(e.column());
    return Status::invalid_argument("chat template syntax error at " + where + ": " + e.what());
  }
}

Result<std::string> ChatTemplate::render(const nlohmann::json& context) const { return render(context, RenderLimits{}); }

Result<std::string> ChatTemplate::render(const nlohmann::json& context, const RenderLimits& limits) const {
  if (!context.is_object()) return Status::invalid_argument("chat template context must be a JSON object");
  try {
    const jinja::Value variables = jinja::from_json(context);
    jinja::Interpreter interpreter({.max_string_bytes = limits.max_output_bytes,
                                    .max_call_depth = limits.max_call_depth,
                                    .max_steps = limits.max_steps});
    return interpreter.render(*program_, variables);
  } catch (const jinja::TemplateError& e) {
    switch (e.kind()) {
      case jinja::TemplateError::Kind::kRaised:
        return Status::invalid_argument(e.what());
      case jinja::TemplateError::Kind::kLimit:
        return Status::resource_exhausted("chat template: " + std::string(e.what()));
      case jinja::TemplateError::Kind::kSyntax:
      case jinja::TemplateError::Kind::kRuntime:
      case jinja::TemplateError::Kind::kNotConstant:
        break;
    }
    const std::string where = e.line() > 0 ? " at line " + std::to_string(e.line()) : "";
    return Status::invalid_argument("chat template error" + where + ": " + e.what());
  }
}

}  // namespace hotswap
