// Parsers by their SGLang names (--tool-call-parser, --reasoning-parser). Unknown names are an
// InvalidArgument that lists the supported names.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"
#include "parsers/reasoning_parser.h"
#include "parsers/tool_parser.h"

namespace dsa::parsers {

std::vector<std::string> supported_tool_call_parsers();
std::vector<std::string> supported_reasoning_parsers();

StatusOr<std::unique_ptr<ToolCallParser>> make_tool_call_parser(std::string_view name, const OrderedJson& tools,
                                                                ToolParserOptions options = {});
StatusOr<std::unique_ptr<ReasoningParser>> make_reasoning_parser(std::string_view name, ReasoningOptions options);

}  // namespace dsa::parsers
