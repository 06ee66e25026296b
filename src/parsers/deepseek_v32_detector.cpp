// deepseekv32: DSML tool calls of DeepSeek-V3.2 (API spec section 5). Arguments stream as they arrive:
// string="true" values as JSON-escaped text, string="false" values through the JSON normaliser (bare
// scalars are held until their closing tag). Also accepted, as in SGLang: a self-closing zero-argument
// invoke and a whole-JSON invoke body. Deviations from SGLang: content before the block loses exactly one
// "\n\n" in streaming too (SGLang leaks it there); text after the block is kept; an invalid string="false"
// container value is recovered (see JsonNormalizer) instead of failing the whole parse; duplicate parameter
// names are printed twice (Python keeps the last one).
#include <optional>

#include "parsers/detectors.h"
#include "parsers/value_stream.h"

namespace dsa::parsers {
namespace {

constexpr std::string_view kFcOpen = "<｜DSML｜function_calls>";
constexpr std::string_view kFcClose = "</｜DSML｜function_calls>";
constexpr std::string_view kInvoke = "<｜DSML｜invoke";
constexpr std::string_view kInvokeClose = "</｜DSML｜invoke>";
constexpr std::string_view kParam = "<｜DSML｜parameter";
constexpr std::string_view kParamClose = "</｜DSML｜parameter>";
constexpr size_t kMaxHeader = 1024;

class DeepSeekV32Detector final : public ToolCallParser {
public:
    DeepSeekV32Detector(const OrderedJson& tools, ToolParserOptions options)
        : ToolCallParser(tools, std::move(options)) {
        set_text_policy({{kFcOpen}, WsTrim::kOneDoubleNewline, /*hold_space_after_block=*/false});
    }

private:
    enum class State { kBlock, kInvokeHeader, kBody, kJsonBody, kParams, kParamHeader, kParamValue, kSkipInvoke };

    size_t on_block_start(int) override {
        state_ = State::kBlock;
        return kFcOpen.size();
    }

    bool block_step(bool) override {
        switch (state_) {
            case State::kBlock: return step_block();
            case State::kInvokeHeader: return step_invoke_header();
            case State::kBody: return step_body();
            case State::kJsonBody: return step_json_body();
            case State::kParams: return step_params();
            case State::kParamHeader: return step_param_header();
            case State::kParamValue: return step_param_value();
            case State::kSkipInvoke: return step_skip_invoke();
        }
        return false;
    }

    void close_truncated_call() override {
        if (state_ == State::kBody) emit_args("{}");
        if (state_ == State::kJsonBody) emit_args(json_.finish());
        if (state_ == State::kParamValue) emit_args(value_->finish());
        if (state_ == State::kParams || state_ == State::kParamHeader || state_ == State::kParamValue) emit_args("}");
    }

    bool step_block() {
        const MarkerHit hit = advance_to({kInvoke, kFcClose}, ignore);
        if (!hit.found()) return false;
        consume(hit.size);
        if (hit.which == 1) {
            end_block();
        } else {
            state_ = State::kInvokeHeader;
        }
        return true;
    }

    bool step_invoke_header() {
        const TagMatch m = match_tag_attributes(view(), {"name"}, /*allow_self_closing=*/true, kMaxHeader);
        if (m.status == TagMatch::kNeedMore) return false;
        state_ = State::kBlock;
        if (m.status == TagMatch::kFail) return true;  // not an invoke tag: skipped like other text
        consume(m.length);
        const std::string& name = m.values[0];
        if (!known_tool(name)) {
            if (!m.self_closing) state_ = State::kSkipInvoke;
            return true;
        }
        begin_call(name);
        if (m.self_closing) {
            emit_args("{}");
            end_call();
        } else {
            state_ = State::kBody;
        }
        return true;
    }

    // The first non-space byte of the body tells the whole-JSON form ("{") from the parameter form.
    bool step_body() {
        const std::string_view v = view();
        size_t i = 0;
        while (i < v.size() && is_space(v[i])) ++i;
        consume(i);
        if (i == v.size()) return false;
        if (v[i] == '{') {
            json_ = JsonNormalizer();
            state_ = State::kJsonBody;
        } else {
            emit_args("{");
            num_params_ = 0;
            state_ = State::kParams;
        }
        return true;
    }

    bool step_json_body() {
        const MarkerHit hit = advance_to({kInvokeClose, kFcClose}, [&](std::string_view t) { emit_args(json_.feed(t)); });
        if (!hit.found()) return false;
        emit_args(json_.finish());
        finish_invoke(/*at_invoke_close=*/hit.which == 0);
        return true;
    }

    bool step_params() {
        const MarkerHit hit = advance_to({kParam, kInvokeClose, kFcClose}, ignore);
        if (!hit.found()) return false;
        if (hit.which == 0) {
            consume(hit.size);
            state_ = State::kParamHeader;
            return true;
        }
        emit_args("}");
        finish_invoke(/*at_invoke_close=*/hit.which == 1);
        return true;
    }

    bool step_param_header() {
        const TagMatch m = match_tag_attributes(view(), {"name", "string"}, /*allow_self_closing=*/false, kMaxHeader);
        if (m.status == TagMatch::kNeedMore) return false;
        state_ = State::kParams;
        if (m.status == TagMatch::kFail) return true;
        consume(m.length);
        emit_args((num_params_++ ? ", " : "") + json_quote(m.values[0]) + ": ");
        const ValueKind kind = m.values[1] == "true" ? ValueKind::kString : ValueKind::kJson;
        value_.emplace(ValueOptions{kind, /*strip=*/true, /*python_literals=*/false});
        state_ = State::kParamValue;
        return true;
    }

    bool step_param_value() {
        const MarkerHit hit = advance_to({kParamClose, kInvokeClose, kFcClose},
                                         [&](std::string_view t) { emit_args(value_->feed(t)); });
        if (!hit.found()) return false;
        emit_args(value_->finish());
        value_.reset();
        if (hit.which == 0) consume(hit.size);
        state_ = State::kParams;
        return true;
    }

    bool step_skip_invoke() {
        const MarkerHit hit = advance_to({kInvokeClose, kFcClose}, ignore);
        if (!hit.found()) return false;
        if (hit.which == 0) consume(hit.size);
        state_ = State::kBlock;
        return true;
    }

    // Closes the current call (</invoke> is consumed; a </function_calls> is left to kBlock).
    void finish_invoke(bool at_invoke_close) {
        if (at_invoke_close) consume(kInvokeClose.size());
        end_call();
        state_ = State::kBlock;
    }

    State state_ = State::kBlock;
    int num_params_ = 0;
    JsonNormalizer json_;
    std::optional<ValueStreamer> value_;
};

}  // namespace

std::unique_ptr<ToolCallParser> make_deepseek_v32_detector(const OrderedJson& tools, ToolParserOptions options) {
    return std::make_unique<DeepSeekV32Detector>(tools, std::move(options));
}

}  // namespace dsa::parsers
