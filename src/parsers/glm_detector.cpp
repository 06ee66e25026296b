// glm47 / glm45: GLM tool calls (API spec 6.2, 6.3, 6.5):
// <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>, glm45 with newlines between
// the tags. A value's type comes from the tool's JSON schema: string parameters are the raw text, streamed
// as a JSON string; other (or unknown) parameters are JSON or Python literals, else the raw text.
// Deviations from SGLang: a string-typed value is the raw text even when it looks like JSON or a literal
// (SGLang turns `true` into "True"); content is not strip()ped as a whole — only whitespace next to a call;
// a <tool_call> for an unknown or empty name is returned as text instead of being dropped.
#include <optional>

#include "parsers/detectors.h"
#include "parsers/value_stream.h"

namespace dsa::parsers {
namespace {

constexpr std::string_view kCall = "<tool_call>";
constexpr std::string_view kCallEnd = "</tool_call>";
constexpr std::string_view kKey = "<arg_key>";
constexpr std::string_view kKeyEnd = "</arg_key>";
constexpr std::string_view kValue = "<arg_value>";
constexpr std::string_view kValueEnd = "</arg_value>";
constexpr size_t kMaxName = 512;
constexpr size_t kMaxKey = 1024;

// Whether a JSON schema describes a string (type / first non-null type, anyOf / oneOf / allOf, enum).
bool is_string_schema(const OrderedJson& s) {
    if (!s.is_object()) return false;
    if (s.contains("type")) {
        const OrderedJson& t = s["type"];
        if (t.is_string()) return t == "string";
        if (t.is_array()) {
            for (const auto& x : t) {
                if (x.is_string() && x != "null") return x == "string";
            }
        }
    }
    for (const char* key : {"anyOf", "oneOf", "allOf"}) {
        if (!s.contains(key) || !s[key].is_array()) continue;
        for (const auto& sub : s[key]) {
            if (is_string_schema(sub)) return true;
        }
    }
    if (s.contains("enum") && s["enum"].is_array() && !s["enum"].empty()) {
        for (const auto& v : s["enum"]) {
            if (!v.is_string()) return false;
        }
        return true;
    }
    return false;
}

class GlmDetector final : public ToolCallParser {
public:
    GlmDetector(GlmFlavor flavor, const OrderedJson& tools, ToolParserOptions options)
        : ToolCallParser(tools, std::move(options)), flavor_(flavor) {
        set_text_policy({{kCall}, WsTrim::kAllSpace, /*hold_space_after_block=*/true});
    }

private:
    enum class State { kName, kBetween, kKey, kWaitValue, kValue, kSkipCall };

    size_t on_block_start(int) override {
        state_ = State::kName;
        return kCall.size();
    }

    bool block_step(bool) override {
        switch (state_) {
            case State::kName: return step_name();
            case State::kBetween: return step_between();
            case State::kKey: return step_key();
            case State::kWaitValue: return step_wait_value();
            case State::kValue: return step_value();
            case State::kSkipCall: return step_skip_call();
        }
        return false;
    }

    void close_truncated_call() override {
        if (state_ == State::kWaitValue) emit_args("null");
        if (state_ == State::kValue) emit_args(value_->finish());
        emit_args("}");
    }

    std::string clean_name(std::string_view raw) const {
        std::string_view name = trim(raw);
        while (flavor_ == GlmFlavor::kGlm45 && name.ends_with("\\n")) name = trim(name.substr(0, name.size() - 2));
        return std::string(name);
    }

    bool step_name() {
        const std::string_view v = view();
        const MarkerHit hit = find_first(v, {kKey, kCallEnd, kCall});
        if (!hit.found() && v.size() <= kMaxName) return false;
        if (!hit.found() || hit.which == 2) {  // no name terminator: not a call, give it back as text
            end_block();
            return true;
        }
        const std::string name = clean_name(v.substr(0, hit.pos));
        consume(hit.pos);
        if (name.empty() || !known_tool(name)) {
            state_ = State::kSkipCall;
            return true;
        }
        begin_call(name);
        emit_args("{");
        name_ = name;
        num_args_ = 0;
        state_ = State::kBetween;
        return true;
    }

    bool step_between() {
        const MarkerHit hit = advance_to({kKey, kCallEnd, kCall}, ignore);
        if (!hit.found()) return false;
        if (hit.which == 0) {
            consume(hit.size);
            state_ = State::kKey;
            return true;
        }
        emit_args("}");
        end_call();
        if (hit.which == 1) consume(hit.size);  // a new <tool_call> (missing close) is left to the text state
        end_block();
        return true;
    }

    bool step_key() {
        const std::string_view v = view();
        const MarkerHit hit = find_first(v, {kKeyEnd, kCallEnd});
        if (!hit.found() && v.size() <= kMaxKey) return false;
        if (!hit.found() || hit.which != 0) {  // unterminated key: dropped
            state_ = State::kBetween;
            return true;
        }
        const std::string key(trim(v.substr(0, hit.pos)));
        consume(hit.pos + hit.size);
        emit_args((num_args_++ ? ", " : "") + json_quote(key) + ": ");
        value_.emplace(value_options(key));
        state_ = State::kWaitValue;
        return true;
    }

    ValueOptions value_options(const std::string& key) const {
        const bool strip = flavor_ == GlmFlavor::kGlm45;
        const OrderedJson* params = tool_parameters(name_);
        const bool is_string = params && params->is_object() && params->contains("properties") &&
                               (*params)["properties"].is_object() && (*params)["properties"].contains(key) &&
                               is_string_schema((*params)["properties"][key]);
        return ValueOptions{is_string ? ValueKind::kString : ValueKind::kJson, strip, /*python_literals=*/true};
    }

    bool step_wait_value() {
        const MarkerHit hit = advance_to({kValue, kCallEnd, kKey}, ignore);
        if (!hit.found()) return false;
        if (hit.which == 0) {
            consume(hit.size);
            state_ = State::kValue;
        } else {
            emit_args("null");  // a key without a value
            state_ = State::kBetween;
        }
        return true;
    }

    bool step_value() {
        const MarkerHit hit = advance_to({kValueEnd, kCallEnd}, [&](std::string_view t) { emit_args(value_->feed(t)); });
        if (!hit.found()) return false;
        emit_args(value_->finish());
        value_.reset();
        if (hit.which == 0) consume(hit.size);
        state_ = State::kBetween;
        return true;
    }

    bool step_skip_call() {
        const MarkerHit hit = advance_to({kCallEnd}, ignore);
        if (!hit.found()) return false;
        consume(hit.size);
        end_block();  // no call was produced: the block comes back as text
        return true;
    }

    GlmFlavor flavor_;
    State state_ = State::kName;
    std::string name_;
    int num_args_ = 0;
    std::optional<ValueStreamer> value_;
};

}  // namespace

std::unique_ptr<ToolCallParser> make_glm_detector(GlmFlavor flavor, const OrderedJson& tools, ToolParserOptions options) {
    return std::make_unique<GlmDetector>(flavor, tools, std::move(options));
}

}  // namespace dsa::parsers
