// Reasoning parser tests: the API spec's cases (forced <think> vs generated, missing </think>, thinking
// disabled, separate_reasoning off, held reasoning), glm45's <tool_call> cut, and stream == non-stream for
// every chunking of every case.
#include <gtest/gtest.h>

#include "parser_test_util.h"

namespace dsa::parsers::testing {
namespace {

struct ReasoningCase {
    std::string name;
    std::string parser;
    ReasoningOptions options;
    std::string text;
    std::string reasoning;
    std::string content;
};

void PrintTo(const ReasoningCase& c, std::ostream* os) { *os << c.name; }

constexpr ReasoningOptions kThinking{true, true, true};
constexpr ReasoningOptions kChat{false, true, true};

std::vector<ReasoningCase> cases() {
    return {
        {"spec_example_b", "deepseek-v3", kThinking, "The user wants 2+2, which is 4.</think>2 + 2 = 4.",
         "The user wants 2+2, which is 4.", "2 + 2 = 4."},
        {"missing_end_is_all_reasoning", "deepseek-v3", kThinking, "Still thinking about 東京", "Still thinking about 東京", ""},
        {"leading_think_tags_dropped", "deepseek-v3", kThinking, "<think><think>abc</think>\n\ndef", "abc", "\n\ndef"},
        {"chat_mode_is_content", "deepseek-v3", kChat, "Hello </think> there <think>x", "",
         "Hello </think> there <think>x"},
        {"chat_mode_self_opened", "deepseek-v3", kChat, "\n<think>hmm 🤔</think>ok", "hmm 🤔", "ok"},
        {"chat_mode_partial_tag_is_content", "deepseek-v3", kChat, "<thi", "", "<thi"},
        {"deepseek_keeps_tool_call_in_reasoning", "deepseek-v3", kThinking, "a <tool_call> b</think>c", "a <tool_call> b", "c"},
        {"glm_tool_call_ends_reasoning", "glm45", kThinking, "need weather<tool_call>get_weather</tool_call>",
         "need weather", "<tool_call>get_weather</tool_call>"},
        {"glm_second_end_tag_is_content", "glm45", kThinking, "r</think>c</think>d", "r", "c</think>d"},
        {"separate_reasoning_off", "glm45", {true, false, true}, "r</think>c", "", "r</think>c"},
        {"held_reasoning", "deepseek-v3", {true, true, false}, "abc</think>def", "abc", "def"},
        {"spec_example_c_output", "deepseek-v3", kThinking,
         "I should call get_weather.</think>\n\n<｜DSML｜function_calls>\n</｜DSML｜function_calls>",
         "I should call get_weather.", "\n\n<｜DSML｜function_calls>\n</｜DSML｜function_calls>"},
    };
}

std::unique_ptr<ReasoningParser> make(const ReasoningCase& c) {
    auto p = make_reasoning_parser(c.parser, c.options);
    return p.is_ok() ? std::move(p).value() : nullptr;
}

class ReasoningCases : public ::testing::TestWithParam<ReasoningCase> {};

TEST_P(ReasoningCases, ParseMatchesExpected) {
    const ReasoningCase& c = GetParam();
    const ReasoningDelta r = make(c)->parse(c.text);
    EXPECT_EQ(r.reasoning, c.reasoning);
    EXPECT_EQ(r.content, c.content);
}

TEST_P(ReasoningCases, StreamEqualsParseForEveryChunking) {
    const ReasoningCase& c = GetParam();
    for (const Chunking& chunks : all_chunkings(c.text)) {
        auto parser = make(c);
        const ReasoningDelta r = stream_reasoning(*parser, chunks);
        ASSERT_EQ(r.reasoning, c.reasoning);
        ASSERT_EQ(r.content, c.content);
    }
}

INSTANTIATE_TEST_SUITE_P(All, ReasoningCases, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

TEST(ReasoningStreaming, ReasoningStreamsBeforeEndTag) {
    auto parser = make_reasoning_parser("deepseek-v3", kThinking);
    ASSERT_TRUE(parser.is_ok());
    EXPECT_EQ((*parser)->feed("The user").reasoning, "The user");
    EXPECT_EQ((*parser)->feed(" asks</th").reasoning, " asks");  // the partial end tag is held
    const ReasoningDelta d = (*parser)->feed("ink>Hi");
    EXPECT_EQ(d.reasoning, "");
    EXPECT_EQ(d.content, "Hi");
}

TEST(ReasoningStreaming, HeldReasoningComesInOnePiece) {
    auto parser = make_reasoning_parser("glm45", {true, true, false});
    ASSERT_TRUE(parser.is_ok());
    EXPECT_EQ((*parser)->feed("abc").reasoning, "");
    const ReasoningDelta d = (*parser)->feed("def</think>x");
    EXPECT_EQ(d.reasoning, "abcdef");
    EXPECT_EQ(d.content, "x");
}

}  // namespace
}  // namespace dsa::parsers::testing
