// ToolCallParser: the streaming tool-call parser interface and the machinery every format shares — the
// input buffer, the plain-text state (content up to a block's start marker, held back only while a marker
// or the whitespace before a block may be incomplete), tool-call ids and indices, and end-of-stream handling.
// A format (deepseekv31, deepseekv32, glm47, glm45) implements block_step(). The non-streaming parse() is the
// same state machine fed the whole text, so streamed and non-streamed results agree by construction; the
// property tests check that the machine's output does not depend on how the text is split.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "parsers/scan.h"

namespace dsa::parsers {

// One tool-call fragment in the OpenAI streaming shape: id and name only on the first fragment of a call.
struct ToolCallDelta {
    int index = 0;  // call ordinal in this response: 0, 1, 2...
    std::optional<std::string> id;
    std::optional<std::string> name;
    std::string arguments;  // a fragment of the arguments JSON text
};

struct ToolParseDelta {
    std::string normal_text;
    std::vector<ToolCallDelta> calls;
    bool empty() const { return normal_text.empty() && calls.empty(); }
};

struct ToolCall {
    int index = 0;       // call ordinal
    int tool_index = -1; // position of the function in the request's tools (SGLang's non-streaming "index")
    std::string id;
    std::string name;
    std::string arguments;   // JSON text, Python json.dumps style
    bool truncated = false;  // the output ended inside this call; its arguments were closed at finish()
};

struct ToolParseResult {
    std::string content;
    std::vector<ToolCall> calls;
};

struct ToolParserOptions {
    std::function<std::string()> make_id;  // tool-call id generator; default "call_" + 24 random hex digits
    bool forward_unknown_tools = false;    // keep calls to functions that are not in the request's tools
};

// "call_" + 24 lowercase hex digits from a uuid4, as SGLang does.
std::string random_tool_call_id();

// The request's tools as the parsers need them: name -> position and JSON schema of the parameters.
struct ToolInfo {
    int index = 0;
    OrderedJson parameters;
};
using ToolTable = std::map<std::string, ToolInfo, std::less<>>;
ToolTable make_tool_table(const OrderedJson& tools);

class ToolCallParser {
public:
    ToolCallParser(const OrderedJson& tools, ToolParserOptions options);
    virtual ~ToolCallParser() = default;

    ToolParseDelta feed(std::string_view delta);
    ToolParseDelta finish();
    // Non-streaming: the whole output at once. Must be called on a fresh parser.
    ToolParseResult parse(std::string_view text);

    // Concatenates deltas into a result (content, and per call id, name and argument fragments).
    static ToolParseResult assemble(const std::vector<ToolParseDelta>& deltas);

protected:
    enum class WsTrim { kOneDoubleNewline, kAllSpace };
    struct TextPolicy {
        std::vector<std::string_view> start_markers;
        WsTrim trim_before_block = WsTrim::kAllSpace;
        bool hold_space_after_block = true;  // whitespace right after a block is dropped unless text follows
    };

    // The format's state machine for everything after a start marker. Consumes from view(); returns true
    // when it made progress (consumed bytes or changed state), false when it needs more input.
    virtual bool block_step(bool at_end) = 0;
    // Called when start marker `which` was found at view().front(); returns how many bytes of it to consume.
    virtual size_t on_block_start(int which) = 0;
    // End of stream inside a call: emit what closes its arguments (e.g. "\"}").
    virtual void close_truncated_call() = 0;

    std::string_view view() const { return std::string_view(buf_).substr(pos_); }
    void consume(size_t n);
    void begin_call(const std::string& name);
    void emit_args(std::string_view fragment);
    void end_call();
    void end_block();       // back to text; a block that produced no call is returned as text
    void emit_content(std::string_view text);
    bool known_tool(const std::string& name) const;
    const OrderedJson* tool_parameters(const std::string& name) const;

    // Passes the text before the earliest of `markers` to `sink` and consumes it; returns that marker, not
    // consumed. Without a complete marker, passes everything except a trailing partial marker.
    template <typename Sink>
    MarkerHit advance_to(std::initializer_list<std::string_view> markers, Sink&& sink) {
        const std::string_view v = view();
        const MarkerHit hit = find_first(v, markers);
        const size_t n = hit.found() ? hit.pos : v.size() - partial_suffix(v, markers);
        if (n > 0) {
            sink(v.substr(0, n));
            consume(n);
        }
        return hit;
    }
    static void ignore(std::string_view) {}

    void set_text_policy(TextPolicy policy) { policy_ = std::move(policy); }

private:
    void run(bool at_end);
    bool text_step(bool at_end);
    size_t text_hold(std::string_view text) const;
    size_t trim_before_block(std::string_view pre) const;

    ToolTable tools_;
    ToolParserOptions options_;
    TextPolicy policy_;
    std::string buf_;
    size_t pos_ = 0;
    ToolParseDelta out_;
    bool in_text_ = true;
    bool in_call_ = false;
    bool space_after_block_ = false;  // whitespace after a block is held (dropped at the end of the stream)
    bool touched_ = false;
    int next_index_ = 0;
    int calls_in_block_ = 0;
    std::string block_raw_;  // raw text of the current block while it has produced no call
    std::vector<int> truncated_;
};

}  // namespace dsa::parsers
