// Jinja lexer: splits a template into data and tag tokens, applying jinja2's whitespace rules exactly
// (`{%-`/`-%}` strip, `{%+`/`+%}` keep, trim_blocks removes the newline after a block or comment tag,
// lstrip_blocks removes the indentation before one, newlines are normalised to "\n" and one trailing newline
// of the source is dropped). Raw blocks become data; comments disappear.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/jinja/value.h"

namespace dsa::text::jinja {

struct LexOptions {
    bool trim_blocks = true;
    bool lstrip_blocks = true;
    bool keep_trailing_newline = false;
};

struct Token {
    enum class Type { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
    Type type = Type::kEof;
    std::string text;  // data, name, operator, or the unescaped string literal
    int64_t int_value = 0;
    double float_value = 0;
    Pos pos;
};

// Throws JinjaError (with position) on malformed input.
std::vector<Token> tokenize(std::string_view source, const LexOptions& options);

}  // namespace dsa::text::jinja
