// Recursive-descent parser for the Jinja2 subset chat templates use, following
// jinja2.parser.Parser rule by rule (operator precedence, filters/tests binding,
// tuple/slice/call syntax, statement tags).
//
// Supported tags: if/elif/else, for (filter `if`, else), set (incl. tuple targets,
// `ns.attr`, block set with filters), macro, call, filter, with, raw, break,
// continue (jinja2.ext.loopcontrols) and transformers' `generation`. Template
// inheritance and includes (extends, block, include, import, from) are rejected:
// a chat_template is a single self-contained string.
#pragma once

#include <memory>
#include <string_view>

#include "chat/template_ast.h"

namespace hotswap::jinja {

// Throws TemplateError(kSyntax) with line and column.
std::unique_ptr<Program> parse_template(std::string_view source);

}  // namespace hotswap::jinja
