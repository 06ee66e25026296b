// Jinja parser: tokens -> AST, with jinja2's operator precedence (condexpr < or < and < not < compare <
// + - < ~ < * / // % < ** < unary < postfix / filters / tests). Nesting deeper than kMaxParseDepth is a syntax
// error, so no template can exhaust the stack of the parser or the renderer.
#pragma once

#include <vector>

#include "text/jinja/ast.h"
#include "text/jinja/lexer.h"

namespace dsa::text::jinja {

constexpr int kMaxParseDepth = 200;

// Throws JinjaError (with position) on a syntax error.
Body parse_template(const std::vector<Token>& tokens);

}  // namespace dsa::text::jinja
