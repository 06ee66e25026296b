// The tool-call formats, each a ToolCallParser subclass: deepseekv31 (V3.1 / V3.2-Exp special tokens),
// deepseekv32 (DSML), glm47 (GLM-4.7 / GLM-5 arg_key/arg_value) and glm45 (the same tags with newlines).
// Internal to parsers/: callers go through factory.h.
#pragma once

#include <memory>

#include "parsers/tool_parser.h"

namespace dsa::parsers {

std::unique_ptr<ToolCallParser> make_deepseek_v31_detector(const OrderedJson& tools, ToolParserOptions options);
std::unique_ptr<ToolCallParser> make_deepseek_v32_detector(const OrderedJson& tools, ToolParserOptions options);

enum class GlmFlavor { kGlm45, kGlm47 };
std::unique_ptr<ToolCallParser> make_glm_detector(GlmFlavor flavor, const OrderedJson& tools, ToolParserOptions options);

}  // namespace dsa::parsers
