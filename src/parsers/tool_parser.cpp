// Shared machinery of the streaming tool-call parsers (see tool_parser.h): buffer, text state, call
// bookkeeping, end of stream. Deviations from SGLang that live here:
//  * text that could start a marker is held back but always flushed at finish() (SGLang can lose it);
//  * a block that produced no call (malformed, only unknown tools, or cut off before its first call) is
//    returned as text instead of being dropped; text after a block is kept as content;
//  * a call cut off by the end of the output keeps what was streamed, and its arguments are closed so they
//    stay valid JSON (ToolCall::truncated tells the caller).
#include "parsers/tool_parser.h"

#include <random>

#include <fmt/format.h>

#include "base/check.h"
#include "parsers/scan.h"

namespace dsa::parsers {

std::string random_tool_call_id() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("call_{:016x}{:08x}", rng(), static_cast<uint32_t>(rng()));
}

ToolTable make_tool_table(const OrderedJson& tools) {
    ToolTable table;
    if (!tools.is_array()) return table;
    for (size_t i = 0; i < tools.size(); ++i) {
        const OrderedJson& tool = tools[i];
        const OrderedJson& fn = tool.is_object() && tool.contains("function") ? tool["function"] : tool;
        if (!fn.is_object() || !fn.contains("name") || !fn["name"].is_string()) continue;
        OrderedJson params = fn.contains("parameters") ? fn["parameters"] : OrderedJson();
        table.emplace(fn["name"].get<std::string>(), ToolInfo{static_cast<int>(i), std::move(params)});
    }
    return table;
}

ToolCallParser::ToolCallParser(const OrderedJson& tools, ToolParserOptions options)
    : tools_(make_tool_table(tools)), options_(std::move(options)) {
    if (!options_.make_id) options_.make_id = random_tool_call_id;
}

ToolParseDelta ToolCallParser::feed(std::string_view delta) {
    touched_ = true;
    buf_.append(delta);
    run(/*at_end=*/false);
    return std::exchange(out_, ToolParseDelta{});
}

ToolParseDelta ToolCallParser::finish() {
    touched_ = true;
    run(/*at_end=*/true);
    if (!in_text_) {
        if (in_call_) {
            close_truncated_call();
            truncated_.push_back(next_index_);
            end_call();
        } else if (calls_in_block_ == 0) {
            emit_content(block_raw_);
            emit_content(view());
        }
        block_raw_.clear();
        calls_in_block_ = 0;
        in_text_ = true;
    }
    buf_.clear();
    pos_ = 0;
    return std::exchange(out_, ToolParseDelta{});
}

ToolParseResult ToolCallParser::parse(std::string_view text) {
    DSA_CHECK(!touched_) << "parse() needs a fresh parser";
    std::vector<ToolParseDelta> deltas;
    deltas.push_back(feed(text));
    deltas.push_back(finish());
    ToolParseResult result = assemble(deltas);
    for (ToolCall& call : result.calls) {
        auto it = tools_.find(call.name);
        call.tool_index = it == tools_.end() ? -1 : it->second.index;
        for (int t : truncated_) call.truncated |= t == call.index;
    }
    return result;
}

ToolParseResult ToolCallParser::assemble(const std::vector<ToolParseDelta>& deltas) {
    ToolParseResult result;
    for (const ToolParseDelta& d : deltas) {
        result.content += d.normal_text;
        for (const ToolCallDelta& c : d.calls) {
            if (result.calls.empty() || result.calls.back().index != c.index) {
                ToolCall call;
                call.index = c.index;
                result.calls.push_back(call);
            }
            ToolCall& call = result.calls.back();
            if (c.id) call.id = *c.id;
            if (c.name) call.name = *c.name;
            call.arguments += c.arguments;
        }
    }
    return result;
}

void ToolCallParser::run(bool at_end) {
    while (in_text_ ? text_step(at_end) : block_step(at_end)) {
    }
    buf_.erase(0, pos_);
    pos_ = 0;
}

size_t ToolCallParser::trim_before_block(std::string_view pre) const {
    if (policy_.trim_before_block == WsTrim::kAllSpace) return trailing_space(pre);
    return pre.ends_with("\n\n") ? 2 : 0;
}

// Bytes at the end of the text state's buffer that cannot be emitted yet: a partial start marker and the
// whitespace that would be trimmed if a block started right after it.
size_t ToolCallParser::text_hold(std::string_view text) const {
    const size_t partial = partial_suffix(text, policy_.start_markers);
    const std::string_view rest = text.substr(0, text.size() - partial);
    if (policy_.trim_before_block == WsTrim::kAllSpace) return partial + trailing_space(rest);
    size_t newlines = 0;
    while (newlines < 2 && newlines < rest.size() && rest[rest.size() - 1 - newlines] == '\n') ++newlines;
    return partial + newlines;
}

bool ToolCallParser::text_step(bool at_end) {
    const std::string_view v = view();
    const MarkerHit hit = find_first(v, policy_.start_markers);
    if (hit.found()) {
        const std::string_view pre = v.substr(0, hit.pos);
        const size_t trim = trim_before_block(pre);
        const std::string_view kept = pre.substr(0, pre.size() - trim);
        if (!(space_after_block_ && all_space(kept))) emit_content(kept);
        space_after_block_ = false;
        block_raw_ = std::string(pre.substr(pre.size() - trim));
        consume(hit.pos);
        in_text_ = false;
        calls_in_block_ = 0;
        consume(on_block_start(hit.which));
        return true;
    }
    if (space_after_block_) {
        if (all_space(v)) {
            if (at_end) consume(v.size());  // whitespace after the last block is dropped
            return false;
        }
        space_after_block_ = false;
    }
    const size_t hold = at_end ? 0 : text_hold(v);
    emit_content(v.substr(0, v.size() - hold));
    consume(v.size() - hold);
    return false;
}

void ToolCallParser::consume(size_t n) {
    DSA_CHECK_LE(n, buf_.size() - pos_);
    if (!in_text_ && !in_call_ && calls_in_block_ == 0) block_raw_.append(buf_, pos_, n);
    pos_ += n;
}

void ToolCallParser::emit_content(std::string_view text) { out_.normal_text.append(text); }

bool ToolCallParser::known_tool(const std::string& name) const {
    return options_.forward_unknown_tools || tools_.find(name) != tools_.end();
}

const OrderedJson* ToolCallParser::tool_parameters(const std::string& name) const {
    auto it = tools_.find(name);
    return it == tools_.end() ? nullptr : &it->second.parameters;
}

void ToolCallParser::begin_call(const std::string& name) {
    ToolCallDelta delta;
    delta.index = next_index_;
    delta.id = options_.make_id();
    delta.name = name;
    out_.calls.push_back(std::move(delta));
    in_call_ = true;
    ++calls_in_block_;
    block_raw_.clear();
}

void ToolCallParser::emit_args(std::string_view fragment) {
    DSA_CHECK(in_call_);
    if (fragment.empty()) return;
    if (out_.calls.empty() || out_.calls.back().index != next_index_) {
        ToolCallDelta delta;
        delta.index = next_index_;
        out_.calls.push_back(std::move(delta));
    }
    out_.calls.back().arguments.append(fragment);
}

void ToolCallParser::end_call() {
    in_call_ = false;
    ++next_index_;
}

void ToolCallParser::end_block() {
    if (calls_in_block_ == 0) emit_content(block_raw_);
    space_after_block_ = calls_in_block_ > 0 && policy_.hold_space_after_block;
    block_raw_.clear();
    calls_in_block_ = 0;
    in_text_ = true;
}

}  // namespace dsa::parsers
