// ReasoningParser (see reasoning_parser.h). Rules, identical streamed and non-streamed:
//  * thinking: the output starts in reasoning; any leading "<think>" tags are dropped;
//  * not thinking: a "<think>" at the very start (after optional whitespace) opens reasoning; elsewhere it is
//    plain content;
//  * the first "</think>" ends reasoning (glm45: also an opened "<tool_call>", which stays in the content);
//  * no end tag by the end of the output: everything is reasoning and the content is empty.
// Deviation from SGLang: deepseek-v3 does not end reasoning at a literal "<tool_call>" (DeepSeek models do
// not use that tag; SGLang inherits the cut from another model family's parser).
#include "parsers/reasoning_parser.h"

#include <utility>

#include "base/check.h"
#include "parsers/scan.h"

namespace dsa::parsers {
namespace {

constexpr std::string_view kThinkStart = "<think>";
constexpr std::string_view kThinkEnd = "</think>";
constexpr std::string_view kToolCall = "<tool_call>";

}  // namespace

ReasoningParser::ReasoningParser(ReasoningFormat format, ReasoningOptions options)
    : format_(format), options_(options), state_(State::kStart) {
    if (!options_.separate_reasoning) state_ = State::kContent;
}

ReasoningDelta ReasoningParser::feed(std::string_view delta) {
    touched_ = true;
    buf_.append(delta);
    run(/*at_end=*/false);
    return std::exchange(out_, ReasoningDelta{});
}

ReasoningDelta ReasoningParser::finish() {
    touched_ = true;
    run(/*at_end=*/true);
    if (state_ == State::kReasoning) end_reasoning();  // flush held reasoning, if any
    return std::exchange(out_, ReasoningDelta{});
}

ReasoningDelta ReasoningParser::parse(std::string_view text) {
    DSA_CHECK(!touched_) << "parse() needs a fresh parser";
    ReasoningDelta a = feed(text);
    ReasoningDelta b = finish();
    return {a.reasoning + b.reasoning, a.content + b.content};
}

void ReasoningParser::run(bool at_end) {
    bool progress = true;
    while (progress) {
        switch (state_) {
            case State::kStart: progress = step_start(at_end); break;
            case State::kReasoning: progress = step_reasoning(at_end); break;
            case State::kContent:
                out_.content += buf_;
                buf_.clear();
                progress = false;
                break;
        }
    }
}

// Before anything was emitted: drop leading <think> tags (thinking), or detect a self-opened <think>.
bool ReasoningParser::step_start(bool at_end) {
    size_t i = 0;
    while (i < buf_.size() && is_space(buf_[i])) ++i;
    const std::string_view rest = std::string_view(buf_).substr(i);
    if (rest.starts_with(kThinkStart)) {
        buf_.erase(0, i + kThinkStart.size());
        if (!options_.thinking) options_.thinking = true;  // the model opened reasoning itself
        return true;
    }
    const bool maybe_tag = kThinkStart.starts_with(rest);  // empty, or a partial <think>
    if (maybe_tag && !at_end) return false;
    state_ = options_.thinking ? State::kReasoning : State::kContent;
    return true;
}

bool ReasoningParser::step_reasoning(bool at_end) {
    const bool glm = format_ == ReasoningFormat::kGlm45;
    const MarkerHit hit = glm ? find_first(buf_, {kThinkEnd, kToolCall}) : find_first(buf_, {kThinkEnd});
    if (hit.found()) {
        emit_reasoning(std::string_view(buf_).substr(0, hit.pos));
        buf_.erase(0, hit.pos + (hit.which == 0 ? hit.size : 0));  // <tool_call> stays, as content
        end_reasoning();
        state_ = State::kContent;
        return true;
    }
    const size_t hold = at_end ? 0 : (glm ? partial_suffix(buf_, {kThinkEnd, kToolCall}) : partial_suffix(buf_, {kThinkEnd}));
    emit_reasoning(std::string_view(buf_).substr(0, buf_.size() - hold));
    buf_.erase(0, buf_.size() - hold);
    return false;
}

void ReasoningParser::emit_reasoning(std::string_view text) {
    if (options_.stream_reasoning) {
        out_.reasoning.append(text);
    } else {
        held_reasoning_.append(text);
    }
}

void ReasoningParser::end_reasoning() {
    out_.reasoning += held_reasoning_;
    held_reasoning_.clear();
}

}  // namespace dsa::parsers
