// ReasoningParser: splits generated text into reasoning and content at <think> / </think> (API spec 7),
// streaming and non-streaming. Formats: "deepseek-v3" (DeepSeek-V3.1 / V3.2) and "glm45" (GLM-4.5 ... GLM-5;
// an opened <tool_call> also ends the reasoning). The request's thinking flag says whether the prompt ended
// inside a <think> block, i.e. whether the output starts as reasoning.
#pragma once

#include <string>
#include <string_view>

namespace dsa::parsers {

enum class ReasoningFormat { kDeepSeekV3, kGlm45 };

struct ReasoningOptions {
    bool thinking = false;            // the prompt opened <think>: the output starts in reasoning
    bool separate_reasoning = true;   // false: everything is content, untouched
    bool stream_reasoning = true;     // false: reasoning is held and sent in one piece when it ends
};

struct ReasoningDelta {
    std::string reasoning;
    std::string content;
};

class ReasoningParser {
public:
    ReasoningParser(ReasoningFormat format, ReasoningOptions options);

    ReasoningDelta feed(std::string_view delta);
    ReasoningDelta finish();
    // Non-streaming: the whole output at once. Must be called on a fresh parser.
    ReasoningDelta parse(std::string_view text);

private:
    enum class State { kStart, kReasoning, kContent };

    void run(bool at_end);
    bool step_start(bool at_end);
    bool step_reasoning(bool at_end);
    void emit_reasoning(std::string_view text);
    void end_reasoning();

    ReasoningFormat format_;
    ReasoningOptions options_;
    State state_;
    std::string buf_;
    std::string held_reasoning_;  // stream_reasoning == false
    ReasoningDelta out_;
    bool touched_ = false;
};

}  // namespace dsa::parsers
