// The parser factory (see factory.h): SGLang parser names to implementations.
#include "parsers/factory.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "parsers/detectors.h"

namespace dsa::parsers {

std::vector<std::string> supported_tool_call_parsers() { return {"deepseekv31", "deepseekv32", "glm45", "glm47"}; }

std::vector<std::string> supported_reasoning_parsers() { return {"deepseek-v3", "glm45"}; }

StatusOr<std::unique_ptr<ToolCallParser>> make_tool_call_parser(std::string_view name, const OrderedJson& tools,
                                                                ToolParserOptions options) {
    if (name == "deepseekv31") return make_deepseek_v31_detector(tools, std::move(options));
    if (name == "deepseekv32") return make_deepseek_v32_detector(tools, std::move(options));
    if (name == "glm45") return make_glm_detector(GlmFlavor::kGlm45, tools, std::move(options));
    if (name == "glm47") return make_glm_detector(GlmFlavor::kGlm47, tools, std::move(options));
    return invalid_argument("unknown tool-call parser '{}'; supported: {}", name,
                            fmt::join(supported_tool_call_parsers(), ", "));
}

StatusOr<std::unique_ptr<ReasoningParser>> make_reasoning_parser(std::string_view name, ReasoningOptions options) {
    if (name == "deepseek-v3") return std::make_unique<ReasoningParser>(ReasoningFormat::kDeepSeekV3, options);
    if (name == "glm45") return std::make_unique<ReasoningParser>(ReasoningFormat::kGlm45, options);
    return invalid_argument("unknown reasoning parser '{}'; supported: {}", name,
                            fmt::join(supported_reasoning_parsers(), ", "));
}

}  // namespace dsa::parsers
