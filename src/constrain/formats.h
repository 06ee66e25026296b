// Grammars for constrained generation: tool calls in a model's native format (deepseekv32 DSML, deepseekv31,
// glm47, glm45 — the exact text the encoders write and the parsers read), restricted to the allowed functions
// with arguments shaped by each function's `parameters` schema, and plain JSON for response_format.
// Optionally the constraint starts only after free reasoning text ending in "</think>".
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/json.h"
#include "base/status.h"
#include "constrain/grammar.h"

namespace dsa::constrain {

enum class ToolFormat { kDeepSeekV32, kDeepSeekV31, kGlm47, kGlm45 };

// The format of a --tool-call-parser name; NotFound for parsers without a constrained format.
StatusOr<ToolFormat> tool_format_for_parser(std::string_view parser);

struct ToolCallSpec {
    ToolFormat format = ToolFormat::kDeepSeekV32;
    OrderedJson tools;                 // the request's tools, OpenAI shape
    std::optional<std::string> named;  // exactly one call of this function; otherwise one or more of any
    bool single_call = false;          // exactly one call (parallel_tool_calls: false)
    bool after_think = false;          // free reasoning text up to "</think>" comes first
};

StatusOr<std::shared_ptr<const Grammar>> tool_call_grammar(const ToolCallSpec& spec);

// One JSON value matching `schema` (an object schema for json_object), optional leading whitespace.
StatusOr<std::shared_ptr<const Grammar>> json_grammar(const OrderedJson& schema, bool after_think);

}  // namespace dsa::constrain
