// deepseekv31: tool calls of DeepSeek-V3.1 / V3.2-Exp (API spec section 4):
// <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{JSON}<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>.
// The JSON arguments stream through the normaliser, so streamed fragments concatenate to exactly the
// re-serialised arguments SGLang's non-streaming path returns. Deviations from SGLang: whitespace before the
// block is removed in streaming too, and leading whitespace of the content is kept; text after the block is
// kept; invalid JSON is recovered per call instead of turning the whole output into content; a bare
// <｜tool▁call▁begin｜> without the outer begin token also starts a call (as SGLang's streaming path does).
#include "parsers/detectors.h"
#include "parsers/json_stream.h"

namespace dsa::parsers {
namespace {

constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";
constexpr size_t kMaxName = 512;

class DeepSeekV31Detector final : public ToolCallParser {
public:
    DeepSeekV31Detector(const OrderedJson& tools, ToolParserOptions options)
        : ToolCallParser(tools, std::move(options)) {
        set_text_policy({{kCallsBegin, kCallBegin}, WsTrim::kAllSpace, /*hold_space_after_block=*/true});
    }

private:
    enum class State { kBlock, kName, kArgs, kSkipCall };

    size_t on_block_start(int which) override {
        bare_ = which == 1;
        state_ = bare_ ? State::kName : State::kBlock;
        return bare_ ? kCallBegin.size() : kCallsBegin.size();
    }

    bool block_step(bool) override {
        switch (state_) {
            case State::kBlock: return step_block();
            case State::kName: return step_name();
            case State::kArgs: return step_args();
            case State::kSkipCall: return step_skip_call();
        }
        return false;
    }

    void close_truncated_call() override { emit_args(json_.started() ? json_.finish() : "{}"); }

    bool step_block() {
        const MarkerHit hit = advance_to({kCallBegin, kCallsEnd}, ignore);
        if (!hit.found()) return false;
        consume(hit.size);
        if (hit.which == 1) {
            end_block();
        } else {
            state_ = State::kName;
        }
        return true;
    }

    bool step_name() {
        const std::string_view v = view();
        const MarkerHit hit = find_first(v, {kSep, kCallEnd, kCallsEnd, kCallBegin});
        if (!hit.found() && v.size() <= kMaxName) return false;
        if (!hit.found() || hit.which != 0) {  // no separator: not a call
            after_call();
            return true;
        }
        const std::string name(trim(v.substr(0, hit.pos)));
        consume(hit.pos + hit.size);
        if (name.empty() || !known_tool(name)) {
            state_ = State::kSkipCall;
            return true;
        }
        begin_call(name);
        json_ = JsonNormalizer();
        state_ = State::kArgs;
        return true;
    }

    bool step_args() {
        const MarkerHit hit = advance_to({kCallEnd, kCallsEnd, kCallBegin},
                                         [&](std::string_view t) { emit_args(json_.feed(t)); });
        if (!hit.found()) return false;
        emit_args(json_.started() ? json_.finish() : "{}");
        end_call();
        end_at(hit);
        return true;
    }

    bool step_skip_call() {
        const MarkerHit hit = advance_to({kCallEnd, kCallsEnd, kCallBegin}, ignore);
        if (!hit.found()) return false;
        end_at(hit);
        return true;
    }

    // After a call: </call> is consumed, </calls> is consumed and ends the block, a new <call> is left.
    void end_at(const MarkerHit& hit) {
        if (hit.which == 2) return after_call();
        consume(hit.size);
        if (hit.which == 1) return end_block();
        after_call();
    }

    void after_call() {
        if (bare_) {
            end_block();
        } else {
            state_ = State::kBlock;
        }
    }

    State state_ = State::kBlock;
    bool bare_ = false;  // the block started with a lone <｜tool▁call▁begin｜>: it ends with that call
    JsonNormalizer json_;
};

}  // namespace

std::unique_ptr<ToolCallParser> make_deepseek_v31_detector(const OrderedJson& tools, ToolParserOptions options) {
    return std::make_unique<DeepSeekV31Detector>(tools, std::move(options));
}

}  // namespace dsa::parsers
