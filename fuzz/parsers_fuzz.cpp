// libFuzzer target for the reasoning and tool-call parsers. The input picks a parser and a chunking seed,
// then the text (a 0x01 byte followed by k inserts marker k of a table of tags, so that the fuzzer reaches
// the block grammars quickly). Checks: no crash or hang; the streamed result equals the non-streaming parse
// for a random chunking and for 1-byte chunks; content never grows beyond the input; tool arguments are
// valid JSON whenever the input is valid UTF-8.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/json.h"
#include "parsers/factory.h"

namespace {

using dsa::OrderedJson;
using namespace dsa::parsers;

const char* const kMarkers[] = {
    "<｜DSML｜function_calls>", "</｜DSML｜function_calls>", "<｜DSML｜invoke name=\"get_weather\">",
    "<｜DSML｜invoke name=\"write_file\">", "</｜DSML｜invoke>", "<｜DSML｜parameter name=\"city\" string=\"true\">",
    "<｜DSML｜parameter name=\"meta\" string=\"false\">", "</｜DSML｜parameter>", "<｜DSML｜invoke name=\"get_time\"/>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>",
    "get_weather", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
    "<think>", "</think>", "{\"city\": \"", "\"}", "\\ud83d", "\\u00e9", "\n\n", "｜", "True", "[1, {\"k\": null}]",
};
constexpr size_t kNumMarkers = sizeof(kMarkers) / sizeof(kMarkers[0]);

std::string decode_text(const uint8_t* data, size_t size) {
    std::string text;
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == 0x01 && i + 1 < size) {
            text += kMarkers[data[++i] % kNumMarkers];
        } else {
            text += static_cast<char>(data[i]);
        }
    }
    return text;
}

bool is_valid_utf8(const std::string& s) {
    try {
        (void)OrderedJson(s).dump();  // the strict error handler throws on invalid UTF-8
        return true;
    } catch (const OrderedJson::exception&) {
        return false;
    }
}

[[noreturn]] void fail(const char* what, const std::string& text) {
    std::fprintf(stderr, "parsers_fuzz: %s\ntext (%zu bytes): %s\n", what, text.size(), text.c_str());
    std::abort();
}

std::vector<std::string> chunk(const std::string& text, uint64_t seed, size_t max_piece) {
    std::vector<std::string> out;
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < text.size();) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const size_t n = std::min<size_t>(1 + x % max_piece, text.size() - i);
        out.push_back(text.substr(i, n));
        i += n;
    }
    return out;
}

OrderedJson tools() {
    return OrderedJson::parse(R"([
      {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
        "properties":{"city":{"type":"string"},"days":{"type":"integer"}}}}},
      {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string"}}}}},
      {"type":"function","function":{"name":"write_file","parameters":{"type":"object","properties":{
        "path":{"type":"string"},"meta":{"type":"object"}}}}}])");
}

ToolParserOptions fixed_ids() {
    ToolParserOptions o;
    o.make_id = [] { return std::string("call_x"); };
    return o;
}

ToolParseResult stream_tools(const std::string& name, const std::vector<std::string>& chunks) {
    auto parser = std::move(make_tool_call_parser(name, tools(), fixed_ids())).value();
    std::vector<ToolParseDelta> deltas;
    for (const auto& c : chunks) deltas.push_back(parser->feed(c));
    deltas.push_back(parser->finish());
    return ToolCallParser::assemble(deltas);
}

void check_tools(const std::string& name, const std::string& text, uint64_t seed) {
    const ToolParseResult full = std::move(make_tool_call_parser(name, tools(), fixed_ids())).value()->parse(text);
    if (full.content.size() > text.size()) fail("content longer than the input", text);
    std::vector<std::vector<std::string>> chunkings = {chunk(text, seed, 1 + seed % 24)};
    if (text.size() <= 512) chunkings.push_back(chunk(text, seed, 1));
    for (const auto& chunks : chunkings) {
        const ToolParseResult s = stream_tools(name, chunks);
        if (s.content != full.content || s.calls.size() != full.calls.size()) fail("stream != parse (content/count)", text);
        for (size_t i = 0; i < s.calls.size(); ++i) {
            if (s.calls[i].name != full.calls[i].name || s.calls[i].arguments != full.calls[i].arguments) {
                fail("stream != parse (call)", text);
            }
        }
    }
    if (!is_valid_utf8(text)) return;
    for (const auto& call : full.calls) {
        if (OrderedJson::parse(call.arguments, nullptr, false).is_discarded()) fail("arguments are not JSON", text);
    }
}

void check_reasoning(const std::string& name, bool thinking, const std::string& text, uint64_t seed) {
    const ReasoningOptions options{thinking, true, (seed & 1) == 0};
    const ReasoningDelta full = std::move(make_reasoning_parser(name, options)).value()->parse(text);
    if (full.reasoning.size() + full.content.size() > text.size()) fail("reasoning + content longer than input", text);
    auto parser = std::move(make_reasoning_parser(name, options)).value();
    ReasoningDelta sum;
    for (const auto& c : chunk(text, seed, 1 + seed % 24)) {
        const ReasoningDelta d = parser->feed(c);
        sum.reasoning += d.reasoning;
        sum.content += d.content;
    }
    const ReasoningDelta d = parser->finish();
    if (sum.reasoning + d.reasoning != full.reasoning || sum.content + d.content != full.content) {
        fail("reasoning stream != parse", text);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    const uint8_t selector = data[0];
    const uint64_t seed = data[1];
    const std::string text = decode_text(data + 2, size - 2);
    static const std::vector<std::string> kToolParsers = supported_tool_call_parsers();
    static const std::vector<std::string> kReasoningParsers = supported_reasoning_parsers();
    const size_t pick = selector % (kToolParsers.size() + kReasoningParsers.size());
    if (pick < kToolParsers.size()) {
        check_tools(kToolParsers[pick], text, seed);
    } else {
        check_reasoning(kReasoningParsers[pick - kToolParsers.size()], (selector & 0x80) != 0, text, seed);
    }
    return 0;
}
