// Streaming property tests: for every transcript and every tool-call parser, the streamed result assembled
// from deltas equals the non-streaming parse for every chunking (whole, 1-byte, every 2-way split,
// token-like pieces, 200 seeded random splits). Also: the delta shape (id and name only on a call's first
// fragment, ordinals in order), and incremental streaming of long arguments before the call's end marker.
#include <gtest/gtest.h>

#include <tuple>

#include "parser_test_util.h"
#include "transcripts.h"

namespace dsa::parsers::testing {
namespace {

std::string describe(const Chunking& chunks) {
    std::string s;
    for (const auto& c : chunks) s += "[" + c + "]";
    return s.size() > 400 ? s.substr(0, 400) + "..." : s;
}

void expect_same(const ToolParseResult& a, const ToolParseResult& b, const Chunking& chunks) {
    ASSERT_EQ(a.content, b.content) << describe(chunks);
    ASSERT_EQ(a.calls.size(), b.calls.size()) << describe(chunks);
    for (size_t i = 0; i < a.calls.size(); ++i) {
        ASSERT_EQ(a.calls[i].index, b.calls[i].index) << describe(chunks);
        ASSERT_EQ(a.calls[i].id, b.calls[i].id) << describe(chunks);
        ASSERT_EQ(a.calls[i].name, b.calls[i].name) << describe(chunks);
        ASSERT_EQ(a.calls[i].arguments, b.calls[i].arguments) << describe(chunks);
    }
}

void expect_delta_shape(const std::vector<ToolParseDelta>& deltas) {
    int seen = -1;
    for (const auto& d : deltas) {
        for (const auto& c : d.calls) {
            const bool first = c.index > seen;
            ASSERT_TRUE(c.index == seen || c.index == seen + 1) << "call ordinals must be in order";
            EXPECT_EQ(c.id.has_value(), first);
            EXPECT_EQ(c.name.has_value(), first);
            seen = c.index;
        }
    }
}

struct Case {
    Transcript transcript;
    std::string parser;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.transcript.name << " by " << c.parser; }

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    for (const auto& t : all_transcripts()) {
        for (const auto& p : supported_tool_call_parsers()) cases.push_back({t, p});
    }
    return cases;
}

class StreamEqualsParse : public ::testing::TestWithParam<Case> {};

TEST_P(StreamEqualsParse, EveryChunking) {
    const auto& [t, parser_name] = GetParam();
    const ToolParseResult expected = make_tool_parser(parser_name, test_tools())->parse(t.text);
    for (const Chunking& chunks : all_chunkings(t.text)) {
        auto parser = make_tool_parser(parser_name, test_tools());
        const auto deltas = stream_tool(*parser, chunks);
        expect_delta_shape(deltas);
        expect_same(ToolCallParser::assemble(deltas), expected, chunks);
        if (::testing::Test::HasFatalFailure()) return;
    }
}

INSTANTIATE_TEST_SUITE_P(All, StreamEqualsParse, ::testing::ValuesIn(all_cases()), [](const auto& info) {
    std::string p = info.param.parser;
    return info.param.transcript.name + "_by_" + p;
});

// Feeds `text` up to the first occurrence of `stop` (exclusive) in 7-byte pieces; returns the arguments
// streamed so far for call 0.
std::string args_before(const std::string& parser_name, const std::string& text, const std::string& stop) {
    const size_t end = text.find(stop);
    EXPECT_NE(end, std::string::npos);
    auto parser = make_tool_parser(parser_name, test_tools());
    std::vector<ToolParseDelta> deltas;
    for (size_t i = 0; i < end; i += 7) deltas.push_back(parser->feed(text.substr(i, std::min<size_t>(7, end - i))));
    const auto r = ToolCallParser::assemble(deltas);
    return r.calls.empty() ? "" : r.calls[0].arguments;
}

void expect_incremental(const std::string& transcript_name, const std::string& stop, size_t margin) {
    for (const auto& t : all_transcripts()) {
        if (t.name != transcript_name) continue;
        const std::string full = t.calls.at(0).arguments;
        const std::string partial = args_before(t.parser, t.text, stop);
        EXPECT_EQ(full.substr(0, partial.size()), partial) << "streamed arguments must be a prefix of the final ones";
        EXPECT_GE(partial.size() + margin, full.size()) << transcript_name << ": arguments were held back";
        return;
    }
    FAIL() << "no transcript " << transcript_name;
}

TEST(IncrementalStreaming, DsmlArgumentsStreamBeforeEndMarker) {
    expect_incremental("v32_long_arguments", "</｜DSML｜parameter>", 8);
}

TEST(IncrementalStreaming, V31ArgumentsStreamBeforeEndMarker) {
    expect_incremental("v31_long_arguments", "<｜tool▁call▁end｜>", 8);
}

TEST(IncrementalStreaming, GlmArgumentsStreamBeforeEndMarker) {
    expect_incremental("glm_long_arguments", "</arg_value>", 8);
}

TEST(IncrementalStreaming, NameIsSentBeforeArguments) {
    auto parser = make_tool_parser("deepseekv32", test_tools());
    auto d1 = parser->feed("<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_time\">\n");
    ASSERT_EQ(d1.calls.size(), 1u);
    EXPECT_EQ(d1.calls[0].name.value_or(""), "get_time");
    EXPECT_EQ(d1.calls[0].id.value_or(""), "call_0");
    auto d2 = parser->feed("<｜DSML｜parameter name=\"tz\" string=\"true\">Europe/Par");
    ASSERT_EQ(d2.calls.size(), 1u);
    EXPECT_EQ(d2.calls[0].arguments, "{\"tz\": \"Europe/Par");
    EXPECT_FALSE(d2.calls[0].name.has_value());
}

// Reasoning split first, then tool calls on the content (the server's order), streamed vs one-shot.
struct Pipeline {
    std::string reasoning;
    ToolParseResult tools;
};

Pipeline run_pipeline(const std::string& rp, const std::string& tp, const Chunking& chunks) {
    auto reasoning = std::move(make_reasoning_parser(rp, {true, true, true})).value();
    auto tools = make_tool_parser(tp, test_tools());
    Pipeline out;
    std::vector<ToolParseDelta> deltas;
    for (const auto& c : chunks) {
        const ReasoningDelta d = reasoning->feed(c);
        out.reasoning += d.reasoning;
        deltas.push_back(tools->feed(d.content));
    }
    const ReasoningDelta d = reasoning->finish();
    out.reasoning += d.reasoning;
    deltas.push_back(tools->feed(d.content));
    deltas.push_back(tools->finish());
    out.tools = ToolCallParser::assemble(deltas);
    return out;
}

TEST(Pipeline, ReasoningThenToolCallsForEveryChunking) {
    const std::string dsml = "I should call get_weather.</think>\n\n" +
                             dsml_block({dsml_invoke("get_weather", {dsml_param("city", true, "Paris"),
                                                                     dsml_param("days", false, "2")})});
    const std::string glm = "need weather<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>";
    for (const auto& [rp, tp, text, reasoning] :
         {std::tuple{"deepseek-v3", "deepseekv32", dsml, "I should call get_weather."},
          std::tuple{"glm45", "glm47", glm, "need weather"}}) {
        const Pipeline once = run_pipeline(rp, tp, {text});
        EXPECT_EQ(once.reasoning, reasoning);
        EXPECT_EQ(once.tools.content, "");
        ASSERT_EQ(once.tools.calls.size(), 1u);
        EXPECT_EQ(once.tools.calls[0].name, "get_weather");
        for (const Chunking& chunks : all_chunkings(text)) {
            const Pipeline streamed = run_pipeline(rp, tp, chunks);
            ASSERT_EQ(streamed.reasoning, once.reasoning) << describe(chunks);
            expect_same(streamed.tools, once.tools, chunks);
            if (::testing::Test::HasFatalFailure()) return;
        }
    }
}

TEST(HeldText, PartialMarkerIsFlushedAtFinish) {
    for (const auto& p : supported_tool_call_parsers()) {
        auto parser = make_tool_parser(p, test_tools());
        std::string content = parser->feed("Answer: <").normal_text;
        content += parser->finish().normal_text;
        EXPECT_EQ(content, "Answer: <") << p;
    }
}

}  // namespace
}  // namespace dsa::parsers::testing
