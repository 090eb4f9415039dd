// Compile-time constant folding, as jinja2 does it (jinja2/optimizer.py plus
// CodeGenerator.visit_Output). It matters for output, not just speed: Node.as_const()
// subscripts through the sandbox's getitem, so a slice that would raise at run time
// folds to Undefined when it sits in a constant expression that jinja2 folds.
//
//   * Bottom-up, every expression is evaluated without a context; evaluation fails
//     on reaching a variable, a call or a context filter (map/select/...). If it
//     succeeds and the value has a "safe repr" (None, bool, int, float, str, and
//     lists/tuples/dicts of those) the node becomes a literal.
//   * A `{{ }}` whose whole expression is constant is evaluated too and, when that
//     succeeds, replaced by its str() even if the value has no safe repr.
// Anything that fails to evaluate is left for run time, where it fails the same way.
#pragma once

#include "chat/template_ast.h"

namespace hotswap::jinja {

void fold_constants(Program& program);

}  // namespace hotswap::jinja
